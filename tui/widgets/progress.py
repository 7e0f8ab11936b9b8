"""One labelled progress line per part of a running operation.

A backup's database half and file half run at the same time (issue 14), and a drill restores its
parts side by side: each part's restic statuses arrive under its own label ("database", "files")
and move only that part's line. Any other label (a single-part operation such as a check) shares
one more line, labelled with it.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar, Static

from kamal_backup.humanize import human_bytes
from kamal_backup.models import ResticStatus

PARTS = ("database", "files")
OTHER = "other"


def status_words(status: ResticStatus) -> str:
    """'40% (1.2 MiB of 3.0 MiB)' is drawn by the bar and these words: '1.2 MiB of 3.0 MiB', or
    '1.2 MiB so far' for a dump streamed from a command (no size is known until it ends)."""
    done = human_bytes(status.bytes_processed)
    if status.total_bytes:
        return f"{done} of {human_bytes(status.total_bytes)}"
    return f"{done} so far"


class PartsProgress(Vertical):
    """Hidden until `start`; one row per part then, each with its name, a bar and its figures."""

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id, classes="parts-progress")
        self.active = False

    def compose(self) -> ComposeResult:
        for key in (*PARTS, OTHER):
            with Horizontal(id=f"{self.id}-{key}", classes="progress-row"):
                yield Static(Text(key), classes="progress-label")
                yield ProgressBar(show_eta=False)
                yield Static(classes="progress-detail")

    def on_mount(self) -> None:
        self.stop()

    def row(self, label: str) -> Horizontal:
        key = label if label in PARTS else OTHER
        return self.query_one(f"#{self.id}-{key}", Horizontal)

    def shown(self) -> list[str]:
        """The labels of the rows on screen, in order (for the status line and tests)."""
        return [
            str(row.query_one(".progress-label", Static).render())
            for row in self.query(".progress-row").results(Horizontal)
            if row.display
        ]

    def start(self, labels: Iterable[str], *, indeterminate: bool = False) -> None:
        """Shows a fresh row for each of `labels` (the parts that will run), the others hidden."""
        self.stop()
        self.active = True
        for label in labels:
            row = self.row(label)
            row.query_one(".progress-label", Static).update(Text(label))
            row.query_one(ProgressBar).update(total=None if indeterminate else 100, progress=0)
            # No figures yet; an operation without any (a check) has none to wait for.
            row.query_one(".progress-detail", Static).update("" if indeterminate else "starting…")
            row.display = True
        self.display = True

    def update(self, label: str, status: ResticStatus) -> None:
        """Moves the line of `label` only; a label not started yet gets its line now."""
        if not self.active:
            return  # a status posted before the operation's end, read after it
        row = self.row(label)
        if not row.display:
            row.query_one(".progress-label", Static).update(Text(label))
            row.display = True
        bar = row.query_one(ProgressBar)
        if status.total_bytes:
            bar.update(total=100, progress=status.percent_done * 100)
        else:
            bar.update(total=None)
        row.query_one(".progress-detail", Static).update(Text(status_words(status)))

    def stop(self) -> None:
        """Hides every row and resets it: the next operation starts from nothing."""
        self.active = False
        self.display = False
        for row in self.query(".progress-row").results(Horizontal):
            row.display = False
            row.query_one(ProgressBar).update(total=100, progress=0)
            row.query_one(".progress-detail", Static).update("")
