"""A new operator's tryout of the TUI: each finding reproduced with the real app (pilot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Input, RichLog

from kamal_backup.models import BackupRun
from kamal_backup.services.backup import check_backup_paths
from tests.tui.fixed import FixedBackend, fixed_app
from tests.tui.screen import idle, screen_text, wait_for, wait_for_text


class MissingPath(FixedBackend):
    """The real check of the backup paths, before any repository is opened."""

    def backup(self, on_status: Any) -> BackupRun:
        check_backup_paths(self.settings)
        raise AssertionError("the backup path exists")


def panel_text(app: Any) -> str:
    """What the log panel shows on screen, its rows joined by newlines."""
    panel = app.query_one("#log", RichLog)
    box = panel.scrollable_content_region
    rows = screen_text(app).splitlines()[box.y : box.bottom]
    return "\n".join(row[box.x : box.right].rstrip() for row in rows)


async def test_lines_logged_while_the_log_is_hidden_wrap_normally_when_shown(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "gone" / "storage"
    tui = fixed_app(tmp_path, MissingPath, BACKUP_PATHS=str(missing))
    async with tui.run_test(size=(100, 30)) as pilot:
        await idle(pilot)
        await pilot.press("l", "l")  # small -> large -> hidden
        await pilot.pause(0.1)
        assert not tui.query_one("#log").display
        await pilot.press("b")
        await wait_for(pilot, lambda: tui.operation is None, what="the failed backup")
        await idle(pilot)
        await pilot.press("l", "l")  # shown again (small, then large: room for the line)
        await idle(pilot)
        shown = panel_text(tui)
    # On one row as far as the width allows (not one character a row), the path whole.
    assert "backup failed: BACKUP_PATHS:" in shown, shown
    said = f"backup failed: BACKUP_PATHS: {missing} does not exist"
    assert "".join(said.split()) in "".join(shown.split()), shown


async def test_the_drill_files_target_is_restore_files_path_and_resets_to_it(
    tmp_path: Path,
) -> None:
    tui = fixed_app(
        tmp_path,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        RESTORE_DATABASE_URL="postgres://drill:pw@127.0.0.1:5432/shop_drill",
        RESTORE_FILES_PATH="/srv/drill-files",
    )
    async with tui.run_test(size=(140, 50)) as pilot:
        await idle(pilot)
        await pilot.press("d")
        await wait_for_text(pilot, "latest: ")
        await pilot.press("down")  # files
        await idle(pilot)
        target = tui.query_one("#drill-target", Input)
        assert target.value == "/srv/drill-files"
        assert "/srv/drill-files/<original path>" in screen_text(tui)
        target.value = "/tmp/elsewhere"
        tui.query_one("#drill-confirm", Input).value = "shop"
        await pilot.press("ctrl+r")
        await wait_for_text(pilot, "drill finished in")
        await idle(pilot)
        assert target.value == "/srv/drill-files"  # the reset goes back to the setting
