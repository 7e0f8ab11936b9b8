"""Names, paths and error text are data, never markup: the real app against real restic, with
names holding "[...]". Read as markup, "[bold]" would vanish from the screen (a style) and "[/x]"
would end the app with MarkupError (a closing tag with nothing to close)."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest
from textual.widget import Widget
from textual.widgets import Input, RichLog, Static, Tree

from kamal_backup.settings import load_settings
from tests.conftest import App, sqlite_rows
from tests.tui.screen import idle, screen_text, select_node, wait_for, wait_for_text
from tui import KamalBackupApp, make_app
from tui.screens.restore_file import RestoreFileScreen

pytestmark = pytest.mark.integration

# "/" ends a file name: "[/x]" in a path spans two directories ("[" and "x]").
LIVE = "[bold]up[/x]"  # a backup path's end
FILE = "[red]a[i].txt"  # a file inside it
TABLE = "[red]t[/]"  # a SQLite table


def tui_for(fixture: App, **extra: str) -> KamalBackupApp:
    return make_app(load_settings(environ={**fixture.env, **extra}), timezone=UTC)


def words(app: KamalBackupApp) -> str:
    """The screen's text with every run of blanks (and line ends) made one space."""
    return " ".join(screen_text(app).split())


def shown(app: KamalBackupApp, widget: Widget) -> str:
    """What `widget` shows on screen, its rows' words joined by single spaces."""
    box = widget.region
    rows = screen_text(app).splitlines()[box.y : box.bottom]
    return " ".join(" ".join(row[box.x : box.right] for row in rows).split())


@pytest.fixture
def short() -> Iterator[Path]:
    """A short directory under /tmp, so that a whole path fits on one line of the screen."""
    path = Path(tempfile.mkdtemp(prefix="kb-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_a_path_and_a_file_named_like_markup_are_backed_up_browsed_and_restored(
    app: App, short: Path
) -> None:
    live = short / LIVE
    live.mkdir(parents=True)
    (live / FILE).write_text("hello\n")
    into = short / "[bold]into[/x]"
    in_the_way = short / "[/x]in-the-way"
    in_the_way.parent.mkdir()
    in_the_way.write_text("a file, not a directory\n")
    tui = tui_for(app, BACKUP_PATHS=str(live), KAMAL_BACKUP_ALLOW_RESTORE="true")
    async with tui.run_test(size=(160, 50)) as pilot:
        await wait_for_text(pilot, "MISSING")
        assert f"Backup paths {live}" in words(tui)
        await pilot.press("b")  # backed up from the TUI: its outcome line names the run
        await wait_for(pilot, lambda: tui.operation is None, what="the backup")
        text = await wait_for_text(pilot, "Latest files     FRESH")
        assert "saved: database" in text

        await pilot.press("s")
        await wait_for_text(pilot, "2 of 2 snapshots in 1 runs")
        await pilot.press("t", "t")  # files only: the detail and the tree
        await idle(pilot)
        assert f"paths {live}" in words(tui)
        tree: Tree[str] = tui.query_one("#snapshot-files", Tree)
        storage = tree.root.children[0]
        assert storage.label.plain == str(live)
        storage.expand()
        await wait_for(pilot, lambda: len(storage.children) == 1, what="the listing")
        await idle(pilot)
        assert storage.label.plain == str(live)  # "(loading…)" gone, the path as it was
        node = storage.children[0]
        assert node.label.plain == f"{FILE}  6 B"
        assert str(live) in screen_text(tui) and f"{FILE}  6 B" in screen_text(tui)

        await select_node(pilot, tree, node)
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(tui.screen, RestoreFileScreen), what="dialog")
        screen = tui.screen
        assert f"Restore {live}/{FILE}" in words(tui)
        status = screen.query_one("#restore-file-status", Static)

        # Into a file: the restore fails, and its error names the target as it is.
        screen.query_one("#restore-file-target", Input).value = str(in_the_way)
        await wait_for_text(pilot, "every gate allows this restore")
        await pilot.click("#restore-file-start")
        await wait_for(pilot, lambda: tui.operation is None, what="the failed restore")
        await wait_for(pilot, lambda: "failed" in str(status.content), what="the failure")
        said = str(status.content)
        assert said.startswith(f"restore failed: cannot write in {in_the_way}{live}"), said
        assert shown(tui, status) == said, screen_text(tui)
        failed = [n for n in tui._notifications if n.severity == "error"]
        assert len(failed) == 1 and str(in_the_way) in failed[0].message
        assert not failed[0].markup

        screen.query_one("#restore-file-target", Input).value = str(into)
        await wait_for_text(pilot, "every gate allows this restore")
        assert f"{into}{live}/{FILE}" in words(tui)  # the target row
        await pilot.click("#restore-file-start")
        await wait_for(pilot, lambda: tui.operation is None, what="the restore")
        await wait_for(pilot, lambda: "restored" in str(status.content), what="the result")
        restored = into / str(live).lstrip("/") / FILE
        said = f"restored {restored} (into {into}) in "
        assert str(status.content).startswith(said), status.content
        assert shown(tui, status).startswith(said), screen_text(tui)
        assert tui.is_running
    assert restored.read_text() == "hello\n"


async def test_a_drill_shows_targets_and_tables_named_like_markup_as_named(
    app: App, short: Path
) -> None:
    with sqlite3.connect(app.db) as db:
        db.execute(f'CREATE TABLE "{TABLE}" (v TEXT)')
        db.execute(f"INSERT INTO \"{TABLE}\" VALUES ('x')")
    db.close()
    app.cli("backup", check=True)
    restore_db = short / "[bold]db[/x]" / "restored.sqlite3"
    in_the_way = short / "[/x]in-the-way"
    in_the_way.parent.mkdir()
    in_the_way.write_text("a file, not a directory\n")
    files_target = short / "[/x]files"
    tui = tui_for(
        app, KAMAL_BACKUP_ALLOW_RESTORE="true", RESTORE_SQLITE_DATABASE_PATH=str(restore_db)
    )
    async with tui.run_test(size=(220, 60)) as pilot:
        await pilot.press("d")
        await wait_for_text(pilot, "latest: ")
        await pilot.click("#kind-both")
        tui.query_one("#drill-target", Input).value = str(in_the_way)
        await wait_for_text(pilot, "it is not a directory")  # what the target holds now
        text = words(tui)
        assert f"target database {restore_db}" in text
        assert f"{restore_db} does not exist yet; the drill creates it" in text
        assert f"target files {in_the_way}/<original path>" in text
        assert f"cannot tell what {in_the_way} holds: it is not a directory" in text

        # The files part fails (its target is a file): the error names both targets.
        tui.query_one("#drill-confirm", Input).value = "shop"
        await pilot.pause(0.1)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: tui.operation is None, what="the failed drill")
        await wait_for_text(pilot, "drill failed")
        await idle(pilot)
        status = tui.query_one("#drill-status", Static)
        said = f"was restored into {restore_db}, but the file restore failed"
        assert said in str(status.content), status.content
        assert said in shown(tui, status), screen_text(tui)

        # Again into a directory (the finished drill reset the choices): it passes, and its
        # tables name the targets and the tables.
        await pilot.click("#kind-both")
        tui.query_one("#drill-target", Input).value = str(files_target)
        tui.query_one("#drill-confirm", Input).value = "shop"
        await wait_for_text(pilot, f"{files_target} does not exist yet")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: tui.operation is None, what="the drill")
        await wait_for_text(pilot, "drill finished in")
        await idle(pilot)
        text = words(tui)
        assert f"│ {TABLE} │ 1 │ 1 │ match" in text, text
        assert str(restore_db) in text and str(files_target) in text
        assert tui.is_running
    assert sqlite_rows(restore_db) == sqlite_rows(app.db)
    restored = files_target / str(app.files).lstrip("/") / "uploads" / "a.txt"
    assert restored.read_text() == "hello\n"


async def test_an_error_naming_a_path_like_markup_is_shown_as_said_in_every_view(
    app: App, short: Path
) -> None:
    # A repository path that is a file: the error names the path (restic's "not a directory",
    # at once: restic would retry it for minutes).
    (short / "[/x]").mkdir(parents=True)
    repo = short / "[/x]" / "[bold]repo"
    repo.write_text("not a repository\n")
    tui = tui_for(app, RESTIC_REPOSITORY=str(repo), KAMAL_BACKUP_REPOSITORY_TIMEOUT_SECONDS="2")
    said = f"repository unreachable: not a directory: {repo}/config ({repo})"
    async with tui.run_test(size=(200, 50)) as pilot:
        await wait_for(pilot, lambda: f"unknown: {said}" in words(tui), what="the overview")
        assert f"Repository {repo}" in words(tui)
        await pilot.press("s")
        await wait_for(pilot, lambda: f"cannot list snapshots: {said}" in words(tui))
        await pilot.press("d")
        await wait_for(pilot, lambda: f"cannot list snapshots: {said}" in words(tui))
        await pilot.press("e")
        await wait_for_text(pilot, '"schema_version": 1')
        assert shown(tui, tui.query_one("#evidence-status")).startswith(said)
        log = " ".join(line.text for line in tui.query_one("#log", RichLog).lines)
        assert said in " ".join(log.split())

        # The evidence (which says the repository was unreachable) saved under such a name.
        saved = short / "[/x]" / "[bold]evidence[/x].json"
        await pilot.press("w")
        tui.query_one("#evidence-path", Input).value = str(saved)
        await pilot.press("enter")
        await wait_for(pilot, lambda: saved.exists(), what="the evidence saved")
        await idle(pilot)
        assert f"saved to {saved}" in words(tui)
        toast = [n for n in tui._notifications if "evidence saved" in n.message]
        assert [n.message for n in toast] == [f"evidence saved to {saved}"]
        assert not toast[0].markup
        assert tui.is_running
