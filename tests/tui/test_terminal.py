"""`kamal-backup tui` in a real terminal: tmux with TERM=xterm, keys sent, the screen read back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RESTIC_PASSWORD, App, add_bulk
from tests.restic_keys import production_cost_keys

pytestmark = pytest.mark.integration


class Terminal:
    def __init__(self, socket: str, config: Path) -> None:
        self.base = ["tmux", "-L", socket, "-f", str(config)]

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, *args],
            capture_output=True,
            text=True,
            check=check,
            env={"PATH": os.environ["PATH"], "TERM": "xterm", "HOME": os.environ.get("HOME", "/")},
        )

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "kb").stdout

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the terminal shows:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "kb", *keys)

    def running(self) -> bool:
        return self.tmux("has-session", "-t", "kb", check=False).returncode == 0


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not on PATH: run bin/test, which installs it")
    config = tmp_path / "tmux.conf"
    # TERM=xterm inside the pane, as `docker exec -it` gives: 16 colours, no COLORTERM.
    config.write_text('set -g default-terminal "xterm"\nset -g remain-on-exit off\n')
    term = Terminal(f"kamal-backup-test-{os.getpid()}-{tmp_path.name}", config)
    try:
        yield term
    finally:
        term.tmux("kill-server", check=False)


def test_tui_runs_in_a_real_terminal(app: App, terminal: Terminal) -> None:
    app.cli("backup", check=True)
    env_args = [arg for key, value in app.env.items() for arg in ("-e", f"{key}={value}")]
    terminal.tmux(
        "new-session", "-d", "-s", "kb", "-x", "100", "-y", "30", *env_args,
        "--", sys.executable, "-m", "kamal_backup", "tui",
    )  # fmt: skip
    screen = terminal.wait_for("Latest files     FRESH")
    assert "Latest database  FRESH" in screen
    assert "outcomes" in screen and "✔ success" in screen  # the charts, in the colour check below

    # TERM=xterm without COLORTERM: the app draws in the 16 ANSI colours only.
    styled = terminal.tmux("capture-pane", "-p", "-e", "-t", "kb").stdout
    assert "\x1b[" in styled
    for deep in ("38;2;", "48;2;", "38;5;", "48;5;"):
        assert deep not in styled, f"{deep!r}: more than 16 colours under TERM=xterm"

    terminal.keys("s")
    screen = terminal.wait_for("2 of 2 snapshots in 1 runs")
    assert "database" in screen and "files" in screen

    terminal.keys("d")
    screen = terminal.wait_for("REFUSED")
    assert "KAMAL_BACKUP_ALLOW_RESTORE=false" in screen

    terminal.keys("e")
    terminal.wait_for('"schema_version": 1')
    assert RESTIC_PASSWORD not in terminal.screen()

    terminal.keys("q")
    deadline = time.monotonic() + 20
    while terminal.running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not terminal.running(), "q did not quit the app"


def start_tui(terminal: Terminal, app: App, size: tuple[int, int], **extra: str) -> None:
    env = {**app.env, **extra}
    env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    terminal.tmux(
        "new-session", "-d", "-s", "kb", "-x", str(size[0]), "-y", str(size[1]), *env_args,
        "--", sys.executable, "-m", "kamal_backup", "tui",
    )  # fmt: skip


# q quits in seconds, a running operation cancelled first. 2 s was the limit on the machine it was
# set on; the CI machine of 2026-11-28 runs the same Python start-up and shutdown about twice as
# slowly (the baseline tree's `--help`: 286 ms on the first, 636 ms on the second), and q during
# a backup took 2.08 s on it. A hang (a worker or a child not stopped) takes far longer.
QUIT_SECONDS = 3.5


def quit_within(terminal: Terminal, seconds: float) -> float:
    """Seconds from q until the app's process is gone (a hang shows as over `seconds`)."""
    started = time.monotonic()
    terminal.keys("q")
    while terminal.running() and time.monotonic() - started < seconds + 10:
        time.sleep(0.05)
    assert not terminal.running(), "q did not quit the app"
    return time.monotonic() - started


def test_80x24_shows_the_safety_flags_and_help_and_palette_find_back_up(
    app: App, terminal: Terminal
) -> None:
    start_tui(terminal, app, (80, 24))
    screen = terminal.wait_for("no complete backup run yet")
    for flag in ("ALLOW_RESTORE=false", "ALLOW_PRODUCTION_RESTORE=false", "ALLOW_IN_PLACE_FILE"):
        assert flag in screen

    terminal.keys("?")
    screen = terminal.wait_for("keys (escape closes)")
    assert "back up now" in screen
    terminal.keys("Escape")
    deadline = time.monotonic() + 5
    while "keys (escape closes)" in terminal.screen() and time.monotonic() < deadline:
        time.sleep(0.1)
    terminal.tmux("send-keys", "-t", "kb", "C-o")
    terminal.wait_for("Search for commands")
    terminal.keys("b", "a", "c", "k")
    # The search has run once the query shows and the full list is gone ("Back up now" alone
    # would match the unfiltered list too).
    screen = terminal.wait_for("🔎 back")
    deadline = time.monotonic() + 10
    while "Quit the application" in screen and time.monotonic() < deadline:
        time.sleep(0.2)
        screen = terminal.screen()
    assert "Back up now" in screen and "Quit the application" not in screen, screen
    # Escape until the palette is gone: a q typed into its search would not quit.
    deadline = time.monotonic() + 10
    while "🔎" in terminal.screen() and time.monotonic() < deadline:
        terminal.keys("Escape")
        time.sleep(0.5)
    assert "🔎" not in terminal.screen()
    time.sleep(1)  # a key right behind an escape can be read as alt+key
    assert quit_within(terminal, QUIT_SECONDS) < QUIT_SECONDS


def test_an_unreachable_repository_shows_in_seconds_and_q_quits(
    app: App, terminal: Terminal
) -> None:
    started = time.monotonic()
    start_tui(terminal, app, (100, 30), RESTIC_REPOSITORY="rest:http://127.0.0.1:9/shop")
    screen = terminal.wait_for("repository unreachable: connection refused", timeout=15)
    assert time.monotonic() - started < 15
    assert "[REDACTED]" not in screen
    assert quit_within(terminal, QUIT_SECONDS) < QUIT_SECONDS


def test_after_cancelling_a_backup_r_shows_the_snapshots_again(
    app: App, terminal: Terminal
) -> None:
    app.cli("backup", check=True)
    add_bulk(app.db, 20, 4_000_000)  # ~80 MB: the next backup is still streaming when x arrives
    production_cost_keys(app.repo, RESTIC_PASSWORD)  # each restic opens the repository slowly
    start_tui(terminal, app, (100, 30))
    terminal.wait_for("Latest files     FRESH")
    terminal.keys("b")
    terminal.wait_for("backing up the database")
    terminal.keys("x")
    screen = terminal.wait_for("backup cancelled", timeout=30)
    assert "backup failed" not in screen
    terminal.keys("r")
    time.sleep(0.5)
    terminal.keys("s")
    # Either half of the cancelled run may have finished before the cancel (the halves run at
    # once, issue 14): whatever it saved is listed, and the listing itself works.
    screen = terminal.wait_for("snapshots in")
    assert any(f"{n} of {n} snapshots in" in screen for n in (2, 3, 4)), screen
    assert "cannot list snapshots" not in screen
    terminal.keys("o")
    screen = terminal.wait_for("Latest database  FRESH")
    assert "unknown: interrupted" not in screen
    terminal.keys("b")  # and q during a backup: cancelled, and the app gone in seconds
    terminal.wait_for("backing up the database")
    assert quit_within(terminal, QUIT_SECONDS) < QUIT_SECONDS
    leftover = subprocess.run(["pgrep", "-f", str(app.repo)], capture_output=True, text=True)
    assert leftover.stdout.split() == []
