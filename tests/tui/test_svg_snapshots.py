"""SVG snapshots of each screen from fixed data (update with: pytest --snapshot-update)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, RichLog, Tree

from tests.tui.fixed import fixed_app
from tests.tui.screen import idle

Before = Callable[[Pilot[Any]], Awaitable[None]]


def keys(*pressed: str) -> Before:
    async def run_before(pilot: Pilot[Any]) -> None:
        await idle(pilot)
        for key in pressed:
            await pilot.press(key)
            await idle(pilot)

    return run_before


def test_overview(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(fixed_app(tmp_path), run_before=keys(), terminal_size=(80, 24))


def test_overview_wide(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(fixed_app(tmp_path), run_before=keys(), terminal_size=(120, 34))


def test_snapshots(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(fixed_app(tmp_path), run_before=keys("s"), terminal_size=(80, 24))


def test_snapshots_file_tree(snap_compare: Any, tmp_path: Path) -> None:
    async def open_tree(pilot: Pilot[Any]) -> None:
        await keys("s", "t", "t")(pilot)
        tree = pilot.app.query_one("#snapshot-files", Tree)
        tree.root.children[0].expand()
        await idle(pilot)

    assert snap_compare(fixed_app(tmp_path), run_before=open_tree, terminal_size=(120, 34))


def test_snapshots_file_tree_at_80x24(snap_compare: Any, tmp_path: Path) -> None:
    """v from the list: the tree has the pane, the details step aside."""

    async def browse(pilot: Pilot[Any]) -> None:
        await keys("s", "v", "down", "enter")(pilot)

    assert snap_compare(fixed_app(tmp_path), run_before=browse, terminal_size=(80, 24))


def test_help(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(
        fixed_app(tmp_path), run_before=keys("question_mark"), terminal_size=(80, 24)
    )


def test_large_log(snap_compare: Any, tmp_path: Path) -> None:
    async def log_lines(pilot: Pilot[Any]) -> None:
        await idle(pilot)
        log = pilot.app.query_one("#log", RichLog)
        log.write("12:00:00 ERROR backup failed: database backup: pg_dump: error: connection")
        log.write("to server at db.internal failed: FATAL: password authentication failed")
        await keys("l")(pilot)

    assert snap_compare(fixed_app(tmp_path), run_before=log_lines, terminal_size=(80, 24))


def test_evidence_save(snap_compare: Any, tmp_path: Path) -> None:
    async def ask(pilot: Pilot[Any]) -> None:
        await keys("e", "w")(pilot)
        # The offered path is in the (temporary) state directory: fixed here for the image.
        field = pilot.app.query_one("#evidence-path", Input)
        field.cursor_blink = False
        field.value = "/state/evidence-shop.json"
        field.action_end()
        await idle(pilot)

    assert snap_compare(fixed_app(tmp_path), run_before=ask, terminal_size=(80, 24))


def test_evidence(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(fixed_app(tmp_path), run_before=keys("e"), terminal_size=(80, 24))


def test_drill_refused(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(fixed_app(tmp_path), run_before=keys("d"), terminal_size=(100, 34))


def test_drill_allowed(snap_compare: Any, tmp_path: Path) -> None:
    app = fixed_app(
        tmp_path,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        RESTORE_DATABASE_URL="postgres://drill:pw@127.0.0.1:5432/shop_drill",
    )

    async def confirm(pilot: Pilot[Any]) -> None:
        await keys("d")(pilot)
        pilot.app.query_one("#drill-confirm", Input).value = "shop"
        await idle(pilot)

    assert snap_compare(app, run_before=confirm, terminal_size=(100, 34))


def test_drill_result(snap_compare: Any, tmp_path: Path) -> None:
    """After the drill: what was restored, the verification table, RTO and RPO."""
    app = fixed_app(
        tmp_path,
        KAMAL_BACKUP_ALLOW_RESTORE="true",
        RESTORE_DATABASE_URL="postgres://drill:pw@127.0.0.1:5432/shop_drill",
    )

    async def run_drill(pilot: Pilot[Any]) -> None:
        await keys("d")(pilot)
        await pilot.click("#kind-both")
        pilot.app.query_one("#drill-confirm", Input).value = "shop"
        await idle(pilot)
        await pilot.press("ctrl+r")
        await pilot.app.workers.wait_for_complete()
        await idle(pilot)
        pilot.app.query_one("#drill-view").scroll_end(animate=False)
        await idle(pilot)

    assert snap_compare(app, run_before=run_drill, terminal_size=(110, 40))


SECRETS_ENV = {
    "KAMAL_BACKUP_ALLOW_RESTORE": "true",
    "RESTORE_DATABASE_URL": "postgres://drill:drill-pass-5521@127.0.0.1:5432/shop_drill",
}


def secrets_of(tmp_path: Path) -> list[str]:
    from tests.tui.fixed import fixed_env

    return [
        value
        for name, value in fixed_env(tmp_path).items()
        if any(word in name for word in ("PASSWORD", "SECRET", "KEY_ID", "TOKEN"))
    ] + ["s3cret-db-pass", "drill-pass-5521", "never-shown-uuid", "never-shown-topic"]


async def test_no_secret_reaches_any_screen(tmp_path: Path) -> None:
    from tests.tui.screen import screen_text

    app = fixed_app(tmp_path, **SECRETS_ENV)
    secrets = secrets_of(tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        for key in ("o", "e", "d"):
            await pilot.press(key)
            await idle(pilot)
            if key == "e":
                await app.workers.wait_for_complete()
                await idle(pilot)
            text = screen_text(app)
            # Each of these screens shows a credential-bearing value (the source URL, the
            # evidence's database_source, the restore target), so the mask must be there.
            assert "[REDACTED]" in text, f"nothing redacted on the {key} screen"
            for secret in secrets:
                assert secret not in text, f"{secret!r} on the {key} screen"
        evidence = app.query_one("#evidence-view").document  # type: ignore[attr-defined]
        assert evidence.database_source.startswith("postgres://shop:[REDACTED]@")
        app.query_one("#drill-confirm", Input).value = "shop"
        await idle(pilot)
        svg = app.export_screenshot()
    for secret in secrets:
        assert secret not in svg


async def test_no_secret_reaches_the_snapshots_screen_from_an_error(tmp_path: Path) -> None:
    from tests.tui.fixed import FailingListing
    from tests.tui.screen import screen_text

    app = fixed_app(tmp_path, backend=FailingListing, **SECRETS_ENV)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("s")
        await app.workers.wait_for_complete()
        await idle(pilot)
        text = screen_text(app)
        assert "cannot list snapshots" in text and "[REDACTED]" in text
        for secret in secrets_of(tmp_path):
            assert secret not in text
