"""The notify package's state files: each operation's last outcome and each channel's last delivery.

`notify --test` deliveries are kept in a file of their own: the last delivery that `notify` and
the evidence show is always that of a real operation's event, never a test ping.
"""

from __future__ import annotations

from pathlib import Path

from kamal_backup import state
from kamal_backup.notify.events import DeliveryResult, DeliveryState, OperationOutcome, OutcomeState

OUTCOMES = "last_outcomes.json"
DELIVERIES = "notify_deliveries.json"
TEST_DELIVERIES = "notify_test_deliveries.json"


def outcomes(state_dir: Path) -> dict[str, OperationOutcome]:
    found = state.read_json(state_dir / OUTCOMES, OutcomeState)
    return dict(found.operations) if found else {}


def record_outcome(state_dir: Path, operation: str, outcome: OperationOutcome) -> None:
    current = outcomes(state_dir)
    current[operation] = outcome
    state.write_json(state_dir / OUTCOMES, OutcomeState(operations=current))


def deliveries(state_dir: Path, *, test: bool = False) -> dict[str, DeliveryResult]:
    found = state.read_json(state_dir / (TEST_DELIVERIES if test else DELIVERIES), DeliveryState)
    return dict(found.channels) if found else {}


def record_deliveries(
    state_dir: Path, results: list[DeliveryResult], *, test: bool = False
) -> None:
    current = deliveries(state_dir, test=test)
    for result in results:  # in the order they happened: the last one per channel stays
        current[result.channel] = result
    state.write_json(
        state_dir / (TEST_DELIVERIES if test else DELIVERIES), DeliveryState(channels=current)
    )
