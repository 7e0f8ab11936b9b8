"""Restoring one file from the snapshots view's file tree (the real app, real restic)."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Input, RadioButton, Static, Tree
from textual.widgets.tree import TreeNode

from kamal_backup.settings import load_settings
from tests.conftest import App
from tests.tui.screen import idle, screen_text, select_node, wait_for, wait_for_text
from tui import KamalBackupApp, make_app
from tui.screens.restore_file import RestoreFileScreen

pytestmark = pytest.mark.integration


def tui_for(fixture: App, **extra: str) -> KamalBackupApp:
    return make_app(load_settings(environ={**fixture.env, **extra}), timezone=UTC)


def status(screen: RestoreFileScreen) -> str:
    return str(screen.query_one("#restore-file-status", Static).content)


async def open_restore_of_a_txt(pilot: Pilot[None], app: App) -> RestoreFileScreen:
    """Snapshots view, files filter, storage/uploads/a.txt selected, `f` pressed."""
    await pilot.press("s")
    await wait_for_text(pilot, "2 of 2 snapshots in 1 runs")
    await pilot.press("t", "t")  # files only: the tree shows
    tree: Tree[str] = pilot.app.query_one("#snapshot-files", Tree)
    storage = tree.root.children[0]
    storage.expand()
    await wait_for(pilot, lambda: len(storage.children) > 0, what="the storage listing")
    uploads = storage.children[0]
    uploads.expand()
    await wait_for(pilot, lambda: len(uploads.children) == 2, what="the uploads listing")
    a_txt: TreeNode[str] = uploads.children[1]
    assert a_txt.data == str(app.files / "uploads" / "a.txt")
    await select_node(pilot, tree, a_txt)  # the cursor's file is the selection before f
    await pilot.press("f")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, RestoreFileScreen), what="dialog")
    screen = pilot.app.screen
    assert isinstance(screen, RestoreFileScreen)
    return screen


async def test_restores_one_file_into_scratch_and_refuses_in_place_without_the_flag(
    app: App, tmp_path: Path
) -> None:
    app.cli("backup", check=True)
    live = app.files / "uploads" / "a.txt"
    live.write_text("changed after the backup")
    scratch = tmp_path / "scratch"
    tui = tui_for(app, KAMAL_BACKUP_ALLOW_RESTORE="true")
    async with tui.run_test(size=(140, 50)) as pilot:
        screen = await open_restore_of_a_txt(pilot, app)
        text = screen_text(tui)
        assert f"Restore {live}" in text
        assert "in place (needs KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE=true)" in text

        # In place is not offered: its choice is disabled, and forcing it is refused by the gates.
        in_place = screen.query_one("#where-in-place", RadioButton)
        assert in_place.disabled
        await pilot.click("#where-in-place")
        assert not in_place.value and not screen.in_place
        screen.in_place = True
        screen.refresh_plan()
        text = await wait_for_text(pilot, "REFUSED")
        assert "an in-place restore replaces live files; set" in text
        assert "KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE=true to allow" in text
        assert "refused: this restore cannot be started" in text
        assert screen.query_one("#restore-file-start", Button).disabled
        screen.action_start()
        await pilot.pause(0.3)
        assert tui.operation is None
        assert live.read_text() == "changed after the backup"

        # Into scratch (the default): the same gate rows as the drill, no app name needed.
        screen.in_place = False
        screen.query_one("#restore-file-target", Input).value = str(scratch)
        text = await wait_for_text(pilot, "every gate allows this restore")
        assert "file: restores enabled" in text and "KAMAL_BACKUP_ALLOW_RESTORE=true" in text
        await pilot.click("#restore-file-start")
        await wait_for(pilot, lambda: tui.operation is None, what="the restore to finish")
        await wait_for(pilot, lambda: "restored" in status(screen), what="the result")
        assert f"restored {scratch / str(live).lstrip('/')} (into {scratch})" in status(screen)
    copy = scratch / str(live).lstrip("/")
    assert copy.read_text() == "hello\n"
    assert [p for p in scratch.rglob("*") if p.is_file()] == [copy]
    assert live.read_text() == "changed after the backup"


async def test_in_place_with_the_flag_needs_the_app_name_typed(app: App) -> None:
    app.cli("backup", check=True)
    live = app.files / "uploads" / "a.txt"
    live.write_text("changed after the backup")
    tui = tui_for(
        app,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE="true",
    )
    async with tui.run_test(size=(140, 50)) as pilot:
        screen = await open_restore_of_a_txt(pilot, app)
        await pilot.click("#where-in-place")
        await wait_for(pilot, lambda: screen.in_place, what="in place chosen")
        text = await wait_for_text(pilot, "(its original path)")
        assert "every gate allows this restore" in text
        start = screen.query_one("#restore-file-start", Button)
        assert start.disabled  # the app name is not typed yet
        screen.query_one("#restore-file-confirm", Input).value = "not-the-app"
        await pilot.pause(0.1)
        assert start.disabled
        screen.query_one("#restore-file-confirm", Input).value = "shop"
        await pilot.pause(0.1)
        assert not start.disabled
        await pilot.click("#restore-file-start")
        await wait_for(pilot, lambda: tui.operation is None, what="the restore to finish")
        await wait_for(pilot, lambda: "restored" in status(screen), what="the result")
        assert f"restored {live} (in place)" in status(screen)
    assert live.read_text() == "hello\n"


async def test_the_dialog_fits_80x24_scrolls_to_the_focused_control_and_shows_flags_whole(
    app: App,
) -> None:
    from textual.widget import Widget

    app.cli("backup", check=True)
    tui = tui_for(
        app,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE="true",
    )
    async with tui.run_test(size=(80, 24)) as pilot:
        screen = await open_restore_of_a_txt(pilot, app)
        dialog = screen.query_one("#restore-file-dialog")
        await pilot.click("#where-in-place")
        await wait_for(pilot, lambda: screen.in_place, what="in place chosen")
        await pilot.pause(0.2)

        # Every flag, name and value, is on the screen whole (wrapped, never cut with "…").
        def dialog_text() -> str:
            box = dialog.region
            rows = screen_text(tui).splitlines()[box.y : box.bottom]
            return "\n".join(row[box.x : box.right] for row in rows)

        seen = dialog_text()
        for _ in range(60):
            if dialog.scroll_y >= dialog.max_scroll_y:
                break
            dialog.scroll_down(animate=False)
            await pilot.pause(0.05)
            seen += "\n" + dialog_text()
        assert dialog.max_scroll_y > 0  # it does not fit: it scrolls
        assert "…" not in seen
        flat = " ".join(seen.split())
        for flag in (
            "KAMAL_BACKUP_ALLOW_RESTORE=true",
            "KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE=false",
            "KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE=true",
        ):
            assert flag in flat, flat

        def fully_visible(widget: Widget) -> bool:
            region = widget.region
            inside = dialog.content_region
            x, y = region.x + region.width // 2, region.y + region.height // 2
            return (
                region.height > 0
                and inside.contains_region(region)
                and region.bottom <= 24
                and screen.get_widget_at(x, y)[0] is widget
            )

        confirm = screen.query_one("#restore-file-confirm", Input)
        start = screen.query_one("#restore-file-start", Button)
        dialog.scroll_home(animate=False)
        await pilot.pause(0.1)
        confirm.focus()
        await idle(pilot)
        assert fully_visible(confirm), screen_text(tui)
        await pilot.press(*"shop")
        await pilot.pause(0.1)
        assert not start.disabled
        start.focus()
        await idle(pilot)
        assert fully_visible(start), screen_text(tui)
