"""The kamal-backup Textual app: overview, snapshots, evidence and restore drills over the services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, tzinfo
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.message_pump import MessagePump
from textual.widget import Widget
from textual.widgets import Footer, Header, RichLog, TabbedContent, TabPane

from kamal_backup import process
from kamal_backup.console import preserved_logging
from kamal_backup.models import ResticStatus
from kamal_backup.redact import RedactingFilter
from kamal_backup.settings import Settings
from tui.backend import Backend
from tui.messages import Fetched, LogLine, OperationDone, OperationProgress, describe_error
from tui.screens import View
from tui.screens.drill import DrillView
from tui.screens.evidence import EvidenceView
from tui.screens.overview import OverviewView
from tui.screens.snapshots import SnapshotsView

Clock = Callable[[], datetime]
Operation = Callable[[Callable[[str, ResticStatus], None]], Any]


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
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]  # noqa: RUF012
    # The view keys are written on the tabs themselves ("o Overview"); the footer keeps room for
    # the current view's actions at 80 columns.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "show('overview')", "Overview", show=False),
        Binding("s", "show('snapshots')", "Snapshots", show=False),
        Binding("e", "show('evidence')", "Evidence", show=False),
        Binding("d", "show('drill')", "Restore drill", show=False),
        Binding("l", "toggle_log", "Log"),
        Binding("x", "cancel_operation", "Cancel run"),
        Binding("q", "quit_app", "Quit"),
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
        self._show_log = show_log
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
        log = RichLog(id="log", max_lines=1000, wrap=True, markup=False, highlight=False)
        log.border_title = "log"
        log.display = self._show_log
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
        self.reload_snapshots()

    def on_unmount(self) -> None:
        self._logging.close()

    # Navigation --------------------------------------------------------------------------

    def action_show(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # Focus lands inside the view, so the footer shows that view's keys.
        focusable = [widget for widget in event.pane.query("*") if widget.focusable]
        if focusable:
            focusable[0].focus()

    def action_toggle_log(self) -> None:
        log = self.query_one("#log", RichLog)
        log.display = not log.display

    def on_log_line(self, message: LogLine) -> None:
        if not self.app.is_running:
            return
        # Text, never markup: a path or an error message may contain "[...]".
        style = "bold red" if message.level >= logging.ERROR else ""
        self.query_one("#log", RichLog).write(Text(message.line, style=style))

    def log_error(self, text: str) -> None:
        logging.getLogger("kamal_backup.tui").error(text)

    # Reads: thread workers posting Fetched back to the widget that asked --------------

    def fetch(self, target: MessagePump, what: str, call: Callable[[], Any]) -> None:
        """Runs one read in a thread worker; a newer read of the same thing replaces it."""

        def read() -> None:
            try:
                result = call()
            except Exception as exc:
                target.post_message(Fetched(what, None, describe_error(exc)))
            else:
                target.post_message(Fetched(what, result, None))

        self.run_worker(
            read, thread=True, group=f"{what}-{id(target)}", exclusive=True, exit_on_error=False
        )

    def views(self) -> Iterator[View]:
        # By isinstance, not query(View): a CSS type selector only sees a widget's first base.
        return self.query("*").results(View)

    def reload_snapshots(self) -> None:
        """One listing for every view (each listing opens the repository: seconds on S3)."""
        for view in self.views():
            view.snapshots_loading()
        self.fetch(self, "snapshots", self.backend.snapshots)

    def on_fetched(self, message: Fetched) -> None:
        if not self.app.is_running:  # shutting down: the widgets are going away
            return
        if message.what != "snapshots":
            return
        if message.error:
            self.log_error(f"listing snapshots: {message.error}")
        for view in self.views():
            view.show_snapshots(message.result, message.error)

    # Operations: one at a time, each a thread worker calling one service function ---------

    def start_operation(self, name: str, target: Widget, call: Operation) -> bool:
        """Runs `call` in a thread worker; progress and the outcome are posted to `target`."""
        if self.operation is not None:
            self.notify(f"{self.operation} is running; wait for it or press x to cancel it")
            return False
        self.operation = name
        process.reset_cancellation()
        self.refresh_bindings()
        self._run_operation(name, target, call)
        return True

    @work(thread=True, group="operation", exit_on_error=False)
    def _run_operation(self, name: str, target: Widget, call: Operation) -> None:
        clock = time.monotonic()

        def on_status(label: str, status: ResticStatus) -> None:
            target.post_message(OperationProgress(name, label, status))

        try:
            result = call(on_status)
        except BaseException as exc:
            error = describe_error(exc) if not isinstance(exc, KeyboardInterrupt) else "interrupted"
            logging.getLogger("kamal_backup.tui").error("%s failed: %s", name, error)
            target.post_message(OperationDone(name, None, error, time.monotonic() - clock))
        else:
            target.post_message(OperationDone(name, result, None, time.monotonic() - clock))

    def on_operation_done(self, message: OperationDone) -> None:
        if not self.app.is_running:
            return
        self.operation = None
        self.refresh_bindings()
        if message.error:
            self.notify(message.error, title=f"{message.operation} failed", severity="error")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_operation":
            return self.operation is not None
        return True

    async def action_cancel_operation(self) -> None:
        if self.operation is None:
            return
        self.notify(f"cancelling {self.operation}")
        logging.getLogger("kamal_backup.tui").warning("cancelling %s", self.operation)
        await asyncio.to_thread(process.cancel_all)

    async def action_quit_app(self) -> None:
        """Quits; a running operation is cancelled first and its subprocesses are killed."""
        if self.operation is not None:
            logging.getLogger("kamal_backup.tui").warning("quitting: cancelling %s", self.operation)
            await asyncio.to_thread(process.cancel_all, 3.0)
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
