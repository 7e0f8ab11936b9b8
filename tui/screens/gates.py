"""How the TUI shows the restore gates: one rendering for the drill wizard and the file restore."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from kamal_backup.models import GateVerdict
from kamal_backup.services.gates import (
    ALLOW_IN_PLACE,
    ALLOW_PRODUCTION,
    ALLOW_RESTORE,
    safety_flags,
)
from kamal_backup.settings import Settings


def how_to_allow(verdict: GateVerdict) -> str:
    """What the operator would change to open a refusing gate."""
    if verdict.gate == "drill target":
        return "choose a scratch target"
    if verdict.variable in (ALLOW_RESTORE, ALLOW_PRODUCTION, ALLOW_IN_PLACE):
        return f"set {verdict.variable}=true to allow"
    if verdict.variable:
        return f"set {verdict.variable}"
    return "choose another target directory"


def said_refused(widget: Widget, verdicts: list[tuple[str, GateVerdict]]) -> bool:
    """Whether a gate refuses; if one does, the first is notified with its remedy (as plain
    text: a reason names paths, which may hold "[...]")."""
    refused = next((verdict for _, verdict in verdicts if not verdict.allowed), None)
    if refused is not None:
        widget.notify(
            f"refused: {refused.reason}; {how_to_allow(refused)}", severity="error", markup=False
        )
    return refused is not None


def flags_text(settings: Settings) -> Text:
    """The safety flags as set now, one `NAME=value` a line (folded, never cut, when narrow)."""
    lines = [f"{name}={'true' if value else 'false'}" for name, value in safety_flags(settings)]
    return Text("\n".join(lines), overflow="fold")


def add_gate_rows(
    table: Table,
    verdicts: list[tuple[str, GateVerdict]],
    settings: Settings,
    what: str,
    *,
    flags: bool = True,
    unjudged: str | None = None,
) -> None:
    """Each gate's verdict, the safety flags as set now (unless `flags` is False: the caller
    shows `flags_text` where the names fit whole), and whether `what` may start: "cannot
    judge: <unjudged>" when something the verdict needs is not known (issue 16)."""
    for part, verdict in verdicts:
        if verdict.allowed:
            mark = Text("✔ allowed", style="bold green")
            reason = Text(verdict.reason, overflow="fold")
        else:
            mark = Text("✘ REFUSED", style="bold red")
            reason = Text(f"{verdict.reason}; {how_to_allow(verdict)}", overflow="fold")
        table.add_row(mark, Text(f"{part}: {verdict.gate}"), reason)
    if flags:
        table.add_row("flags", "set now", flags_text(settings))
    if unjudged and all(verdict.allowed for _, verdict in verdicts):
        table.add_row("", "", Text(f"cannot judge: {unjudged}", style="bold yellow"))
    elif all(verdict.allowed for _, verdict in verdicts):
        table.add_row("", "", Text(f"every gate allows this {what}", style="green"))
    else:
        table.add_row("", "", Text(f"refused: this {what} cannot be started", style="bold red"))
