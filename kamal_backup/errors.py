"""Typed errors and the exit codes they map to (the one place exit codes are defined)."""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kamal_backup.models import BackupRun


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    CONFIG = 2
    REFUSED = 3
    INTERRUPTED = 130


class KamalBackupError(Exception):
    """Base class: a message safe to show an operator, and the exit code it ends with."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ConfigError(KamalBackupError):
    """A setting or argument is missing or malformed (exit 2)."""

    exit_code = ExitCode.CONFIG

    def __init__(self, setting: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"{setting}: {problem}", hint=hint)
        self.setting = setting


class GateRefused(KamalBackupError):
    """A restore safety gate refused the operation (exit 3)."""

    exit_code = ExitCode.REFUSED

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        hint = f"set {variable}=true to allow it" if variable else None
        super().__init__(message, hint=hint)
        self.variable = variable


class OperationFailed(KamalBackupError):
    """A backup, restore or check did not complete (exit 1)."""


class SuspiciousRun(OperationFailed):
    """A backup saved a run that shrank against the last good run (exit 1): kept, tagged
    suspicious, not `latest`. `findings` are the lines an operator reads, one per finding."""

    def __init__(self, message: str, findings: list[str], run: BackupRun | None = None) -> None:
        super().__init__(message)
        self.findings = findings
        self.run = run

    def __str__(self) -> str:
        # One line for logs and notifications; the CLI prints the findings a line each.
        return f"{self.message}; shrank: " + "; ".join(self.findings)


class Interrupted(KamalBackupError):
    """The operation was cancelled by a signal or the operator (exit 130)."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str = "interrupted") -> None:
        super().__init__(message)


class DrillInterrupted(Interrupted):
    """A drill interrupted after some of its parts were restored. `restored` says each, as
    "<part> snapshot <id> was restored into <target>" (they stay restored); `unfinished` is the
    kinds ("database", "files") with a part the cancel stopped, as the cancel left it."""

    def __init__(self, restored: list[str], unfinished: set[str]) -> None:
        # What stays: "files snapshot … was restored into …", the CLI's line and the TUI's.
        self.said = ", ".join(restored) + ("" if unfinished else "; they were not verified")
        super().__init__(f"interrupted: {self.said}")
        self.restored = restored
        self.unfinished = unfinished


class ToolMissing(OperationFailed):
    """An external program the operation needs is not installed."""


class ResticError(OperationFailed):
    """restic exited with an error; `returncode` is restic's own exit code."""

    def __init__(self, message: str, *, returncode: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.returncode = returncode


class RepositoryMissing(ResticError):
    """restic exit 10: there is no repository at RESTIC_REPOSITORY."""


class RepositoryUnreachable(ResticError):
    """restic could not reach the repository within the configured time."""


class RepositoryLocked(ResticError):
    """restic exit 11: another process holds a lock on the repository."""


class WrongPassword(ResticError):
    """restic exit 12: the repository password is wrong."""


class SnapshotIncomplete(ResticError):
    """restic exit 3: some source files could not be read; the snapshot is partial."""
