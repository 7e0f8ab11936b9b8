"""Monitoring: operations emit typed events through one seam; channels here decide who hears them.

Services wrap themselves with `@notified("backup")` (or `with operation(settings, "drill") as op`
and `op.finished(result)`); they never know which channels exist. The channels are one module
each: healthchecks, ntfy, webhook, and the Prometheus metrics file.
"""

from __future__ import annotations

from kamal_backup.notify.dispatch import (
    Operation,
    channel_status,
    configured_channels,
    destination,
    notified,
    operation,
    send_test,
)
from kamal_backup.notify.events import ChannelStatus, DeliveryResult, Event

__all__ = [
    "ChannelStatus",
    "DeliveryResult",
    "Event",
    "Operation",
    "channel_status",
    "configured_channels",
    "destination",
    "notified",
    "operation",
    "send_test",
]
