"""Restore drill: choose what and which snapshot, see the targets and every gate, confirm, restore."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import (
    Button,
    Input,
    Label,
    ProgressBar,
    RadioButton,
    RadioSet,
    Select,
    Static,
)

from kamal_backup.errors import KamalBackupError, OperationFailed
from kamal_backup.humanize import human_bytes
from kamal_backup.models import SNAPSHOT_TYPES, GateVerdict, ResticStatus, RestoreResult, Snapshot
from kamal_backup.services.restore import DEFAULT_FILES_TARGET
from kamal_backup.services.snapshots import complete_runs, expected_parts, latest_complete
from tui.messages import OperationDone, OperationProgress
from tui.screens import View
from tui.screens.gates import add_gate_rows, how_to_allow

KINDS = {
    "kind-database": ("database",),
    "kind-files": ("files",),
    "kind-both": ("database", "files"),
}


class DrillView(VerticalScroll, View):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "start", "Start drill"),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__(id="drill-view")
        self.kinds: tuple[str, ...] = ("database",)
        self.snapshots: list[Snapshot] = []
        self.running = False

    def compose(self) -> ComposeResult:
        yield Label("1. What to restore", classes="step")
        with RadioSet(id="drill-kind"):
            yield RadioButton("database", id="kind-database", value=True)
            yield RadioButton("files", id="kind-files")
            yield RadioButton("database and files", id="kind-both")
        yield Label("2. Which snapshot", classes="step")
        with Horizontal(classes="row", id="drill-db-row"):
            yield Label("database", classes="field")
            yield Select[str]([("latest", "latest")], id="drill-db-snapshot", allow_blank=False)
        with Horizontal(classes="row", id="drill-files-row"):
            yield Label("files", classes="field")
            yield Select[str]([("latest", "latest")], id="drill-files-snapshot", allow_blank=False)
        with Horizontal(classes="row", id="drill-target-row"):
            yield Label("files into", classes="field")
            yield Input(DEFAULT_FILES_TARGET, id="drill-target")
        yield Label("3. Targets and safety gates", classes="step")
        yield Static(id="drill-gates")
        yield Label("4. Confirm", classes="step")
        with Horizontal(classes="row"):
            yield Input(id="drill-confirm", placeholder="type the app name")
            yield Button("Start restore drill", id="drill-start", variant="error", disabled=True)
        yield Static(id="drill-status")
        yield ProgressBar(id="drill-progress", show_eta=False)
        yield Static(id="drill-result")

    def on_mount(self) -> None:
        self.query_one("#drill-progress").display = False
        self.query_one(
            "#drill-confirm", Input
        ).placeholder = f"type {self.tui.settings.app_name} to confirm"
        self.refresh_plan()

    # Snapshot choices --------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.tui.reload_snapshots()

    def show_snapshots(self, snapshots: list[Snapshot] | None, error: str | None) -> None:
        if snapshots is None:
            self.query_one("#drill-status", Static).update(
                Text(f"cannot list snapshots: {error}", style="bold red")
            )
            return
        self.snapshots = snapshots
        complete = complete_runs(self.snapshots, expected_parts(self.tui.settings))
        for kind, select_id in zip(
            SNAPSHOT_TYPES, ("#drill-db-snapshot", "#drill-files-snapshot"), strict=True
        ):
            latest = latest_complete(self.snapshots, kind, expected_parts(self.tui.settings))
            latest_label = (
                f"latest ({latest.short}, {self.tui.local(latest.time):%Y-%m-%d %H:%M})"
                if latest
                else "latest (no complete run yet)"
            )
            options: list[tuple[str, str]] = [(latest_label, "latest")]
            for snapshot in self.snapshots:
                if snapshot.kind != kind:
                    continue
                partial = "" if snapshot.run in complete else "  partial run"
                options.append(
                    (
                        f"{snapshot.short}  {self.tui.local(snapshot.time):%Y-%m-%d %H:%M}{partial}",
                        snapshot.id,
                    )
                )
            select: Select[str] = self.query_one(select_id, Select)
            current = select.value
            select.set_options(options)
            if any(value == current for _, value in options):
                select.value = current
            # The value may be unchanged ('latest') while its label is new: redraw it.
            select.mutate_reactive(Select.value)  # type: ignore[misc]
        self.refresh_plan()

    # The plan: targets and each gate's verdict ---------------------------------------------

    @on(RadioSet.Changed, "#drill-kind")
    def _kind_changed(self, event: RadioSet.Changed) -> None:
        self.kinds = KINDS[event.pressed.id or "kind-database"]
        self.refresh_plan()

    @on(Input.Changed, "#drill-target")
    @on(Input.Changed, "#drill-confirm")
    def _typed(self, event: Input.Changed) -> None:
        self.refresh_plan()

    def verdicts(self) -> list[tuple[str, GateVerdict]]:
        """The restore services' own gate verdicts for the chosen parts and targets."""
        backend = self.tui.backend
        found: list[tuple[str, GateVerdict]] = []
        if "database" in self.kinds:
            found += [("database", v) for v in backend.database_verdicts()]
        if "files" in self.kinds:
            target = self.query_one("#drill-target", Input).value
            found += [("files", v) for v in backend.file_verdicts(target)]
        return found

    def refresh_plan(self) -> None:
        self.query_one("#drill-db-row").display = "database" in self.kinds
        self.query_one("#drill-files-row").display = "files" in self.kinds
        self.query_one("#drill-target-row").display = "files" in self.kinds
        verdicts = self.verdicts()
        self.query_one("#drill-gates", Static).update(self.gates_table(verdicts))
        self.query_one("#drill-start", Button).disabled = not self.can_start(verdicts)

    def can_start(self, verdicts: list[tuple[str, GateVerdict]] | None = None) -> bool:
        verdicts = self.verdicts() if verdicts is None else verdicts
        confirmed = (
            self.query_one("#drill-confirm", Input).value.strip() == self.tui.settings.app_name
        )
        return (
            confirmed
            and not self.running
            and self.tui.operation is None
            and all(verdict.allowed for _, verdict in verdicts)
        )

    def gates_table(self, verdicts: list[tuple[str, GateVerdict]]) -> Table:
        backend = self.tui.backend
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        if "database" in self.kinds:
            for adapter in backend.adapters:
                target = adapter.restore_target_label()
                part = (
                    "database"
                    if len(backend.adapters) == 1
                    else f"database {adapter.database_name}"
                )
                table.add_row(
                    "target",
                    Text(part),
                    Text(target)
                    if target
                    else Text(f"{adapter.restore_setting} is not set", "bold red"),
                )
        if "files" in self.kinds:
            value = self.query_one("#drill-target", Input).value.strip()
            table.add_row("target", "files", f"{value or '(empty)'}/<original path>")
        add_gate_rows(table, verdicts, self.tui.settings, "drill")
        return table

    # Running -------------------------------------------------------------------------------

    @on(Input.Submitted, "#drill-confirm")
    @on(Button.Pressed, "#drill-start")
    def _start_requested(self) -> None:
        self.action_start()

    def action_start(self) -> None:
        verdicts = self.verdicts()
        if not all(verdict.allowed for _, verdict in verdicts):
            refused = next(v for _, v in verdicts if not v.allowed)
            self.notify(f"refused: {refused.reason}; {how_to_allow(refused)}", severity="error")
            return
        if not self.can_start(verdicts):
            self.notify(f"type {self.tui.settings.app_name} in the confirm field to start")
            return
        backend = self.tui.backend
        kinds = self.kinds
        db_choice = self.query_one("#drill-db-snapshot", Select).value
        files_choice = self.query_one("#drill-files-snapshot", Select).value
        target = self.query_one("#drill-target", Input).value

        def drill(on_status: Callable[[str, ResticStatus], None]) -> list[RestoreResult]:
            results = []
            if "database" in kinds:
                results.extend(backend.restore_databases(str(db_choice), on_status))
            if "files" in kinds:
                try:
                    results.append(backend.restore_files(str(files_choice), target, on_status))
                except KamalBackupError as exc:
                    if not results:
                        raise
                    # Say what did happen: the database part is restored and stays restored.
                    done = results[0]
                    raise OperationFailed(
                        f"database snapshot {done.snapshot.short_id} was restored into "
                        f"{done.target}, but the file restore failed: {exc}"
                    ) from None
            return results

        if self.tui.start_operation("restore drill", self, drill):
            self.running = True
            self.query_one("#drill-confirm", Input).value = ""
            self.query_one("#drill-result", Static).update("")
            self.query_one("#drill-status", Static).update(Text("restoring…", style="bold"))
            bar = self.query_one("#drill-progress", ProgressBar)
            bar.update(total=100, progress=0)
            bar.display = True

    def on_operation_progress(self, message: OperationProgress) -> None:
        if not self.app.is_running:
            return
        status = message.status
        total = f" of {human_bytes(status.total_bytes)}" if status.total_bytes else ""
        self.query_one("#drill-status", Static).update(
            Text(f"restoring {message.label}: {human_bytes(status.bytes_processed)}{total}", "bold")
        )
        if status.percent_done:
            self.query_one("#drill-progress", ProgressBar).update(
                total=100, progress=status.percent_done * 100
            )

    def on_operation_done(self, message: OperationDone) -> None:
        if not self.app.is_running:
            return
        self.running = False
        self.query_one("#drill-progress").display = False
        status = self.query_one("#drill-status", Static)
        if message.cancelled:  # issue 16: a cancel is not a failure, and says what it left
            status.update(Text(f"drill {message.error}", style="bold yellow"))
        elif message.error:
            status.update(Text(f"drill failed: {message.error}", style="bold red"))
        else:
            status.update(
                Text(f"drill finished in {message.duration_seconds:.1f}s", style="bold green")
            )
            self.query_one("#drill-result", Static).update(self.result_table(message.result))
            self.call_after_refresh(self.scroll_end, animate=False)
        self.call_after_refresh(self.refresh_plan)

    def result_table(self, results: list[RestoreResult]) -> Table:
        table = Table(title="restored", expand=True)
        table.add_column("what")
        table.add_column("snapshot")
        table.add_column("into")
        table.add_column("time", justify="right")
        table.add_column("size", justify="right")
        for result in results:
            table.add_row(
                result.kind,
                f"{result.snapshot.short_id} {self.tui.local(result.snapshot.time):%Y-%m-%d %H:%M}",
                result.target,
                f"{result.duration_seconds:.1f}s",
                human_bytes(result.bytes_restored),
            )
        return table
