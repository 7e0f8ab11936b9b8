"""Retention: restic forget --prune per snapshot type, never touching another app.

A production restore's safety snapshots (tagged pre-restore) are written under their own host,
`<host>-pre-restore`, so that retention groups them apart: they never take a backup's place in
the keep-last/daily/... counts. They are kept for SAFETY_SNAPSHOT_DAYS and forgotten after.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

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
    `dry_run`, restic only says what it would remove.

    The app's snapshots are listed once (or taken from `snapshots`, a backup's own listing)
    and every decision below reads that one listing. A stale lock left by a killed restic is
    removed only when it is in the way (Restic._exclusive).
    """
    if not any(settings.retention.values()):
        log.warning("every RESTIC_KEEP_* is 0; retention skipped so nothing is deleted")
        return []
    listed = list(snapshots) if snapshots is not None else restic.snapshots(app_tags(settings))
    cutoff = (now or datetime.now(UTC)) - timedelta(days=SAFETY_SNAPSHOT_DAYS)
    expired = [s for s in listed if s.kind == "database" and s.pre_restore and s.time < cutoff]
    protected = protected_tags(settings, listed)
    expired_ids = [s.id for s in expired]
    if expired and not dry_run:
        restic.forget_ids(expired_ids, prune=False)  # the policy's forget below prunes their data
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
    tags_of = {group: _group_tags(settings, *group) for group in groups}
    # A group whose forget provably removes nothing is not run (a restic process saved).
    needed = [
        group for group in groups if expired or _removes_any(settings, listed, tags_of[group])
    ]
    results = []
    removed_all = set(expired_ids)
    for kind, database in groups:
        tags = tags_of[(kind, database)]
        found: list[Any] = []
        if (kind, database) in needed:
            found = restic.forget(
                tags,
                settings.retention,
                # One prune, with the last forget: pruning reads the whole index each time.
                prune=(kind, database) == needed[-1],
                keep_tags=[PRE_RESTORE_TAG, *protected] if kind == "database" else protected,
                dry_run=dry_run,
            )
            kept_ids = [i for i in _ids(found, "keep") if i not in expired_ids]
        else:
            kept_ids = [s.id for s in listed if set(tags) <= set(s.tags)]
        removed_ids = _ids(found, "remove")
        if database is not None:
            removed_ids += [s.id for s in expired if s.database == database]
        if kind == "database" and database is None:
            database = LEGACY_DATABASE  # the one database, with its untagged older snapshots
            removed_ids += [s.id for s in expired if s.id not in removed_ids]
        removed_all.update(removed_ids)
        label = f"database {database}" if database else kind
        log.info(
            "retention for %s snapshots: kept %d, %s %d",
            label,
            len(kept_ids),
            "would remove" if dry_run else "removed",
            len(removed_ids),
        )
        results.append(
            RetentionResult(
                type=kind,
                database=database,
                kept=len(kept_ids),
                removed=len(removed_ids),
                removed_ids=removed_ids,
            )
        )
    if not dry_run:
        remaining = [s for s in listed if s.id not in removed_all]
        forget_orphan_manifests(settings, restic, remaining)
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


def _removes_any(settings: Settings, listed: Sequence[Snapshot], tags: Sequence[str]) -> bool:
    """False only when restic's forget of this group cannot remove a snapshot: it has no more
    snapshots (over every host, so at least as many as any host group) than RESTIC_KEEP_LAST,
    which keeps that many of the newest in each group whatever the other RESTIC_KEEP_* say."""
    keep_last = settings.retention.get("keep_last", 0)
    count = sum(1 for s in listed if set(tags) <= set(s.tags))
    return not (keep_last > 0 and count <= keep_last)


def _ids(groups: list[Any], key: str) -> list[str]:
    return [
        str(snapshot.get("id"))
        for group in groups
        if isinstance(group, dict)
        for snapshot in group.get(key) or []
        if isinstance(snapshot, dict) and snapshot.get("id")
    ]


def forget_orphan_manifests(
    settings: Settings, restic: Restic, snapshots: Sequence[Snapshot] | None = None
) -> int:
    """Forgets each manifest whose run has no database or file snapshot left.

    A manifest goes with its run; drill records (type:drill) are never forgotten here, so the
    drill history a reviewer reads outlives the backups it proved. No prune: the next retention
    pass prunes the few bytes. `snapshots`, when given, are the app's snapshots as they stand
    now (the retention pass's listing without what it removed).
    """
    if snapshots is None:
        snapshots = restic.snapshots(app_tags(settings))
    runs = {s.run for s in snapshots if s.kind in SNAPSHOT_TYPES and s.run}
    orphans = [s.id for s in snapshots if s.kind == "manifest" and s.run not in runs]
    restic.forget_ids(orphans, prune=False)
    if orphans:
        log.info("retention: forgot %d manifests of removed runs", len(orphans))
    return len(orphans)
