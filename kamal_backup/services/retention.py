"""Retention: restic forget --prune per snapshot type, never touching another app.

A production restore's safety snapshots (tagged pre-restore) are written under their own host,
`<host>-pre-restore`, so that retention groups them apart: they never take a backup's place in
the keep-last/daily/... counts. They are kept for SAFETY_SNAPSHOT_DAYS and forgotten after.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from kamal_backup.models import PRE_RESTORE_TAG, SNAPSHOT_TYPES, RetentionResult
from kamal_backup.restic import Restic
from kamal_backup.services import app_tags
from kamal_backup.settings import Settings

log = logging.getLogger(__name__)

SAFETY_SNAPSHOT_DAYS = 30


def safety_snapshot_host(settings: Settings) -> str:
    """The restic host of safety snapshots: its own retention group."""
    return f"{settings.host}-{PRE_RESTORE_TAG}"


def apply_retention(
    settings: Settings,
    restic: Restic,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[RetentionResult]:
    """Applies RESTIC_KEEP_* to this app's database and file snapshots separately.

    Tags are ANDed (kamal-backup, app:<name>, type:<type>) and snapshots are grouped by host only:
    each dump has its own path, so restic's default grouping by paths would keep every one.
    With `dry_run`, restic only says what it would remove.
    """
    if not any(settings.retention.values()):
        log.warning("every RESTIC_KEEP_* is 0; retention skipped so nothing is deleted")
        return []
    if not dry_run:
        # forget --prune needs an exclusive lock, which a lock left by a killed restic would
        # block for good. `restic unlock` removes only stale locks (dead process on this host,
        # or not refreshed for 30 minutes; live ones are refreshed every 5), never a running
        # backup's.
        restic.unlock()
    cutoff = (now or datetime.now(UTC)) - timedelta(days=SAFETY_SNAPSHOT_DAYS)
    expired = [
        s.id
        for s in restic.snapshots(app_tags(settings, "type:database", PRE_RESTORE_TAG))
        if s.time < cutoff
    ]
    if expired and not dry_run:
        restic.forget_ids(expired, prune=False)  # the policy's forget below prunes their data
    results = []
    for kind in SNAPSHOT_TYPES:
        keep_tags = [PRE_RESTORE_TAG] if kind == "database" else []
        groups: list[Any] = restic.forget(
            app_tags(settings, f"type:{kind}"),
            settings.retention,
            keep_tags=keep_tags,
            dry_run=dry_run,
        )
        kept_ids = _ids(groups, "keep")
        removed_ids = _ids(groups, "remove")
        if kind == "database":
            kept_ids = [i for i in kept_ids if i not in expired]
            removed_ids += expired
        log.info(
            "retention for %s snapshots: kept %d, %s %d",
            kind,
            len(kept_ids),
            "would remove" if dry_run else "removed",
            len(removed_ids),
        )
        results.append(
            RetentionResult(
                type=kind, kept=len(kept_ids), removed=len(removed_ids), removed_ids=removed_ids
            )
        )
    if not dry_run:
        forget_orphan_manifests(settings, restic)
    return results


def _ids(groups: list[Any], key: str) -> list[str]:
    return [
        str(snapshot.get("id"))
        for group in groups
        if isinstance(group, dict)
        for snapshot in group.get(key) or []
        if isinstance(snapshot, dict) and snapshot.get("id")
    ]


def forget_orphan_manifests(settings: Settings, restic: Restic) -> int:
    """Forgets each manifest whose run has no database or file snapshot left.

    A manifest goes with its run; drill records (type:drill) are never forgotten here, so the
    drill history a reviewer reads outlives the backups it proved. No prune: the next retention
    pass prunes the few bytes.
    """
    snapshots = restic.snapshots(app_tags(settings))
    runs = {s.run for s in snapshots if s.kind in SNAPSHOT_TYPES and s.run}
    orphans = [s.id for s in snapshots if s.kind == "manifest" and s.run not in runs]
    restic.forget_ids(orphans, prune=False)
    if orphans:
        log.info("retention: forgot %d manifests of removed runs", len(orphans))
    return len(orphans)
