"""`?`: every key of the app on one screen."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

if TYPE_CHECKING:
    from tui.app import KamalBackupApp

KEYS: tuple[tuple[str, str], ...] = (
    ("o s e d", "open Overview, Snapshots, Evidence, Restore drill"),
    ("b", "back up now (database and files, one run)"),
    ("c", "check the repository"),
    ("r", "refresh: read the repository again"),
    ("x", "cancel the running operation (only that one), or a slow load"),
    ("l", "log: small, most of the screen, hidden"),
    ("?", "this help"),
    ("ctrl+o", "command palette: type a few letters of any command"),
    ("q  ctrl+q", "quit (a running operation is cancelled first)"),
    ("tab  shift+tab", "move between controls"),
    ("escape", "leave a text field (the keys above then work again)"),
    ("t", "snapshots: change the filter (all, database, files)"),
    ("v  enter", "snapshots: go to the run's file tree (enter there opens a folder)"),
    ("f", "snapshots, in the file tree: restore the selected file or directory"),
    ("w", "evidence: save to a file (enter saves, escape cancels)"),
    ("ctrl+r", "restore drill: start, once confirmed with the app name"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark", "dismiss_help", "Close"),
        Binding("q", "app.quit_app", "Quit"),  # q quits in every state, here too
    ]

    def __init__(self, app: KamalBackupApp) -> None:
        super().__init__(id="help")
        self.owner = app

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            table.add_row(key, what)
        with VerticalScroll(id="help-body") as body:
            body.border_title = "keys (escape closes)"
            yield Static(table)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
