"""Prune: this app's retention, on demand (the trusted machine of an append-only set-up)."""

from __future__ import annotations

import logging
import time

from kamal_backup.errors import Interrupted, KamalBackupError, OperationFailed
from kamal_backup.locking import operation_lock
from kamal_backup.models import PruneResult
from kamal_backup.notify import notified
from kamal_backup.services import restic_for
from kamal_backup.services.backup import retention_failure
from kamal_backup.services.retention import apply_retention
from kamal_backup.settings import Settings

log = logging.getLogger(__name__)


@notified("prune")
def prune(
    settings: Settings, *, dry_run: bool = False, lock_wait_seconds: float = 0.0
) -> PruneResult:
    """Applies RESTIC_KEEP_* per snapshot type and prunes; with dry_run, removes nothing."""
    restic = restic_for(settings)
    restic.ensure_repository(init_if_missing=False)
    with operation_lock(settings.state_dir, "prune", lock_wait_seconds):
        clock = time.monotonic()
        try:
            retention = apply_retention(settings, restic, dry_run=dry_run)
        except Interrupted:
            raise
        except KamalBackupError as exc:
            raise OperationFailed(f"prune failed: {retention_failure(exc)}") from None
        duration = round(time.monotonic() - clock, 3)
    log.info("prune %s in %.1fs", "planned (dry run)" if dry_run else "done", duration)
    return PruneResult(dry_run=dry_run, retention=retention, duration_seconds=duration)
