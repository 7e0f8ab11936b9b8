"""The foreground loop the container runs: a backup every BACKUP_SCHEDULE_SECONDS, without drift."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from kamal_backup import process, state
from kamal_backup.errors import Interrupted, KamalBackupError
from kamal_backup.models import BackupRun, SchedulerStart
from kamal_backup.redact import redact
from kamal_backup.services.backup import run_backup
from kamal_backup.services.drill import run_drill
from kamal_backup.services.health import drill_due
from kamal_backup.settings import Settings
from kamal_backup.verification import DrillRecord

log = logging.getLogger(__name__)

T = TypeVar("T")

Backup = Callable[[Settings], BackupRun]
Drill = Callable[[Settings], DrillRecord]


def _run_scheduled_drill(settings: Settings) -> DrillRecord:
    return run_drill(settings, ran_by="scheduler")


def scheduled_drill(settings: Settings, drill: Drill | None = None) -> DrillRecord | None:
    """Runs a due drill after a successful backup; whatever happens, backups go on."""
    try:
        record = (drill or _run_scheduled_drill)(settings)
    except Interrupted:
        raise
    except KamalBackupError as exc:
        log.error("scheduled drill did not run: %s", exc)
        return None
    except Exception as exc:  # a drill must never stop the backups
        log.error(
            "scheduled drill failed unexpectedly: %s: %s", exc.__class__.__name__, redact(str(exc))
        )
        return None
    level = logging.INFO if record.status == "passed" else logging.ERROR
    log.log(
        level,
        "scheduled drill %s %s: %s",
        record.id,
        record.status,
        record.error or record.verification.summary(),
    )
    return record


def next_start(previous: float, interval: float, now: float) -> float:
    """The next slot on the grid previous + k*interval that is still ahead of now.

    Slots are measured from each run's planned start, so runs do not drift by their duration; a
    run that overran skips the slots it missed instead of starting runs back to back.
    """
    upcoming = previous + interval
    if upcoming > now:
        return upcoming
    missed = math.floor((now - upcoming) / interval) + 1
    return upcoming + missed * interval


def _stoppable(name: str, stop: threading.Event, work: Callable[[], T]) -> T:
    """Runs one scheduled operation in its own cancel scope, which `stop` (SIGTERM/SIGINT)
    cancels: the operation in progress, and only it, ends with Interrupted."""
    with process.cancel_scope(name) as scope:
        finished = threading.Event()
        watcher = threading.Thread(
            target=_cancel_on_stop, args=(stop, finished, scope), daemon=True
        )
        watcher.start()
        try:
            return work()
        finally:
            finished.set()
            watcher.join()


def _cancel_on_stop(
    stop: threading.Event, finished: threading.Event, scope: process.CancelScope
) -> None:
    """Cancels one run's scope when `stop` is set before the run has finished."""
    while not finished.wait(0.2):
        if stop.is_set():
            scope.cancel()
            return


def run_schedule(
    settings: Settings,
    stop: threading.Event,
    *,
    backup: Backup = run_backup,
    clock: Callable[[], float] = time.monotonic,
    max_runs: int | None = None,
    drill: Drill | None = None,
) -> int:
    """Runs backups until `stop` is set; returns the number of runs that failed."""
    interval = settings.backup_schedule_seconds
    state.record_scheduler_start(
        settings.state_dir,
        SchedulerStart(
            started_at=datetime.now(UTC),
            schedule_seconds=interval,
            start_delay_seconds=settings.backup_start_delay_seconds,
        ),
    )
    drills = settings.kamal_backup_drill_schedule_seconds
    log.info(
        "scheduler started for %s: a backup every %ds, first in %ds; %s",
        settings.app_name,
        interval,
        settings.backup_start_delay_seconds,
        f"a restore drill after a backup once the last is {drills}s old"
        if drills
        else "no scheduled drills (KAMAL_BACKUP_DRILL_SCHEDULE_SECONDS)",
    )
    if settings.backup_start_delay_seconds and stop.wait(settings.backup_start_delay_seconds):
        log.info("scheduler stopped before its first run")
        return 0

    planned = clock()
    runs = failures = 0
    while not stop.is_set():
        try:
            result = _stoppable(f"scheduled backup {runs + 1}", stop, lambda: backup(settings))
            log.info(
                "scheduled backup %s succeeded in %.1fs", result.run, result.duration_seconds or 0
            )
            if not stop.is_set() and drill_due(settings, datetime.now(UTC)):
                try:
                    _stoppable("scheduled drill", stop, lambda: scheduled_drill(settings, drill))
                except Interrupted:
                    # Recorded as interrupted; the next drill stores the record in the repository.
                    if stop.is_set():
                        log.info("scheduled drill interrupted by shutdown")
                        break
                    # e.g. its restic killed from outside: logged, and, like a failed drill,
                    # no failure of the backups, which go on.
                    log.error("scheduled drill interrupted")
        except Interrupted:
            if stop.is_set():
                log.info("scheduled backup interrupted by shutdown")
                break
            failures += 1
            log.error("scheduled backup interrupted")
        except KamalBackupError as exc:
            failures += 1
            log.error("scheduled backup failed: %s", exc)
        except Exception as exc:  # the loop must outlive any one run's failure
            failures += 1
            log.error(
                "scheduled backup failed unexpectedly: %s: %s",
                exc.__class__.__name__,
                redact(str(exc)),
            )
        runs += 1
        if max_runs is not None and runs >= max_runs:
            break
        planned = next_start(planned, interval, clock())
        delay = max(0.0, planned - clock())
        log.info("next backup in %ds", round(delay))
        if stop.wait(delay):
            break
    log.info("scheduler stopped")
    return failures
