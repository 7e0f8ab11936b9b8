"""The overview's run history: one entry per run, its outcome judged from the listing."""

from __future__ import annotations

from datetime import timedelta

from kamal_backup.models import BackupRun
from tests.tui.fixed import NOW, fixed_snapshots
from tui.charts import run_history


def test_history_is_oldest_first_with_each_runs_outcome() -> None:
    snapshots = fixed_snapshots()
    drilled = {snapshots[3].id}  # yesterday's database snapshot was restored by a drill
    history = run_history(snapshots, None, drilled)
    assert len(history.runs) == 5
    assert history.outcomes == ["success", "success", "failed", "drill", "success"]
    assert history.added[2] == 1_400_000  # the interrupted run added its database part only
    assert history.grown == sum(history.added)
    # From the run's start (its tag, 03:00:00) to restic's last end.
    assert all(4 <= seconds <= 60 for seconds in history.durations)


def test_a_run_much_smaller_than_the_one_before_is_suspicious() -> None:
    snapshots = fixed_snapshots()
    newest_files = snapshots[0]
    assert newest_files.summary is not None
    newest_files.summary.total_bytes_processed = 1000  # the files all but vanished
    history = run_history(snapshots, None, set())
    assert history.outcomes[-1] == "suspicious"


def test_a_failed_run_without_snapshots_comes_from_the_state_directory() -> None:
    failed = BackupRun(
        run="20261126T110000Z",
        status="failed",
        started_at=NOW - timedelta(hours=1),
        duration_seconds=3.5,
    )
    history = run_history(fixed_snapshots(), failed, set())
    assert history.outcomes[-1] == "failed" and history.runs[-1] == failed.run
    running = failed.model_copy(update={"status": "running"})
    assert run_history(fixed_snapshots(), running, set()).outcomes[-1] == "success"


def test_the_repositorys_suspicious_tag_decides_and_an_accepted_run_is_a_success() -> None:
    snapshots = fixed_snapshots()
    newest = [s for s in snapshots if s.run == snapshots[0].run]
    for snapshot in newest:
        snapshot.tags.append("suspicious")  # shrank against the last good run (tagged by backup)
    assert run_history(snapshots, None, set()).outcomes[-1] == "suspicious"
    for snapshot in newest:
        snapshot.tags.remove("suspicious")
        snapshot.tags.append("accepted-by:ann@laptop")
    assert newest[0].summary is not None
    newest[0].summary.total_bytes_processed = 1000  # a big cleanup, accepted as intended
    assert run_history(snapshots, None, set()).outcomes[-1] == "success"
