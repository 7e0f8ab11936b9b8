"""Evidence: the redacted JSON `kamal-backup evidence` prints, highlighted, with a save action."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Label, Static

from kamal_backup.humanize import count
from kamal_backup.services.evidence import Evidence
from tui.messages import Fetched, describe_error
from tui.screens import View


class EvidenceView(Container, View):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("w", "ask_path", "Save"),
    ]

    def __init__(self) -> None:
        super().__init__(id="evidence-view")
        self.document: Evidence | None = None
        self.loading = False
        # An operation (or r elsewhere) read the repository again since the document was built.
        self.stale = False

    def compose(self) -> ComposeResult:
        yield Static(id="evidence-status")
        with VerticalScroll(id="evidence-scroll"):
            yield Static(id="evidence-json")
        # A labelled field with its keys beside it; a problem shows on the line above the field,
        # never over it.
        with Vertical(id="evidence-save") as save:
            save.display = False
            yield Static(id="evidence-save-error")
            with Horizontal(id="evidence-save-row"):
                yield Label("Save to:", id="evidence-save-label")
                yield Input(id="evidence-path", placeholder="file to write the evidence to")
            yield Static(
                Text(
                    "enter: save  ·  escape: cancel  ·  an existing file is never overwritten",
                    style="dim",
                ),
                id="evidence-save-hint",
            )

    def on_show(self) -> None:
        # Built when first shown, not at start: it opens the repository and runs every client;
        # built again when shown after an operation changed what it reports (a drill, a backup).
        if (self.document is None or self.stale) and not self.loading:
            self.action_refresh()

    def snapshots_loading(self) -> None:
        if self.document is None:
            return
        self.stale = True
        if self.tui.active_view() is self and not self.loading:
            self.action_refresh()

    def action_refresh(self) -> None:
        self.loading = True
        self.stale = False
        self.query_one("#evidence-status", Static).update(Text("building evidence…", "dim"))
        self.tui.fetch(self, "evidence", self.tui.backend.evidence)

    def on_fetched(self, message: Fetched) -> None:
        if not self.app.is_running:
            return
        if message.what != "evidence":
            return
        message.stop()
        self.loading = False
        status = self.query_one("#evidence-status", Static)
        if message.result is None:
            status.update(Text(f"cannot build evidence: {message.error}", style="bold red"))
            self.tui.log_error(f"evidence: {message.error}")
            return
        document: Evidence = message.result
        self.document = document
        text = json.dumps(document.document(), indent=2)
        self.query_one("#evidence-json", Static).update(
            Syntax(text, "json", theme="ansi_dark", word_wrap=True, background_color="default")
        )
        problem = document.repository_error
        if problem:
            # One prefix: the error may already say "repository unreachable: …".
            line = (
                problem
                if problem.startswith("repository")
                else f"cannot read the repository: {problem}"
            )
            status.update(Text(line, style="bold red"))
        else:
            status.update(
                Text(
                    f"generated {document.generated_at.isoformat()}"
                    f"{self._drills_line(document)}  ·  w: save to a file"
                )
            )

    @staticmethod
    def _drills_line(document: Evidence) -> str:
        history = document.drills.history
        if not history:
            return "  ·  no restore drill recorded"
        passed = sum(item.status == "passed" for item in history)
        return f"  ·  {count(len(history), 'drill')}, {passed} passed (see drills.history)"

    def action_ask_path(self) -> None:
        if self.document is None:
            self.notify("the evidence is not ready yet")
            return
        field = self.query_one("#evidence-path", Input)
        stamp = self.tui.clock().strftime("%Y%m%dT%H%M%SZ")
        # The state directory: a volume the operator kept, unlike a container's working dir.
        folder = self.tui.settings.state_dir
        field.value = str(folder / f"evidence-{self.tui.settings.app_name}-{stamp}.json")
        self.show_save_error("")
        self.query_one("#evidence-save").display = True
        field.focus()
        field.action_end()

    def show_save_error(self, text: str) -> None:
        self.query_one("#evidence-save-error", Static).update(Text(text, style="bold red"))

    def close_save(self) -> None:
        self.query_one("#evidence-save").display = False
        self.tui.focus_first_control(self, inputs=False)

    @on(Input.Submitted, "#evidence-path")
    def _save(self, event: Input.Submitted) -> None:
        raw = event.value.strip()
        if not raw or self.document is None:
            self.show_save_error("type a file name, or press escape")
            return
        path = Path(raw).expanduser()
        if path.exists():
            self.show_save_error(f"{path} exists; choose another name")
            return
        try:
            self.tui.backend.save_evidence(self.document, path)
        except Exception as exc:
            self.show_save_error(f"cannot save: {describe_error(exc)}")
            return
        self.close_save()
        self.query_one("#evidence-status", Static).update(Text(f"saved to {path}", "bold green"))
        self.notify(f"evidence saved to {path}", markup=False)

    def on_key(self, event: Any) -> None:
        if event.key == "escape" and self.query_one("#evidence-save").display:
            self.close_save()
            event.stop()
