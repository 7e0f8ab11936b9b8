"""Repository checks, recorded in the state directory for evidence."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from kamal_backup import state
from kamal_backup.models import CheckResult
from kamal_backup.notify import notified
from kamal_backup.redact import redact
from kamal_backup.restic import Restic, error_for
from kamal_backup.services import restic_for
from kamal_backup.settings import Settings

log = logging.getLogger(__name__)
_OUTPUT_KEEP = 4000


@notified("check")
def run_check(settings: Settings, restic: Restic | None = None) -> CheckResult:
    """Runs restic check (reading RESTIC_CHECK_READ_DATA_SUBSET of the data) and records it."""
    restic = restic or restic_for(settings)
    restic.require_supported_version()
    subset = settings.restic_check_read_data_subset or None
    log.info("checking the repository%s", f" (reading {subset} of the data)" if subset else "")
    started = datetime.now(UTC)
    clock = time.monotonic()
    completed = restic.check(subset)
    if completed.returncode in (10, 11, 12, 130):
        # Not a verdict on the data: the repository could not be opened at all.
        raise error_for(completed.returncode, completed.stderr, "checking the repository")
    output = redact((completed.stdout + completed.stderr).strip())
    result = CheckResult(
        status="success" if completed.returncode == 0 else "failed",
        checked_at=started,
        duration_seconds=round(time.monotonic() - clock, 3),
        read_data_subset=subset,
        output=output[-_OUTPUT_KEEP:],
        exit_code=completed.returncode,
    )
    state.record_check(settings.state_dir, result)
    if result.status == "success":
        log.info("repository check passed in %.1fs", result.duration_seconds)
    else:
        log.error("repository check FAILED (restic exit %d)", completed.returncode)
    return result
