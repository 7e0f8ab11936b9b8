"""Issue 16, "the TUI on the worst day": each defect reproduced with the real app (pilot)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from textual.widgets import (
    Checkbox,
    DataTable,
    Input,
    OptionList,
    RadioButton,
    RadioSet,
    Select,
    Tabs,
    Tree,
)

from kamal_backup import process
from kamal_backup.models import Snapshot
from kamal_backup.settings import load_settings
from kamal_backup.verification import DrillRecord
from tests.conftest import RESTIC_PASSWORD, App, add_bulk, make_sqlite
from tests.integration.databases import pg_databases, psql
from tests.restic_keys import production_cost_keys
from tests.tui.fixed import NOW, FailingListing, FixedBackend, fixed_app
from tests.tui.screen import idle, screen_text, wait_for, wait_for_text
from tui import KamalBackupApp, make_app
from tui.backend import Backend

UNREACHABLE = "rest:http://127.0.0.1:9/shop"


def tui_for(fixture: App, backend: type[Backend] = Backend, **extra: str) -> KamalBackupApp:
    settings = load_settings(environ={**fixture.env, **extra})
    return make_app(settings, backend=backend(settings))


class SlowListing(Backend):
    """The real listing, after a real child process that keeps the read busy for 3 s."""

    def snapshots(self) -> list[Snapshot]:
        process.run(["sleep", "3"], env={"PATH": "/usr/bin:/bin"})
        return super().snapshots()


@pytest.mark.integration
async def test_cancelling_an_operation_leaves_a_concurrent_listing_alive(app: App) -> None:
    app.cli("backup", check=True)
    # Both halves of the next backup run for a moment: each restic opens the repository for
    # about half a second before it writes anything.
    production_cost_keys(app.repo, RESTIC_PASSWORD)
    tui = tui_for(app, SlowListing)
    async with tui.run_test(size=(80, 24)) as pilot:
        await wait_for_text(pilot, "Latest database  FRESH", timeout=30)
        await pilot.press("b")
        await wait_for(pilot, lambda: tui.operation_scope is not None, what="the backup")
        # The database and the file half run at once, each a part of the backup's scope
        # (issue 14): both restic processes are the operation's children.
        scope = tui.operation_scope
        await wait_for(
            pilot, lambda: scope is not None and len(scope.children) >= 2, what="both halves"
        )
        halves = list(scope.children) if scope is not None else []
        tui.reload_snapshots()  # a listing now runs beside the backup
        await wait_for(
            pilot,
            lambda: any(scope.children for scope in list(tui.read_scopes)),
            what="the listing's child",
        )
        listing = next(iter(tui.read_scopes))
        await pilot.press("x")
        await wait_for(pilot, lambda: tui.operation is None, timeout=30, what="the cancel")
        assert not listing.cancelled
        assert all(child.poll() is not None for child in halves)  # both halves stopped
        await idle(pilot)
        text = await wait_for_text(pilot, "Latest database  FRESH")
        assert "unknown: interrupted" not in text and "cancelled" in text


@pytest.mark.integration
async def test_an_unreachable_repository_is_one_line_in_seconds_and_q_quits(app: App) -> None:
    tui = tui_for(app, RESTIC_REPOSITORY=UNREACHABLE)
    started = time.monotonic()
    async with tui.run_test(size=(100, 30)) as pilot:
        text = await wait_for_text(pilot, "repository unreachable", timeout=15)
        assert time.monotonic() - started < 15
        words = " ".join(text.split())  # the line may wrap at the screen's edge
        assert f"unknown: repository unreachable: connection refused ({UNREACHABLE})" in words
        assert "[REDACTED]" not in text and "retrying" not in text
        assert "listing snapshots: listing snapshots" not in text
        await pilot.press("s")
        text = await wait_for_text(pilot, "cannot list snapshots")
        assert " ".join(text.split()).count("repository unreachable") == 2  # list and log
        await pilot.press("e")
        text = " ".join((await wait_for_text(pilot, '"schema_version"', timeout=15)).split())
        assert "repository unreachable: repository unreachable" not in text
        assert "repository unreachable: connection refused" in text
        quitting = time.monotonic()
        await pilot.press("q")
        await wait_for(pilot, lambda: not tui.is_running, timeout=5, what="the app to exit")
        assert time.monotonic() - quitting < 2


@pytest.mark.integration
async def test_x_cancels_a_slow_load_and_r_reads_again(app: App) -> None:
    app.cli("backup", check=True)
    tui = tui_for(app, SlowListing)
    async with tui.run_test(size=(80, 24)) as pilot:
        await wait_for(
            pilot,
            lambda: any(s.children for s in list(tui.read_scopes)),
            what="the loading listing",
        )
        await wait_for_text(pilot, "x Cancel", timeout=5)  # the footer offers it while loading
        await pilot.press("x")
        text = await wait_for_text(pilot, "unknown: cancelled", timeout=5)
        assert "loading" not in text
        await pilot.press("r")
        text = await wait_for_text(pilot, "Latest database  FRESH", timeout=30)
        await idle(pilot)
        assert "x Cancel" not in screen_text(tui)


@pytest.mark.integration
async def test_q_quits_within_two_seconds_while_loading(app: App) -> None:
    tui = tui_for(app, SlowListing)
    async with tui.run_test(size=(80, 24)) as pilot:
        await wait_for(
            pilot,
            lambda: any(s.children for s in list(tui.read_scopes)),
            what="the loading listing",
        )
        children = [child for scope in list(tui.read_scopes) for child in scope.children]
        started = time.monotonic()
        await pilot.press("q")
        await wait_for(pilot, lambda: not tui.is_running, timeout=5, what="the app to exit")
        assert time.monotonic() - started < 2
    assert all(child.poll() is not None for child in children)


async def test_app_keys_answer_from_the_tab_bar_and_escape_leaves_a_field(tmp_path: Path) -> None:
    tui = fixed_app(tmp_path)
    async with tui.run_test(size=(80, 24)) as pilot:
        await idle(pilot)
        tui.query_one(Tabs).focus()
        await pilot.press("s")
        assert tui.query_one("#tabs").active == "snapshots"  # type: ignore[attr-defined]
        listings: list[int] = []
        listing = tui.backend.snapshots
        tui.backend.snapshots = lambda: listings.append(1) or listing()  # type: ignore[method-assign]
        tui.query_one(Tabs).focus()
        await pilot.press("r")
        await idle(pilot)
        assert listings == [1]
        await pilot.press("e")
        await wait_for_text(pilot, '"schema_version": 1')
        await pilot.press("w")
        assert isinstance(tui.focused, Input)
        await pilot.press("o")  # typed into the field, not a key of the app
        assert tui.query_one("#tabs").active == "evidence"  # type: ignore[attr-defined]
        await pilot.press("escape")
        assert not isinstance(tui.focused, Input)
        await pilot.press("o")
        assert tui.query_one("#tabs").active == "overview"  # type: ignore[attr-defined]


async def test_each_tab_opens_on_its_first_control(tmp_path: Path) -> None:
    tui = fixed_app(tmp_path)
    async with tui.run_test(size=(80, 24)) as pilot:
        await idle(pilot)
        await pilot.press("s")
        assert isinstance(tui.focused, DataTable)
        await pilot.press("d")
        assert isinstance(tui.focused, RadioSet)  # the wizard's first step, not its container


async def test_help_and_palette_offer_the_apps_commands(tmp_path: Path) -> None:
    tui = fixed_app(tmp_path)
    async with tui.run_test(size=(80, 24)) as pilot:
        await idle(pilot)
        await pilot.press("question_mark")
        text = await wait_for_text(pilot, "back up now")
        for key in ("o s e d", "ctrl+o", "escape", "cancel the running operation"):
            assert key in text
        await pilot.press("escape")
        await pilot.press("ctrl+o")
        await pilot.pause(0.3)
        await pilot.press("b", "a", "c", "k")
        await wait_for_text(pilot, "Back up now", timeout=5)
        await pilot.press("escape")
        await pilot.press("ctrl+o")
        await pilot.pause(0.3)
        await pilot.press(*"evidence")
        await wait_for_text(pilot, "Save evidence to a file", timeout=5)
        await pilot.press("escape", "escape")
        await pilot.press("question_mark")
        await wait_for_text(pilot, "keys (escape closes)")
        await pilot.press("q")  # q quits from the help screen too
        await wait_for(pilot, lambda: not tui.is_running, timeout=5, what="the app to exit")


async def test_ages_tick_and_a_left_open_app_turns_stale(tmp_path: Path) -> None:
    now = [NOW]
    tui = fixed_app(tmp_path)
    tui.clock = lambda: now[0]
    async with tui.run_test(size=(100, 30)) as pilot:
        text = await wait_for_text(pilot, "Latest database  FRESH")
        await pilot.press("s")
        await idle(pilot)
        now[0] = NOW + timedelta(days=2)
        tui.tick()  # what the app's interval timer calls every 15 s
        await pilot.pause(0.2)
        table = tui.query_one("#snapshots-table", DataTable)
        ages = [str(table.get_row_at(row)[1]) for row in range(table.row_count)]
        assert ages[0] == "2d 8h ago", ages
        detail = screen_text(tui)
        assert "(2d 8h ago)" in detail  # the list and the detail agree
        await pilot.press("o")
        text = await wait_for_text(pilot, "Latest database  STALE")
        assert "FRESH" not in text


async def test_80x24_shows_every_safety_flag_whole_and_the_database_name(tmp_path: Path) -> None:
    tui = fixed_app(tmp_path, KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE="true")
    async with tui.run_test(size=(80, 24)) as pilot:
        text = await wait_for_text(pilot, "Safety flags")
        for flag in (
            "ALLOW_RESTORE=false",
            "ALLOW_PRODUCTION_RESTORE=true",
            "ALLOW_IN_PLACE_FILE_RESTORE=false",
        ):
            assert flag in text
        assert "shop_production" in text  # the database name survives shortening


async def test_a_chosen_radio_and_a_ticked_checkbox_are_visible_without_colour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    tui = fixed_app(tmp_path)
    async with tui.run_test(size=(100, 34)) as pilot:
        await pilot.press("d")
        await idle(pilot)
        await pilot.press("down", "down")  # database and files: the "mix runs" box shows
        await idle(pilot)
        mix = tui.query_one("#drill-mix", Checkbox)
        for ticked in (False, True):
            mix.value = ticked
            await idle(pilot)
            buttons = [*tui.query(RadioButton), mix]
            chosen = [b for b in buttons if b.value]
            assert chosen and len(chosen) < len(buttons)
            for button in buttons:
                style = button.get_component_rich_style("toggle--button")
                assert bool(style.reverse) == button.value, button.id  # not only a colour
            # ... and the glyph itself differs: the screen read as plain text tells them apart.
            text = screen_text(tui)
            assert "▐○▌ database ▐○▌ files ▐●▌ database and files" in " ".join(text.split())
            assert ("▐X▌ mix runs" if ticked else "▐ ▌ mix runs") in text, text


async def test_log_grows_to_most_of_the_screen_and_hides(tmp_path: Path) -> None:
    tui = fixed_app(tmp_path)
    async with tui.run_test(size=(80, 24)) as pilot:
        await idle(pilot)
        log = tui.query_one("#log")
        small = log.size.height
        await pilot.press("l")
        await pilot.pause(0.1)
        assert log.size.height >= 15 > small
        await pilot.press("l")
        await pilot.pause(0.1)
        assert not log.display


async def test_file_tree_takes_focus_directly_and_has_room_at_80x24(tmp_path: Path) -> None:
    tui = fixed_app(tmp_path)
    async with tui.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await idle(pilot)
        await pilot.press("v")  # from the run's database row to its files snapshot's tree
        tree = tui.query_one("#snapshot-files", Tree)
        assert tui.focused is tree
        await pilot.press("down", "enter")
        await wait_for_text(pilot, "README")
        assert tree.size.height >= 8
        text = screen_text(tui)
        assert "2b/" in text and "9f/" in text


async def test_evidence_save_is_labelled_defaults_to_the_state_dir_and_errors_beside(
    tmp_path: Path,
) -> None:
    tui = fixed_app(tmp_path)
    async with tui.run_test(size=(80, 24)) as pilot:
        await pilot.press("e")
        await wait_for_text(pilot, '"schema_version": 1')
        await pilot.press("w")
        text = screen_text(tui)
        assert "Save to:" in text and "enter: save" in text and "escape: cancel" in text
        field = tui.query_one("#evidence-path", Input)
        assert Path(field.value).parent == tui.settings.state_dir
        Path(field.value).parent.mkdir(parents=True, exist_ok=True)
        Path(field.value).write_text("{}")
        await pilot.press("enter")
        text = await wait_for_text(pilot, "exists; choose another name")
        assert "Save to:" in text  # the error does not cover the field
        await pilot.press("escape")
        assert not tui.query_one("#evidence-save").display


@pytest.mark.integration
async def test_a_cancelled_drill_says_cancelled_and_leaves_the_target_as_it_was(
    app: App, tmp_path: Path
) -> None:
    add_bulk(app.db, 20000, 4000)  # ~80 MB, so the restore is still streaming when x arrives
    app.cli("backup", check=True)
    restore_db = tmp_path / "scratch" / "restored.sqlite3"
    restore_db.parent.mkdir()
    make_sqlite(restore_db, rows=3)
    before = restore_db.read_bytes()
    tui = tui_for(
        app, KAMAL_BACKUP_ALLOW_RESTORE="true", RESTORE_SQLITE_DATABASE_PATH=str(restore_db)
    )
    async with tui.run_test(size=(220, 60)) as pilot:
        await pilot.press("d")
        await wait_for_text(pilot, "latest: ")
        await pilot.click("#kind-database")
        confirm = tui.query_one("#drill-confirm", Input)
        confirm.value = "shop"
        confirm.focus()
        await pilot.pause(0.2)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: tui.operation_scope is not None, what="the drill")
        scope = tui.operation_scope
        assert scope is not None
        assert not isinstance(tui.focused, Input)  # x now cancels instead of typing an x
        await wait_for(pilot, lambda: bool(scope.children), what="restic dump")
        await pilot.press("x")
        await wait_for(pilot, lambda: tui.operation is None, timeout=30, what="the cancel")
        text = " ".join((await wait_for_text(pilot, "drill cancelled")).split())
        assert "the target file is as it was" in text
        assert "drill failed" not in text
    assert restore_db.read_bytes() == before
    assert [p.name for p in restore_db.parent.iterdir()] == ["restored.sqlite3"]


async def test_the_drill_kind_follows_the_arrow_keys(tmp_path: Path) -> None:
    tui = fixed_app(tmp_path)
    async with tui.run_test(size=(100, 30)) as pilot:
        await idle(pilot)
        await pilot.press("d")
        assert isinstance(tui.focused, RadioSet)
        view = tui.query_one("#drill-view")
        await pilot.press("down")
        await idle(pilot)
        assert tui.query_one("#kind-files", RadioButton).value
        assert view.kinds == ("files",)  # type: ignore[attr-defined]
        await pilot.press("down")
        await idle(pilot)
        assert view.kinds == ("database", "files")  # type: ignore[attr-defined]
        await pilot.press("up")
        await pilot.press("up")
        await idle(pilot)
        await pilot.pause(0.1)
        assert tui.query_one("#kind-database", RadioButton).value
        assert view.kinds == ("database",)  # type: ignore[attr-defined]


class HeldDrill(FixedBackend):
    """The fixed drill, held until the test releases it, so the footer can be read meanwhile."""

    release = threading.Event()

    def drill(self, *args: Any, **kwargs: Any) -> DrillRecord:
        self.release.wait(10)
        return super().drill(*args, **kwargs)


async def test_during_a_drill_the_footer_offers_cancel_and_not_start(tmp_path: Path) -> None:
    tui = fixed_app(
        tmp_path,
        HeldDrill,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        RESTORE_DATABASE_URL="postgres://drill:pw@127.0.0.1:5432/shop_drill",
    )
    HeldDrill.release.clear()
    async with tui.run_test(size=(120, 30)) as pilot:
        await idle(pilot)
        await pilot.press("d")
        await idle(pilot)
        assert "Start drill" in screen_text(tui)
        tui.query_one("#drill-confirm", Input).focus()
        await pilot.press(*"shop", "enter")  # Enter in the confirm field starts the drill
        await wait_for(pilot, lambda: tui.operation is not None, what="the drill")
        await pilot.pause(0.2)
        footer = screen_text(tui).splitlines()[-1]
        assert "Cancel" in footer and "Start drill" not in footer, footer
        HeldDrill.release.set()
        await wait_for(pilot, lambda: tui.operation is None, what="the drill's end")
        # The footer is drawn again after the operation ends: under load, a moment later.
        await wait_for(
            pilot,
            lambda: "Start drill" in screen_text(tui).splitlines()[-1],
            timeout=10,
            what="Start drill back in the footer",
        )


async def test_the_gates_cannot_judge_when_snapshots_could_not_be_listed(tmp_path: Path) -> None:
    tui = fixed_app(
        tmp_path,
        FailingListing,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        RESTORE_DATABASE_URL="postgres://drill:pw@127.0.0.1:5432/shop_drill",
    )
    async with tui.run_test(size=(120, 40)) as pilot:
        await idle(pilot)
        await pilot.press("d")
        text = " ".join((await wait_for_text(pilot, "cannot list snapshots")).split())
        assert "cannot judge: snapshots could not be listed" in text
        assert "every gate allows this drill" not in text


async def test_the_snapshot_dropdown_names_run_age_size_and_does_not_wrap(tmp_path: Path) -> None:
    tui = fixed_app(tmp_path)
    async with tui.run_test(size=(140, 40)) as pilot:
        await idle(pilot)
        await pilot.press("d")
        await wait_for_text(pilot, "latest: ")
        select = tui.query_one("#drill-run", Select)
        overlay = select.query_one(OptionList)
        prompts = [str(overlay.get_option_at_index(i).prompt) for i in range(overlay.option_count)]
        assert prompts[0].startswith("latest: run 20261126T030000Z"), prompts[0]
        assert "run 20261126T030000Z  11-26 03:00:04  8h 59m ago  175.5 MiB" in prompts[1]
        assert len(set(prompts)) == len(prompts) == 6  # latest and five runs with a database
        select.focus()
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert select.expanded
        overlay.highlighted = 0
        await pilot.press("up")
        assert overlay.highlighted == 0  # stays at the newest, never wraps to the oldest
        overlay.highlighted = overlay.option_count - 1
        await pilot.press("down")
        assert overlay.highlighted == overlay.option_count - 1


async def test_after_a_drill_the_wizard_resets_for_the_next_one(tmp_path: Path) -> None:
    tui = fixed_app(
        tmp_path,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        RESTORE_DATABASE_URL="postgres://drill:pw@127.0.0.1:5432/shop_drill",
    )
    async with tui.run_test(size=(140, 50)) as pilot:
        await idle(pilot)
        await pilot.press("d")
        await wait_for_text(pilot, "latest: ")
        await pilot.press("down", "down")  # database and files
        await idle(pilot)
        mix = tui.query_one("#drill-mix", Checkbox)
        mix.value = True
        await idle(pilot)
        db = tui.query_one("#drill-run", Select)
        files = tui.query_one("#drill-files-run", Select)
        db.value = "20261125T030000Z"
        files.value = "20261123T030000Z"
        tui.query_one("#drill-target", Input).value = "/tmp/elsewhere"
        confirm = tui.query_one("#drill-confirm", Input)
        confirm.focus()
        await pilot.press(*"shop", "enter")
        await wait_for_text(pilot, "drill finished in")
        await idle(pilot)
        view = tui.query_one("#drill-view")
        assert view.kinds == ("database",)  # type: ignore[attr-defined]
        assert tui.query_one("#kind-database", RadioButton).value
        assert not tui.query_one("#kind-both", RadioButton).value
        assert db.value == files.value == "latest"
        assert not mix.value
        assert tui.query_one("#drill-target", Input).value == "/restore/files"
        assert confirm.value == ""
        assert "verification" in screen_text(tui)  # this drill's result stays until the next


async def wait_for_words(pilot: Any, words: str) -> str:
    """Waits for `words` on screen, wherever the screen's edge wraps them."""
    await wait_for(pilot, lambda: words in " ".join(screen_text(pilot.app).split()), what=words)
    return " ".join(screen_text(pilot.app).split())


class RealTargets(FixedBackend):
    """The fixed repository, but the real look at the scratch targets (real server, real files)."""

    drill_targets = Backend.drill_targets


@pytest.mark.integration
async def test_the_drill_says_what_the_targets_hold_now_and_follows_the_choice(
    tmp_path: Path,
) -> None:
    with pg_databases("kb_tui_scratch") as (scratch,):
        psql(f'CREATE DATABASE "{scratch}"')
        psql("CREATE TABLE leftover (id int); CREATE TABLE other (id int)", scratch)
        files = tmp_path / "drill-files"
        (files / "rails" / "storage").mkdir(parents=True)
        (files / "rails" / "storage" / "README").write_text("x" * 1500)
        tui = fixed_app(
            tmp_path,
            RealTargets,
            KAMAL_BACKUP_ALLOW_RESTORE="true",
            RESTORE_DATABASE_URL=f"postgres://postgres:never-shown-9@127.0.0.1:5432/{scratch}",
        )
        async with tui.run_test(size=(140, 50)) as pilot:
            await idle(pilot)
            await pilot.press("d")
            text = await wait_for_words(pilot, f"{scratch} has 2 tables; they will be dropped")
            assert "never-shown-9" not in text
            await pilot.press("down")  # files only: the database's line goes, the files' comes
            await idle(pilot)
            tui.query_one("#drill-target", Input).value = str(files)
            text = await wait_for_words(
                pilot, f"{files} holds 1 file (1.5 KiB); it will be replaced"
            )
            assert "tables" not in text
            tui.query_one("#drill-target", Input).value = str(tmp_path / "new")
            await wait_for_words(pilot, f"{tmp_path / 'new'} does not exist yet; the drill creates")
            await pilot.press("up")  # the database again, after a table was dropped meanwhile
            psql("DROP TABLE other", scratch)
            await pilot.press("r")
            await wait_for_words(pilot, f"{scratch} has 1 table; it will be dropped")


async def test_the_drill_says_when_it_cannot_tell_what_a_target_holds(tmp_path: Path) -> None:
    tui = fixed_app(
        tmp_path,
        RealTargets,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        RESTORE_DATABASE_URL="postgres://drill:never-shown-9@127.0.0.1:9/shop_drill",
    )
    async with tui.run_test(size=(140, 40)) as pilot:
        await idle(pilot)
        await pilot.press("d")
        text = await wait_for_words(pilot, "cannot tell what shop_drill holds")
        assert (
            "cannot tell what shop_drill holds: PostgreSQL at RESTORE_DATABASE_URL: "
            "psql: error: connection to server" in text
        )
        assert "Connection refused" in text and "never-shown-9" not in text


class RecordingDrill(FixedBackend):
    """The fixed drill, remembering which runs the wizard asked for."""

    asked: ClassVar[list[tuple[str, str]]] = []

    def drill(self, kinds: Any, snapshot: str, files_snapshot: str, *args: Any) -> DrillRecord:
        self.asked.append((snapshot, files_snapshot))
        return super().drill(kinds, snapshot, files_snapshot, *args)


async def test_database_and_files_come_from_one_run_unless_mixing_is_switched_on(
    tmp_path: Path,
) -> None:
    tui = fixed_app(
        tmp_path,
        RecordingDrill,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        RESTORE_DATABASE_URL="postgres://drill:pw@127.0.0.1:5432/shop_drill",
    )
    RecordingDrill.asked = []
    async with tui.run_test(size=(140, 50)) as pilot:
        await idle(pilot)
        await pilot.press("d")
        await wait_for_text(pilot, "latest: ")
        runs = tui.query_one("#drill-run", Select)

        def choices() -> list[object]:
            return [value for _, value in runs._options]

        assert "20261124T030000Z" in choices()  # database only: that run has its database
        await pilot.press("down", "down")  # database and files: one run for both
        await idle(pilot)
        assert "20261124T030000Z" not in choices()  # ... but no files
        mix = tui.query_one("#drill-mix", Checkbox)
        assert mix.display and not mix.value
        assert not tui.query_one("#drill-files-run-row").display
        runs.value = "20261125T030000Z"
        await idle(pilot)
        text = screen_text(tui)
        assert "restores the database and files of run 20261125T030000Z" in text
        assert "MIXED" not in text
        confirm = tui.query_one("#drill-confirm", Input)
        confirm.value = "shop"
        await pilot.press("ctrl+r")
        await wait_for_text(pilot, "drill finished in")
        assert RecordingDrill.asked == [("20261125T030000Z", "20261125T030000Z")]

        await pilot.press("down", "down")  # the wizard reset after the drill
        await idle(pilot)
        mix.value = True  # an explicit switch ...
        await idle(pilot)
        assert tui.query_one("#drill-files-run-row").display
        runs.value = "20261125T030000Z"
        tui.query_one("#drill-files-run", Select).value = "20261123T030000Z"
        await idle(pilot)
        text = " ".join(screen_text(tui).split())
        # ... and the confirmation says so plainly.
        assert (
            "⚠ MIXED RUNS: the database of run 20261125T030000Z, the files of run "
            "20261123T030000Z; they were not backed up together"
        ) in text
        confirm.value = "shop"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(RecordingDrill.asked) == 2, what="the second drill")
        assert RecordingDrill.asked[1] == ("20261125T030000Z", "20261123T030000Z")
