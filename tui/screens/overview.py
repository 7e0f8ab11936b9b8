"""Overview: what is configured, how fresh the backups are, and the back-up-now and check actions."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Sparkline, Static

from kamal_backup.humanize import check_word, describe_age, human_bytes
from kamal_backup.models import SNAPSHOT_TYPES, BackupRun, CheckResult, Snapshot, SnapshotType
from kamal_backup.services.backup import describe_snapshots
from kamal_backup.services.gates import safety_flags
from kamal_backup.services.health import STALE_AFTER_SCHEDULES, freshness
from kamal_backup.services.snapshots import expected_parts, latest_complete
from kamal_backup.verification import DrillSummary
from tui.charts import RunHistory, run_history
from tui.messages import OperationDone, OperationProgress
from tui.screens import View, shorten_middle
from tui.widgets.progress import PartsProgress

STATUS_STYLE = {"fresh": "bold green", "stale": "bold yellow", "missing": "bold red"}
HINT = "b: back up now  ·  c: check the repository"
PHASE = {"database": "the database", "files": "the files"}  # what each half backs up
LABEL_WIDTH = 16  # the facts' first column, "Last backup run" and its gap


class OverviewView(VerticalScroll, View):
    def __init__(self) -> None:
        super().__init__(id="overview-view")
        self.snapshots: list[Snapshot] | None = None
        self.repository_error: str | None = None
        self.loading_snapshots = False
        self.drills: list[DrillSummary] | None = None

    def compose(self) -> ComposeResult:
        # Status first: at 80x24 the outcome of b/c must be visible without scrolling, and the
        # safety flags too (the facts put them before the history; the charts come last).
        yield Static(HINT, id="operation-status")
        # One line per running half: the database and files halves of a backup run at once.
        yield PartsProgress(id="operation-progress")
        yield Static(id="overview-facts")
        with Vertical(id="overview-charts"):
            yield Static(id="chart-added-words", classes="chart-words")
            with Horizontal(classes="chart-row"):
                yield Static("added/run", classes="chart-label")
                yield Sparkline([], id="chart-added", summary_function=max)
            with Horizontal(classes="chart-row"):
                yield Static("duration", classes="chart-label")
                yield Sparkline([], id="chart-duration", summary_function=max)
            with Horizontal(classes="chart-row"):
                yield Static("outcomes", classes="chart-label")
                yield Static(id="chart-outcomes")

    def on_mount(self) -> None:
        self.render_facts()

    # Loading -----------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.tui.reload_snapshots()

    def tick(self) -> None:
        self.render_facts()

    def on_resize(self, event: events.Resize) -> None:
        self.render_facts()  # targets are shortened to the width there is

    def snapshots_loading(self) -> None:
        self.loading_snapshots = True
        self.render_facts()

    def show_snapshots(self, snapshots: list[Snapshot] | None, error: str | None) -> None:
        self.loading_snapshots = False
        self.snapshots = snapshots
        self.repository_error = error
        self.render_facts()

    def show_drills(self, history: list[DrillSummary] | None, error: str | None) -> None:
        self.drills = history
        self.render_facts()

    # Actions -----------------------------------------------------------------------------

    def action_backup(self) -> None:
        backend = self.tui.backend
        if self.tui.start_operation("backup", self, backend.backup):
            # The halves this app has: a database-only app has no files line, and the reverse.
            halves = [
                half
                for half, present in (
                    ("database", bool(backend.adapters)),
                    ("files", bool(self.tui.settings.backup_paths)),
                )
                if present
            ]
            phases = " and ".join(PHASE[half] for half in halves)
            self._show_progress(f"backup: backing up {phases or 'nothing'}", halves)

    def action_check(self) -> None:
        backend = self.tui.backend
        if self.tui.start_operation("check", self, lambda _status: backend.check()):
            self._show_progress("checking the repository…", ["check"], indeterminate=True)

    def clear_outcome(self) -> None:
        """The last operation's outcome line gives way to the hint: the operator refreshed, or
        another operation started (its outcome is in the facts: Last backup run, Last check)."""
        self.query_one("#operation-status", Static).update(HINT)

    def _show_progress(self, text: str, labels: list[str], indeterminate: bool = False) -> None:
        self.query_one("#operation-status", Static).update(Text(text, style="bold"))
        self.query_one(PartsProgress).start(labels, indeterminate=indeterminate)

    def on_operation_progress(self, message: OperationProgress) -> None:
        if not self.app.is_running:
            return
        # Each half's statuses move its own line only; the status line names the halves.
        self.query_one(PartsProgress).update(message.label, message.status)

    def on_operation_done(self, message: OperationDone) -> None:
        if not self.app.is_running:
            return
        self.query_one(PartsProgress).stop()  # every line hidden and reset, however it ended
        line = self.query_one("#operation-status", Static)
        if message.cancelled:
            line.update(Text(f"{message.operation} {message.error}", style="bold yellow"))
        elif message.error:
            line.update(Text(f"{message.operation} failed: {message.error}", style="bold red"))
        elif isinstance(message.result, BackupRun):
            run = message.result
            line.update(
                Text(
                    f"backup {run.run} saved: {describe_snapshots(run)} "
                    f"in {message.duration_seconds:.1f}s",
                    style="bold green",
                ).append(f"  ·  {HINT}", style="not bold")
            )
        elif isinstance(message.result, CheckResult):
            result = message.result
            line.update(
                Text(
                    f"repository check {check_word(result.status)} in {result.duration_seconds:.1f}s",
                    style="bold green" if result.status == "success" else "bold red",
                ).append(f"  ·  {HINT}", style="not bold")
            )
        # The app reloads the listing after every operation; the facts follow it.

    # Rendering ---------------------------------------------------------------------------

    def render_facts(self) -> None:
        self.query_one("#overview-facts", Static).update(self.facts_table())
        self.render_charts()

    def value_width(self) -> int:
        """Columns for a fact's value at the current width (targets are shortened to it)."""
        return max(24, (self.size.width or 80) - LABEL_WIDTH - 4)

    def facts_table(self) -> Table:
        app = self.tui
        backend = app.backend
        settings = app.settings
        width = self.value_width()
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        # Every value is Text, never markup: a path or a name may hold "[...]".
        table.add_row(
            "App",
            Text(f"{settings.app_name}  ·  every {describe_age(settings.backup_schedule_seconds)}"),
        )
        table.add_row("Repository", Text(shorten_middle(settings.repository_display, width)))
        for adapter in backend.adapters:
            label = (
                "Database" if len(backend.adapters) == 1 else f"Database {adapter.database_name}"
            )
            source = f"{adapter.name}  {adapter.source_label()}"
            table.add_row(Text(label), Text(shorten_middle(source, width)))
        if not backend.adapters:
            table.add_row("Database", "(none: a files-only app)")
        paths = ", ".join(str(p) for p in settings.backup_paths) or "(none)"
        table.add_row("Backup paths", Text(shorten_middle(paths, width)))
        for kind in SNAPSHOT_TYPES:
            table.add_row(f"Latest {kind}", self._latest_text(kind))
        table.add_row("Safety flags", self._flags_text(width))
        table.add_row("Last backup run", self._last_backup_text(backend.last_backup()))
        table.add_row("Last check", self._last_check_text(backend.last_check()))
        table.add_row("Last drill", self._last_drill_text())
        table.add_row("Notifications", self._notifications_text(width))
        policy = ", ".join(
            f"{name.removeprefix('keep_')} {value}"
            for name, value in settings.retention.items()
            if value
        )
        forget = "after each backup" if settings.restic_forget_after_backup else "not applied here"
        table.add_row("Retention", f"{policy or 'none'} ({forget})")
        return table

    def render_charts(self) -> None:
        history = run_history(
            self.snapshots or [],
            self.tui.backend.last_backup(),
            self.drilled_snapshots(),
            expected_parts(self.tui.settings),
        )
        self.query_one("#overview-charts").display = bool(history.runs)
        if not history.runs:
            return
        self.query_one("#chart-added-words", Static).update(self._history_words(history))
        # One column per run, so the bars stand above the outcome of the same run.
        for selector, data in (
            ("#chart-added", history.added),
            ("#chart-duration", history.durations),
        ):
            line = self.query_one(selector, Sparkline)
            line.data = data
            line.styles.width = max(1, len(data))
            line.parent.display = bool(data)  # type: ignore[union-attr]
        self.query_one("#chart-outcomes", Static).update(history.outcome_text())

    def drilled_snapshots(self) -> set[str]:
        found = set()
        for kind in SNAPSHOT_TYPES:
            result = self.tui.backend.last_restore(kind)
            if result is not None:
                found.add(result.snapshot.id)
        return found

    def _history_words(self, history: RunHistory) -> Text:
        text = Text(f"Last {len(history.runs)} runs", style="bold")
        text.append(
            f"  ·  the repository grew {human_bytes(int(history.grown))}"
            f" (last run added {human_bytes(int(history.added[-1]) if history.added else 0)})"
        )
        if history.durations:
            low, high = min(history.durations), max(history.durations)
            text.append(f"  ·  runs took {low:.1f} to {high:.1f}s")
        return text

    def _latest_text(self, kind: SnapshotType) -> Text:
        if self.repository_error:
            if kind != SNAPSHOT_TYPES[0]:
                return Text("unknown (as above)", style="bold red")  # the cause is said once
            return Text(f"unknown: {self.repository_error}", style="bold red")
        if self.snapshots is None:
            return Text("loading…" if self.loading_snapshots else "-", style="dim")
        found = latest_complete(self.snapshots, kind, expected_parts(self.tui.settings))
        now = self.tui.clock()
        status = freshness(
            found.time if found else None, self.tui.settings.backup_schedule_seconds, now
        )
        text = Text()
        text.append(f"{status.upper():8}", style=STATUS_STYLE[status])
        if found is None:
            text.append("no complete backup run yet")
            return text
        size = found.summary.total_bytes_processed if found.summary else None
        text.append(
            f"{found.short}  {self.tui.local(found.time):%Y-%m-%d %H:%M}  "
            f"{describe_age((now - found.time).total_seconds())} ago"
        )
        if size is not None:
            text.append(f"  {human_bytes(size)}")
        return text

    def _last_backup_text(self, run: BackupRun | None) -> Text:
        if run is None:
            return Text("none recorded on this machine", style="dim")
        style = {"success": "green", "running": "yellow"}.get(run.status, "bold red")
        text = Text(run.status.upper(), style=style)
        text.append(f"  {self.tui.local(run.started_at):%Y-%m-%d %H:%M}")
        if run.duration_seconds is not None:
            text.append(f"  {run.duration_seconds:.1f}s")
        if run.error:
            text.append(f"  {run.error}", style="red")
        if run.suspicious:
            # Kept and tagged, but not `latest`: each shrink against the last good run.
            text.append(f"  not latest; against run {run.baseline_run}: ", style="red")
            text.append("; ".join(run.suspicious), style="red")
        return text

    def _last_check_text(self, result: CheckResult | None) -> Text:
        if result is None:
            return Text("never run on this machine", style="dim")
        text = Text(
            check_word(result.status).upper(),
            style="green" if result.status == "success" else "bold red",
        )
        text.append(f"  {self.tui.local(result.checked_at):%Y-%m-%d %H:%M}")
        if result.read_data_subset:
            text.append(f"  read {result.read_data_subset} of the data")
        return text

    def _last_drill_text(self) -> Text:
        """The newest drill: this machine's, or the repository's once the history has loaded."""
        local = self.tui.backend.last_drill()
        known = [*(self.drills or []), *([local.summary()] if local else [])]
        if not known:
            return Text("no restore drill recorded (here or in the repository)", style="dim")
        last = max(known, key=lambda item: item.started_at)
        style = {"passed": "green", "interrupted": "yellow"}.get(last.status, "bold red")
        age = describe_age((self.tui.clock() - last.started_at).total_seconds())
        text = Text(last.status.upper(), style=style)
        text.append(f"  {self.tui.local(last.started_at):%Y-%m-%d %H:%M}  {age} ago  ")
        text.append(last.verification, style="green" if last.verification == "verified" else "")
        if last.rto_seconds is not None:
            text.append(f"  RTO {describe_age(last.rto_seconds)}")
        every = self.tui.settings.kamal_backup_drill_schedule_seconds
        age_seconds = (self.tui.clock() - last.started_at).total_seconds()
        if every and age_seconds > STALE_AFTER_SCHEDULES * every:
            text.append("  OVERDUE", style="bold yellow")
        return text

    def _notifications_text(self, width: int) -> Text:
        """Each channel (host only) and how its last delivery went, as many to a line as fit."""
        text = Text()
        used = 0
        for entry in self.tui.backend.notification_status():
            last = entry.last_delivery
            verdict = "-" if last is None else "ok" if last.ok else f"FAILED {last.detail}"
            style = "dim" if last is None else "green" if last.ok else "bold red"
            label = f"{entry.channel} {shorten_middle(entry.destination, 28)} "
            size = len(label) + len(verdict)
            if used and used + 2 + size > width:
                text.append("\n")
                used = 0
            elif used:
                text.append("  ")
                used += 2
            text.append(label)
            text.append(verdict, style=style)
            used += size
        return text or Text("none configured (see Monitoring in the docs)", style="dim")

    def _flags_text(self, width: int) -> Text:
        """Each flag whole (never cut), as many to a line as fit."""
        text = Text()
        used = 0
        for variable, value in safety_flags(self.tui.settings):
            name = variable.removeprefix("KAMAL_BACKUP_")
            word = "true" if value else "false"
            size = len(name) + 1 + len(word)
            if used and used + 2 + size > width:
                text.append("\n")
                used = 0
            elif used:
                text.append("  ")
                used += 2
            text.append(name)
            text.append("=")
            text.append(word, style="bold yellow" if value else "dim")
            used += size
        return text
