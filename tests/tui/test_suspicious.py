"""A suspicious run (issue 15) is marked in the snapshot browser and is not `latest`."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from kamal_backup.models import SUSPICIOUS_TAG
from tests.tui.fixed import TaggedRuns, fixed_app, fixed_snapshots
from tests.tui.screen import idle, open_snapshot_list, screen_text


class NewestRunSuspicious(TaggedRuns):
    extra: ClassVar[dict[int, list[str]]] = {0: [SUSPICIOUS_TAG]}


async def test_the_snapshot_browser_marks_a_suspicious_run_and_names_accept(
    tmp_path: Path,
) -> None:
    app = fixed_app(tmp_path, NewestRunSuspicious)
    newest = fixed_snapshots()[0].run
    async with app.run_test(size=(100, 40)) as pilot:  # the detail below the list
        table = await open_snapshot_list(pilot)
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
        assert f"`kamal-backup accept {newest}`" in " ".join(screen_text(app).split())


class NewestRunAccepted(TaggedRuns):
    """The newest run was suspicious and accepted (`kamal-backup accept`); the one before it is
    still suspicious."""

    extra: ClassVar[dict[int, list[str]]] = {
        0: ["accepted-by:ops@laptop", "accepted-at:20261126T090000Z"],
        1: [SUSPICIOUS_TAG],
    }


async def test_an_accepted_run_is_marked_and_a_suspicious_one_names_the_command(
    tmp_path: Path,
) -> None:
    app = fixed_app(tmp_path, NewestRunAccepted)
    async with app.run_test(size=(100, 40)) as pilot:
        table = await open_snapshot_list(pilot)
        notes = [str(table.get_row_at(row)[0]) for row in range(table.row_count)]
        assert notes[0].endswith(" accepted") and notes[2].endswith(" suspicious"), notes
        assert not any(note.endswith(" accepted") for note in notes[1:]), notes
        text = " ".join(screen_text(app).split())
        assert "complete, accepted by ops@laptop at 20261126T090000Z" in text
        await pilot.press("down", "down")  # the suspicious run's database snapshot
        await idle(pilot)
        text = " ".join(screen_text(app).split())
        assert "not latest; accept with `kamal-backup accept 20261125T030000Z`" in text
