"""Restore drill: choose what and which snapshot, see the targets and every gate, confirm, restore."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.timer import Timer
from textual.widgets import (
    Button,
    Checkbox,
    Input,
    Label,
    RadioButton,
    RadioSet,
    Select,
    Static,
)
from textual.widgets._select import SelectCurrent, SelectOverlay

from kamal_backup.humanize import describe_age, human_bytes
from kamal_backup.models import (
    VERIFYING,
    GateVerdict,
    ResticStatus,
    Snapshot,
    SnapshotType,
    TargetContents,
)
from kamal_backup.services.snapshots import (
    complete_runs,
    expected_parts,
    latest_complete,
    suspicious_runs,
)
from kamal_backup.verification import DrillRecord
from tui.messages import Fetched, OperationDone, OperationProgress
from tui.screens import View
from tui.screens.gates import add_gate_rows, said_refused
from tui.widgets.progress import PartsProgress
from tui.widgets.toggles import MarkedCheckbox, MarkedRadioButton

KINDS: dict[str, tuple[SnapshotType, ...]] = {
    "kind-database": ("database",),
    "kind-files": ("files",),
    "kind-both": ("database", "files"),
}

VERDICT_STYLE = {"match": "green", "mismatch": "bold red", "not comparable": "yellow"}
# How a target's present contents are shown: what will be dropped stands out.
CONTENTS_STYLE = {"holds": "bold yellow", "unknown": "yellow", "empty": "", "missing": ""}


class ArrowRadioSet(RadioSet):
    """A radio row whose arrows select, not only highlight (issue 16: keyboard-only drills)."""

    def action_next_button(self) -> None:
        super().action_next_button()
        self._press_highlighted()

    def action_previous_button(self) -> None:
        super().action_previous_button()
        self._press_highlighted()

    def _press_highlighted(self) -> None:
        if self._selected is None:
            return
        button = self.query(RadioButton)[self._selected]
        if self.pressed_button is button:
            return
        # A button pressed at compose time is not known as pressed yet: clear every other quietly,
        # then press this one so that RadioSet.Changed is posted as for a click.
        with self.prevent(RadioButton.Changed):
            for other in self.query(RadioButton):
                other.value = False
        button.value = True


class NoWrapOverlay(SelectOverlay):
    """The dropdown's list stops at its ends: a key held down never wraps from the newest run to
    the oldest (issue 16: an old snapshot was restored by accident)."""

    def action_cursor_down(self) -> None:
        if self.highlighted is None or self.highlighted < self.option_count - 1:
            super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.highlighted is None or self.highlighted > 0:
            super().action_cursor_up()


class RunSelect(Select[str]):
    """A Select whose list does not wrap (Textual's OptionList wraps by default)."""

    def compose(self) -> ComposeResult:
        yield SelectCurrent(self.prompt)
        yield NoWrapOverlay(type_to_search=self._type_to_search).data_bind(compact=Select.compact)


class DrillView(VerticalScroll, View):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "start", "Start drill"),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__(id="drill-view")
        self.kinds: tuple[SnapshotType, ...] = ("database",)
        self.snapshots: list[Snapshot] = []
        self.running = False
        self.running_kinds: tuple[SnapshotType, ...] = ()  # what the running drill restores
        self.listing_error: str | None = None
        # What the scratch targets hold now, for the (kinds, files target) it was asked for.
        self.contents: list[TargetContents] | None = None
        self.contents_error: str | None = None
        self.contents_key: tuple[tuple[SnapshotType, ...], str] | None = None
        self._inspect_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Label("1. What to restore", classes="step")
        with ArrowRadioSet(id="drill-kind"):
            yield MarkedRadioButton("database", id="kind-database", value=True)
            yield MarkedRadioButton("files", id="kind-files")
            yield MarkedRadioButton("database and files", id="kind-both")
        yield Label("2. Which run", classes="step")
        with Horizontal(classes="row", id="drill-run-row"):
            yield Label("run", classes="field", id="drill-run-label")
            yield RunSelect([("latest", "latest")], id="drill-run", allow_blank=False)
        # Database and files come from one run; another run for the files is an explicit choice.
        yield MarkedCheckbox("mix runs: files from another run than the database", id="drill-mix")
        with Horizontal(classes="row", id="drill-files-run-row"):
            yield Label("files from", classes="field")
            yield RunSelect([("latest", "latest")], id="drill-files-run", allow_blank=False)
        with Horizontal(classes="row", id="drill-target-row"):
            yield Label("files into", classes="field")
            yield Input(self.default_files_target(), id="drill-target")
        yield Label("3. Targets and safety gates", classes="step")
        yield Static(id="drill-gates")
        yield Label("4. Confirm", classes="step")
        yield Static(id="drill-summary")
        with Horizontal(classes="row"):
            yield Input(id="drill-confirm", placeholder="type the app name")
            yield Button("Start restore drill", id="drill-start", variant="error", disabled=True)
        yield Static(id="drill-status")
        yield PartsProgress(id="drill-progress")  # the parts restore side by side
        yield Static(id="drill-result")

    def on_mount(self) -> None:
        self.query_one(
            "#drill-confirm", Input
        ).placeholder = f"type {self.tui.settings.app_name} to confirm"
        self.refresh_plan()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # During an operation the footer offers the app's Cancel (x), not Start (issue 16).
        if action == "start":
            return not self.running and self.tui.operation is None
        return True

    # Snapshot choices --------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.tui.refresh_asked()  # this r is the wizard's own binding, not the app's
        self.tui.reload_snapshots()
        self.inspect_targets(force=True)

    def show_snapshots(self, snapshots: list[Snapshot] | None, error: str | None) -> None:
        if snapshots is None:
            self.query_one("#drill-status", Static).update(
                Text(f"cannot list snapshots: {error}", style="bold red")
            )
            self.listing_error = "snapshots could not be listed"
            self.refresh_plan()
            return
        self.listing_error = None
        self.snapshots = snapshots
        self.fill_run_choices()
        self.refresh_plan()

    @property
    def mixing(self) -> bool:
        """Database and files from different runs: only by the explicit "mix runs" switch."""
        return len(self.kinds) > 1 and self.query_one("#drill-mix", Checkbox).value

    def fill_run_choices(self) -> None:
        """One entry per run holding every chosen part (when mixing, one list per part)."""
        lists: list[tuple[str, tuple[SnapshotType, ...]]] = [
            ("#drill-run", ("database",) if self.mixing else self.kinds)
        ]
        if self.mixing:
            lists.append(("#drill-files-run", ("files",)))
        for select_id, kinds in lists:
            select: Select[str] = self.query_one(select_id, Select)
            options = self.run_options(kinds)
            current = select.value
            select.set_options(options)
            if any(value == current for _, value in options):
                select.value = current
            # The value may be unchanged ('latest') while its label is new: redraw it.
            select.mutate_reactive(Select.value)  # type: ignore[misc]

    def runs(self) -> dict[str, list[Snapshot]]:
        """The listing's snapshots by run, newest first (a snapshot without a run is its own)."""
        grouped: dict[str, list[Snapshot]] = {}
        for snapshot in self.snapshots:
            grouped.setdefault(snapshot.run or snapshot.id, []).append(snapshot)
        return grouped

    def latest_run(self, kinds: tuple[SnapshotType, ...]) -> str | None:
        """The run 'latest' means for these parts: the newest complete run (as the service)."""
        found = latest_complete(self.snapshots, kinds[0], expected_parts(self.tui.settings))
        return found.run if found else None

    def run_options(self, kinds: tuple[SnapshotType, ...]) -> list[tuple[Text, str]]:
        """(entry, value) for each run holding every part of `kinds`, 'latest' first; an entry is
        Text, never markup (a run is a tag's value)."""
        complete = complete_runs(self.snapshots, expected_parts(self.tui.settings))
        suspicious = suspicious_runs(self.snapshots)  # never 'latest'; chosen only by name
        runs = self.runs()
        latest = self.latest_run(kinds)
        latest_label = (
            f"latest: {self.run_label(runs[latest], kinds)}"
            if latest and latest in runs
            else "latest (no complete run yet)"
        )
        options: list[tuple[Text, str]] = [(Text(latest_label), "latest")]
        for run, snapshots in runs.items():
            if not all(any(s.kind == kind for s in snapshots) for kind in kinds):
                continue
            partial = "" if run in complete else "  partial run"
            flagged = "  ⚠ suspicious" if run in suspicious else ""
            options.append((Text(f"{self.run_label(snapshots, kinds)}{partial}{flagged}"), run))
        return options

    def run_label(self, snapshots: list[Snapshot], kinds: tuple[SnapshotType, ...]) -> str:
        """One dropdown entry: the run, its time to the second, age, and the chosen parts' sizes
        (issue 16: three identical `22:39` entries could not be told apart)."""
        parts = [s for s in snapshots if s.kind in kinds]
        newest = max(parts, key=lambda s: s.time)
        age = describe_age(max(0.0, (self.tui.clock() - newest.time).total_seconds()))
        sizes = " + ".join(
            human_bytes(sum(s.summary.total_bytes_processed for s in chosen if s.summary))
            for kind in kinds
            if (chosen := [s for s in parts if s.kind == kind]) and all(s.summary for s in chosen)
        )
        name = f"run {newest.run}" if newest.run else f"{newest.short} (no run)"
        return (
            f"{name}  {self.tui.local(newest.time):%m-%d %H:%M:%S}  {age} ago"
            + (f"  {sizes}" if sizes else "")
        ).rstrip()

    # The plan: targets and each gate's verdict ---------------------------------------------

    @on(RadioSet.Changed, "#drill-kind")
    def _kind_changed(self, event: RadioSet.Changed) -> None:
        self.kinds = KINDS[event.pressed.id or "kind-database"]
        self.fill_run_choices()
        self.refresh_plan()
        self.inspect_targets()

    @on(Checkbox.Changed, "#drill-mix")
    def _mix_changed(self, event: Checkbox.Changed) -> None:
        self.fill_run_choices()
        self.refresh_plan()

    @on(Select.Changed)
    def _run_changed(self, event: Select.Changed) -> None:
        self.refresh_plan()

    @on(Input.Changed, "#drill-target")
    def _target_typed(self, event: Input.Changed) -> None:
        self.refresh_plan()
        # Looked at once typing pauses, not at every key.
        if self._inspect_timer is not None:
            self._inspect_timer.stop()
        self._inspect_timer = self.set_timer(0.4, self.inspect_targets)

    @on(Input.Changed, "#drill-confirm")
    def _typed(self, event: Input.Changed) -> None:
        self.refresh_plan()

    # What the targets hold now (read in a worker: a database answers in its own time) -----

    def on_show(self) -> None:
        self.inspect_targets()

    def inspect_targets(self, force: bool = False) -> None:
        """Asks the drill service what the chosen targets hold now, unless that is known."""
        target = self.query_one("#drill-target", Input).value.strip()
        key = (self.kinds, target)
        # Only while the wizard is in view: a scratch server is not asked at every start.
        if self.tui.active_view() is not self or (key == self.contents_key and not force):
            return
        self.contents_key, self.contents, self.contents_error = key, None, None
        kinds, backend = self.kinds, self.tui.backend
        self.tui.fetch(self, "drill targets", lambda: (key, backend.drill_targets(kinds, target)))
        self.refresh_plan()

    def on_fetched(self, message: Fetched) -> None:
        if message.what != "drill targets":
            return
        message.stop()
        if not self.app.is_running:
            return
        if message.error is not None:
            self.contents_error = message.error
        else:
            key, contents = message.result
            if key != self.contents_key:
                return  # an answer for a target no longer chosen
            self.contents = contents
        self.refresh_plan()

    def verdicts(self) -> list[tuple[str, GateVerdict]]:
        """The drill service's own gate verdicts for the chosen parts and targets."""
        target = self.query_one("#drill-target", Input).value
        return self.tui.backend.drill_verdicts(self.kinds, target)

    def refresh_plan(self) -> None:
        both = len(self.kinds) > 1
        self.query_one("#drill-mix").display = both
        self.query_one("#drill-files-run-row").display = self.mixing
        self.query_one("#drill-run-label", Label).update("database from" if self.mixing else "run")
        self.query_one("#drill-target-row").display = "files" in self.kinds
        verdicts = self.verdicts()
        self.query_one("#drill-gates", Static).update(self.gates_table(verdicts))
        self.query_one("#drill-summary", Static).update(self.summary())
        self.query_one("#drill-start", Button).disabled = not self.can_start(verdicts)

    def chosen_runs(self) -> tuple[str, str]:
        """The run (or 'latest') the database comes from, and the one the files come from."""
        first = str(self.query_one("#drill-run", Select).value)
        files = str(self.query_one("#drill-files-run", Select).value) if self.mixing else first
        return first, files

    def resolved(self, choice: str, kinds: tuple[SnapshotType, ...]) -> str | None:
        """The run a choice means: itself, or for 'latest' the newest complete run (if any)."""
        return self.latest_run(kinds) if choice == "latest" else choice

    def summary(self) -> Text:
        """What the drill will restore from which run: a mixed choice says so plainly."""

        def named(choice: str, kinds: tuple[SnapshotType, ...]) -> str:
            if choice != "latest":
                return f"run {choice}"
            latest = self.latest_run(kinds)
            return f"run {latest} (latest)" if latest else "the latest complete run"

        first, files = self.chosen_runs()
        # Runs compared as resolved: 'latest' in one list and that same run in the other is
        # one run, not a mix.
        database_run = self.resolved(first, ("database",) if self.mixing else self.kinds)
        files_run = self.resolved(files, ("files",)) if self.mixing else database_run
        if self.mixing and database_run != files_run:
            text = Text.assemble(
                ("⚠ MIXED RUNS", "bold reverse yellow"),
                f": the database of {named(first, ('database',))}, the files of "
                f"{named(files, ('files',))}; they were not backed up together",
            )
        else:
            what = " and ".join(self.kinds)
            text = Text(f"restores the {what} of {named(first, self.kinds)}")
        # A suspicious run is drilled only when named: say what a pass then proves.
        suspicious = suspicious_runs(self.snapshots)
        for run in dict.fromkeys((database_run, files_run)):
            if run in suspicious:
                text.append(
                    f"\n⚠ run {run} is suspicious (it shrank against the last good run): a "
                    "passing drill proves the restore, not that the data is right",
                    style="bold yellow",
                )
        text.overflow = "fold"
        return text

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
        # Each target, and beside it what it holds now (issue 16: a scratch database's tables
        # vanished unsaid).
        now = self.contents_by_part()
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
                if part in now:
                    table.add_row("now", "", now.pop(part))
        if "files" in self.kinds:
            value = self.query_one("#drill-target", Input).value.strip()
            table.add_row("target", "files", Text(f"{value or '(empty)'}/<original path>"))
            if "files" in now:
                table.add_row("now", "", now.pop("files"))
        for part, line in now.items():  # loading, or the whole answer failed
            table.add_row("now", Text(part), line)
        add_gate_rows(table, verdicts, self.tui.settings, "drill", unjudged=self.listing_error)
        return table

    def contents_by_part(self) -> dict[str, Text]:
        """What each target holds now, by part ("" while loading or when the read failed)."""
        if self.contents_error is not None:
            what = "the targets hold" if len(self.kinds) > 1 else "the target holds"
            return {"": Text(f"cannot tell what {what}: {self.contents_error}", "yellow")}
        if self.contents is None:
            return {"": Text("looking at what the targets hold now…", "dim")}
        return {
            item.part: Text(item.summary, CONTENTS_STYLE[item.state], overflow="fold")
            for item in self.contents
        }

    # Running -------------------------------------------------------------------------------

    @on(Input.Submitted, "#drill-confirm")
    @on(Button.Pressed, "#drill-start")
    def _start_requested(self) -> None:
        self.action_start()

    def action_start(self) -> None:
        verdicts = self.verdicts()
        if said_refused(self, verdicts):
            return
        if not self.can_start(verdicts):
            # markup=False: the app name is a name (validated today, but data all the same).
            self.notify(
                f"type {self.tui.settings.app_name} in the confirm field to start", markup=False
            )
            self.query_one("#drill-confirm", Input).focus()  # where the name is typed
            return
        backend = self.tui.backend
        kinds = self.kinds
        first, files_choice = self.chosen_runs()
        target = self.query_one("#drill-target", Input).value

        def drill(on_status: Callable[[str, ResticStatus], None]) -> DrillRecord:
            # The drill service restores, verifies and records; this screen only shows it.
            return backend.drill(kinds, first, files_choice, target, on_status)

        # The focus goes to the view itself, not back up to its first control: the progress
        # lines below stay in sight (at 80x24 they were scrolled off), arrows scroll the view.
        if self.tui.start_operation("restore drill", self, drill, kinds, focus=self):
            self.running = True
            self.running_kinds = kinds
            self.query_one("#drill-confirm", Input).value = ""
            self.query_one("#drill-result", Static).update("")
            parts = " and ".join(kinds)
            self.query_one("#drill-status", Static).update(Text(f"restoring {parts}…", "bold"))
            progress = self.query_one(PartsProgress)
            progress.start(kinds)
            self.call_after_refresh(progress.scroll_visible, animate=False)

    def on_operation_progress(self, message: OperationProgress) -> None:
        if not self.app.is_running:
            return
        if message.label == VERIFYING:  # every part restored: the longest step may follow
            parts = " and ".join(self.running_kinds)
            self.query_one("#drill-status", Static).update(
                Text(f"verifying the restored {parts}…", "bold")
            )
            return
        self.query_one(PartsProgress).update(message.label, message.status)

    def on_operation_done(self, message: OperationDone) -> None:
        if not self.app.is_running:
            return
        self.running = False
        self.query_one(PartsProgress).stop()
        status = self.query_one("#drill-status", Static)
        record = message.result
        if message.cancelled:  # issue 16: a cancel is not a failure, and says what it left
            status.update(Text(f"drill {message.error}", style="bold yellow"))
        elif message.error or not isinstance(record, DrillRecord):
            status.update(Text(f"drill failed: {message.error}", style="bold red"))
        else:
            if record.status == "passed":
                line = Text(
                    f"drill finished in {message.duration_seconds:.1f}s: passed", "bold green"
                )
            else:
                line = Text(f"drill {record.status}: {self.failure(record)}", "bold red")
            status.update(line)
            self.query_one("#drill-result", Static).update(self.result_tables(record))
            self.reset_choices()
            self.call_after_refresh(self.scroll_end, animate=False)
        # The drill changed what the targets hold (a cancelled or failed one may have, too).
        self.contents_key = None
        self.call_after_refresh(self.inspect_targets)
        self.call_after_refresh(self.refresh_plan)

    def reset_choices(self) -> None:
        """After a finished drill the next one starts from the defaults, not from the last
        drill's choices (issue 16); its result stays in view until the next start clears it.
        After a cancel or a failure the choices stay, so the same drill can be retried."""
        self.kinds = ("database",)
        kind = self.query_one("#kind-database", RadioButton)
        if not kind.value:
            kind.value = True
        self.query_one("#drill-mix", Checkbox).value = False
        for select_id in ("#drill-run", "#drill-files-run"):
            self.query_one(select_id, Select).value = "latest"
        self.query_one("#drill-target", Input).value = self.default_files_target()

    def default_files_target(self) -> str:
        """Where the files go unless the operator types another directory: RESTORE_FILES_PATH
        (itself /restore/files when unset), as `run_drill` resolves a drill without one."""
        return str(self.tui.settings.restore_files_path)

    @staticmethod
    def failure(record: DrillRecord) -> str:
        if record.error:
            return record.error
        if record.check is not None and record.check.status == "failed":
            return record.check.error or "the check command failed"
        return record.verification.summary()

    def result_tables(self, record: DrillRecord) -> Group:
        """What was restored, the verification table, and RTO/RPO."""
        restored = Table(title="restored", expand=True)
        restored.add_column("what")
        restored.add_column("snapshot")
        restored.add_column("into")
        restored.add_column("time", justify="right")
        restored.add_column("size", justify="right")
        several = sum(part.kind == "database" for part in record.parts) > 1
        for part in record.parts:
            restored.add_row(
                Text(f"database {part.database}" if several and part.database else part.kind),
                Text(f"{part.snapshot_id[:8]} {self.tui.local(part.snapshot_time):%Y-%m-%d %H:%M}"),
                Text(part.target),
                f"{part.duration_seconds or 0:.1f}s",
                human_bytes(part.bytes_restored),
            )
        verification = record.verification
        checks = Table(
            title=Text(f"verification: {verification.summary()}", style="table.title"), expand=True
        )
        checks.add_column("table or files")
        checks.add_column("rows expected", justify="right")
        checks.add_column("rows restored", justify="right")
        checks.add_column("match")
        named = len(verification.databases) > 1
        for row in verification.tables:
            checks.add_row(
                Text(f"{row.database}.{row.table}" if named and row.database else row.table),
                "-" if row.rows_expected is None else str(row.rows_expected),
                "-" if row.rows_restored is None else str(row.rows_restored),
                Text(
                    row.verdict + (f": {row.detail}" if row.detail else ""),
                    style=VERDICT_STYLE.get(row.verdict, ""),
                ),
            )
        if verification.files_expected is not None:
            checks.add_row(
                "files",
                str(verification.files_expected),
                str(verification.files_restored),
                Text(
                    "match"
                    if not verification.files_mismatched
                    else f"{verification.files_mismatched} differ",
                    style="green" if not verification.files_mismatched else "bold red",
                ),
            )
        for mismatch in verification.file_mismatches:
            checks.add_row(Text(mismatch.path), "", "", Text(mismatch.detail, style="bold red"))
        rto = describe_age(record.rto_seconds) if record.rto_seconds is not None else "-"
        rpo = describe_age(record.rpo_seconds) if record.rpo_seconds is not None else "-"
        timing = Text(f"RTO {rto} (start to verified data)  ·  RPO {rpo} (age of the run)")
        if record.check is not None:
            timing.append(
                f"  ·  check {record.check.status}",
                style="green" if record.check.status == "passed" else "bold red",
            )
        return Group(restored, checks, timing)
