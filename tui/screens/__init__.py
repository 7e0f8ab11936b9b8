"""The four views of the app, each in its own module, and what they share."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.widget import Widget

from kamal_backup.models import Snapshot

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
