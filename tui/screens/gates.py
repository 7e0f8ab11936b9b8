"""How the TUI shows the restore gates: one rendering for the drill wizard and the file restore."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

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


def add_gate_rows(
    table: Table, verdicts: list[tuple[str, GateVerdict]], settings: Settings, what: str
) -> None:
    """Each gate's verdict, the safety flags as set now, and whether `what` may start."""
    for part, verdict in verdicts:
        if verdict.allowed:
            mark = Text("✔ allowed", style="bold green")
            reason = Text(verdict.reason)
        else:
            mark = Text("✘ REFUSED", style="bold red")
            reason = Text(f"{verdict.reason}; {how_to_allow(verdict)}")
        table.add_row(mark, f"{part}: {verdict.gate}", reason)
    flags = "\n".join(
        f"{variable}={'true' if value else 'false'}" for variable, value in safety_flags(settings)
    )
    table.add_row("flags", "set now", flags)
    if all(verdict.allowed for _, verdict in verdicts):
        table.add_row("", "", Text(f"every gate allows this {what}", style="green"))
    else:
        table.add_row("", "", Text(f"refused: this {what} cannot be started", style="bold red"))
