"""Backup freshness against the schedule: the overview's status and the `health` command's verdict."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from kamal_backup import state
from kamal_backup.humanize import describe_age
from kamal_backup.models import HealthReport
from kamal_backup.services.snapshots import expected_parts, latest_complete_run, list_snapshots
from kamal_backup.settings import Settings

Freshness = Literal["fresh", "stale", "missing"]

# One missed run is tolerated (a slow run, a restart); two missed runs mean backups have stopped.
STALE_AFTER_SCHEDULES = 2


def freshness(latest: datetime | None, schedule_seconds: int, now: datetime) -> Freshness:
    """'missing' with no backup, 'stale' once it is older than twice the schedule, else 'fresh'."""
    if latest is None:
        return "missing"
    age = (now - latest).total_seconds()
    return "stale" if age > STALE_AFTER_SCHEDULES * schedule_seconds else "fresh"


def check_health(
    settings: Settings, now: datetime | None = None, *, from_repository: bool = False
) -> HealthReport:
    """Healthy while the last successful backup is younger than twice the schedule.

    From the state directory (cheap: the container's HEALTHCHECK) by default; from the
    repository's newest complete run with `from_repository` (a laptop has no state of its own).
    A scheduler that started less than its delay plus twice the schedule ago, with no backup yet,
    is 'starting' and healthy.
    """
    now = now or datetime.now(UTC)
    limit = STALE_AFTER_SCHEDULES * settings.backup_schedule_seconds
    if from_repository:
        snapshots = list_snapshots(settings)
        newest_run = latest_complete_run(snapshots, expected_parts(settings))
        last = min(s.time for s in newest_run) if newest_run else None
        where = f"repository {settings.repository_display}"
    else:
        run = state.last_success(settings.state_dir)
        last = (run.finished_at or run.started_at) if run else None
        where = f"{settings.state_dir}"

    drill_at, drill_status, overdue = drill_freshness(settings, now, from_repository)

    def report(
        status: Literal["fresh", "stale", "missing", "starting"], healthy: bool, reason: str
    ) -> HealthReport:
        return HealthReport(
            last_drill_at=drill_at,
            last_drill_status=drill_status,
            drill_overdue=overdue,
            healthy=healthy,
            status=status,
            reason=reason,
            source="repository" if from_repository else "state",
            last_success_at=last,
            age_seconds=round((now - last).total_seconds(), 1) if last else None,
            limit_seconds=limit,
        )

    verdict = freshness(last, settings.backup_schedule_seconds, now)
    if last is not None:
        age = describe_age((now - last).total_seconds())
        if verdict == "fresh":
            return report("fresh", True, f"last successful backup {age} ago")
        return report(
            "stale",
            False,
            f"last successful backup {age} ago, older than twice BACKUP_SCHEDULE_SECONDS "
            f"({describe_age(limit)})",
        )
    started = None if from_repository else state.scheduler_start(settings.state_dir)
    if started is not None:
        waited = (now - started.started_at).total_seconds()
        if waited <= started.start_delay_seconds + limit:
            return report(
                "starting",
                True,
                f"no backup yet; the scheduler started {describe_age(waited)} ago",
            )
    return report("missing", False, f"no successful backup recorded in {where}")


def drill_due(settings: Settings, now: datetime) -> bool:
    """A scheduled drill is due when none was recorded here for KAMAL_BACKUP_DRILL_SCHEDULE_SECONDS."""
    every = settings.kamal_backup_drill_schedule_seconds
    if not every:
        return False
    drills = state.drills(settings.state_dir)
    return not drills or (now - drills[0].started_at).total_seconds() >= every


def drill_freshness(
    settings: Settings, now: datetime, from_repository: bool = False
) -> tuple[datetime | None, str | None, bool | None]:
    """(when, status) of the last drill, and whether it is overdue (None: drills not scheduled)."""
    if from_repository:
        from kamal_backup.services.drill import drill_history

        _, history = drill_history(settings)
        last = (history[0].started_at, history[0].status) if history else None
    else:
        drills = state.drills(settings.state_dir)
        last = (drills[0].started_at, drills[0].status) if drills else None
    every = settings.kamal_backup_drill_schedule_seconds
    overdue = None
    if every:
        overdue = last is None or (now - last[0]).total_seconds() > STALE_AFTER_SCHEDULES * every
    return (last[0], last[1], overdue) if last else (None, None, overdue)
