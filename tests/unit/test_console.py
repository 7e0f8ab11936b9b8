"""Terminal progress: the two halves of a backup show as two bars at once (issue 14)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading

import pytest
from rich.console import Console

from kamal_backup import console
from kamal_backup.models import ResticStatus


def terminal(monkeypatch: pytest.MonkeyPatch, width: int = 100) -> io.StringIO:
    """kamal-backup's stderr as a terminal of `width` columns; what is drawn on it."""
    out = io.StringIO()
    monkeypatch.setattr(
        console, "stderr", Console(file=out, force_terminal=True, width=width, color_system=None)
    )
    return out


def test_both_halves_show_as_two_bars_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    out = terminal(monkeypatch)
    with console.live_progress() as update:
        assert update is not None
        halves = [
            threading.Thread(target=update, args=("database", ResticStatus(bytes_done=1 << 20))),
            threading.Thread(
                target=update,
                args=("files", ResticStatus(total_bytes=4 << 20, bytes_done=1 << 20)),
            ),
        ]
        for thread in halves:
            thread.start()
        for thread in halves:
            thread.join()
    frames = out.getvalue()
    # The last frame drawn before the transient display is cleared holds both bars.
    assert any("database" in frame and "files" in frame for frame in frames.split("\x1b[2K"))
    assert "25%" in frames  # the file bar knows its total


def test_a_log_line_while_bars_show_is_printed_above_them_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A drill logs while its bars show: each line goes through the console drawing them,
    whole, not into the middle of a bar's line."""
    import logging

    out = terminal(monkeypatch, width=200)
    with console.preserved_logging():
        console.setup_logging()
        with console.live_progress() as update:
            assert update is not None
            update("database", ResticStatus(total_bytes=4 << 20, bytes_done=4 << 20))
            logging.getLogger("kamal_backup.drill").info("database restored in 2.2s")
    lines = out.getvalue().replace("\r", "\n").split("\n")
    assert any(line.endswith(" INFO database restored in 2.2s") for line in lines), lines


def test_no_bars_in_container_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "stderr", Console(file=io.StringIO(), force_terminal=False))
    with console.live_progress() as update:
        assert update is None


def test_list_fits_80_columns_and_keeps_what_restore_commands_need() -> None:
    from datetime import UTC, datetime

    from kamal_backup.cli import snapshot_table
    from kamal_backup.models import Snapshot

    when = datetime(2026, 11, 28, 3, 0, 7, tzinfo=UTC)
    tags = ["kamal-backup", "app:shop", "run:20261128T030007Z"]
    snapshots = [
        Snapshot(
            id="1a2b3c4d" + "0" * 56,
            time=when,
            tags=[*tags, "type:database", "database:primary", "adapter:postgres", "suspicious"],
            paths=["/databases-shop-postgres-20261128T030007Z.pgdump"],
        ),
        Snapshot(
            id="5e6f7a8b" + "0" * 56,
            time=when,
            tags=[*tags, "type:files"],
            paths=["/rails/storage", "/rails/public/uploads"],
        ),
    ]
    for width in (80, 100):
        out = io.StringIO()
        Console(file=out, width=width, color_system=None).print(snapshot_table(snapshots, width))
        lines = out.getvalue().splitlines()
        assert max(len(line) for line in lines) <= width
        text = out.getvalue()
        for whole in ("1a2b3c4d", "5e6f7a8b", "20261128T030007Z", "2026-11-28 03:00"):
            assert whole in text, text
        assert "database primary" in text and "(suspicious)" in text and "files" in text
    wide = io.StringIO()
    Console(file=wide, width=160, color_system=None).print(snapshot_table(snapshots, 160))
    assert "/rails/storage, /rails/public/uploads" in wide.getvalue()
    assert "postgres" in wide.getvalue() and "2026-11-28 03:00:07" in wide.getvalue()


def test_container_logs_need_no_rich() -> None:
    """stderr is a pipe: no bars, and rich is not even imported (a restore's first byte waited
    for it); FORCE_COLOR, which rich reads, still gets the bars."""
    code = (
        "import sys\n"
        "from kamal_backup import console\n"
        "with console.live_progress() as update:\n"
        "    seen = (update is None, 'rich' in sys.modules)\n"
        "print(*seen)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "TTY_COMPATIBLE"}}
    run = [sys.executable, "-c", code]
    plain = subprocess.run(run, env=env, capture_output=True, text=True, check=True)
    assert plain.stdout.split() == ["True", "False"]
    forced = subprocess.run(
        run, env={**env, "FORCE_COLOR": "1"}, capture_output=True, text=True, check=True
    )
    assert forced.stdout.split() == ["False", "True"]


def test_ctrl_c_before_the_commands_handlers_is_said_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Typer answers a KeyboardInterrupt with a silent exit 130 (a fresh-clone CI run saw a
    restore-db interrupted while it loaded end with nothing said): main says it, once."""
    import typer

    from kamal_backup import cli

    interrupted = typer.Typer()

    @interrupted.command()
    def loading() -> None:
        raise KeyboardInterrupt

    @interrupted.command()
    def other() -> None:
        raise typer.Exit(130)

    monkeypatch.setattr(cli, "app", interrupted)
    monkeypatch.setattr(sys, "argv", ["kamal-backup", "loading"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 130
    assert capsys.readouterr().err == "kamal-backup: interrupted\n"

    # Any other exit is left as it was: nothing said.
    monkeypatch.setattr(sys, "argv", ["kamal-backup", "other"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 130
    assert capsys.readouterr().err == ""


def test_a_bar_never_reads_more_done_than_its_total(monkeypatch: pytest.MonkeyPatch) -> None:
    out = terminal(monkeypatch)
    with console.live_progress() as update:
        assert update is not None
        # A small dump passes its estimated total: 48.3 kB done of 8.2 kB expected.
        update("database", ResticStatus(total_bytes=8_200, bytes_done=48_300))
    frames = out.getvalue()
    assert "48.3/48.3 kB" in frames and "8.2 kB" not in frames, frames


def test_the_drills_verifying_status_draws_no_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    from kamal_backup.models import VERIFYING

    out = terminal(monkeypatch)
    with console.live_progress() as update:
        assert update is not None
        update("database", ResticStatus(total_bytes=4 << 20, bytes_done=4 << 20))
        update(VERIFYING, ResticStatus())
    frames = out.getvalue()
    assert "database" in frames and VERIFYING not in frames
