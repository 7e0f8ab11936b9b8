"""Retention: RESTIC_KEEP_* per snapshot type and database, never touching another app.

A production restore's safety snapshots (tagged pre-restore) are written under their own host,
`<host>-pre-restore`, so that retention groups them apart: they never take a backup's place in
the keep-last/daily/... counts. They are kept for SAFETY_SNAPSHOT_DAYS and forgotten after.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from kamal_backup.models import (
    LEGACY_DATABASE,
    PRE_RESTORE_TAG,
    SNAPSHOT_TYPES,
    SUSPICIOUS_TAG,
    RetentionResult,
    Snapshot,
    SnapshotType,
)
from kamal_backup.restic import Restic
from kamal_backup.services import app_tags
from kamal_backup.services.baseline import kept_good_runs
from kamal_backup.services.policy import apply_by_host
from kamal_backup.services.snapshots import expected_parts
from kamal_backup.settings import Settings

log = logging.getLogger(__name__)

SAFETY_SNAPSHOT_DAYS = 30


_DENIED = (
    "forbidden",
    "403",
    "permission denied",
    "access denied",
    "not allowed",
    "append-only",
    "accessdenied",
)


def refuses_deletes(error: str) -> bool:
    """Whether restic's error says the repository refused to delete (append-only, a
    write-only key)."""
    return any(word in error.lower() for word in _DENIED)


def safety_snapshot_host(settings: Settings) -> str:
    """The restic host of safety snapshots: its own retention group."""
    return f"{settings.host}-{PRE_RESTORE_TAG}"


def database_groups(
    settings: Settings,
    restic: Restic,
    *,
    dry_run: bool,
    snapshots: Sequence[Snapshot] | None = None,
) -> list[str | None]:
    """The database: tag each configured database's retention group filters on.

    None means every database snapshot: the app has only ever had `primary` (snapshots made
    before databases had names carry no database: tag and belong to it). Once other databases
    exist, each group filters on its own tag, and untagged older snapshots are first tagged
    database:primary (restic rewrites them; skipped by a dry run, which then leaves them out).
    `snapshots`, when given, is the app's listing (every type) to read instead of listing again.
    """
    names = [database.name for database in settings.database_list]
    if snapshots is None:
        snapshots = restic.snapshots(app_tags(settings, "type:database"))
    snapshots = [s for s in snapshots if s.kind == "database"]
    named = {s.tag_value("database") for s in snapshots} - {None, LEGACY_DATABASE}
    if names == [LEGACY_DATABASE] and not named:
        return [None]
    untagged = [s.id for s in snapshots if s.tag_value("database") is None]
    if untagged and LEGACY_DATABASE in names and not dry_run:
        restic.add_tags(untagged, [f"database:{LEGACY_DATABASE}"])
        log.info(
            "tagged %d older database snapshots as database:%s", len(untagged), LEGACY_DATABASE
        )
    return list(names)


def apply_retention(
    settings: Settings,
    restic: Restic,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    snapshots: Sequence[Snapshot] | None = None,
) -> list[RetentionResult]:
    """Applies RESTIC_KEEP_* to each database's snapshots and to the file snapshots separately.

    Tags are ANDed (kamal-backup, app:<name>, type:<type>[, database:<name>]) and snapshots are
    grouped by host only: each dump has its own path, so restic's default grouping by paths
    would keep every one. A database no longer configured keeps all its snapshots. With
    `dry_run`, nothing is removed: the results say what would be.

    The app's snapshots are listed once (or taken from `snapshots`, a backup's own listing)
    and every decision below reads that one listing (restic's policy, services/policy.py); one
    `restic forget --prune` removes them all. A stale lock left by a killed restic is removed
    only when it is in the way (Restic._exclusive).
    """
    if not any(settings.retention.values()):
        log.warning("every RESTIC_KEEP_* is 0; retention skipped so nothing is deleted")
        return []
    listed = list(snapshots) if snapshots is not None else restic.snapshots(app_tags(settings))
    protected = protected_tags(settings, listed)  # by run names: they outlive a re-tagging
    groups: list[tuple[SnapshotType, str | None]] = (
        [
            ("database", name)
            for name in database_groups(settings, restic, dry_run=dry_run, snapshots=listed)
        ]
        if settings.database_list
        else []
    )
    if (
        not dry_run
        and any(name is not None for _, name in groups)
        and any(s.kind == "database" and s.tag_value("database") is None for s in listed)
    ):
        # database_groups has rewritten untagged snapshots under new ids: list them again.
        listed = restic.snapshots(app_tags(settings))
    groups.append(("files", None))
    cutoff = (now or datetime.now(UTC)) - timedelta(days=SAFETY_SNAPSHOT_DAYS)
    expired = [s for s in listed if s.kind == "database" and s.pre_restore and s.time < cutoff]
    expired_ids = [s.id for s in expired]
    # Every group is decided here from the one listing (services/policy.py: restic's own
    # policy), and everything to remove goes to ONE `restic forget --prune ID...`: one key
    # derivation and one exclusive lock instead of one forget per group.
    results = []
    removed_all = list(expired_ids)
    for kind, database in groups:
        tags = set(_group_tags(settings, kind, database))
        members = [s for s in listed if tags <= set(s.tags)]
        keep_tags = [PRE_RESTORE_TAG, *protected] if kind == "database" else protected
        decided = apply_by_host(members, settings.retention, keep_tags)
        kept_ids = [s.id for s in decided.keep if s.id not in expired_ids]
        removed_ids = [s.id for s in decided.remove if s.id not in expired_ids]
        if database is not None:
            removed_ids += [s.id for s in expired if s.database == database]
        if kind == "database" and database is None:
            database = LEGACY_DATABASE  # the one database, with its untagged older snapshots
            removed_ids += [s.id for s in expired if s.id not in removed_ids]
        removed_all += [i for i in removed_ids if i not in removed_all]
        results.append(
            RetentionResult(
                type=kind,
                database=database,
                kept=len(kept_ids),
                removed=len(removed_ids),
                removed_ids=removed_ids,
            )
        )
    remaining = [s for s in listed if s.id not in set(removed_all)]
    orphans = orphan_manifests(remaining)
    if not dry_run:
        # Prunes only when it removed something (restic's rule), so an unchanged repository
        # costs nothing more.
        restic.forget_ids([*removed_all, *orphans], prune=True)
    # Said once it is done: a refused or locked forget removed nothing.
    for result in results:
        label = f"database {result.database}" if result.type == "database" else result.type
        log.info(
            "retention for %s snapshots: kept %d, %s %d",
            label,
            result.kept,
            "would remove" if dry_run else "removed",
            result.removed,
        )
    if orphans:
        log.info(
            "retention: %s %d manifests of removed runs",
            "would forget" if dry_run else "forgot",
            len(orphans),
        )
    return results


def protected_tags(settings: Settings, snapshots: Sequence[Snapshot]) -> list[str]:
    """restic --keep-tag values no policy overrides: suspicious runs (kept until accepted or
    forgotten by hand) and each of the KAMAL_BACKUP_KEEP_GOOD last good runs (run:<run>)."""
    kept = kept_good_runs(snapshots, expected_parts(settings), settings.kamal_backup_keep_good)
    if kept:
        log.info("retention keeps the last good runs %s", ", ".join(kept))
    return [SUSPICIOUS_TAG, *(f"run:{run}" for run in kept)]


def _group_tags(settings: Settings, kind: str, database: str | None) -> list[str]:
    tags = app_tags(settings, f"type:{kind}")
    if database is not None:
        tags.append(f"database:{database}")
    return tags


def orphan_manifests(snapshots: Sequence[Snapshot]) -> list[str]:
    """The manifests whose run has no database or file snapshot left among `snapshots` (the
    app's snapshots as they stand after retention). A manifest goes with its run; drill records
    (type:drill) are never forgotten here, so the drill history a reviewer reads outlives the
    backups it proved."""
    runs = {s.run for s in snapshots if s.kind in SNAPSHOT_TYPES and s.run}
    return [s.id for s in snapshots if s.kind == "manifest" and s.run not in runs]
