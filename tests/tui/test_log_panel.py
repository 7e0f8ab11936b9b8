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
