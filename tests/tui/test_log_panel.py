"""The log panel shows what the services log, literally and redacted."""

from __future__ import annotations

import logging
from pathlib import Path

from textual.widgets import RichLog

from tests.tui.fixed import fixed_app
from tests.tui.screen import idle


async def test_service_logs_reach_the_panel_literally_and_redacted(tmp_path: Path) -> None:
    app = fixed_app(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await idle(pilot)
        service_log = logging.getLogger("kamal_backup.services.backup")
        service_log.error("cannot read /data/[bold]uploads[/bold] with never-shown-secret-key")
        await pilot.pause(0.2)
        lines = [line.text for line in app.query_one("#log", RichLog).lines]
    assert any("/data/[bold]uploads[/bold]" in line for line in lines), lines
    assert not any("never-shown-secret-key" in line for line in lines)
    assert any("[REDACTED]" in line for line in lines)
    # The app gave the logger back as it found it.
    assert not any(
        type(h).__name__ == "PanelHandler" for h in logging.getLogger("kamal_backup").handlers
    )


async def test_a_long_path_wraps_whole_in_the_panel_when_its_scrollbar_appears(
    tmp_path: Path,
) -> None:
    from tests.tui.screen import screen_text

    path = "/data/" + "/".join(f"dir{i:02d}-{'x' * 9}" for i in range(16)) + "/end.txt"
    app = fixed_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await idle(pilot)
        await pilot.press("l")  # the large panel: the whole wrapped path fits on screen
        await pilot.pause(0.1)
        service_log = logging.getLogger("kamal_backup.services.backup")
        service_log.error("cannot read %s", path)  # before the panel has a scrollbar
        for i in range(40):
            service_log.warning("line %d", i)  # now it has one
        await pilot.pause(0.3)
        panel = app.query_one("#log", RichLog)
        assert panel.max_scroll_y > 0
        panel.scroll_home(animate=False)
        await pilot.pause(0.2)
        box = panel.scrollable_content_region
        rows = screen_text(app).splitlines()[box.y : box.bottom]
        shown = "".join(row[box.x : box.right].strip() for row in rows)
    assert path in shown, shown
