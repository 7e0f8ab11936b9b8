"""Listing this app's snapshots and resolving snapshot arguments safely."""

from __future__ import annotations

import re
from collections.abc import Sequence

from kamal_backup.errors import ConfigError
from kamal_backup.models import RECORD_TYPES, Snapshot, SnapshotType
from kamal_backup.restic import Restic
from kamal_backup.services import app_tags, restic_for
from kamal_backup.settings import Settings

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


def complete_runs(snapshots: Sequence[Snapshot]) -> set[str]:
    """Runs that have both their database and their file snapshot: only these count as backups.

    A run interrupted after its database snapshot (killed, or a file backup that failed) leaves
    that snapshot behind; it is a valid dump, restorable by id, but not a backup run. Neither is
    the safety snapshot a production restore takes (tagged pre-restore).
    """
    kinds: dict[str, set[str]] = {}
    for snapshot in snapshots:
        if snapshot.run and snapshot.kind and not snapshot.pre_restore:
            kinds.setdefault(snapshot.run, set()).add(snapshot.kind)
    return {run for run, found in kinds.items() if {"database", "files"} <= found}


def latest_complete(snapshots: Sequence[Snapshot], kind: SnapshotType) -> Snapshot | None:
    complete = complete_runs(snapshots)
    candidates = [s for s in snapshots if s.kind == kind and s.run in complete]
    return max(candidates, key=lambda snapshot: snapshot.time) if candidates else None


def resolve_snapshot(
    settings: Settings,
    restic: Restic,
    argument: str,
    kind: SnapshotType,
    snapshots: Sequence[Snapshot] | None = None,
) -> Snapshot:
    """The snapshot an argument names, if it is one of this app's snapshots of this type.

    'latest' is the newest snapshot of a complete run; an id may name any snapshot of the type.
    """
    value = validate_snapshot_argument(argument)
    every = list(snapshots) if snapshots is not None else list_snapshots(settings, restic=restic)
    candidates = [s for s in every if s.kind == kind]
    if not candidates:
        raise ConfigError(
            "SNAPSHOT", f"there are no {kind} snapshots for app {settings.app_name} yet"
        )
    if value == "latest":
        latest = latest_complete(every, kind)
        if latest is None:
            raise ConfigError(
                "SNAPSHOT",
                f"no backup run of app {settings.app_name} has completed yet; name a {kind} snapshot id "
                "from `kamal-backup list` to restore a partial run",
            )
        return latest
    matches = [s for s in candidates if s.id.startswith(value)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError("SNAPSHOT", f"{value} matches {len(matches)} snapshots; give more digits")
    raise ConfigError("SNAPSHOT", f"{value} is not a {kind} snapshot of app {settings.app_name}")
