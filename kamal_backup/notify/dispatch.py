"""The one dispatch: which channels hear an operation's events, sent off the operation's thread.

Each channel gets one sender thread per operation, so its events arrive in order (start before
success) and a channel that hangs delays no other. When the operation ends it waits at most
KAMAL_BACKUP_NOTIFY_TIMEOUT_SECONDS for the senders; whatever is still in flight then is recorded
as unanswered and left to its daemon thread. Nothing here ever raises into the operation.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar
from urllib.parse import urlsplit

from kamal_backup import __version__
from kamal_backup.errors import (
    ConfigError,
    GateRefused,
    Interrupted,
    KamalBackupError,
    SuspiciousRun,
)
from kamal_backup.notify import metrics, records
from kamal_backup.notify.events import (
    ChannelStatus,
    DeliveryResult,
    Event,
    EventKind,
    HttpRequest,
    OperationOutcome,
)
from kamal_backup.notify.healthchecks import Healthchecks
from kamal_backup.notify.ntfy import Ntfy
from kamal_backup.notify.webhook import Webhook
from kamal_backup.redact import redact
from kamal_backup.settings import Settings, secret

log = logging.getLogger("kamal_backup.notify")
P = ParamSpec("P")
R = TypeVar("R")
LOG_TAIL_LINES = 60
# Result fields kept with the outcome and exported as kamal_backup_last_<operation>_<field>.
MEASURES = ("rto_seconds", "rpo_seconds")
_ERROR_KEEP = 2000
# Operations that run unattended (the schedule, cron): a configuration error there means the job
# did not happen, and nobody reads the terminal, so it stays a failure that channels hear.
UNATTENDED = ("backup", "check", "prune")


def is_outcome(name: str, exc: BaseException | None) -> bool:
    """Whether an operation that ended with `exc` had an outcome for channels and records.

    A safety gate's refusal (exit 3) and a usage or configuration error (exit 2) of an operation
    an operator runs (restores, drills) are not failures of the operation: it never began, the
    operator reads why on the terminal, and nothing is sent or recorded.
    """
    if isinstance(exc, GateRefused):
        return False
    return not (isinstance(exc, ConfigError) and name not in UNATTENDED)


class Channel(Protocol):
    name: str

    def request(self, event: Event) -> HttpRequest | None: ...


def destination(url: str) -> str:
    """A URL shown as its host (and port) only: paths, queries and user info hold secrets."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def configured_channels(settings: Settings) -> list[tuple[Channel, str]]:
    """Every HTTP channel the settings configure, with its redacted destination."""
    channels: list[tuple[Channel, str]] = []
    if url := secret(settings.kamal_backup_healthcheck_url):
        channels.append((Healthchecks(url), destination(url)))
    if url := secret(settings.kamal_backup_ntfy_url):
        ntfy = Ntfy(url, secret(settings.kamal_backup_ntfy_token), settings.kamal_backup_ntfy_on)
        channels.append((ntfy, destination(url)))
    if url := secret(settings.kamal_backup_webhook_url):
        channels.append(
            (Webhook(url, secret(settings.kamal_backup_webhook_secret)), destination(url))
        )
    return channels


class _Sender(threading.Thread):
    def __init__(
        self, channel: Channel, where: str, timeout: float, sink: list[DeliveryResult]
    ) -> None:
        super().__init__(name=f"notify-{channel.name}", daemon=True)
        # urllib (with ssl and email) is imported only when a channel is configured, here on
        # the starting thread rather than inside run().
        from kamal_backup.notify import http

        self.send = http.send
        self.channel = channel
        self.where = where
        self.timeout = timeout
        self.sink = sink
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.current: Event | None = None

    def run(self) -> None:
        while (event := self.events.get()) is not None:
            try:
                request = self.channel.request(event)
                if request is None:
                    continue
                self.current = event
                response = self.send(request, self.timeout)
                self.sink.append(self.result(event, response.ok, response.detail))
            except Exception as exc:  # a channel's bug must not kill the others' deliveries
                self.sink.append(self.result(event, False, exc.__class__.__name__))
            finally:
                self.current = None

    def result(self, event: Event, ok: bool, detail: str) -> DeliveryResult:
        return DeliveryResult(
            channel=self.channel.name,
            destination=self.where,
            event=event.event,
            operation=event.operation,
            ok=ok,
            detail=redact(detail),
            at=datetime.now(UTC),
        )


class _Delivery:
    """The senders of one (outermost) operation.

    Start events are held until the operation shows it has begun its work (its first log
    line, or any later event): an operation refused before that (a gate, a mistyped snapshot)
    then sends nothing at all.
    """

    def __init__(self, settings: Settings) -> None:
        self.timeout = settings.kamal_backup_notify_timeout_seconds
        self.results: list[DeliveryResult] = []
        self._held: list[Event] | None = []
        self._lock = threading.Lock()
        self.senders = [
            _Sender(channel, where, self.timeout, self.results)
            for channel, where in configured_channels(settings)
        ]
        for sender in self.senders:
            sender.start()

    def hold(self, event: Event) -> None:
        with self._lock:
            if self._held is not None:
                self._held.append(event)
                return
        self._send(event)

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, None
        for event in held or []:
            self._send(event)

    def emit(self, event: Event) -> None:
        self.release()
        self._send(event)

    def _send(self, event: Event) -> None:
        for sender in self.senders:
            sender.events.put(event)

    def finish(self) -> list[DeliveryResult]:
        with self._lock:
            self._held = None  # never released: the operation never began
        for sender in self.senders:
            sender.events.put(None)
        deadline = time.monotonic() + self.timeout
        for sender in self.senders:
            sender.join(max(0.0, deadline - time.monotonic()))
        results = list(self.results)
        for sender in self.senders:
            pending = sender.current
            if sender.is_alive() and pending is not None:
                results.append(
                    sender.result(pending, False, f"not delivered within {self.timeout:g}s")
                )
        return results


class _TailHandler(logging.Handler):
    def __init__(self, delivery: _Delivery) -> None:
        super().__init__(logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self.delivery = delivery

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.delivery.release()
            self.lines.append(redact(f"{record.levelname} {record.getMessage()}"))
        except Exception:  # logging must never fail the operation
            self.handleError(record)


_active = threading.local()


def error_text(exc: BaseException) -> str:
    if isinstance(exc, KamalBackupError):
        text = str(exc)
    elif isinstance(exc, KeyboardInterrupt):
        text = "interrupted"
    else:
        text = f"{exc.__class__.__name__}: {exc}"
    return redact(text)[:_ERROR_KEEP]


def _snapshot_ids(result: Any) -> list[str]:
    ids = list(getattr(result, "snapshot_ids", None) or [])
    for name in ("database_snapshot", "files_snapshot", "snapshot"):
        snapshot_id = getattr(getattr(result, name, None), "id", None)
        if isinstance(snapshot_id, str):
            ids.append(snapshot_id)
    return ids


def _measures(result: Any) -> dict[str, float]:
    found = {name: getattr(result, name, None) for name in MEASURES}
    return {
        name: float(value)
        for name, value in found.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


# What a service's result says when it went well: runs and checks say "success", drills "passed".
_SUCCESS = ("success", "passed")


class Operation:
    """One operation's events. Use `operation(settings, name)` or the `notified(name)` decorator."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.name = name
        self.result: Any = None
        self.started = datetime.now(UTC)
        self._clock = time.monotonic()
        self._delivery: _Delivery | None = None
        self._owner = False
        self._tail: _TailHandler | None = None

    def finished(self, result: R) -> R:
        """Hands over the service's result (its status, run and snapshots go into the event)."""
        self.result = result
        return result

    def event(self, kind: EventKind, **fields: Any) -> Event:
        result = self.result
        return Event(
            event=kind,
            operation=self.name,
            app=self.settings.app_name,
            run=getattr(result, "run", None)
            if isinstance(getattr(result, "run", None), str)
            else None,
            snapshot_ids=_snapshot_ids(result),
            timestamp=datetime.now(UTC),
            version=__version__,
            log_tail=list(self._tail.lines) if self._tail else [],
            **fields,
        )

    def __enter__(self) -> Operation:
        try:
            outer: _Delivery | None = getattr(_active, "delivery", None)
            if outer is None:
                self._owner = True
                self._delivery = _Delivery(self.settings)
                _active.delivery = self._delivery
                self._tail = _TailHandler(self._delivery)
                logging.getLogger("kamal_backup").addHandler(self._tail)
            else:
                self._delivery = outer
            self._delivery.hold(self.event("start", status="running"))
        except Exception as exc:
            log.warning("notifications unavailable: %s", error_text(exc))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self._finish(exc)
        except Exception as problem:
            log.warning("notifications failed: %s", error_text(problem))
        finally:
            if self._owner:
                _active.delivery = None
                if self._tail is not None:
                    logging.getLogger("kamal_backup").removeHandler(self._tail)

    def _finish(self, exc: BaseException | None) -> None:
        if not is_outcome(self.name, exc):
            if self._owner and self._delivery is not None:
                self._delivery.finish()
            return
        try:
            final = self._final_event(exc)
            if self._delivery is not None:
                self._delivery.emit(final)
        finally:
            # Even when the state directory is broken, the senders get their bounded wait.
            if self._owner and self._delivery is not None:
                _complete(self.settings, self._delivery)

    def _final_event(self, exc: BaseException | None) -> Event:
        duration = round(time.monotonic() - self._clock, 3)
        if self.result is None and isinstance(exc, SuspiciousRun) and exc.run is not None:
            # A suspicious backup fails with its run: the event names the run and its
            # snapshots, not only the message.
            self.result = exc.run
        status = getattr(self.result, "status", "success")
        error: str | None = None
        if exc is not None:
            error = error_text(exc) if not isinstance(exc, Interrupted) else "interrupted"
        elif status not in _SUCCESS:
            recorded = getattr(self.result, "error", None)
            code = getattr(self.result, "exit_code", None)
            error = (
                redact(recorded)
                if isinstance(recorded, str)
                else f"{self.name} {status}" + (f" (exit {code})" if code is not None else "")
            )
        state_dir = self.settings.state_dir
        previous = records.outcomes(state_dir).get(self.name)
        if error is not None:
            kind: EventKind = "failure"
        elif previous is not None and previous.status == "failed":
            kind = "recovery"
        else:
            kind = "success"
        try:
            records.record_outcome(
                state_dir,
                self.name,
                OperationOutcome(
                    status="failed" if error else "success",
                    finished_at=datetime.now(UTC),
                    duration_seconds=duration,
                    error=error,
                    measures=_measures(self.result),
                ),
            )
        except Exception as problem:  # a full or read-only state directory must not mute a failure
            log.warning("could not record how %s ended: %s", self.name, error_text(problem))
        return self.event(
            kind, status="failed" if error else "success", duration_seconds=duration, error=error
        )


def _complete(
    settings: Settings, delivery: _Delivery, *, test: bool = False
) -> list[DeliveryResult]:
    """Waits (bounded) for the senders, refreshes the metrics file, records and logs the results
    (a test's apart from the real deliveries)."""
    results = delivery.finish()
    if settings.kamal_backup_metrics_file is not None:
        results.append(_write_metrics(settings))
    if results:
        try:
            records.record_deliveries(settings.state_dir, results, test=test)
        except Exception as problem:
            log.warning("could not record the notification results: %s", error_text(problem))
    for result in results:
        if not result.ok:
            log.warning(
                "%s notification (%s, %s) failed: %s",
                result.channel,
                result.destination,
                result.event,
                result.detail,
            )
    return results


def _write_metrics(settings: Settings) -> DeliveryResult:
    where = str(settings.kamal_backup_metrics_file)
    try:
        metrics.write_file(settings)
        ok, detail = True, "written"
    except Exception as exc:
        ok, detail = False, error_text(exc)
    return DeliveryResult(
        channel=metrics.NAME,
        destination=where,
        event="success",
        operation="metrics",
        ok=ok,
        detail=detail,
        at=datetime.now(UTC),
    )


def operation(settings: Settings, name: str) -> Operation:
    """`with operation(settings, "backup") as op: ... op.finished(result)` emits start and end."""
    return Operation(settings, name)


def notified(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Wraps a service whose first argument is its Settings: its events go to every channel."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            settings = kwargs.get("settings", args[0] if args else None)
            if not isinstance(settings, Settings):
                return func(*args, **kwargs)
            with operation(settings, name) as op:
                return op.finished(func(*args, **kwargs))

        return wrapper

    return decorate


def send_test(settings: Settings) -> list[DeliveryResult]:
    """Sends a test event to every channel (and writes the metrics file); waits for the answers."""
    delivery = _Delivery(settings)
    delivery.emit(
        Event(
            event="test",
            operation="test",
            status="success",
            app=settings.app_name,
            timestamp=datetime.now(UTC),
            version=__version__,
        )
    )
    return _complete(settings, delivery, test=True)


def channel_status(settings: Settings, *, test: bool = False) -> list[ChannelStatus]:
    """The configured channels (destinations redacted) and each one's last recorded delivery
    (with `test`, its last `notify --test` delivery instead)."""
    last = records.deliveries(settings.state_dir, test=test)
    found = [(channel.name, where) for channel, where in configured_channels(settings)]
    if settings.kamal_backup_metrics_file is not None:
        found.append((metrics.NAME, str(settings.kamal_backup_metrics_file)))
    return [
        ChannelStatus(channel=name, destination=where, last_delivery=last.get(name))
        for name, where in found
    ]
