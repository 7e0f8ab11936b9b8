"""Helpers for driving the real app: reading the screen as text and waiting for it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from rich.console import Console
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable, Tree
from textual.widgets.tree import TreeNode


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


async def select_node(pilot: Pilot[object], tree: Tree[str], node: TreeNode[str]) -> None:
    """Puts the tree's cursor on `node`. Tree.move_cursor goes to the node's line, which is -1
    until the tree has laid out newly added children: moving once, right after a listing
    arrived, can leave the cursor on no node (a fresh-clone CI run saw `f` then do nothing)."""

    def on_node() -> bool:
        if tree.cursor_node is not node:
            tree.move_cursor(node)
        return tree.cursor_node is node

    await wait_for(pilot, on_node, timeout=10, what=f"the cursor on {node.label}")
    await idle(pilot)


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
