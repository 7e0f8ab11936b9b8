"""A new operator's tryout of the TUI: each finding reproduced with the real app (pilot)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from textual.widgets import Checkbox, Input, RadioSet, RichLog, Select, Static, Tree

from kamal_backup import process
from kamal_backup.errors import DrillInterrupted
from kamal_backup.models import (
    SUSPICIOUS_TAG,
    VERIFYING,
    BackupRun,
    FileEntry,
    ResticStatus,
    Snapshot,
)
from kamal_backup.services.backup import check_backup_paths
from kamal_backup.verification import DrillRecord
from tests.tui.fixed import FixedBackend, TaggedRuns, fixed_app, fixed_snapshots
from tests.tui.screen import idle, screen_text, wait_for, wait_for_text
from tui.app import cancelled_text
from tui.screens.drill import DrillView
from tui.screens.overview import HINT
from tui.widgets.progress import PartsProgress


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
    tui = drill_app(tmp_path, RESTORE_FILES_PATH="/srv/drill-files")
    async with tui.run_test(size=(140, 50)) as pilot:
        await open_drill(pilot, "down")  # files
        target = tui.query_one("#drill-target", Input)
        assert target.value == "/srv/drill-files"
        assert "/srv/drill-files/<original path>" in screen_text(tui)
        target.value = "/tmp/elsewhere"
        tui.query_one("#drill-confirm", Input).value = "shop"
        await pilot.press("ctrl+r")
        await wait_for_text(pilot, "drill finished in")
        await idle(pilot)
        assert target.value == "/srv/drill-files"  # the reset goes back to the setting


MARKUP_PATH = "/x/[bold]x[/]/storage"


class MarkupNames(MissingPath):
    """A repository whose files snapshot holds a path, a directory and a file named like markup."""

    def snapshots(self) -> list[Snapshot]:
        snapshots = fixed_snapshots()
        for snapshot in snapshots:
            if snapshot.kind == "files":
                snapshot.paths = [MARKUP_PATH]
                snapshot.tags.append("note:[i]t[/i]")
        return snapshots

    def files(self, snapshot_id: str, directory: str) -> list[FileEntry]:
        if directory == MARKUP_PATH:
            return [
                FileEntry(name="[red]d[", type="dir", path=f"{MARKUP_PATH}/[red]d["),
                FileEntry(name="[b]f[/b]", type="file", path=f"{MARKUP_PATH}/[b]f[/b]", size=9),
            ]
        return []


def words(app: Any) -> str:
    """The screen's text with every run of blanks (and line ends) made one space."""
    return " ".join(screen_text(app).split())


async def test_paths_and_names_are_shown_literally_never_as_markup(tmp_path: Path) -> None:
    tui = fixed_app(
        tmp_path, MarkupNames, BACKUP_PATHS=MARKUP_PATH, KAMAL_BACKUP_ALLOW_RESTORE="true"
    )
    async with tui.run_test(size=(140, 40)) as pilot:
        await idle(pilot)
        assert f"Backup paths {MARKUP_PATH}" in words(tui)
        await pilot.press("b")  # the path does not exist: the error names it, literally
        await wait_for(pilot, lambda: tui.operation is None, what="the failed backup")
        await idle(pilot)
        said = f"BACKUP_PATHS: {MARKUP_PATH} does not exist"
        assert f"backup failed: {said}" in words(tui)  # the status line
        assert [n.message for n in tui._notifications] == [said]
        assert not [n for n in tui._notifications if n.markup]  # the toast is plain text

        await pilot.press("s")
        await idle(pilot)
        await pilot.press("down")  # the newest run's files snapshot: its detail
        await idle(pilot)
        text = words(tui)
        assert f"paths {MARKUP_PATH}" in text and "note:[i]t[/i]" in text
        await pilot.press("v")  # and its tree
        await idle(pilot)
        tree = tui.query_one("#snapshot-files", Tree)
        assert [str(node.label) for node in tree.root.children] == [MARKUP_PATH]
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: len(tree.root.children[0].children) == 2, what="the list")
        await idle(pilot)
        labels = [node.label.plain for node in tree.root.children[0].children]
        assert labels == ["[red]d[/", "[b]f[/b]  9 B"], labels
        assert tree.root.children[0].label.plain == MARKUP_PATH  # "(loading…)" gone, literally
        text = screen_text(tui)
        assert MARKUP_PATH in text and "[red]d[/" in text and "[b]f[/b]  9 B" in text

        await pilot.press("d", "down")  # the drill, files only, into a directory named so
        await idle(pilot)
        tui.query_one("#drill-target", Input).value = "/tmp/[bold]t[/]"
        await idle(pilot)
        assert "/tmp/[bold]t[/]/<original path>" in words(tui)
        tui.query_one("#drill-target", Input).value = f"{MARKUP_PATH}/scratch"
        await idle(pilot)
        await pilot.press("ctrl+r")  # refused: the target is inside a backup path
        await pilot.pause(0.2)
        refusals = [n for n in tui._notifications if n.message.startswith("refused:")]
        assert refusals and MARKUP_PATH in refusals[-1].message and not refusals[-1].markup
        assert MARKUP_PATH in words(tui)  # the toast, as typed


def drill_app(tmp_path: Path, backend: type[FixedBackend] = FixedBackend, **extra: str) -> Any:
    """The fixed app with drills allowed into a scratch database."""
    return fixed_app(
        tmp_path,
        backend,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        RESTORE_DATABASE_URL="postgres://drill:pw@127.0.0.1:5432/shop_drill",
        **extra,
    )


async def open_drill(pilot: Any, *keys: str) -> None:
    """Opens the wizard once the runs are listed, then presses `keys` (down: the next kind)."""
    await idle(pilot)
    await pilot.press("d")
    await wait_for_text(pilot, "latest: ")
    await pilot.press(*keys)
    await idle(pilot)


async def test_mixing_warns_only_when_the_two_runs_differ(tmp_path: Path) -> None:
    tui = drill_app(tmp_path)
    async with tui.run_test(size=(140, 50)) as pilot:
        await open_drill(pilot, "down", "down")  # database and files
        tui.query_one("#drill-mix", Checkbox).value = True
        await idle(pilot)
        database = tui.query_one("#drill-run", Select)
        files = tui.query_one("#drill-files-run", Select)
        newest = "20261126T030000Z"
        for first, second in (("latest", newest), (newest, "latest"), (newest, newest)):
            database.value, files.value = first, second
            await idle(pilot)
            text = words(tui)
            assert "MIXED" not in text, (first, second)
            assert f"restores the database and files of run {newest}" in text
        files.value = "20261125T030000Z"
        await idle(pilot)
        assert "⚠ MIXED RUNS: the database of run" in words(tui)


def until_cancelled() -> None:
    """Runs until the operator cancels, then stops as a service does (Interrupted)."""
    deadline = time.monotonic() + 10
    while not process.cancelled() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.raise_if_cancelled()
    raise AssertionError("the operation was not cancelled")


class CancellableDrill(FixedBackend):
    def drill(self, *args: Any, **kwargs: Any) -> DrillRecord:
        until_cancelled()
        raise AssertionError("unreachable")


class CancellableBackup(FixedBackend):
    def backup(self, on_status: Any) -> BackupRun:
        until_cancelled()
        raise AssertionError("unreachable")


async def cancel_a_drill(pilot: Any) -> str:
    """Starts the drill as chosen, cancels it with x, and returns the status line's words."""
    tui = pilot.app
    tui.query_one("#drill-confirm", Input).value = "shop"
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: tui.operation_scope is not None, what="the drill")
    await pilot.press("x")
    await wait_for(pilot, lambda: tui.operation is None, what="the cancel")
    await idle(pilot)
    return str(tui.query_one("#drill-status", Static).render())


async def test_a_cancelled_drill_says_only_what_applies_to_its_parts(tmp_path: Path) -> None:
    tui = drill_app(tmp_path, CancellableDrill)
    async with tui.run_test(size=(140, 50)) as pilot:
        await open_drill(pilot)  # the database only
        said = await cancel_a_drill(pilot)
        assert said.startswith("drill cancelled: the target database is as it was"), said
        assert "files" not in said, said
        tui.query_one("#drill-kind", RadioSet).focus()
        await pilot.press("down")  # the files only
        await idle(pilot)
        said = await cancel_a_drill(pilot)
        assert said == f"drill cancelled: {FILES_UNTOUCHED}", said
        tui.query_one("#drill-kind", RadioSet).focus()
        await pilot.press("down")  # both
        await idle(pilot)
        said = await cancel_a_drill(pilot)
        assert "the target database is as it was" in said and "the files target" in said, said


FILES_UNTOUCHED = (
    "the files target holds what it held (files are swapped in only at the end; empty "
    "directories may be left)"
)
DATABASE_UNTOUCHED = "the target database is as it was (the restore commits only at its end)"


@pytest.mark.parametrize(
    ("done", "unfinished", "untouched"),
    [
        ("database snapshot 1a2b3c4d was restored into shop_drill", "files", FILES_UNTOUCHED),
        (
            "files snapshot 5e6f7a8b was restored into /restore/files",
            "database",
            DATABASE_UNTOUCHED,
        ),
    ],
)
def test_a_drill_cancelled_after_one_part_says_that_part_stays_and_the_other_is_untouched(
    done: str, unfinished: str, untouched: str
) -> None:
    said = cancelled_text(
        "restore drill", DrillInterrupted([done], {unfinished}), "postgres", ("database", "files")
    )
    assert said == f"cancelled: {done}; {untouched}"


def test_a_drill_cancelled_while_it_verified_says_both_parts_were_restored() -> None:
    done = [
        "database snapshot 1a2b3c4d was restored into shop_drill",
        "files snapshot 5e6f7a8b was restored into /restore/files",
    ]
    said = cancelled_text("restore drill", DrillInterrupted(done, set()), "sqlite")
    assert said == f"cancelled: {', '.join(done)}; they were not verified"


async def test_a_cancelled_backups_banner_goes_on_refresh_and_when_a_later_operation_starts(
    tmp_path: Path,
) -> None:
    tui = drill_app(tmp_path, CancellableBackup)

    def banner() -> str:  # the overview's outcome line
        return str(tui.query_one("#operation-status", Static).render())

    async def cancel_a_backup() -> None:
        await pilot.press("o", "b")
        await wait_for(pilot, lambda: tui.operation_scope is not None, what="the backup")
        await pilot.press("x")
        await wait_for(pilot, lambda: tui.operation is None, what="the cancel")
        await idle(pilot)
        assert banner().startswith(
            "backup cancelled: the app's database and files were only read"
        ), banner()

    async with tui.run_test(size=(140, 50)) as pilot:
        await idle(pilot)
        await cancel_a_backup()
        await pilot.press("r")
        await idle(pilot)
        assert banner() == HINT
        await cancel_a_backup()
        await pilot.press("s", "r")  # a refresh from another view clears it too
        await idle(pilot)
        assert banner() == HINT
        await cancel_a_backup()
        await open_drill(pilot, "r")  # the wizard's own r
        assert banner() == HINT
        await cancel_a_backup()
        await open_drill(pilot)
        tui.query_one("#drill-confirm", Input).value = "shop"
        await pilot.press("ctrl+r")  # a later operation: the banner is history
        await wait_for_text(pilot, "drill finished in")
        assert banner() == HINT


class SecondRunSuspicious(TaggedRuns):
    extra: ClassVar[dict[int, list[str]]] = {1: [SUSPICIOUS_TAG]}


SHRANK = (
    "run 20261125T030000Z is suspicious (it shrank against the last good run): a passing drill "
    "proves the restore, not that the data is right"
)


async def test_the_drill_marks_suspicious_runs_and_says_what_a_pass_proves(tmp_path: Path) -> None:
    tui = drill_app(tmp_path, SecondRunSuspicious)
    async with tui.run_test(size=(140, 50)) as pilot:
        await open_drill(pilot)
        database = tui.query_one("#drill-run", Select)
        entries = {value: str(prompt) for prompt, value in database._options}
        assert entries["20261125T030000Z"].startswith("run 20261125T030000Z  ")
        assert entries["20261125T030000Z"].endswith("  ⚠ suspicious")
        assert [v for v, entry in entries.items() if "suspicious" in entry] == ["20261125T030000Z"]
        assert SHRANK not in words(tui)  # latest is never a suspicious run
        database.value = "20261125T030000Z"
        await idle(pilot)
        assert SHRANK in words(tui)
        database.value = "20261126T030000Z"
        await pilot.press("down", "down")  # database and files; the files from another run
        tui.query_one("#drill-mix", Checkbox).value = True
        await idle(pilot)
        assert SHRANK not in words(tui)
        files = tui.query_one("#drill-files-run", Select)
        assert "⚠ suspicious" in str(dict((v, p) for p, v in files._options)["20261125T030000Z"])
        files.value = "20261125T030000Z"
        await idle(pilot)
        text = words(tui)
        assert "⚠ MIXED RUNS" in text and SHRANK in text


class CountingEvidence(FixedBackend):
    """Counts the evidence documents built and the drills run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.built = 0
        self.drills = 0

    def evidence(self) -> Any:
        self.built += 1
        return super().evidence()

    def drill(self, *args: Any, **kwargs: Any) -> DrillRecord:
        self.drills += 1
        return super().drill(*args, **kwargs)


async def test_the_evidence_is_built_again_after_a_drill(tmp_path: Path) -> None:
    tui = drill_app(tmp_path, CountingEvidence)
    backend = tui.backend
    assert isinstance(backend, CountingEvidence)
    async with tui.run_test(size=(140, 50)) as pilot:
        await idle(pilot)
        await pilot.press("e")
        await wait_for(pilot, lambda: backend.built == 1, what="the evidence")
        await idle(pilot)
        await open_drill(pilot)
        tui.query_one("#drill-confirm", Input).value = "shop"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: backend.drills == 1 and tui.operation is None)
        await idle(pilot)
        assert backend.built == 1  # not shown meanwhile: built when next shown
        await pilot.press("e")
        await wait_for(pilot, lambda: backend.built == 2, what="the evidence built again")


async def test_at_80x24_a_drill_started_from_the_confirm_field_shows_its_progress(
    tmp_path: Path,
) -> None:
    tui = drill_app(tmp_path, CancellableDrill)
    async with tui.run_test(size=(80, 24)) as pilot:
        await open_drill(pilot)
        field = tui.query_one("#drill-confirm", Input)
        field.focus()
        field.value = "shop"
        await pilot.press("enter")
        await wait_for(pilot, lambda: tui.operation_scope is not None, what="the drill")
        await pilot.pause(1)
        shown = screen_text(tui)
        assert "restoring database…" in shown and "starting…" in shown, shown  # still in sight
        assert isinstance(tui.focused, DrillView)  # not an Input: x cancels
        await pilot.press("x")
        await wait_for(pilot, lambda: tui.operation is None, what="the cancel")


async def test_starting_without_the_app_name_puts_the_cursor_in_the_confirm_field(
    tmp_path: Path,
) -> None:
    tui = drill_app(tmp_path)
    async with tui.run_test(size=(80, 24)) as pilot:
        await open_drill(pilot)
        assert tui.focused is not tui.query_one("#drill-confirm", Input)
        await pilot.press("ctrl+r")
        await idle(pilot)
        assert tui.focused is tui.query_one("#drill-confirm", Input)
        await pilot.press(*"shop", "enter")  # typed there, the drill starts
        status = tui.query_one("#drill-status", Static)
        await wait_for(pilot, lambda: "passed" in str(status.render()), what="the drill")


def test_the_evidence_line_counts_one_drill_in_the_singular() -> None:
    from types import SimpleNamespace

    from tui.screens.evidence import EvidenceView

    def line(*statuses: str) -> str:
        history = [SimpleNamespace(status=status) for status in statuses]
        return EvidenceView._drills_line(SimpleNamespace(drills=SimpleNamespace(history=history)))  # type: ignore[arg-type]

    assert line("passed") == "  ·  1 drill, 1 passed (see drills.history)"
    assert line("passed", "failed") == "  ·  2 drills, 1 passed (see drills.history)"


class VerifyingDrill(FixedBackend):
    """Restores at once, then verifies until cancelled."""

    def drill(self, kinds: Any, snapshot: Any, files: Any, target: Any, on_status: Any) -> Any:
        for kind in kinds:
            on_status(kind, ResticStatus(total_bytes=10, bytes_done=10, percent_done=1.0))
        on_status(VERIFYING, ResticStatus())
        until_cancelled()
        raise AssertionError("unreachable")


async def test_a_verifying_drill_says_so_in_its_status_line(tmp_path: Path) -> None:
    tui = drill_app(tmp_path, VerifyingDrill)
    async with tui.run_test(size=(140, 50)) as pilot:
        await open_drill(pilot)
        tui.query_one("#drill-confirm", Input).value = "shop"
        await pilot.press("ctrl+r")
        status = tui.query_one("#drill-status", Static)
        await wait_for(
            pilot,
            lambda: str(status.render()) == "verifying the restored database…",
            what="the verifying line",
        )
        assert "verifying" not in tui.query_one(PartsProgress).shown()  # no bar of its own
        await pilot.press("x")
        await wait_for(pilot, lambda: tui.operation is None, what="the cancel")
