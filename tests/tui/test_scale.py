"""The snapshot browser with 2,000 snapshots: filled quickly, and keys still answer at once."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from textual.widgets import DataTable

from kamal_backup.models import Snapshot
from kamal_backup.settings import load_settings
from tests.tui.fixed import NOW, FixedBackend, _snapshot, fixed_env
from tests.tui.screen import idle, wait_for
from tui import make_app


class ManySnapshots(FixedBackend):
    def snapshots(self) -> list[Snapshot]:
        found = []
        for run in range(1000):
            moment = NOW - timedelta(hours=run)
            found.append(_snapshot(run * 2 % 255, "database", moment, 1_000_000, 1000))
            found.append(_snapshot((run * 2 + 1) % 255, "files", moment, 9_000_000, 1000))
        for number, snapshot in enumerate(found):  # ids unique, as restic's are
            snapshot.id = f"{number:064x}"
        return sorted(found, key=lambda s: s.time, reverse=True)


async def twenty_downs(backend_class: type[FixedBackend], tmp_path: Path) -> tuple[float, int]:
    """Seconds 20 cursor moves take in the snapshot list (pilot waits for each to be handled)."""
    settings = load_settings(environ=fixed_env(tmp_path))
    app = make_app(settings, backend=backend_class(settings), clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        await idle(pilot)
        await pilot.press("s")
        table = app.query_one("#snapshots-table", DataTable)
        await wait_for(pilot, lambda: table.row_count > 0, timeout=10, what="the rows")
        clock = time.monotonic()
        for _ in range(20):
            await pilot.press("down")
        elapsed = time.monotonic() - clock
        view = app.query_one("#snapshots-view")
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        assert view.shown == key  # type: ignore[attr-defined]  # the detail followed the cursor
        return elapsed, table.cursor_row


async def test_two_thousand_snapshots_stay_responsive(tmp_path: Path) -> None:
    settings = load_settings(environ=fixed_env(tmp_path))
    app = make_app(settings, backend=ManySnapshots(settings), clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        await idle(pilot)
        started = time.monotonic()
        await pilot.press("s")
        table = app.query_one("#snapshots-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2000, timeout=10, what="2,000 rows")
        await pilot.press("t")  # refilter 2,000 rows
        await wait_for(pilot, lambda: table.row_count == 1000, timeout=5, what="1,000 rows")
        elapsed = time.monotonic() - started
        assert elapsed < 5, f"loading and filtering 2,000 snapshots took {elapsed:.1f}s"

    # Keys answer as fast with 2,000 snapshots as with 9 (measured side by side, so a busy
    # machine slows both alike).
    many, row = await twenty_downs(ManySnapshots, tmp_path / "many")
    few, _ = await twenty_downs(FixedBackend, tmp_path / "few")
    assert row == 20
    assert many < 2 * few + 0.5, f"20 keys: {many:.2f}s with 2,000 snapshots, {few:.2f}s with 9"
