"""A suspicious run (issue 15) is marked in the snapshot browser and is not `latest`."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from kamal_backup.models import SUSPICIOUS_TAG, Snapshot
from kamal_backup.settings import load_settings
from tests.tui.fixed import NOW, FixedBackend, fixed_env, fixed_snapshots
from tests.tui.screen import idle, screen_text, wait_for
from tui import make_app


class NewestRunSuspicious(FixedBackend):
    def snapshots(self) -> list[Snapshot]:
        snapshots = fixed_snapshots()
        newest = snapshots[0].run
        for snapshot in snapshots:
            if snapshot.run == newest:
                snapshot.tags.append(SUSPICIOUS_TAG)
        return snapshots


async def test_the_snapshot_browser_marks_a_suspicious_run_and_names_accept(
    tmp_path: Path,
) -> None:
    settings = load_settings(environ=fixed_env(tmp_path))
    backend = NewestRunSuspicious(settings)
    newest = backend.snapshots()[0].run
    assert newest is not None
    app = make_app(settings, backend=backend, clock=lambda: NOW)
    async with app.run_test(size=(120, 36)) as pilot:
        await idle(pilot)
        await pilot.press("s")
        table = app.query_one("#snapshots-table", DataTable)
        await wait_for(pilot, lambda: table.row_count > 0, timeout=10, what="the rows")
        await idle(pilot)
        text = screen_text(app)
        # Only the newest run is marked; the older complete runs are not.
        assert text.count("suspicious") >= 1
        first_row = " ".join(str(cell) for cell in table.get_row_at(0))
        assert "suspicious" in first_row
        assert all(
            "suspicious" not in " ".join(str(cell) for cell in table.get_row_at(row))
            for row in range(2, table.row_count)
        )
        # The detail of the selected (newest) snapshot says it is not latest and how to accept.
        await pilot.press("home")
        await idle(pilot)
        assert f"accept {newest}" in screen_text(app)
