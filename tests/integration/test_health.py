"""`health`: the image's HEALTHCHECK, judged against twice the schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kamal_backup import state
from kamal_backup.models import BackupRun, SchedulerStart
from kamal_backup.services.health import check_health
from kamal_backup.settings import load_settings
from tests.conftest import App

pytestmark = pytest.mark.integration


def state_dir(app: App) -> Path:
    return Path(app.env["KAMAL_BACKUP_STATE_DIR"]) / "shop"


def test_healthy_after_a_backup_from_state_and_from_the_repository(app: App) -> None:
    app.cli("backup", check=True)
    result = app.cli("health")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("healthy: last successful backup")
    report = json.loads(app.cli("health", "--repository", "--json", check=True).stdout)
    assert report["healthy"] and report["source"] == "repository"
    assert report["limit_seconds"] == 2 * 86400


def test_no_backup_at_all_is_unhealthy(app: App) -> None:
    result = app.cli("health")
    assert result.returncode == 1
    assert result.stdout.startswith("unhealthy: no successful backup recorded")
    assert app.cli("health", "--repository").returncode == 1


def test_a_stale_backup_is_unhealthy_even_after_a_failed_run(app: App) -> None:
    settings = load_settings(environ=app.env)
    old = datetime.now(UTC) - timedelta(days=3)
    state.record_backup(
        settings.state_dir, BackupRun(run="old", status="success", started_at=old, finished_at=old)
    )
    state.record_backup(
        settings.state_dir,
        BackupRun(run="new", status="failed", started_at=datetime.now(UTC), error="boom"),
    )
    result = app.cli("health")
    assert result.returncode == 1
    assert "older than twice BACKUP_SCHEDULE_SECONDS (2d)" in result.stdout
    # The same backup, judged a day after it ran (one schedule old), was fresh:
    report = check_health(settings, now=old + timedelta(days=1))
    assert report.healthy and report.status == "fresh"


def test_a_new_scheduler_is_starting_until_it_should_have_backed_up(app: App) -> None:
    settings = load_settings(environ={**app.env, "BACKUP_SCHEDULE_SECONDS": "3600"})
    started = datetime.now(UTC)
    state.record_scheduler_start(
        settings.state_dir,
        SchedulerStart(started_at=started, schedule_seconds=3600, start_delay_seconds=60),
    )
    assert check_health(settings, now=started + timedelta(minutes=10)).status == "starting"
    late = check_health(settings, now=started + timedelta(hours=2, minutes=2))
    assert not late.healthy and late.status == "missing"
    assert state_dir(app).exists()
