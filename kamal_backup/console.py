"""Terminal output for the CLI: logging to stderr, live restic progress on a TTY."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from kamal_backup.redact import RedactingFilter

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

    from kamal_backup.models import ResticStatus


class LazyConsole:
    """A rich Console made on first use, so `version` and `--help` never import rich."""

    def __init__(self, make: Callable[[], Console]) -> None:
        self._make = make
        self._console: Console | None = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)

    def get(self) -> Console:
        """The Console itself: for rich objects that use it as more than attributes (Progress's
        Live enters it as a context manager, which no __getattr__ can stand in for)."""
        if self._console is None:
            with self._lock:  # one Console, whichever thread prints first
                if self._console is None:
                    self._console = self._make()
        return self._console


def real_console(console: Console) -> Console:
    """The rich Console behind `console` (made now if it is a LazyConsole)."""
    return console.get() if isinstance(console, LazyConsole) else console


def _stderr_console() -> Console:
    from rich.console import Console

    # Every string printed is data, never markup or emoji codes.
    return Console(stderr=True, markup=False, emoji=False)


# Typed as the Console it stands for: callers use it exactly like one.
stderr = cast("Console", LazyConsole(_stderr_console))


def stderr_is_terminal() -> bool:
    """rich's `stderr.is_terminal`, without importing rich when the answer is plainly no: stderr
    is not a TTY and neither TTY_COMPATIBLE nor FORCE_COLOR, which rich reads, says otherwise
    (container logs, a pipe: importing rich there cost a restore a few tens of milliseconds
    before its first byte)."""
    if isinstance(stderr, LazyConsole) and stderr._console is None:
        forced = {"TTY_COMPATIBLE", "FORCE_COLOR"} & os.environ.keys()
        try:
            if not forced and not sys.stderr.isatty():
                return False
        except (AttributeError, ValueError):
            pass  # no stream, or a closed one: rich decides
    return stderr.is_terminal


class UTCFormatter(logging.Formatter):
    converter = staticmethod(time.gmtime)

    def __init__(self) -> None:
        super().__init__("%(asctime)sZ %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the `sys.stderr` of the moment, not the one at set-up: while progress bars
    show, rich puts a proxy there that prints each line above the bars (a handler holding the
    real stream wrote into the bar's line: "0:00:00202" and "6-11-29T00:21:49Z INFO ...")."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(verbose: bool = False) -> None:
    """One timestamped line per step on stderr (container logs), every line redacted."""
    handler = _StderrHandler()
    handler.setFormatter(UTCFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("kamal_backup")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


@contextmanager
def preserved_logging() -> Iterator[None]:
    """Restores kamal-backup's logger afterwards (for running the CLI in-process, e.g. its help)."""
    root = logging.getLogger("kamal_backup")
    saved = (list(root.handlers), root.level, root.propagate)
    try:
        yield
    finally:
        root.handlers[:], level, root.propagate = saved
        root.setLevel(level)


@contextmanager
def live_progress() -> Iterator[Callable[[str, ResticStatus], None] | None]:
    """A status callback drawing restic's progress as bars on a terminal; None in container logs.

    One bar per label: a backup's database and file halves run at once, each on its own
    thread, and show as two bars at the same time.
    """
    if not stderr_is_terminal():
        yield None
        return
    # Only for a terminal: container logs draw no bars and need no rich.progress.
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from kamal_backup.models import VERIFYING

    progress = Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=real_console(stderr),
        transient=True,
    )
    tasks: dict[str, TaskID] = {}
    lock = threading.Lock()

    def update(label: str, status: ResticStatus) -> None:
        if label == VERIFYING:
            return  # no figures to draw; the drill logs the step
        with lock:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=None)
        total = status.total_bytes or None
        if total is not None:
            # An estimate (a small dump's) can be passed: never "48.3/8.2 kB".
            total = max(total, status.bytes_processed)
        progress.update(tasks[label], total=total, completed=status.bytes_processed)

    with progress:
        yield update
