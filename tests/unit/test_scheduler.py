"""Scheduler timing: slots measured from each run's start, no drift, missed slots skipped."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from kamal_backup.errors import OperationFailed
from kamal_backup.models import BackupRun
from kamal_backup.scheduler import next_start, run_schedule
from kamal_backup.settings import Settings, load_settings


def test_next_start_does_not_drift_by_run_duration() -> None:
    assert next_start(previous=100.0, interval=60, now=130.0) == 160.0


def test_overrunning_runs_skip_missed_slots() -> None:
    assert next_start(previous=100.0, interval=60, now=250.0) == 280.0
    assert next_start(previous=100.0, interval=60, now=160.0) == 220.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_failed_run_is_logged_and_the_loop_goes_on(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(
        environ={
            "APP_NAME": "shop",
            "DATABASE_ADAPTER": "sqlite",
            "SQLITE_DATABASE_PATH": str(tmp_path / "x.sqlite3"),
            "RESTIC_REPOSITORY": str(tmp_path),
            "RESTIC_PASSWORD": "pw-1234",
            "BACKUP_SCHEDULE_SECONDS": "60",
            "HOME": str(tmp_path),
        }
    )
    clock = FakeClock()
    starts: list[float] = []

    class Stop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            clock.now += timeout or 0
            return self.is_set()

    def backup(_: Settings) -> BackupRun:
        starts.append(clock.now)
        clock.now += 7  # each run takes 7 seconds
        if len(starts) == 2:
            raise OperationFailed("the dump failed: connection refused")
        return BackupRun(
            run="x", status="success", started_at=datetime.now(UTC), duration_seconds=7
        )

    caplog.set_level("INFO", logger="kamal_backup")
    failures = run_schedule(settings, Stop(), backup=backup, clock=clock, max_runs=4)
    assert failures == 1
    assert starts == [1000.0, 1060.0, 1120.0, 1180.0]
    assert "scheduled backup failed: the dump failed: connection refused" in caplog.text
    # The start line says whether drills are scheduled, and what would schedule them.
    assert "no scheduled drills (KAMAL_BACKUP_DRILL_SCHEDULE_SECONDS)" in caplog.text
