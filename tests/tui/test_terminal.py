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

from tests.conftest import RESTIC_PASSWORD, App

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
