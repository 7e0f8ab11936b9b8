"""Issue 14: a backup's database and file halves run at once, and the overview shows one progress
line per half, each moved by its own half's statuses only (the drill's parts likewise)."""

from __future__ import annotations

import itertools
import os
import queue
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, ProgressBar, Static

from kamal_backup import process
from kamal_backup.humanize import human_bytes
from kamal_backup.models import BackupRun, ResticStatus
from kamal_backup.settings import load_settings
from kamal_backup.verification import DrillRecord
from tests.conftest import App, add_bulk
from tests.tui.fixed import FixedBackend, fixed_app, fixed_drill
from tests.tui.screen import idle, screen_text, wait_for
from tui import KamalBackupApp, make_app
from tui.widgets.progress import PartsProgress

DONE = ("done", ResticStatus())


class SteppedBackend(FixedBackend):
    """The real app and worker; the operation posts the statuses the test hands it, one by one,
    through the same `on_status` the services call, and ends when handed DONE."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steps: queue.Queue[tuple[str, ResticStatus]] = queue.Queue()

    def play(self, on_status: Any) -> None:
        while True:
            label, status = self.steps.get(timeout=20)
            if (label, status) == DONE:
                process.raise_if_cancelled()  # as a service does at its end
                return
            on_status(label, status)

    def backup(self, on_status: Any) -> BackupRun:
        self.play(on_status)
        return self.last_backup()

    def drill(self, *args: Any, **kwargs: Any) -> DrillRecord:
        self.play(args[-1])  # drill(kinds, first, files_choice, target, on_status)
        return fixed_drill()


def row_of(tui: KamalBackupApp, view: str, label: str) -> tuple[str, float | None, bool]:
    """(figures, percentage, shown) of one part's line in `view`'s progress."""
    row = tui.query_one(f"#{view}-progress-{label}")
    detail = str(row.query_one(".progress-detail", Static).render())
    return detail, row.query_one(ProgressBar).percentage, row.display


def screen_row(tui: KamalBackupApp, label: str) -> str:
    """The screen line holding a part's progress (its name is the line's first word)."""
    found = [line for line in screen_text(tui).splitlines() if line.split()[:1] == [label]]
    assert len(found) == 1, screen_text(tui)
    return found[0]


async def step(pilot: Any, backend: SteppedBackend, label: str, status: ResticStatus) -> None:
    backend.steps.put((label, status))
    await wait_for(pilot, lambda: backend.steps.empty(), what=f"the {label} status")
    await pilot.pause(0.2)


MIB = 1024 * 1024


async def test_each_half_moves_only_its_own_line_and_both_go_when_the_backup_ends(
    tmp_path: Path,
) -> None:
    tui = fixed_app(tmp_path, SteppedBackend)
    backend = tui.backend
    assert isinstance(backend, SteppedBackend)
    async with tui.run_test(size=(80, 24)) as pilot:
        await idle(pilot)
        progress = tui.query_one("#operation-progress", PartsProgress)
        assert not progress.display
        await pilot.press("b")
        await wait_for(pilot, lambda: tui.operation == "backup", what="the backup")
        await pilot.pause(0.1)
        assert progress.shown() == ["database", "files"]
        status = str(tui.query_one("#operation-status", Static).render())
        assert status == "backup: backing up the database and the files"

        # The database half streams a dump: no size known, its own figures only.
        await step(pilot, backend, "database", ResticStatus(bytes_done=12 * MIB))
        assert row_of(tui, "operation", "database") == ("12.0 MiB so far", None, True)
        assert row_of(tui, "operation", "files") == ("starting…", 0.0, True)

        # The files half moves its line; the database line keeps its own figures.
        files = ResticStatus(total_bytes=300 * MIB, bytes_done=120 * MIB, percent_done=0.4)
        await step(pilot, backend, "files", files)
        assert row_of(tui, "operation", "files") == ("120.0 MiB of 300.0 MiB", 0.4, True)
        assert row_of(tui, "operation", "database") == ("12.0 MiB so far", None, True)

        await step(pilot, backend, "database", ResticStatus(bytes_done=30 * MIB))
        assert row_of(tui, "operation", "database")[0] == "30.0 MiB so far"
        assert row_of(tui, "operation", "files") == ("120.0 MiB of 300.0 MiB", 0.4, True)

        # At 80x24 each line is whole: its name, its bar, its percentage and its figures.
        assert screen_row(tui, "database").rstrip().endswith("--%  30.0 MiB so far")
        assert screen_row(tui, "files").rstrip().endswith("40%  120.0 MiB of 300.0 MiB")
        assert "Safety flags" in screen_text(tui)  # the facts are still in view

        backend.steps.put(DONE)
        await wait_for(pilot, lambda: tui.operation is None, what="the backup to end")
        await idle(pilot)
        assert not progress.display
        assert progress.shown() == []
        for label in ("database", "files"):
            assert row_of(tui, "operation", label) == ("", 0.0, False)  # reset for the next
        assert "saved" in str(tui.query_one("#operation-status", Static).render())
        assert "MiB so far" not in screen_text(tui)


async def test_a_cancelled_backup_hides_and_resets_both_lines(tmp_path: Path) -> None:
    tui = fixed_app(tmp_path, SteppedBackend)
    backend = tui.backend
    assert isinstance(backend, SteppedBackend)
    async with tui.run_test(size=(80, 24)) as pilot:
        await idle(pilot)
        await pilot.press("b")
        await wait_for(pilot, lambda: tui.operation == "backup", what="the backup")
        await step(
            pilot, backend, "files", ResticStatus(total_bytes=10, bytes_done=5, percent_done=0.5)
        )
        assert row_of(tui, "operation", "files")[1] == 0.5
        await pilot.press("x")
        backend.steps.put(("database", ResticStatus()))  # the half's last word, then the cancel
        backend.steps.put(DONE)
        await wait_for(pilot, lambda: tui.operation is None, what="the backup to end")
        await idle(pilot)
        progress = tui.query_one("#operation-progress", PartsProgress)
        assert not progress.display and progress.shown() == []
        assert row_of(tui, "operation", "files") == ("", 0.0, False)
        status = str(tui.query_one("#operation-status", Static).render())
        assert status.startswith("backup cancelled"), status


@pytest.mark.parametrize(
    ("env", "halves", "phase"),
    [
        ({"BACKUP_PATHS": ""}, ["database"], "the database"),
        ({"DATABASE_ADAPTER": "none"}, ["files"], "the files"),
    ],
    ids=["database-only", "files-only"],
)
async def test_an_app_with_one_half_shows_one_line(
    tmp_path: Path, env: dict[str, str], halves: list[str], phase: str
) -> None:
    tui = fixed_app(tmp_path, SteppedBackend, **env)
    backend = tui.backend
    assert isinstance(backend, SteppedBackend)
    async with tui.run_test(size=(80, 24)) as pilot:
        await idle(pilot)
        await pilot.press("b")
        await wait_for(pilot, lambda: tui.operation == "backup", what="the backup")
        await step(pilot, backend, halves[0], ResticStatus(bytes_done=MIB))
        progress = tui.query_one("#operation-progress", PartsProgress)
        assert progress.shown() == halves
        status = str(tui.query_one("#operation-status", Static).render())
        assert status == f"backup: backing up {phase}"
        assert screen_row(tui, halves[0]).rstrip().endswith("1.0 MiB so far")
        other = "files" if halves == ["database"] else "database"
        assert not [line for line in screen_text(tui).splitlines() if line.startswith(f" {other} ")]
        backend.steps.put(DONE)
        await wait_for(pilot, lambda: tui.operation is None, what="the backup to end")


async def test_a_drills_parts_restore_side_by_side_each_on_its_own_line(tmp_path: Path) -> None:
    tui = fixed_app(
        tmp_path,
        SteppedBackend,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        RESTORE_DATABASE_URL="postgres://drill:pw@127.0.0.1:5432/shop_drill",
    )
    backend = tui.backend
    assert isinstance(backend, SteppedBackend)
    async with tui.run_test(size=(140, 50)) as pilot:
        await idle(pilot)
        await pilot.press("d")
        await wait_for(pilot, lambda: "latest: " in screen_text(tui), what="the runs")
        await pilot.press("down", "down")  # database and files
        await idle(pilot)
        tui.query_one("#drill-confirm", Input).value = "shop"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: tui.operation == "restore drill", what="the drill")
        database = ResticStatus(total_bytes=100 * MIB, bytes_done=25 * MIB, percent_done=0.25)
        await step(pilot, backend, "database", database)
        files = ResticStatus(total_bytes=40 * MIB, bytes_restored=30 * MIB, percent_done=0.75)
        await step(pilot, backend, "files", files)
        assert row_of(tui, "drill", "database") == ("25.0 MiB of 100.0 MiB", 0.25, True)
        assert row_of(tui, "drill", "files") == ("30.0 MiB of 40.0 MiB", 0.75, True)
        status = str(tui.query_one("#drill-status", Static).render())
        assert status == "restoring database and files…"
        backend.steps.put(DONE)
        await wait_for(pilot, lambda: tui.operation is None, what="the drill to end")
        await idle(pilot)
        progress = tui.query_one("#drill-progress", PartsProgress)
        assert not progress.display and progress.shown() == []


@pytest.mark.integration
async def test_a_real_backup_shows_both_halves_at_once_each_with_its_own_figures(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """restic's real statuses, through the real services and worker, into the overview."""
    seen: list[tuple[str, list[str], dict[str, str]]] = []
    update = PartsProgress.update

    def spy(self: PartsProgress, label: str, status: ResticStatus) -> None:
        update(self, label, status)
        if self.id == "operation-progress":
            details = {
                key: str(self.row(key).query_one(".progress-detail", Static).render())
                for key in ("database", "files")
            }
            seen.append((label, self.shown(), details))

    monkeypatch.setattr(PartsProgress, "update", spy)
    # A few MB in each half, so restic reports its progress more than once for both.
    add_bulk(app.db, 2000, 2000)
    (app.files / "uploads" / "big.bin").write_bytes(os.urandom(6 * MIB))
    tui = make_app(load_settings(environ=app.env), timezone=UTC)
    async with tui.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "MISSING" in screen_text(tui), what="the overview")
        await pilot.press("b")
        await wait_for(pilot, lambda: tui.operation is None, what="the backup to end")
        await idle(pilot)
        assert "saved: database" in str(tui.query_one("#operation-status", Static).render())
        progress = tui.query_one("#operation-progress", PartsProgress)
        assert not progress.display and progress.shown() == []
    labels = {label for label, _, _ in seen}
    assert labels == {"database", "files"}, seen
    # Both lines were on screen together for every status, from the first.
    assert all(shown == ["database", "files"] for _, shown, _ in seen), seen
    # A status moved its own half's line only: the other line kept what it said before.
    for (_, _, before), (label, _, after) in itertools.pairwise(seen):
        other = "files" if label == "database" else "database"
        assert after[other] == before[other], (label, before, after)
    # Each line showed restic's own figures for its half: the dump's bytes as they streamed
    # (no size known), the files against their total.
    dumped = [d["database"] for label, _, d in seen if label == "database"]
    assert any(text.endswith(" so far") and text != "0 B so far" for text in dumped), seen
    total = human_bytes(sum(f.stat().st_size for f in app.files.rglob("*") if f.is_file()))
    assert any(d["files"].endswith(f" of {total}") for label, _, d in seen if label == "files"), (
        total,
        seen,
    )
