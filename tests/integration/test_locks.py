"""One operation per app at a time; stale restic locks; the hint for a locked repository."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import App, add_bulk, start_until

pytestmark = pytest.mark.integration


@contextmanager
def slow_backup(app: App) -> Iterator[subprocess.Popen[str]]:
    """A backup that is busy inside its database dump while the block runs."""
    add_bulk(app.db, 300000)
    proc = start_until(app, "backing up sqlite database")
    try:
        yield proc
    finally:
        proc.communicate(timeout=120)


def test_a_second_backup_or_a_restore_does_not_start_while_a_backup_runs(app: App) -> None:
    app.cli("backup", check=True)
    with slow_backup(app) as first:
        second = app.cli("backup")
        restore = app.cli(
            "restore-db",
            extra={
                "KAMAL_BACKUP_ALLOW_RESTORE": "true",
                "RESTORE_SQLITE_DATABASE_PATH": str(app.root / "r.sqlite3"),
            },
        )
    assert first.returncode == 0
    assert second.returncode == 1
    assert (
        f"another kamal-backup operation is running (backup pid {first.pid}); backup did not start"
        in second.stderr
    )
    assert restore.returncode == 1 and "restore-db did not start" in restore.stderr
    assert not (app.root / "r.sqlite3").exists()
    assert len(json.loads(app.cli("list", "--json", check=True).stdout)) == 4  # two runs, no more


def _restic(app: App, *args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RESTIC_REPOSITORY": str(app.repo),
        "RESTIC_PASSWORD": app.env["RESTIC_PASSWORD"],
    }
    return subprocess.Popen(["restic", *args], env=env, **kwargs)  # type: ignore[call-overload]


def _locks(app: App) -> list[str]:
    return app.restic("list", "locks", "--no-lock").stdout.split()


def _holding_a_lock(app: App) -> subprocess.Popen[bytes]:
    """A live restic backup that waits on stdin, holding its (shared) repository lock."""
    holder = _restic(
        app,
        "backup",
        "--stdin",
        "--stdin-filename",
        "held",
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not _locks(app) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _locks(app), "restic did not take its lock"
    return holder


def test_a_locked_repository_gets_a_hint_to_run_unlock(app: App) -> None:
    app.cli("backup", check=True)
    holder = _holding_a_lock(app)
    try:
        # Only RESTIC_KEEP_LAST=1 and no kept-good runs: retention must remove the first run, so
        # its forget meets the lock (retention decides first and runs no forget that would
        # remove nothing, issue 14).
        only_last = {f"RESTIC_KEEP_{k}": "0" for k in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")}
        result = app.cli(
            "backup",
            extra={
                **only_last,
                "KAMAL_BACKUP_RETRY_LOCK": "1s",
                "RESTIC_KEEP_LAST": "1",
                "KAMAL_BACKUP_KEEP_GOOD": "0",
            },
        )
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    assert "retention failed" in result.stderr and "locked" in result.stderr
    assert "kamal-backup unlock" in result.stderr


def test_unlock_removes_a_stale_lock_left_by_a_killed_restic(app: App) -> None:
    app.cli("backup", check=True)
    holder = _holding_a_lock(app)
    holder.kill()  # SIGKILL: restic cannot remove its lock
    holder.wait()
    assert len(_locks(app)) == 1
    app.cli("unlock", check=True)
    assert _locks(app) == []
    run = json.loads(app.cli("backup", "--json", check=True).stdout)
    assert run["status"] == "success"
