"""Listing this app's snapshots and resolving snapshot arguments safely."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Sequence

from kamal_backup.errors import ConfigError
from kamal_backup.models import (
    FILES_PART,
    RECORD_TYPES,
    Snapshot,
    SnapshotType,
    database_part,
)
from kamal_backup.restic import Restic
from kamal_backup.services import app_tags, restic_for
from kamal_backup.settings import Settings

log = logging.getLogger(__name__)

_SNAPSHOT_ID = re.compile(r"^[0-9a-f]{8,64}$")


def list_snapshots(
    settings: Settings, kind: SnapshotType | None = None, restic: Restic | None = None
) -> list[Snapshot]:
    """This app's backup snapshots (optionally one type), newest first.

    Manifests and drill records (RECORD_TYPES) are documents about backups, not backups: they
    are left out here and read with `list_records`.
    """
    restic = restic or restic_for(settings)
    restic.require_supported_version()
    tags = app_tags(settings, f"type:{kind}") if kind else app_tags(settings)
    snapshots = [s for s in restic.snapshots(tags) if s.kind not in RECORD_TYPES]
    return sorted(snapshots, key=lambda snapshot: snapshot.time, reverse=True)


def list_records(settings: Settings, kind: str, restic: Restic | None = None) -> list[Snapshot]:
    """This app's manifest or drill-record snapshots, newest first."""
    restic = restic or restic_for(settings)
    restic.require_supported_version()
    snapshots = restic.snapshots(app_tags(settings, f"type:{kind}"))
    return sorted(snapshots, key=lambda snapshot: snapshot.time, reverse=True)


def validate_snapshot_argument(argument: str) -> str:
    """'latest' or a lower-case hex snapshot id; anything else is refused before restic sees it."""
    value = argument.strip()
    if value == "latest" or _SNAPSHOT_ID.match(value):
        return value
    raise ConfigError(
        "SNAPSHOT", f"{argument!r} is not 'latest' or a snapshot id (8-64 hex digits)"
    )


def expected_parts(settings: Settings) -> frozenset[str]:
    """What a complete run of this app holds: each configured database, and the files if any."""
    parts = {database_part(database.name) for database in settings.database_list}
    if settings.backup_paths:
        parts.add(FILES_PART)
    return frozenset(parts)


def complete_runs(snapshots: Sequence[Snapshot], expected: Collection[str]) -> set[str]:
    """Runs that have every expected part (each database's snapshot, the files'): only these
    count as backups. Snapshots made before databases had names count as `primary`.

    A run interrupted after its first database snapshot (killed, or a file backup that failed)
    leaves snapshots behind; they are valid, restorable by id, but not a backup run. Neither is
    the safety snapshot a production restore takes (tagged pre-restore).
    """
    parts: dict[str, set[str]] = {}
    for snapshot in snapshots:
        if snapshot.run and snapshot.part and not snapshot.pre_restore:
            parts.setdefault(snapshot.run, set()).add(snapshot.part)
    wanted = set(expected)
    return {run for run, found in parts.items() if wanted and wanted <= found}


def suspicious_runs(snapshots: Sequence[Snapshot]) -> set[str]:
    """Runs whose snapshots carry the suspicious tag (a shrink against the last good run)."""
    return {s.run for s in snapshots if s.run and s.suspicious and not s.pre_restore}


def good_runs(snapshots: Sequence[Snapshot], expected: Collection[str]) -> set[str]:
    """Complete runs that are not suspicious (accepted ones included): what `latest` means."""
    return complete_runs(snapshots, expected) - suspicious_runs(snapshots)


def say_suspicious(snapshots: Sequence[Snapshot], run: str | None, latest: bool) -> None:
    """Logs what an operator restoring `run` should know: that it is suspicious (named by id or
    run), or, for `latest`, which newer suspicious runs it passed over."""
    flagged = suspicious_runs(snapshots)
    if run in flagged:
        log.warning(
            "run %s is suspicious (it shrank against the last good run): restoring it as asked",
            run,
        )
    elif latest and run is not None and (newer := sorted(r for r in flagged if r > run)):
        log.warning(
            "latest is run %s: the newer suspicious run%s %s %s skipped (name one to restore it)",
            run,
            "s" if len(newer) > 1 else "",
            ", ".join(newer),
            "are" if len(newer) > 1 else "is",
        )


def no_good_run(snapshots: Sequence[Snapshot], expected: Collection[str], app_name: str) -> str:
    """Why there is no `latest`: no complete run yet, or every complete run is suspicious."""
    flagged = sorted(complete_runs(snapshots, expected) & suspicious_runs(snapshots))
    if flagged:
        return (
            f"every complete run of app {app_name} is suspicious (newest {flagged[-1]}); name "
            f"the run or a snapshot id, or `kamal-backup accept {flagged[-1]}` if it is right"
        )
    return f"no backup run of app {app_name} has completed yet"


def latest_complete(
    snapshots: Sequence[Snapshot],
    kind: SnapshotType,
    expected: Collection[str],
    database: str | None = None,
) -> Snapshot | None:
    """The newest snapshot of this type (and database) in a complete run that is not
    suspicious."""
    complete = good_runs(snapshots, expected)
    candidates = [
        s
        for s in snapshots
        if s.kind == kind
        and s.run in complete
        and not s.pre_restore
        and (database is None or s.database == database)
    ]
    return max(candidates, key=lambda snapshot: snapshot.time) if candidates else None


def latest_complete_run(snapshots: Sequence[Snapshot], expected: Collection[str]) -> list[Snapshot]:
    """Every snapshot of the newest complete run that is not suspicious, databases first."""
    complete = good_runs(snapshots, expected)
    runs = [s for s in snapshots if s.run in complete and s.part and not s.pre_restore]
    if not runs:
        return []
    newest = max(runs, key=lambda snapshot: snapshot.time).run
    return sorted(
        (s for s in runs if s.run == newest), key=lambda s: (s.kind != "database", s.database or "")
    )


def resolve_snapshot(
    settings: Settings,
    restic: Restic,
    argument: str,
    kind: SnapshotType,
    snapshots: Sequence[Snapshot] | None = None,
    database: str | None = None,
) -> Snapshot:
    """The snapshot an argument names, if it is one of this app's snapshots of this type.

    'latest' is the newest snapshot of a complete run; an id may name any snapshot of the type.
    With `database`, only that database's snapshots are candidates.
    """
    value = validate_snapshot_argument(argument)
    every = list(snapshots) if snapshots is not None else list_snapshots(settings, restic=restic)
    candidates = [
        s for s in every if s.kind == kind and (database is None or s.database == database)
    ]
    what = f"{kind} snapshots of database {database}" if database else f"{kind} snapshots"
    if not candidates:
        raise ConfigError("SNAPSHOT", f"there are no {what} for app {settings.app_name} yet")
    if value == "latest":
        expected = expected_parts(settings)
        latest = latest_complete(every, kind, expected, database)
        if latest is None:
            why = no_good_run(every, expected, settings.app_name)
            if why.startswith("no backup run"):
                why += (
                    f"; name a {kind} snapshot id from `kamal-backup list` to restore a partial run"
                )
            raise ConfigError("SNAPSHOT", why)
        say_suspicious(every, latest.run, latest=True)
        return latest
    matches = [s for s in candidates if s.id.startswith(value)]
    if len(matches) == 1:
        say_suspicious(every, matches[0].run, latest=False)
        return matches[0]
    if len(matches) > 1:
        raise ConfigError("SNAPSHOT", f"{value} matches {len(matches)} snapshots; give more digits")
    of = f" of database {database}" if database else ""
    raise ConfigError(
        "SNAPSHOT", f"{value} is not a {kind} snapshot{of} of app {settings.app_name}"
    )
