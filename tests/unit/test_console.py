"""Terminal progress: the two halves of a backup show as two bars at once (issue 14)."""

from __future__ import annotations

import io
import threading

import pytest
from rich.console import Console

from kamal_backup import console
from kamal_backup.models import ResticStatus


def test_both_halves_show_as_two_bars_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(
        console, "stderr", Console(file=out, force_terminal=True, width=100, color_system=None)
    )
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


def test_no_bars_in_container_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "stderr", Console(file=io.StringIO(), force_terminal=False))
    with console.live_progress() as update:
        assert update is None
