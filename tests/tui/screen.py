"""Helpers for driving the real app: reading the screen as text and waiting for it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from rich.console import Console
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable


def screen_text(app: App[object]) -> str:
    """The current screen as plain text (what export_screenshot draws, without styles)."""
    width, height = app.size
    with open(os.devnull, "w") as sink:
        console = Console(
            width=width,
            height=height,
            record=True,
            force_terminal=True,
            color_system=None,
            legacy_windows=False,
            file=sink,
        )
        console.print(app.screen._compositor.render_update(full=True))
        return console.export_text(styles=False)


async def wait_for(
    pilot: Pilot[object], condition: Callable[[], bool], timeout: float = 60, what: str = ""
) -> None:
    """Lets the app run until `condition` holds; fails with the screen when it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.1)
        if condition():
            return
    raise AssertionError(f"timed out waiting for {what or condition}:\n{screen_text(pilot.app)}")


async def wait_for_text(pilot: Pilot[object], text: str, timeout: float = 60) -> str:
    await wait_for(pilot, lambda: text in screen_text(pilot.app), timeout, repr(text))
    return screen_text(pilot.app)


async def idle(pilot: Pilot[object]) -> None:
    """Waits for every worker to finish, then for the messages they posted."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.2)
    await pilot.wait_for_scheduled_animations()  # e.g. a scroll to the focused control
    await asyncio.sleep(0)


async def open_snapshot_list(pilot: Pilot[object]) -> DataTable[object]:
    """Opens the snapshots view and waits for its rows."""
    await idle(pilot)
    await pilot.press("s")
    table: DataTable[object] = pilot.app.query_one("#snapshots-table", DataTable)
    await wait_for(pilot, lambda: table.row_count > 0, timeout=10, what="the rows")
    await idle(pilot)
    return table
