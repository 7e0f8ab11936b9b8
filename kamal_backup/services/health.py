"""Backup freshness against the schedule: the overview's status and the `health` command's verdict."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

Freshness = Literal["fresh", "stale", "missing"]

# One missed run is tolerated (a slow run, a restart); two missed runs mean backups have stopped.
STALE_AFTER_SCHEDULES = 2


def freshness(latest: datetime | None, schedule_seconds: int, now: datetime) -> Freshness:
    """'missing' with no backup, 'stale' once it is older than twice the schedule, else 'fresh'."""
    if latest is None:
        return "missing"
    age = (now - latest).total_seconds()
    return "stale" if age > STALE_AFTER_SCHEDULES * schedule_seconds else "fresh"
