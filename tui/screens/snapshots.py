"""Snapshots: this app's snapshots grouped by backup run, a filter, details and a lazy file tree."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static, Tree
from textual.widgets.tree import TreeNode, UnknownNodeID

from kamal_backup.humanize import describe_age, human_bytes
from kamal_backup.models import FileEntry, Snapshot
from kamal_backup.process import CancelScope
from kamal_backup.services.baseline import ACCEPTED_AT, ACCEPTED_BY
from kamal_backup.services.snapshots import complete_runs, expected_parts, suspicious_runs
from tui.messages import describe_error
from tui.screens import View
from tui.screens.restore_file import RestoreFileScreen

FILTERS = ("all", "database", "files")
LOADING = " (loading…)"  # beside a directory while it is listed


def grouped_by_run(snapshots: list[Snapshot]) -> list[list[Snapshot]]:
    """Runs newest first, the database snapshot before the files snapshot within a run."""
    groups: dict[str, list[Snapshot]] = {}
    for snapshot in snapshots:
        groups.setdefault(snapshot.run or f"id:{snapshot.id}", []).append(snapshot)
    ordered = sorted(groups.values(), key=lambda group: max(s.time for s in group), reverse=True)
    return [sorted(group, key=lambda s: (s.kind != "database", s.time)) for group in ordered]


class FilesListed(Message):
    def __init__(
        self, node: TreeNode[str], entries: list[FileEntry] | None, error: str | None
    ) -> None:
        super().__init__()
        self.node = node
        self.entries = entries
        self.error = error


class SnapshotsView(Container, View):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "cycle_filter", "Filter"),
        Binding("v", "files", "Files"),
        Binding("f", "restore_selected", "Restore file"),
    ]

    def __init__(self) -> None:
        super().__init__(id="snapshots-view")
        self.snapshots: list[Snapshot] = []
        self.by_id: dict[str, Snapshot] = {}
        self.complete: set[str] = set()
        self.suspicious: set[str] = set()
        # Runs once suspicious and accepted (`kamal-backup accept`): who, and when.
        self.accepted: dict[str, tuple[str, str]] = {}
        self.filter = "all"
        self.shown: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="snapshots-status")
        table: DataTable[str | Text] = DataTable(
            id="snapshots-table", cursor_type="row", zebra_stripes=True
        )
        yield table
        # The tree scrolls itself (so it follows its cursor) below the details, which scroll
        # on their own; while the tree has focus the details step aside (class -browsing).
        with Vertical(id="snapshot-detail"):
            with VerticalScroll(id="snapshot-info-scroll", can_focus=False):
                yield Static("Select a snapshot to see its details.", id="snapshot-info")
            tree: Tree[str] = Tree("files", id="snapshot-files")
            tree.display = False
            yield tree

    def on_mount(self) -> None:
        table = self.query_one("#snapshots-table", DataTable)
        table.add_column("run (local time)")
        table.add_column("age", key="age")
        table.add_columns("type", "id", "size", "adapter")

    # Loading -----------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.tui.reload_snapshots()

    def snapshots_loading(self) -> None:
        self.query_one("#snapshots-status", Static).update(Text("loading snapshots…", "dim"))

    def show_snapshots(self, snapshots: list[Snapshot] | None, error: str | None) -> None:
        if snapshots is None:
            self.query_one("#snapshots-status", Static).update(
                Text(f"cannot list snapshots: {error}", style="bold red")
            )
            return
        self.snapshots = snapshots
        self.by_id = {s.id: s for s in snapshots}
        self.complete = complete_runs(snapshots, expected_parts(self.tui.settings))
        self.suspicious = suspicious_runs(snapshots)
        self.accepted = {
            s.run: (by, s.tag_value(ACCEPTED_AT) or "?")
            for s in snapshots
            if s.run and (by := s.tag_value(ACCEPTED_BY))
        }
        self.shown = None
        self.fill_table()

    def run_note(self, snapshot: Snapshot) -> str:
        """Why a run is not `latest`: a production restore's safety snapshot, partial, or
        suspicious (it shrank against the last good run); or that it was accepted so."""
        if snapshot.pre_restore:
            return " pre-restore"
        if snapshot.run and snapshot.run not in self.complete:
            return " partial"
        if snapshot.run in self.suspicious:
            return " suspicious"
        return " accepted" if snapshot.run in self.accepted else ""

    def tick(self) -> None:
        """Redraws the ages in the list and the detail from one clock reading."""
        table = self.query_one("#snapshots-table", DataTable)
        now = self.tui.clock()
        for row_key in list(table.rows):
            snapshot = self.by_id.get(str(row_key.value))
            if snapshot is not None:
                table.update_cell(row_key, "age", self.age(snapshot, now))
        snapshot = self.by_id.get(self.shown or "")
        if snapshot is not None:
            self.query_one("#snapshot-info", Static).update(self.detail_table(snapshot, now))

    @staticmethod
    def age(snapshot: Snapshot, now: datetime) -> str:
        """One wording for an age, in the list and in the detail."""
        return f"{describe_age((now - snapshot.time).total_seconds())} ago"

    def action_files(self) -> None:
        """v (or enter on the list): straight to the file tree of the highlighted run's files."""
        tree: Tree[str] = self.query_one("#snapshot-files", Tree)
        shown = self.by_id.get(self.shown or "")
        if shown is not None and shown.kind != "files":
            # The run's files snapshot, beside the highlighted database snapshot.
            table = self.query_one("#snapshots-table", DataTable)
            partner = next(
                (s for s in self.snapshots if s.run == shown.run and s.kind == "files"), None
            )
            if partner is not None and partner.id in {str(k.value) for k in table.rows}:
                table.move_cursor(row=table.get_row_index(partner.id))
                self.show_detail(partner.id)
        if not tree.display:
            self.notify("this run has no files snapshot")
            return
        tree.focus()

    @on(events.DescendantFocus)
    @on(events.DescendantBlur)
    def _browsing(self) -> None:
        tree = self.query_one("#snapshot-files", Tree)
        self.set_class(self.screen.focused is tree, "-browsing")

    def action_cycle_filter(self) -> None:
        self.filter = FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)]
        self.fill_table()

    def fill_table(self) -> None:
        table = self.query_one("#snapshots-table", DataTable)
        table.clear()
        now = self.tui.clock()
        shown = 0
        runs = 0
        for group in grouped_by_run(self.snapshots):
            members = [s for s in group if self.filter == "all" or s.kind == self.filter]
            if not members:
                continue
            runs += 1
            for position, snapshot in enumerate(members):
                shown += 1
                label = (
                    f"{self.tui.local(snapshot.time):%Y-%m-%d %H:%M}" if position == 0 else "  └"
                )
                size = snapshot.summary.total_bytes_processed if snapshot.summary else None
                # Text, never markup: a tag's value is whatever the repository holds.
                table.add_row(
                    Text(label + (self.run_note(snapshot) if position == 0 else "")),
                    self.age(snapshot, now),
                    Text(snapshot.kind or "-"),
                    Text(snapshot.short),
                    human_bytes(size),
                    Text(describe_database(snapshot)),
                    key=snapshot.id,
                )
        total = len(self.snapshots)
        status = Text()
        status.append(f"filter: {self.filter}", style="bold")
        status.append(f"  ·  {shown} of {total} snapshots in {runs} runs  ·  t: change filter")
        if not total:
            status = Text("no snapshots yet: press b on the overview to back up now", "yellow")
        self.query_one("#snapshots-status", Static).update(status)
        if shown:
            self.show_detail(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        else:
            self.show_detail(None)

    # Detail and file tree ----------------------------------------------------------------

    @on(DataTable.RowSelected, "#snapshots-table")
    def _selected(self) -> None:
        self.action_files()

    @on(DataTable.RowHighlighted, "#snapshots-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail(event.row_key.value)

    def show_detail(self, snapshot_id: str | None) -> None:
        info = self.query_one("#snapshot-info", Static)
        tree: Tree[str] = self.query_one("#snapshot-files", Tree)
        snapshot = self.by_id.get(snapshot_id or "")
        if snapshot is None:
            info.update("Select a snapshot to see its details.")
            tree.display = False
            self.shown = None
            return
        if snapshot.id == self.shown:
            return
        self.shown = snapshot.id
        info.update(self.detail_table(snapshot, self.tui.clock()))
        tree.display = snapshot.kind == "files"
        if snapshot.kind == "files":
            tree.clear()
            tree.root.set_label(
                Text(f"files in {snapshot.short} (v: go here, enter opens, f restores)")
            )
            tree.root.data = snapshot.id
            for path in snapshot.paths:  # Text: a str label is markup, and a path is not
                tree.root.add(Text(path), data=path, allow_expand=True)
            tree.root.expand()

    def detail_table(self, snapshot: Snapshot, now: datetime) -> Table:
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        # Text, never markup: ids, hosts, paths and tags are the repository's data.
        table.add_row("id", Text(snapshot.id))
        table.add_row(
            "time",
            f"{self.tui.local(snapshot.time):%Y-%m-%d %H:%M:%S %Z} ({self.age(snapshot, now)})",
        )
        table.add_row("type", Text(snapshot.kind or "-"))
        if snapshot.run:
            if snapshot.pre_restore:
                complete = "safety snapshot taken before a production restore"
            elif snapshot.run in self.suspicious and snapshot.run in self.complete:
                complete = (
                    "complete, suspicious: not latest; accept with "
                    f"`kamal-backup accept {snapshot.run}`"
                )
            elif snapshot.run in self.accepted and snapshot.run in self.complete:
                by, at = self.accepted[snapshot.run]
                complete = f"complete, accepted by {by} at {at}"
            elif snapshot.run in self.complete:
                complete = "complete"
            else:
                complete = "partial: not a backup"
            table.add_row("run", Text(f"{snapshot.run} ({complete})"))
        if snapshot.database:
            table.add_row("database", Text(snapshot.database))
        if snapshot.adapter:
            table.add_row("adapter", Text(snapshot.adapter))
        table.add_row("host", Text(snapshot.hostname))
        table.add_row("paths", Text("\n".join(snapshot.paths)))
        table.add_row("tags", Text(", ".join(snapshot.tags)))
        summary = snapshot.summary
        if summary is not None:
            table.add_row(
                "summary",
                f"{summary.total_files_processed} files, "
                f"{human_bytes(summary.total_bytes_processed)} processed, "
                f"{human_bytes(summary.data_added)} added "
                f"({summary.files_new} new, {summary.files_changed} changed)",
            )
        return table

    def action_restore_selected(self) -> None:
        """Opens the restore of the file or directory selected in the tree."""
        tree: Tree[str] = self.query_one("#snapshot-files", Tree)
        snapshot = self.by_id.get(str(tree.root.data)) if tree.display else None
        node = tree.cursor_node
        if snapshot is None or node is None or node is tree.root or node.data is None:
            self.notify("select a file or directory in a files snapshot's tree first")
            return
        self.app.push_screen(RestoreFileScreen(snapshot, node.data))

    @on(Tree.NodeExpanded, "#snapshot-files")
    def _expanded(self, event: Tree.NodeExpanded[str]) -> None:
        node = event.node
        if node is node.tree.root or node.children or node.data is None:
            return
        snapshot_id = node.tree.root.data
        if snapshot_id is None:
            return
        node.set_label(Text.assemble(node.label, LOADING))
        scope = self.tui.read_scope(f"files in {node.data}")
        self.list_files(node, snapshot_id, node.data, scope)

    @work(thread=True, group="files", exit_on_error=False)
    def list_files(
        self, node: TreeNode[str], snapshot_id: str, directory: str, scope: CancelScope
    ) -> None:
        with self.tui.reading(scope):
            try:
                entries = self.tui.backend.files(snapshot_id, directory)
            except Exception as exc:
                error = "cancelled" if scope.cancelled else describe_error(exc)
                self.post_message(FilesListed(node, None, error))
            else:
                self.post_message(FilesListed(node, entries, None))

    def on_files_listed(self, message: FilesListed) -> None:
        if not self.app.is_running:
            return
        node = message.node
        tree: Tree[str] = self.query_one("#snapshot-files", Tree)
        try:
            tree.get_node_by_id(node.id)
        except UnknownNodeID:  # another snapshot was selected while this directory loaded
            return
        label = Text.assemble(node.label)  # a copy, still Text (the label is never markup)
        if label.plain.endswith(LOADING):
            label.right_crop(len(LOADING))
        node.set_label(label)
        if message.error is not None:
            node.add_leaf(Text(f"cannot list: {message.error}", style="red"))
            self.tui.log_error(f"listing files: {message.error}")
            return
        if not message.entries:
            node.add_leaf(Text("(empty)", style="dim"))
        for entry in message.entries or []:
            if entry.is_dir:
                node.add(Text(entry.name + "/"), data=entry.path, allow_expand=True)
            else:
                node.add_leaf(Text(f"{entry.name}  {human_bytes(entry.size)}"), data=entry.path)


def describe_database(snapshot: Snapshot) -> str:
    """The adapter column: the engine, and the database's name unless it is the only primary."""
    if snapshot.database in (None, "primary"):
        return snapshot.adapter or ""
    return f"{snapshot.adapter or '?'} {snapshot.database}"
