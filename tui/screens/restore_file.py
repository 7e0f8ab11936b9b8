"""Restoring one file or directory chosen in a snapshot's file tree: scratch by default, or in place."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, cast

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioSet, Static

from kamal_backup.models import GateVerdict, ResticStatus, RestoreResult, Snapshot
from kamal_backup.services.gates import ALLOW_IN_PLACE
from kamal_backup.services.restore import DEFAULT_FILES_TARGET
from tui.messages import OperationDone
from tui.screens.gates import add_gate_rows, flags_text, said_refused
from tui.widgets.toggles import MarkedRadioButton

if TYPE_CHECKING:
    from tui.app import KamalBackupApp


class RestoreFileScreen(ModalScreen[None]):
    """One path of a file snapshot: where it goes, every gate's verdict, confirm, restore."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("ctrl+r", "start", "Restore"),
        # A modal screen does not pass keys to the app: cancel and quit answer here too.
        Binding("x", "app.cancel_operation", "Cancel"),
        Binding("q", "app.quit_app", "Quit", show=False),
    ]

    def __init__(self, snapshot: Snapshot, path: str) -> None:
        super().__init__(id="restore-file")
        self.snapshot = snapshot
        self.path = path
        self.in_place = False
        self.running = False

    @property
    def tui(self) -> KamalBackupApp:
        return cast("KamalBackupApp", self.app)

    def compose(self) -> ComposeResult:
        allowed = self.tui.settings.kamal_backup_allow_in_place_file_restore
        # Scrolls when it does not fit (80x24): focusing a control scrolls it into view.
        with VerticalScroll(id="restore-file-dialog"):
            yield Static(self.heading(), id="restore-file-what")
            with RadioSet(id="restore-file-where"):
                yield MarkedRadioButton("into a scratch directory", id="where-scratch", value=True)
                yield MarkedRadioButton(
                    "in place, at its original path"
                    if allowed
                    else f"in place (needs {ALLOW_IN_PLACE}=true)",
                    id="where-in-place",
                    disabled=not allowed,
                )
            with Horizontal(classes="row", id="restore-file-target-row"):
                yield Label("into", classes="field")
                yield Input(DEFAULT_FILES_TARGET, id="restore-file-target")
            yield Static(id="restore-file-gates")
            yield Static(id="restore-file-flags")
            with Horizontal(classes="row", id="restore-file-confirm-row"):
                yield Input(
                    id="restore-file-confirm",
                    placeholder=f"type {self.tui.settings.app_name} to confirm",
                )
            with Horizontal(classes="row"):
                yield Button("Restore", id="restore-file-start", variant="error", disabled=True)
                yield Button("Close", id="restore-file-close")
            yield Static(id="restore-file-status")

    def heading(self) -> Text:
        text = Text()
        text.append("Restore ", style="bold")
        text.append(self.path)
        text.overflow = "fold"
        text.append(f"\nfrom file snapshot {self.snapshot.short} ", style="dim")
        text.append(f"({self.tui.local(self.snapshot.time):%Y-%m-%d %H:%M})", style="dim")
        return text

    def on_mount(self) -> None:
        self.refresh_plan()

    # The plan ------------------------------------------------------------------------------

    @on(RadioSet.Changed, "#restore-file-where")
    def _where_changed(self, event: RadioSet.Changed) -> None:
        self.in_place = event.pressed.id == "where-in-place"
        self.refresh_plan()

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        self.refresh_plan()

    def verdicts(self) -> list[tuple[str, GateVerdict]]:
        """The restore service's own gate verdicts for this path and target."""
        backend = self.tui.backend
        if self.in_place:
            return [("file", v) for v in backend.in_place_verdicts([self.path])]
        target = self.query_one("#restore-file-target", Input).value
        return [("file", v) for v in backend.file_verdicts(target)]

    def target_text(self) -> str:
        if self.in_place:
            return f"{self.path} (its original path)"
        target = self.query_one("#restore-file-target", Input).value.strip()
        return f"{target or '(empty)'}{self.path}"

    def refresh_plan(self) -> None:
        self.query_one("#restore-file-target-row").display = not self.in_place
        # Only an in-place restore touches live files: then the app name must be typed.
        self.query_one("#restore-file-confirm-row").display = self.in_place
        verdicts = self.verdicts()
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        table.add_row("target", "file", Text(self.target_text(), overflow="fold"))
        add_gate_rows(table, verdicts, self.tui.settings, "restore", flags=False)
        self.query_one("#restore-file-gates", Static).update(table)
        flags = Text("safety flags set now:\n", style="bold")
        flags.append_text(flags_text(self.tui.settings))
        self.query_one("#restore-file-flags", Static).update(flags)
        self.query_one("#restore-file-start", Button).disabled = not self.can_start(verdicts)

    def can_start(self, verdicts: list[tuple[str, GateVerdict]]) -> bool:
        confirmed = (
            not self.in_place
            or self.query_one("#restore-file-confirm", Input).value.strip()
            == self.tui.settings.app_name
        )
        return (
            confirmed
            and not self.running
            and self.tui.operation is None
            and all(verdict.allowed for _, verdict in verdicts)
        )

    # Running -------------------------------------------------------------------------------

    @on(Button.Pressed, "#restore-file-close")
    def action_close(self) -> None:
        if not self.running:
            self.dismiss(None)

    @on(Button.Pressed, "#restore-file-start")
    @on(Input.Submitted, "#restore-file-confirm")
    def _start_requested(self) -> None:
        self.action_start()

    def action_start(self) -> None:
        verdicts = self.verdicts()
        if said_refused(self, verdicts):
            return
        if not self.can_start(verdicts):
            # markup=False: the app name is a name (validated today, but data all the same).
            self.notify(
                f"type {self.tui.settings.app_name} in the confirm field to restore", markup=False
            )
            return
        backend = self.tui.backend
        snapshot_id, path, in_place = self.snapshot.id, self.path, self.in_place
        target = self.query_one("#restore-file-target", Input).value

        def restore(on_status: Callable[[str, ResticStatus], None]) -> RestoreResult:
            return backend.restore_files(
                snapshot_id, target, on_status, paths=[path], in_place=in_place
            )

        if self.tui.start_operation("file restore", self, restore):
            self.running = True
            self.query_one("#restore-file-confirm", Input).value = ""
            self.query_one("#restore-file-status", Static).update(Text("restoring…", "bold"))
            self.refresh_plan()

    def on_operation_done(self, message: OperationDone) -> None:
        if not self.app.is_running:
            return
        self.running = False
        status = self.query_one("#restore-file-status", Static)
        if message.cancelled:
            status.update(Text(f"restore {message.error}", style="bold yellow"))
        elif message.error:
            status.update(Text(f"restore failed: {message.error}", style="bold red"))
        else:
            result: RestoreResult = message.result
            where = "in place" if result.details.get("in_place") else f"into {result.target}"
            status.update(
                Text(
                    f"restored {', '.join(result.details.get('paths', []))} ({where}) "
                    f"in {message.duration_seconds:.1f}s",
                    style="bold green",
                )
            )
        self.call_after_refresh(self.refresh_plan)
