"""Restore safety gates: one set of functions every front end calls and shows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kamal_backup import paths
from kamal_backup.databases import DatabaseAdapter, adapter_for, adapters_for
from kamal_backup.databases.base import production_like_reason
from kamal_backup.errors import ConfigError, GateRefused
from kamal_backup.models import GateVerdict
from kamal_backup.paths import is_system_root, resolve_path
from kamal_backup.settings import Settings

__all__ = ["production_like_reason"]

ALLOW_RESTORE = "KAMAL_BACKUP_ALLOW_RESTORE"
ALLOW_PRODUCTION = "KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE"
ALLOW_IN_PLACE = "KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE"


def safety_flags(settings: Settings) -> list[tuple[str, bool]]:
    """Every restore safety variable and whether it is set now."""
    return [
        (ALLOW_RESTORE, settings.kamal_backup_allow_restore),
        (ALLOW_PRODUCTION, settings.kamal_backup_allow_production_restore),
        (ALLOW_IN_PLACE, settings.kamal_backup_allow_in_place_file_restore),
    ]


def restore_allowed(settings: Settings) -> GateVerdict:
    allowed = settings.kamal_backup_allow_restore
    return GateVerdict(
        gate="restores enabled",
        variable=ALLOW_RESTORE,
        allowed=allowed,
        reason="restores are enabled" if allowed else "restores are disabled",
    )


def _production_verdict(settings: Settings, reason: str | None) -> GateVerdict:
    if reason is None:
        return GateVerdict(
            gate="production-like target",
            variable=ALLOW_PRODUCTION,
            allowed=True,
            reason="the target does not look like production",
        )
    if settings.kamal_backup_allow_production_restore:
        return GateVerdict(
            gate="production-like target",
            variable=ALLOW_PRODUCTION,
            allowed=True,
            reason=f"allowed by {ALLOW_PRODUCTION}: {reason}",
        )
    return GateVerdict(
        gate="production-like target",
        variable=ALLOW_PRODUCTION,
        allowed=False,
        reason=f"the target looks like production: {reason}",
    )


def database_restore_verdicts(settings: Settings, database: str | None = None) -> list[GateVerdict]:
    """Every gate's verdict for restore-db into a database's configured restore target."""
    adapter = adapter_for(settings, database)
    verdicts = [restore_allowed(settings)]
    target = adapter.restore_target_label()
    if target is None:
        verdicts.append(
            GateVerdict(
                gate="restore target",
                variable=adapter.restore_setting,
                allowed=False,
                reason=f"{adapter.restore_setting} is not set",
            )
        )
        return verdicts
    verdicts.append(
        GateVerdict(
            gate="restore target",
            variable=adapter.restore_setting,
            allowed=True,
            reason=f"restoring into {target}",
        )
    )
    verdicts.append(_production_verdict(settings, adapter.production_like_reason()))
    return verdicts


def file_restore_verdicts(settings: Settings, target: str) -> list[GateVerdict]:
    """Every gate's verdict for restore-files into `target`.

    A target that is a backup path means an in-place restore, judged by its own gates.
    """
    if is_backup_path(settings, target):
        return in_place_file_restore_verdicts(settings)
    verdicts = [restore_allowed(settings)]
    text = target.strip()
    if not text or not Path(text).is_absolute():
        verdicts.append(
            GateVerdict(
                gate="restore target",
                variable=None,
                allowed=False,
                reason=f"the target directory must be an absolute path (got {text!r})",
            )
        )
        return verdicts
    resolved = resolve_path(Path(text))
    if is_system_root(resolved):
        verdicts.append(
            GateVerdict(
                gate="restore target",
                variable=None,
                allowed=False,
                reason=f"{resolved} is a system directory; never a restore target "
                "(--in-place puts files back at their original paths)",
            )
        )
        return verdicts
    verdicts.append(
        GateVerdict(
            gate="restore target", variable=None, allowed=True, reason=f"restoring into {resolved}"
        )
    )
    reason = production_like_reason([str(resolved)], is_source=False)
    verdicts.append(_production_verdict(settings, reason))

    overlap = next(
        (
            found
            for path in settings.backup_paths
            if (found := paths.overlap(resolved, resolve_path(path)))
        ),
        None,
    )
    if overlap is None:
        verdicts.append(
            GateVerdict(
                gate="in-place file restore",
                variable=ALLOW_IN_PLACE,
                allowed=True,
                reason="the target is apart from every backup path",
            )
        )
    elif settings.kamal_backup_allow_in_place_file_restore:
        verdicts.append(
            GateVerdict(
                gate="in-place file restore",
                variable=ALLOW_IN_PLACE,
                allowed=True,
                reason=f"allowed by {ALLOW_IN_PLACE}: {overlap}",
            )
        )
    else:
        verdicts.append(
            GateVerdict(
                gate="in-place file restore",
                variable=ALLOW_IN_PLACE,
                allowed=False,
                # Allowed, such a target gets a copy under <target>/<original path>, amid
                # the live files: only --in-place (or the backup path itself) puts them back.
                reason=f"the target overlaps live files: {overlap}; to put the files back "
                "where they were, use --in-place (or the backup path itself as the target)",
            )
        )
    return verdicts


def is_backup_path(settings: Settings, target: str) -> bool:
    """True when `target` is one of BACKUP_PATHS (after resolving): restore-files goes in place."""
    text = target.strip()
    if not text or not Path(text).is_absolute():
        return False
    resolved = resolve_path(Path(text))
    return any(resolved == resolve_path(path) for path in settings.backup_paths)


def in_place_file_restore_verdicts(
    settings: Settings, destinations: Sequence[Path] = ()
) -> list[GateVerdict]:
    """Every gate's verdict for putting snapshot paths back at their original locations."""
    verdicts = [restore_allowed(settings)]
    allowed = settings.kamal_backup_allow_in_place_file_restore
    verdicts.append(
        GateVerdict(
            gate="in-place file restore",
            variable=ALLOW_IN_PLACE,
            allowed=allowed,
            reason=f"allowed by {ALLOW_IN_PLACE}: files go back to their original paths"
            if allowed
            else "an in-place restore replaces live files",
        )
    )
    roots = [resolve_path(path) for path in settings.backup_paths]
    for destination in destinations:
        resolved = resolve_path(destination)
        if is_system_root(resolved) or not any(resolved.is_relative_to(root) for root in roots):
            verdicts.append(
                GateVerdict(
                    gate="restore target",
                    variable=None,
                    allowed=False,
                    reason=f"{resolved} is not inside a configured backup path (BACKUP_PATHS); "
                    "an in-place restore only writes there",
                )
            )
    return verdicts


def production_database_restore(settings: Settings, database: str | None = None) -> bool:
    """True when restore-db would write into a source database itself (any, or `database`)."""
    names = [database] if database else [d.name for d in settings.database_list]
    return any(adapter_for(settings, name).restore_target_is_source() for name in names)


def confirm_app_name(settings: Settings, typed: str) -> None:
    """The typed confirmation of a production restore: the app name, exactly."""
    if typed.strip() != settings.app_name:
        raise GateRefused(
            f"restore refused: confirmation {typed.strip()!r} is not the app name "
            f"{settings.app_name!r}"
        )


def enforce(verdicts: list[GateVerdict]) -> None:
    """Raises for the first refusing gate: GateRefused (exit 3), or ConfigError for a missing target."""
    for verdict in verdicts:
        if verdict.allowed:
            continue
        if verdict.gate == "restore target" and verdict.variable is not None:
            raise ConfigError(
                verdict.variable,
                "is required for this restore (restores never write to the backup source)",
            )
        variable = verdict.variable if verdict.gate != "restore target" else None
        raise GateRefused(f"restore refused: {verdict.reason}", variable=variable)


def drill_verdicts(
    settings: Settings, files_target: str, parts: tuple[str, ...] = ("database", "files")
) -> list[tuple[str, GateVerdict]]:
    """The restore gates of each part of a drill, and the drill's own: never into the source.

    A drill only ever writes to scratch targets: where a restore would let a flag open the way
    into the backup source or a backup path, a drill refuses whatever the flags say.
    """
    found: list[tuple[str, GateVerdict]] = []
    if "database" in parts:
        adapters = adapters_for(settings)
        several = len(adapters) > 1
        for adapter in adapters:
            name = adapter.database_name
            into_source = database_target_is_source(settings, adapter)
            for verdict in database_restore_verdicts(settings, name):
                if into_source and verdict.gate == "production-like target":
                    verdict = GateVerdict(
                        gate="drill target",
                        variable=None,
                        allowed=False,
                        reason=f"a drill never writes to the backup source: "
                        f"{adapter.restore_setting} {adapter.restore_target_label()} {into_source}",
                    )
                if several and not verdict.allowed:
                    # Several databases: say which one is refused.
                    verdict = verdict.model_copy(
                        update={"reason": f"database {name}: {verdict.reason}"}
                    )
                found.append(("database", verdict))
    if "files" in parts:
        text = files_target.strip()
        overlap = None
        if text and Path(text).is_absolute():
            resolved = resolve_path(Path(text))
            overlap = next(
                (
                    hit
                    for path in settings.backup_paths
                    if (hit := paths.overlap(resolved, resolve_path(path)))
                ),
                None,
            )
        for verdict in file_restore_verdicts(settings, files_target):
            if overlap and verdict.gate == "in-place file restore":
                verdict = GateVerdict(
                    gate="drill target",
                    variable=None,
                    allowed=False,
                    reason=f"a drill never writes into a backup path: {files_target.strip()} "
                    f"{overlap.removeprefix('it ')}",
                )
            found.append(("files", verdict))
    return found


def database_target_is_source(settings: Settings, adapter: DatabaseAdapter) -> str | None:
    """How a database's restore target would write to its source or a backup path, or None."""
    if adapter.restore_target_label() is None:
        return None
    if adapter.restore_target_is_source():
        return "is the backup source"
    target = settings.database(adapter.database_name).restore_path
    if target is not None:
        resolved = resolve_path(target)
        for path in settings.backup_paths:
            if resolved.is_relative_to(resolve_path(path)):
                return f"is inside the backup path {path}"
    return None
