"""Retention: restic forget --prune per snapshot type, never touching another app."""

from __future__ import annotations

import logging
from typing import Any

from kamal_backup.models import SNAPSHOT_TYPES, RetentionResult
from kamal_backup.restic import Restic
from kamal_backup.services import app_tags
from kamal_backup.settings import Settings

log = logging.getLogger(__name__)


def apply_retention(settings: Settings, restic: Restic) -> list[RetentionResult]:
    """Applies RESTIC_KEEP_* to this app's database and file snapshots separately.

    Tags are ANDed (kamal-backup, app:<name>, type:<type>) and snapshots are grouped by host only:
    each dump has its own path, so restic's default grouping by paths would keep every one.
    """
    if not any(settings.retention.values()):
        log.warning("every RESTIC_KEEP_* is 0; retention skipped so nothing is deleted")
        return []
    # forget --prune needs an exclusive lock, which a lock left by a killed restic would block
    # for good. `restic unlock` removes only stale locks (dead process on this host, or not
    # refreshed for 30 minutes; live ones are refreshed every 5), never a running backup's.
    restic.unlock()
    results = []
    for kind in SNAPSHOT_TYPES:
        groups: list[Any] = restic.forget(app_tags(settings, f"type:{kind}"), settings.retention)
        kept = sum(len(group.get("keep") or []) for group in groups if isinstance(group, dict))
        removed = sum(len(group.get("remove") or []) for group in groups if isinstance(group, dict))
        log.info("retention for %s snapshots: kept %d, removed %d", kind, kept, removed)
        results.append(RetentionResult(type=kind, kept=kept, removed=removed))
    return results
