"""The four views of the app, each in its own module, and what they share."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.widget import Widget

from kamal_backup.models import Snapshot
from kamal_backup.verification import DrillSummary

if TYPE_CHECKING:
    from tui.app import KamalBackupApp


class View(Widget):
    """Base of the views: typed access to the app, and the one snapshot listing they all get."""

    @property
    def tui(self) -> KamalBackupApp:
        return cast("KamalBackupApp", self.app)

    def snapshots_loading(self) -> None:
        """A new listing was asked for."""

    def show_snapshots(self, snapshots: list[Snapshot] | None, error: str | None) -> None:
        """The listing arrived (or `error` says why it could not be read)."""

    def tick(self) -> None:
        """Time passed: redraw whatever shows an age."""

    def show_drills(self, history: list[DrillSummary] | None, error: str | None) -> None:
        """The drill history (this machine's and the repository's) arrived."""


def shorten_middle(text: str, width: int) -> str:
    """`text` in at most `width` columns, cut from the middle: a target keeps its scheme and
    host, and its end (the database name, the last path parts), which say which one it is."""
    if len(text) > width:
        text = text.replace(":[REDACTED]@", "@")  # a masked password says nothing on screen
    if len(text) <= width or width < 8:
        return text
    tail = (width - 1) * 3 // 5
    head = width - 1 - tail
    return f"{text[:head]}…{text[-tail:]}"
