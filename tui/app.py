"""The kamal-backup Textual app: overview, snapshots, evidence and restore drills over the services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, tzinfo
from typing import Any, ClassVar

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import HorizontalScroll, ScrollableContainer, VerticalScroll
from textual.css.query import NoMatches
from textual.message_pump import MessagePump
from textual.widget import Widget
from textual.widgets import Footer, Header, Input, RichLog, TabbedContent, TabPane

from kamal_backup import process
from kamal_backup.console import preserved_logging
from kamal_backup.errors import DrillInterrupted
from kamal_backup.models import ResticStatus, SnapshotType
from kamal_backup.redact import RedactingFilter
from kamal_backup.settings import Settings
from tui.backend import Backend
from tui.commands import AppCommands
from tui.messages import (
    Fetched,
    LogLine,
    OperationDone,
    OperationProgress,
    ReadsChanged,
    describe_error,
)
from tui.screens import View
from tui.screens.drill import DrillView
from tui.screens.evidence import EvidenceView
from tui.screens.help import HelpScreen
from tui.screens.overview import OverviewView
from tui.screens.snapshots import SnapshotsView

Clock = Callable[[], datetime]
Operation = Callable[[Callable[[str, ResticStatus], None]], Any]

# Ages and FRESH/STALE are redrawn this often while the app is open.
TICK_SECONDS = 15.0
LOG_SIZES = ("hidden", "small", "large")
PLAIN_CONTAINERS = (ScrollableContainer, VerticalScroll, HorizontalScroll)

# What a cancelled operation left alone, said with the cancel. A database restore's target is
# unchanged where the restore commits (or swaps a file in) only at its end; MySQL commits DDL as
# it goes, so a cancelled MySQL restore may leave the scratch database part-way.
UNTOUCHED = {
    "backup": "the app's database and files were only read; a run cancelled before both its "
    "snapshots were saved counts as no backup (the snapshot list shows what it saved)",
    "check": "the repository was only read",
    "file restore": "the restored path is swapped in only at the end, so it is as it was",
}
DRILL_DATABASE_UNTOUCHED = {
    "postgres": "the target database is as it was (the restore commits only at its end)",
    "sqlite": "the target file is as it was (the restore is swapped in only at its end)",
    "mysql": "the scratch database may be part-way restored (MySQL commits as it goes)",
}
FILES_UNTOUCHED = (
    "the files target holds what it held (files are swapped in only at the end; empty "
    "directories may be left)"
)


def cancelled_text(
    operation: str,
    exc: BaseException | None,
    adapter: str = "",
    kinds: tuple[SnapshotType, ...] = ("database", "files"),
) -> str:
    """One line for a cancelled operation: that it was cancelled, and what it left untouched
    (of a drill, only the parts it restores: `kinds`)."""
    if operation != "restore drill":
        return f"cancelled: {UNTOUCHED.get(operation, 'nothing more was started')}"
    # A part that had finished stays restored (the drill says which); each other part is as the
    # cancel left it. Every part restored: the cancel came while the drill verified them.
    lines, unfinished = (
        ([exc.said], exc.unfinished) if isinstance(exc, DrillInterrupted) else ([], set(kinds))
    )
    if "database" in kinds and "database" in unfinished:
        lines.append(DRILL_DATABASE_UNTOUCHED.get(adapter, "the target database may be part-way"))
    if "files" in kinds and "files" in unfinished:
        lines.append(FILES_UNTOUCHED)
    return f"cancelled: {'; '.join(lines)}"


def shown_within(widget: Widget, where: Widget) -> bool:
    """Whether `widget` is displayed, as far as the widgets between it and `where` decide."""
    node: Any = widget
    while node is not None and node is not where:
        if not node.display:
            return False
        node = node.parent
    return True


class LogPanel(RichLog):
    """The log panel. A RichLog renders a line at the width it has when the line is written, and a
    hidden one has none (one character a row): lines logged while the panel is hidden wait, and
    are rendered at the panel's width once it is shown."""

    def __init__(self, max_lines: int) -> None:
        # min_width=1: RichLog's default (78) wraps wider than an 80-column panel shows.
        super().__init__(
            id="log", max_lines=max_lines, wrap=True, markup=False, highlight=False, min_width=1
        )
        self.waiting: deque[Text] = deque(maxlen=max_lines)

    def add_line(self, line: Text) -> None:
        if self.waiting or not self.scrollable_content_region.width:
            self.waiting.append(line)
        else:
            self.write(line)

    def write_waiting(self) -> None:
        while self.waiting and self.scrollable_content_region.width:
            self.write(self.waiting.popleft())

    def on_show(self, event: events.Show) -> None:
        self.write_waiting()

    def on_resize(self, event: events.Resize) -> None:
        self.write_waiting()


class PanelHandler(logging.Handler):
    """Sends the services' log records to the log panel, from any thread, without blocking."""

    def __init__(self, app: KamalBackupApp) -> None:
        super().__init__()
        self.app = app
        self.addFilter(RedactingFilter())
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.app.post_message(LogLine(self.format(record), record.levelno))
        except Exception:  # a closing app must not break the operation that logs
            self.handleError(record)


class KamalBackupApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "kamal-backup"
    # Ctrl+P is Docker's detach prefix inside `docker exec -it`, and inputs use Ctrl+K: the
    # palette lives on Ctrl+O.
    COMMAND_PALETTE_BINDING = "ctrl+o"
    COMMANDS = App.COMMANDS | {AppCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]  # noqa: RUF012
    # The view keys are written on the tabs themselves ("o Overview"); the footer keeps room for
    # the current view's actions at 80 columns. These are the app's: they answer wherever focus
    # is (the tab bar and the log included), except inside a text field, which takes letters.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "show('overview')", "Overview", show=False),
        Binding("s", "show('snapshots')", "Snapshots", show=False),
        Binding("e", "show('evidence')", "Evidence", show=False),
        Binding("d", "show('drill')", "Restore drill", show=False),
        Binding("b", "backup", "Back up"),
        Binding("c", "check", "Check"),
        Binding("r", "refresh", "Refresh"),
        Binding("l", "toggle_log", "Log"),
        Binding("x", "cancel_operation", "Cancel"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit_app", "Quit"),
        Binding("escape", "leave_field", "Leave field", show=False),
        Binding("ctrl+q", "quit_app", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        backend: Backend,
        *,
        clock: Clock | None = None,
        timezone: tzinfo | None = None,
        show_log: bool = True,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.settings: Settings = backend.settings
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.timezone = timezone
        self.operation: str | None = None
        # The running operation's cancel scope, and every running read's: `x` cancels the
        # operation (or, with none running, the reads still loading); `q` cancels them all.
        self.operation_scope: process.CancelScope | None = None
        self.read_scopes: set[process.CancelScope] = set()
        self.log_size = "small" if show_log else "hidden"
        self._handler = PanelHandler(self)
        self._logging = contextlib.ExitStack()
        self.sub_title = self.settings.app_name

    def local(self, moment: datetime) -> datetime:
        """A time in the operator's zone (or the fixed zone of snapshot tests)."""
        return moment.astimezone(self.timezone)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with TabbedContent(initial="overview", id="tabs"):
            with TabPane("[b]o[/b]\u00a0Overview", id="overview"):
                yield OverviewView()
            with TabPane("[b]s[/b]\u00a0Snapshots", id="snapshots"):
                yield SnapshotsView()
            with TabPane("[b]e[/b]\u00a0Evidence", id="evidence"):
                yield EvidenceView()
            with TabPane("[b]d[/b]\u00a0Restore drill", id="drill"):
                yield DrillView()
        log = LogPanel(max_lines=1000)
        log.border_title = "log (l: larger)"
        log.display = self.log_size != "hidden"
        yield log
        yield Footer(compact=True)

    def on_mount(self) -> None:
        # While the app owns the terminal, the services log to the panel, not over the screen.
        self._logging.enter_context(preserved_logging())
        logger = logging.getLogger("kamal_backup")
        logger.handlers[:] = [self._handler]
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)  # --verbose (DEBUG) stays as it is
        logger.propagate = False
        self.set_interval(TICK_SECONDS, self.tick)
        self.reload_snapshots()

    def tick(self) -> None:
        """Redraws every age against the clock (FRESH turns STALE while the app stays open)."""
        for view in self.views():
            # A view still composing or already being torn down (the app quitting) has no
            # widgets to redraw: the timer may fire in between.
            with contextlib.suppress(NoMatches):
                view.tick()

    def on_unmount(self) -> None:
        self._logging.close()

    # Navigation --------------------------------------------------------------------------

    def action_show(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # Focus lands on the view's first control (not on a container around it), so the
        # footer shows that view's keys.
        self.focus_first_control(event.pane)

    def focus_first_control(self, where: Widget, *, inputs: bool = True) -> None:
        focusable = [
            widget
            for widget in where.query("*")
            if widget.focusable
            and (inputs or not isinstance(widget, Input))
            and shown_within(widget, where)
        ]
        # A plain scrolling container (or a view) is not a control; a RadioSet, a DataTable or a
        # Tree scroll too, but they are.
        controls = [
            w for w in focusable if not (type(w) in PLAIN_CONTAINERS or isinstance(w, View))
        ]
        chosen: Widget | None = (controls or focusable or [None])[0]  # type: ignore[list-item]
        if chosen is None and where.focusable:
            chosen = where
        # Scrolled into view only as far as needed: Textual centres a focused widget, which
        # scrolls a view whose first control is already in sight by however much its content
        # has loaded so far (the drill wizard's headings came and went with it).
        self.screen.set_focus(chosen, scroll_visible=False)
        if chosen is not None:
            self.call_later(chosen.scroll_visible, animate=False)

    def active_view(self) -> View | None:
        pane = self.query_one("#tabs", TabbedContent).active_pane
        if pane is None:
            return None
        return next(iter(pane.query("*").results(View)), None)

    def action_leave_field(self) -> None:
        """Escape leaves a text field, so the app's keys answer again."""
        if isinstance(self.focused, Input):
            view = self.active_view()
            self.focus_first_control(view, inputs=False) if view else self.screen.set_focus(None)

    def action_toggle_log(self) -> None:
        """l: a small log, then most of the screen (multi-line errors), then none."""
        self.log_size = LOG_SIZES[(LOG_SIZES.index(self.log_size) + 1) % len(LOG_SIZES)]
        log = self.query_one("#log", RichLog)
        log.display = self.log_size != "hidden"
        log.set_class(self.log_size == "large", "-large")
        log.border_title = "log (l: larger)" if self.log_size == "small" else "log (l: hide)"
        if log.display:
            log.scroll_end(animate=False)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self))

    def action_backup(self) -> None:
        self.action_show("overview")
        self.query_one(OverviewView).action_backup()

    def action_check(self) -> None:
        self.action_show("overview")
        self.query_one(OverviewView).action_check()

    def start_drill(self) -> None:
        """The palette's "start a drill": the wizard, on its first control (it asks the rest)."""
        self.action_show("drill")

    def save_evidence(self) -> None:
        self.action_show("evidence")
        self.query_one(EvidenceView).action_ask_path()

    def refresh_asked(self) -> None:
        """The operator pressed r (in any view): the last operation's outcome line goes."""
        if self.operation is None:  # a running operation's progress line stays
            self.query_one(OverviewView).clear_outcome()

    def action_refresh(self) -> None:
        self.refresh_asked()
        view = self.active_view()
        refresh = getattr(view, "action_refresh", None)
        if callable(refresh):
            refresh()
        else:
            self.reload_snapshots()

    def on_log_line(self, message: LogLine) -> None:
        if not self.app.is_running:
            return
        # Text, never markup: a path or an error message may contain "[...]".
        style = "bold red" if message.level >= logging.ERROR else ""
        self.query_one("#log", LogPanel).add_line(Text(message.line, style=style))

    def log_error(self, text: str) -> None:
        logging.getLogger("kamal_backup.tui").error(text)

    # Reads: thread workers posting Fetched back to the widget that asked --------------

    def fetch(self, target: MessagePump, what: str, call: Callable[[], Any]) -> None:
        """Runs one read in a thread worker; a newer read of the same thing replaces it."""

        scope = self.read_scope(what)

        def read() -> None:
            with self.reading(scope):
                try:
                    result = call()
                except Exception as exc:
                    error = "cancelled" if scope.cancelled else describe_error(exc)
                    target.post_message(Fetched(what, None, error))
                else:
                    target.post_message(Fetched(what, result, None))

        self.run_worker(
            read, thread=True, group=f"{what}-{id(target)}", exclusive=True, exit_on_error=False
        )

    def read_scope(self, what: str) -> process.CancelScope:
        """A new read's own cancel scope, registered now (on the UI thread): x (with no
        operation running) and q cancel it; the footer offers Cancel while it runs."""
        scope = process.CancelScope(f"reading {what}")
        self.read_scopes.add(scope)
        self.refresh_bindings()
        return scope

    @contextlib.contextmanager
    def reading(self, scope: process.CancelScope) -> Iterator[process.CancelScope]:
        """Runs a worker's read inside `scope`, and forgets the scope when the read ends."""
        try:
            with scope.entered():
                yield scope
        finally:
            self.read_scopes.discard(scope)
            self.post_message(ReadsChanged())

    def on_reads_changed(self, message: ReadsChanged) -> None:
        if self.is_running:
            self.refresh_bindings()

    def views(self) -> Iterator[View]:
        # By isinstance, not query(View): a CSS type selector only sees a widget's first base.
        return self.query("*").results(View)

    def reload_snapshots(self) -> None:
        """One listing for every view (each listing opens the repository: seconds on S3)."""
        for view in self.views():
            view.snapshots_loading()
        self.fetch(self, "snapshots", self.backend.snapshots)
        self.fetch(self, "drills", lambda: self.backend.drill_history()[1])

    def on_fetched(self, message: Fetched) -> None:
        if not self.app.is_running:  # shutting down: the widgets are going away
            return
        if message.what == "drills":
            for view in self.views():
                view.show_drills(message.result, message.error)
            return
        if message.what != "snapshots":
            return
        if message.error:
            self.log_error(message.error)  # the error already names what failed
        for view in self.views():
            view.show_snapshots(message.result, message.error)

    # Operations: one at a time, each a thread worker calling one service function ---------

    def start_operation(
        self,
        name: str,
        target: Widget,
        call: Operation,
        kinds: tuple[SnapshotType, ...] = ("database", "files"),
        focus: Widget | None = None,
    ) -> bool:
        """Runs `call` in a thread worker; progress and the outcome are posted to `target`.
        `kinds`: the parts a drill restores (a cancel says what it left of those only). Started
        from a text field, the focus leaves it: for `focus`, else the target's first control."""
        if self.operation is not None:
            self.notify(f"{self.operation} is running; wait for it or press x to cancel it")
            return False
        self.operation = name
        self.operation_scope = scope = process.CancelScope(name)
        self.query_one(OverviewView).clear_outcome()  # the last outcome is history now
        if isinstance(self.focused, Input):
            # Keys typed now are meant for the app (x cancels), not for the field just used.
            if focus is not None:
                self.screen.set_focus(focus, scroll_visible=False)
            else:
                self.focus_first_control(target, inputs=False)
        self.refresh_bindings()
        self._run_operation(name, target, call, scope, kinds)
        return True

    @work(thread=True, group="operation", exit_on_error=False)
    def _run_operation(
        self,
        name: str,
        target: Widget,
        call: Operation,
        scope: process.CancelScope,
        kinds: tuple[SnapshotType, ...],
    ) -> None:
        clock = time.monotonic()

        def on_status(label: str, status: ResticStatus) -> None:
            target.post_message(OperationProgress(name, label, status))

        try:
            with scope.entered():
                result = call(on_status)
        except BaseException as exc:
            seconds = time.monotonic() - clock
            if scope.cancelled or isinstance(exc, KeyboardInterrupt):
                adapters = self.backend.adapters
                text = cancelled_text(name, exc, adapters[0].name if adapters else "", kinds)
                logging.getLogger("kamal_backup.tui").warning("%s %s", name, text)
                target.post_message(OperationDone(name, None, text, seconds, cancelled=True))
                return
            error = describe_error(exc)
            logging.getLogger("kamal_backup.tui").error("%s failed: %s", name, error)
            target.post_message(OperationDone(name, None, error, seconds))
        else:
            target.post_message(OperationDone(name, result, None, time.monotonic() - clock))

    def on_operation_done(self, message: OperationDone) -> None:
        if not self.app.is_running:
            return
        self.operation = None
        self.operation_scope = None
        self.refresh_bindings()
        # markup=False: an error names paths and targets, which may hold "[...]".
        if message.cancelled:
            self.notify(message.error or "", title=f"{message.operation} cancelled", markup=False)
        elif message.error:
            self.notify(
                message.error, title=f"{message.operation} failed", severity="error", markup=False
            )
        # Every view shows the repository as the operation left it (and Last restore/check).
        self.reload_snapshots()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_operation":
            return self.operation is not None or bool(self.read_scopes)
        return True

    async def action_cancel_operation(self) -> None:
        """x: cancels the running operation only; with none running, the reads still loading."""
        log = logging.getLogger("kamal_backup.tui")
        scope = self.operation_scope
        if scope is not None:
            self.notify(f"cancelling {scope.name}")
            log.warning("cancelling %s", scope.name)
            await asyncio.to_thread(scope.cancel)
            return
        for read in list(self.read_scopes):
            log.warning("cancelling %s", read.name)
            await asyncio.to_thread(read.cancel, 1.0)

    async def action_quit_app(self) -> None:
        """Quits within seconds in every state: the operation and every read are cancelled."""
        scopes = [*self.read_scopes]
        if self.operation_scope is not None:
            logging.getLogger("kamal_backup.tui").warning("quitting: cancelling %s", self.operation)
            scopes.append(self.operation_scope)
        if scopes:
            await asyncio.gather(*(asyncio.to_thread(scope.cancel, 1.0) for scope in scopes))
        self.exit()


def make_app(
    settings: Settings,
    *,
    backend: Backend | None = None,
    clock: Clock | None = None,
    timezone: tzinfo | None = None,
    show_log: bool = True,
) -> KamalBackupApp:
    """The one place the app is built: for the CLI, the tests and bin/screenshots."""
    return KamalBackupApp(
        backend or Backend(settings), clock=clock, timezone=timezone, show_log=show_log
    )
