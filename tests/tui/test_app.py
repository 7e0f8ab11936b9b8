"""The real app (pilot) against a real restic repository with real snapshots."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, RadioButton, RichLog, Tree

from kamal_backup.settings import load_settings
from tests.conftest import RESTIC_PASSWORD, App, add_bulk, make_sqlite, sqlite_rows
from tests.restic_keys import production_cost_keys
from tests.tui.screen import idle, screen_text, wait_for, wait_for_text
from tui import KamalBackupApp, make_app

pytestmark = pytest.mark.integration


def tui_for(fixture: App, **extra: str) -> KamalBackupApp:
    return make_app(load_settings(environ={**fixture.env, **extra}), timezone=UTC)


def drill_app(fixture: App, restore_db: Path) -> KamalBackupApp:
    return tui_for(
        fixture, KAMAL_BACKUP_ALLOW_RESTORE="true", RESTORE_SQLITE_DATABASE_PATH=str(restore_db)
    )


async def choose_both(pilot: Pilot[None], files_target: Path) -> None:
    """Opens the drill, waits for the snapshot choices, picks database and files."""
    await pilot.press("d")
    await wait_for_text(pilot, "latest: ")
    await pilot.click("#kind-both")
    assert pilot.app.query_one("#kind-both", RadioButton).value
    pilot.app.query_one("#drill-target", Input).value = str(files_target)


async def test_overview_shows_each_latest_snapshot_as_fresh(app: App) -> None:
    app.cli("backup", check=True)
    db_id, files_id = (
        app.snapshot_ids("type:database")[0][:8],
        app.snapshot_ids("type:files")[0][:8],
    )
    tui = tui_for(app)
    async with tui.run_test(size=(80, 24)) as pilot:
        text = await wait_for_text(pilot, db_id)
        assert files_id in text
        assert "Latest database  FRESH" in text
        assert "Latest files     FRESH" in text
        assert "Last backup run  SUCCESS" in text
        assert "ALLOW_RESTORE=false" in text


async def test_backup_from_overview_creates_a_run_and_keys_still_answer(app: App) -> None:
    add_bulk(app.db, 3000, 2000)  # a few MB, so the backup is still running when keys arrive
    tui = tui_for(app)
    async with tui.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "MISSING")
        await pilot.press("b")
        assert tui.operation == "backup"
        await pilot.press("s")  # the UI answers while the worker backs up
        assert tui.query_one("#tabs").active == "snapshots"  # type: ignore[attr-defined]
        await pilot.press("o")
        await wait_for(pilot, lambda: tui.operation is None, what="the backup to finish")
        await wait_for_text(pilot, "backup 20")
        text = await wait_for_text(pilot, "Latest files     FRESH")
        assert "saved: database" in text
    ids = app.snapshot_ids()
    assert len(ids) == 2
    assert ids[0][:8] in text or ids[1][:8] in text


async def test_snapshots_filter_and_lazy_file_tree(app: App) -> None:
    app.cli("backup", check=True)
    tui = tui_for(app)
    async with tui.run_test(size=(120, 40)) as pilot:
        await pilot.press("s")
        await wait_for_text(pilot, "2 of 2 snapshots in 1 runs")
        table = tui.query_one("#snapshots-table", DataTable)
        assert table.row_count == 2
        await pilot.press("t")
        assert "filter: database" in screen_text(tui) and table.row_count == 1
        await pilot.press("t")
        assert "filter: files" in screen_text(tui) and table.row_count == 1

        tree = tui.query_one("#snapshot-files", Tree)
        assert tree.display
        storage = tree.root.children[0]
        assert str(storage.label) == str(app.files)
        assert not storage.children  # nothing is listed before the operator opens it
        storage.expand()
        await wait_for(pilot, lambda: len(storage.children) > 0, what="the storage listing")
        uploads = storage.children[0]
        assert str(uploads.label) == "uploads/"
        uploads.expand()
        await wait_for(pilot, lambda: len(uploads.children) == 2, what="the uploads listing")
        labels = [str(node.label) for node in uploads.children]
        assert labels[0] == "ünï/" and labels[1].startswith("a.txt")


async def test_evidence_is_the_commands_document_and_saves_without_overwriting(
    app: App, tmp_path: Path
) -> None:
    app.cli("backup", check=True)
    expected = json.loads(app.cli("evidence", check=True).stdout)
    tui = tui_for(app)
    async with tui.run_test(size=(100, 30)) as pilot:
        await pilot.press("e")
        await wait_for_text(pilot, '"schema_version": 1')
        document = tui.query_one("#evidence-view").document.document()  # type: ignore[attr-defined]
        for key in ("generated_at", "tool_versions"):
            document.pop(key)
            expected.pop(key)
        assert document == expected

        target = tmp_path / "out" / "evidence.json"
        await pilot.press("w")
        field = tui.query_one("#evidence-path", Input)
        field.value = str(target)
        await pilot.press("enter")
        # The message wraps a long path (pytest-xdist's temporary paths are long): look for the
        # words and the file, not for the path on one line.
        await wait_for(
            pilot,
            lambda: target.exists() and "saved to" in screen_text(tui),
            what="the evidence saved and said so",
        )
        saved = json.loads(target.read_text())
        assert saved["latest_database_snapshot"]["id"] == expected["latest_database_snapshot"]["id"]

        before = target.read_bytes()
        await pilot.press("w")
        tui.query_one("#evidence-path", Input).value = str(target)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert target.read_bytes() == before
        assert tui.query_one("#evidence-save").display  # still asking for another name
        shown = " ".join(screen_text(tui).split())
        assert "exists; choose another name" in shown  # beside the field, not over it


async def test_drill_refused_by_the_gates_cannot_start(app: App, tmp_path: Path) -> None:
    app.cli("backup", check=True)
    restore_db = tmp_path / "scratch" / "restored.sqlite3"
    tui = tui_for(app, RESTORE_SQLITE_DATABASE_PATH=str(restore_db))
    async with tui.run_test(size=(220, 60)) as pilot:
        await pilot.press("d")
        text = await wait_for_text(pilot, "REFUSED")
        assert "restores are disabled; set KAMAL_BACKUP_ALLOW_RESTORE=true to allow" in text
        assert "refused: this drill cannot be started" in text
        tui.query_one("#drill-confirm", Input).value = "shop"
        await pilot.pause(0.1)
        assert tui.query_one("#drill-start", Button).disabled
        await pilot.press("ctrl+r")
        await pilot.pause(0.5)
        assert tui.operation is None
    assert not restore_db.exists()


async def test_drill_refuses_a_files_target_inside_the_live_paths(app: App) -> None:
    tui = tui_for(app, KAMAL_BACKUP_ALLOW_RESTORE="true")
    async with tui.run_test(size=(220, 60)) as pilot:
        await pilot.press("d")
        await pilot.click("#kind-files")
        tui.query_one("#drill-target", Input).value = str(app.files / "uploads")
        text = await wait_for_text(pilot, "REFUSED")
        # A drill refuses whatever KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE says.
        assert "a drill never writes into a backup path" in text
        assert "is inside the backup path" in text
        assert "choose a scratch target" in text


async def test_drill_allowed_restores_database_and_files(app: App, tmp_path: Path) -> None:
    app.cli("backup", check=True)
    expected_rows = sqlite_rows(app.db)
    restore_db = tmp_path / "scratch" / "restored.sqlite3"
    files_target = tmp_path / "drill-files"
    tui = drill_app(app, restore_db)
    async with tui.run_test(size=(220, 60)) as pilot:
        await choose_both(pilot, files_target)
        text = await wait_for_text(pilot, "every gate allows this drill")
        assert str(restore_db) in text
        assert tui.query_one("#drill-start", Button).disabled  # not confirmed yet
        tui.query_one("#drill-confirm", Input).value = "not-the-app"
        await pilot.pause(0.1)
        assert tui.query_one("#drill-start", Button).disabled
        tui.query_one("#drill-confirm", Input).value = "shop"
        await pilot.pause(0.1)
        assert not tui.query_one("#drill-start", Button).disabled
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: tui.operation is None, what="the drill to finish")
        text = await wait_for_text(pilot, "drill finished in")
        assert "restored" in text and "database" in text and str(files_target) in text
        await pilot.press("o")  # the overview was reloaded after the drill, without r
        # The overview's last drill is the one just made, verified against its manifest.
        text = await wait_for_text(pilot, "verified  RTO")
        assert "Last drill" in text and "PASSED" in text
    assert sqlite_rows(restore_db) == expected_rows
    evidence = json.loads(app.cli("evidence", check=True).stdout)
    database_drill = evidence["last_restores"]["database"]
    assert database_drill["snapshot"]["id"] == app.snapshot_ids("type:database")[0]
    assert database_drill["target"] == str(restore_db)
    assert evidence["last_restores"]["files"]["target"] == str(files_target)
    restored = files_target / str(app.files).lstrip("/") / "uploads" / "a.txt"
    assert restored.read_text() == "hello\n"


async def test_repository_errors_are_shown_redacted_without_a_traceback(app: App) -> None:
    app.cli("backup", check=True)
    wrong = "not-the-password-93817"
    tui = tui_for(app, RESTIC_PASSWORD=wrong)
    async with tui.run_test(size=(220, 60)) as pilot:
        text = await wait_for_text(pilot, "unknown:")
        assert "wrong restic repository password" in text
        await pilot.press("s")
        text = await wait_for_text(pilot, "cannot list snapshots")
        log = "\n".join(line.text for line in tui.query_one("#log", RichLog).lines)
        assert "listing snapshots:" in log  # the cause is in the log panel too
        for screen in (text, log):
            assert "Traceback" not in screen
            assert wrong not in screen and RESTIC_PASSWORD not in screen


async def test_no_snapshots_yet_says_so(app: App) -> None:
    tui = tui_for(app)
    async with tui.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "no complete backup run yet")
        await pilot.press("s")
        await wait_for_text(pilot, "no snapshots yet")


async def test_quit_cancels_a_running_backup_and_kills_its_processes(app: App) -> None:
    # Each restic opens the repository for about half a second before it writes anything: q
    # arrives while both halves' restic run. (A big database instead would keep the app's event
    # loop busy with the copy and its figures, so q might arrive after the database half.)
    production_cost_keys(app.repo, RESTIC_PASSWORD)
    tui = tui_for(app)
    async with tui.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "MISSING")
        await pilot.press("b")
        await wait_for(pilot, lambda: bool(running_children(tui)), what="restic to start")
        children = running_children(tui)
        await pilot.press("q")
        await wait_for(pilot, lambda: not tui.is_running, timeout=30, what="the app to exit")
    for child in children:
        assert child.poll() is not None
    listing = subprocess.run(
        ["pgrep", "-f", str(app.repo)], capture_output=True, text=True
    ).stdout.split()
    assert listing == []
    assert app.snapshot_ids("type:database") == []


def running_children(tui: KamalBackupApp) -> list[object]:
    scope = tui.operation_scope
    return list(scope.children) if scope is not None else []


async def test_cancel_key_stops_a_backup_and_every_view_reads_normally_after(app: App) -> None:
    """Issue 16 item 1: a cancel used to poison every later repository read ("interrupted")."""
    app.cli("backup", check=True)
    # ~80 MB in a few big rows: restic streams it for a while, and the copy and its figures
    # (C code, hashlib) leave the app's event loop free to see the phase and send x.
    add_bulk(app.db, 20, 4_000_000)
    production_cost_keys(app.repo, RESTIC_PASSWORD)  # each restic opens the repository slowly
    tui = tui_for(app)
    async with tui.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "Latest database  FRESH")
        await pilot.press("b")
        await wait_for(pilot, lambda: bool(running_children(tui)), what="restic to start")
        text = await wait_for_text(pilot, "backing up the database")  # the phase, by name
        assert "so far" in text or "%" in text
        await pilot.press("x")
        await wait_for(pilot, lambda: tui.operation is None, timeout=30, what="the cancel")
        text = await wait_for_text(pilot, "backup cancelled")
        assert "only read" in text and "failed" not in text
        await idle(pilot)
        await pilot.press("r")
        await idle(pilot)
        text = await wait_for_text(pilot, "Latest database  FRESH")
        assert "unknown: interrupted" not in text
        await pilot.press("s")
        # Either half of the cancelled run may have finished before the cancel (the halves run
        # at once, issue 14, and the copy keeps this loop busy for a moment): whatever it saved
        # is listed, and the listing itself works.
        text = await wait_for_text(pilot, "snapshots in")
        assert any(f"{n} of {n} snapshots in" in text for n in (2, 3, 4)), text
        assert "cannot list" not in text
        await pilot.press("e")
        text = await wait_for_text(pilot, '"schema_version": 1')
        assert "cannot build evidence" not in text
    assert len(app.snapshot_ids("type:database")) in (1, 2)  # the earlier run, maybe this one
    assert (
        '"status": "interrupted"'
        in (Path(app.env["KAMAL_BACKUP_STATE_DIR"]) / "shop" / "last_backup.json").read_text()
    )


def test_command_palette_is_not_on_ctrl_p() -> None:
    assert KamalBackupApp.COMMAND_PALETTE_BINDING != "ctrl+p"
    keys = {binding.key for binding in KamalBackupApp.BINDINGS}  # type: ignore[union-attr]
    assert "ctrl+p" not in keys and {"o", "s", "e", "d", "q"} <= keys


async def test_readable_without_colour(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    tui = tui_for(app)
    assert tui.no_color
    async with tui.run_test(size=(80, 24)) as pilot:
        await pilot.press("d")
        text = await wait_for_text(pilot, "REFUSED")  # verdicts are words, not only colours
        assert "✘" in text
        svg = tui.export_screenshot()
    # The SVG's window chrome (traffic lights, title) is coloured whatever the app draws.
    chrome = {"ff5f57", "febc2e", "28c840", "c5c8c6"}
    fills = {part.split('"')[0] for part in svg.split('fill="#')[1:]} - chrome
    colours = {f for f in fills if len(f) == 6 and len({f[0:2], f[2:4], f[4:6]}) > 1}
    assert colours == set(), f"colours on a NO_COLOR screen: {colours}"


async def test_drill_says_what_was_restored_when_the_file_part_fails(
    app: App, tmp_path: Path
) -> None:
    app.cli("backup", check=True)
    restore_db = tmp_path / "scratch" / "restored.sqlite3"
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("in the way\n")
    tui = drill_app(app, restore_db)
    async with tui.run_test(size=(220, 60)) as pilot:
        await choose_both(pilot, not_a_directory)
        tui.query_one("#drill-confirm", Input).value = "shop"
        await pilot.pause(0.1)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: tui.operation is None, what="the drill to end")
        text = await wait_for_text(pilot, "drill failed")
        assert "was restored into" in text and "but the file restore failed" in text
    assert sqlite_rows(restore_db) == sqlite_rows(app.db)
    assert not_a_directory.read_text() == "in the way\n"


async def test_overview_shows_each_channel_and_its_last_delivery(app: App) -> None:
    from tests.integration.servers import recording_server

    with recording_server() as server:
        env = {
            "KAMAL_BACKUP_WEBHOOK_URL": server.url("/hooks/planted-hook-path-0047"),
            "KAMAL_BACKUP_NTFY_URL": server.url("/planted-topic-0048"),
        }
        app.cli("backup", extra=env, check=True)
        assert len(server.requests) == 2  # the webhook's start and success; ntfy stays quiet
    tui = tui_for(app, **env)
    async with tui.run_test(size=(80, 24)) as pilot:
        text = await wait_for_text(pilot, "Notifications")
        assert f"webhook 127.0.0.1:{server.port} ok" in text
        assert f"ntfy 127.0.0.1:{server.port} -" in text  # nothing sent to it yet
        assert "planted" not in text


async def test_overview_and_snapshots_show_databases_by_name(app: App) -> None:
    cache = app.root / "app" / "storage" / "cache.sqlite3"
    make_sqlite(cache, rows=5)
    app.env["DATABASES"] = json.dumps({"cache": {"adapter": "sqlite", "path": str(cache)}})
    app.cli("backup", check=True)
    cache_id = app.snapshot_ids("database:cache")[0][:8]
    tui = tui_for(app)
    async with tui.run_test(size=(120, 36)) as pilot:
        text = await wait_for_text(pilot, "FRESH")
        assert "Database cache" in text and "Database primary" in text
        # the run has both databases: complete, so its database snapshot counts as fresh
        assert re.search(r"Latest database +FRESH", text), text
        await pilot.press("s")
        text = await wait_for_text(pilot, cache_id)
        assert "sqlite cache" in text


async def test_drill_restores_every_database_of_the_run(app: App, tmp_path: Path) -> None:
    cache = app.root / "app" / "storage" / "cache.sqlite3"
    make_sqlite(cache, rows=7)
    restore_cache = tmp_path / "scratch" / "cache.sqlite3"
    app.env["DATABASES"] = json.dumps(
        {"cache": {"adapter": "sqlite", "path": str(cache), "restore_path": str(restore_cache)}}
    )
    app.cli("backup", check=True)
    restore_db = tmp_path / "scratch" / "restored.sqlite3"
    tui = drill_app(app, restore_db)
    async with tui.run_test(size=(220, 60)) as pilot:
        await pilot.press("d")
        text = await wait_for_text(pilot, "every gate allows this drill")
        assert "database primary" in text and "database cache" in text
        assert str(restore_db) in text and str(restore_cache) in text
        tui.query_one("#drill-confirm", Input).value = "shop"
        await pilot.pause(0.1)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: tui.operation is None, what="the drill to finish")
        await wait_for_text(pilot, "drill finished in")
    assert sqlite_rows(restore_db) == sqlite_rows(app.db)
    assert sqlite_rows(restore_cache) == sqlite_rows(cache)
