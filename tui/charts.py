"""The overview's history of the last runs: data added, durations and outcomes per backup run."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.text import Text

from kamal_backup.models import FILES_PART, LEGACY_DATABASE, BackupRun, Snapshot, database_part
from kamal_backup.services.baseline import ACCEPTED_BY
from kamal_backup.services.snapshots import complete_runs

RUNS = 30
# A symbol per outcome, so the row reads the same in 16 colours and under NO_COLOR.
OUTCOMES = {
    "success": ("✔", "green"),
    "failed": ("✘", "bold red"),
    "suspicious": ("!", "bold yellow"),
    "drill": ("D", "bold cyan"),
}


@dataclass
class RunHistory:
    """Oldest first. `added` and `durations` are per run (bytes, seconds)."""

    runs: list[str] = field(default_factory=list)
    added: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)

    @property
    def grown(self) -> float:
        return sum(self.added)

    def outcome_text(self) -> Text:
        text = Text()
        for outcome in self.outcomes:
            symbol, style = OUTCOMES[outcome]
            text.append(symbol, style=style)
        text.append("   ")
        for outcome, (symbol, _style) in OUTCOMES.items():
            text.append(f"{symbol} {outcome}  ", style="dim")
        return text


def _accepted(members: Iterable[Snapshot]) -> bool:
    return any(s.tag_value(ACCEPTED_BY) for s in members)


def run_started(run: str) -> datetime | None:
    """A run's start, from its tag (run:20261126T030000Z)."""
    try:
        return datetime.strptime(run, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def run_history(
    snapshots: Iterable[Snapshot],
    last: BackupRun | None,
    drilled: set[str],
    expected: Collection[str] = (database_part(LEGACY_DATABASE), FILES_PART),
) -> RunHistory:
    """The last RUNS backup runs from the snapshot listing, plus the state directory's last run
    when it failed before leaving any snapshot.

    A run is `failed` when a part is missing, `suspicious` when the repository tags it so (it
    shrank against the last good run; an accepted run is not), or, for runs older than that
    comparison, when it processed less than half of what the run before it did; `drill` when a
    restore drill restored one of its snapshots.
    """
    listed = list(snapshots)
    complete = complete_runs(listed, expected)  # expected: the app's parts (one database, files)
    by_run: dict[str, list[Snapshot]] = {}
    for snapshot in listed:
        if snapshot.run:
            by_run.setdefault(snapshot.run, []).append(snapshot)
    history = RunHistory()
    previous_size: float | None = None
    for run in sorted(by_run, key=lambda r: min(s.time for s in by_run[r])):
        members = by_run[run]
        summaries = [s.summary for s in members if s.summary is not None]
        size = float(sum(s.total_bytes_processed for s in summaries))
        history.runs.append(run)
        history.added.append(float(sum(s.data_added for s in summaries)))
        # From the run's start (its tag) to restic's last end: what the operator waited.
        starts = [s.backup_start for s in summaries if s.backup_start]
        started = run_started(run) or (min(starts) if starts else None)
        ends = [s.backup_end for s in summaries if s.backup_end]
        if started and ends:
            history.durations.append(max(0.0, (max(ends) - started).total_seconds()))
        if any(s.id in drilled for s in members):
            outcome = "drill"
        elif run not in complete:
            outcome = "failed"
        elif any(s.suspicious for s in members) or (
            previous_size and size < previous_size / 2 and not _accepted(members)
        ):
            outcome = "suspicious"
        else:
            outcome = "success"
        if run in complete:
            previous_size = size
        history.outcomes.append(outcome)
    if last is not None and last.status in ("failed", "interrupted") and last.run not in by_run:
        history.runs.append(last.run)
        history.outcomes.append("failed")
        if last.duration_seconds is not None:
            history.durations.append(last.duration_seconds)
    history.runs = history.runs[-RUNS:]
    history.added = history.added[-RUNS:]
    history.durations = history.durations[-RUNS:]
    history.outcomes = history.outcomes[-RUNS:]
    return history
