"""Messages thread workers post back to the UI (workers never touch widgets), and their errors."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from kamal_backup.errors import KamalBackupError
from kamal_backup.models import ResticStatus
from kamal_backup.redact import redact


class OperationProgress(Message):
    """restic's progress for the running operation (`label` is database, files or restore)."""

    def __init__(self, operation: str, label: str, status: ResticStatus) -> None:
        super().__init__()
        self.operation = operation
        self.label = label
        self.status = status


class OperationDone(Message):
    """An operation ended: `result` on success, else `error` (one redacted line).

    A cancelled operation has `cancelled` set and `error` saying what it left untouched.
    """

    def __init__(
        self,
        operation: str,
        result: Any,
        error: str | None,
        duration_seconds: float,
        *,
        cancelled: bool = False,
    ) -> None:
        super().__init__()
        self.operation = operation
        self.result = result
        self.error = error
        self.duration_seconds = duration_seconds
        self.cancelled = cancelled


class Fetched(Message):
    """A read finished: `result` on success, else `error` (one redacted line)."""

    def __init__(self, what: str, result: Any, error: str | None) -> None:
        super().__init__()
        self.what = what
        self.result = result
        self.error = error


class ReadsChanged(Message):
    """A read started or ended: the footer's Cancel follows what is running."""


class LogLine(Message):
    def __init__(self, line: str, level: int) -> None:
        super().__init__()
        self.line = line
        self.level = level


def describe_error(exc: BaseException) -> str:
    """One redacted line for the UI: the typed error's message, never a traceback."""
    if isinstance(exc, KamalBackupError):
        return redact(str(exc))
    return redact(f"internal error: {exc.__class__.__name__}: {exc}")
