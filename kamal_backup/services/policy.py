"""restic's keep policy (`restic forget --keep-last/-daily/-weekly/-monthly/-yearly --keep-tag
--group-by host`), decided here from one listing so that a backup's whole retention is one
`restic forget --prune ID...`: one restic process (one key derivation, one exclusive lock)
instead of one per snapshot group.

The decision follows restic 0.18's ApplyPolicy exactly, and a test holds it to restic's own
`forget --dry-run` on the same snapshots: newest first; a snapshot with one of the keep tags is
kept; each --keep-X with counts left keeps a snapshot whose period (its own day, ISO week, month
or year, in the time zone it was taken in) differs from the last one that bucket kept, and the
oldest snapshot while counts are left. The tags do not stop the counting.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from kamal_backup.models import Snapshot

# The policy's buckets in restic's order, and what makes two snapshots the same period.
_BUCKETS: tuple[tuple[str, Callable[[datetime, int], int]], ...] = (
    ("keep_last", lambda moment, number: number),  # every snapshot its own period
    ("keep_hourly", lambda m, _: ((m.year * 100 + m.month) * 100 + m.day) * 100 + m.hour),
    ("keep_daily", lambda m, _: (m.year * 100 + m.month) * 100 + m.day),
    ("keep_weekly", lambda m, _: m.isocalendar()[0] * 100 + m.isocalendar()[1]),
    ("keep_monthly", lambda m, _: m.year * 100 + m.month),
    ("keep_yearly", lambda m, _: m.year),
)


@dataclass
class Decision:
    """What the policy keeps and removes of one group (newest first)."""

    keep: list[Snapshot] = field(default_factory=list)
    remove: list[Snapshot] = field(default_factory=list)


def apply_policy(
    snapshots: Sequence[Snapshot], policy: Mapping[str, int], keep_tags: Sequence[str] = ()
) -> Decision:
    """restic's decision for one group. A policy of only zeros keeps everything (restic refuses
    to forget with an empty policy); a count below 1 is not a rule (RESTIC_KEEP_X=0)."""
    ordered = sorted(snapshots, key=lambda s: s.time, reverse=True)  # stable, as restic's sort
    decision = Decision()
    counts = {name: max(policy.get(name, 0), 0) for name, _ in _BUCKETS}
    if not any(counts.values()):
        decision.keep = ordered
        return decision
    last: dict[str, int | None] = {name: None for name, _ in _BUCKETS}
    for number, snapshot in enumerate(ordered):
        keep = any(set(tag.split(",")) <= set(snapshot.tags) for tag in keep_tags)
        for name, period in _BUCKETS:
            if counts[name] > 0:
                value = period(snapshot.time, number)
                if value != last[name] or number == len(ordered) - 1:
                    keep = True
                    last[name] = value
                    counts[name] -= 1
        (decision.keep if keep else decision.remove).append(snapshot)
    return decision


def apply_by_host(
    snapshots: Sequence[Snapshot], policy: Mapping[str, int], keep_tags: Sequence[str] = ()
) -> Decision:
    """The policy applied to each host's snapshots apart (`--group-by host`), merged."""
    by_host: dict[str, list[Snapshot]] = defaultdict(list)
    for snapshot in snapshots:
        by_host[snapshot.hostname].append(snapshot)
    merged = Decision()
    for group in by_host.values():
        decided = apply_policy(group, policy, keep_tags)
        merged.keep += decided.keep
        merged.remove += decided.remove
    return merged
