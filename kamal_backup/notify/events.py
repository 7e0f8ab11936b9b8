"""The typed events an operation emits, and the delivery results the channels record."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import Field

from kamal_backup.models import Model

EventKind = Literal["start", "success", "failure", "recovery", "test"]
EventStatus = Literal["running", "success", "failed"]


class Event(Model):
    """One thing that happened to an operation, already redacted; the webhook's JSON body."""

    event: EventKind
    operation: str
    status: EventStatus
    app: str
    run: str | None = None
    snapshot_ids: list[str] = Field(default_factory=list)
    duration_seconds: float | None = None
    error: str | None = None
    timestamp: datetime
    version: str
    # The operation's last log lines (redacted); healthchecks' /fail body carries them.
    log_tail: list[str] = Field(default_factory=list, exclude=True)

    @property
    def headline(self) -> str:
        """One line a person reads on a phone or in Slack."""
        what = f"{self.app} {self.operation}"
        if self.event == "start":
            return f"{what} started"
        if self.event == "test":
            return f"{self.app}: test notification from kamal-backup"
        if self.event == "failure":
            return f"{what} FAILED: {self.error or 'unknown error'}"
        took = f" in {self.duration_seconds:.1f}s" if self.duration_seconds is not None else ""
        if self.event == "recovery":
            return f"{what} recovered: succeeded{took} after a failure"
        return f"{what} succeeded{took}"


class DeliveryResult(Model):
    """What one channel made of one event (never its URL beyond the host, never a token)."""

    channel: str
    destination: str
    event: EventKind
    operation: str
    ok: bool
    detail: str
    at: datetime


class ChannelStatus(Model):
    """A configured channel and the last delivery it made, for evidence, `notify` and the TUI."""

    channel: str
    destination: str
    last_delivery: DeliveryResult | None = None


class OperationOutcome(Model):
    """How an operation last ended: the basis of recovery events and the metrics."""

    status: Literal["success", "failed"]
    finished_at: datetime
    duration_seconds: float | None = None
    error: str | None = None
    # Figures the result carries, such as a drill's rto_seconds and rpo_seconds.
    measures: dict[str, float] = Field(default_factory=dict)


class OutcomeState(Model):
    operations: dict[str, OperationOutcome] = Field(default_factory=dict)


class DeliveryState(Model):
    channels: dict[str, DeliveryResult] = Field(default_factory=dict)


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request a channel wants sent for an event."""

    url: str
    method: str = "POST"
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
