"""The notify package's state files: each operation's last outcome and each channel's last delivery."""

from __future__ import annotations

from pathlib import Path

from kamal_backup import state
from kamal_backup.notify.events import DeliveryResult, DeliveryState, OperationOutcome, OutcomeState

OUTCOMES = "last_outcomes.json"
DELIVERIES = "notify_deliveries.json"


def outcomes(state_dir: Path) -> dict[str, OperationOutcome]:
    found = state.read_json(state_dir / OUTCOMES, OutcomeState)
    return dict(found.operations) if found else {}


def record_outcome(state_dir: Path, operation: str, outcome: OperationOutcome) -> None:
    current = outcomes(state_dir)
    current[operation] = outcome
    state.write_json(state_dir / OUTCOMES, OutcomeState(operations=current))


def deliveries(state_dir: Path) -> dict[str, DeliveryResult]:
    found = state.read_json(state_dir / DELIVERIES, DeliveryState)
    return dict(found.channels) if found else {}


def record_deliveries(state_dir: Path, results: list[DeliveryResult]) -> None:
    current = deliveries(state_dir)
    for result in results:  # in the order they happened: the last one per channel stays
        current[result.channel] = result
    state.write_json(state_dir / DELIVERIES, DeliveryState(channels=current))
