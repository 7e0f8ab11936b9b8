"""Failures end cleanly: no snapshot from a failed or killed dump, redacted errors, prompt shutdown."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from kamal_backup.errors import ResticError
from kamal_backup.services import restic_for
from kamal_backup.settings import load_settings
from tests.conftest import App, add_bulk, sqlite_rows, start_until

pytestmark = pytest.mark.integration


def client(app: App):  # type: ignore[no-untyped-def]
    return restic_for(load_settings(environ=app.env))


@pytest.mark.parametrize(
    "script",
    [
        "head -c 3000000 /dev/urandom; echo 'pg_dump: error: connection refused' >&2; exit 3",
        "head -c 3000000 /dev/urandom; kill -9 $$",
    ],
)
def test_a_dump_command_that_fails_leaves_no_snapshot(app: App, script: str) -> None:
    # What a SIGKILLed kamal-backup leaves: the next dump clears it (no such process any more);
    # a name that is no pid at all (anyone may write in /tmp) is left alone, and breaks nothing.
    dead = subprocess.Popen(["true"])
    dead.wait()
    tmp = Path(tempfile.gettempdir())
    stale = tmp / f"kamal-backup-dump-{dead.pid}-abc123"
    stale.mkdir()
    (stale / "stderr").write_text("pg_dump: killed mid-dump\n")
    odd = tmp / f"kamal-backup-dump-99999999999-{os.getpid()}"
    odd.mkdir()
    with pytest.raises(ResticError) as caught:
        client(app).backup_command(
            ["sh", "-c", script],
            filename="databases-shop-sqlite-x.sqlite3",
            tags=["kamal-backup", "app:shop", "type:database"],
        )
    assert app.snapshot_ids() == []
    # The command's stderr went to a file kamal-backup read (restic's relay of it can lose the
    # last lines when the command fails), and the file is gone.
    assert list(tmp.glob(f"kamal-backup-dump-{os.getpid()}-*")) == []
    assert not stale.exists()
    assert odd.is_dir()
    odd.rmdir()
    if "exit 3" in script:
        assert "pg_dump: error: connection refused" in str(caught.value)
    else:
        assert "killed" in str(caught.value)


def test_a_dump_command_that_is_not_installed_is_named(app: App) -> None:
    with pytest.raises(ResticError) as caught:
        client(app).backup_command(
            ["kb-no-such-dump-tool", "--all"],
            filename="databases-shop-sqlite-x.sqlite3",
            tags=["kamal-backup", "app:shop", "type:database"],
        )
    assert "kb-no-such-dump-tool: not found" in str(caught.value)
    assert app.snapshot_ids() == []


def test_backup_under_concurrent_wal_writes_restores_a_consistent_identical_copy(
    app: App, tmp_path: Path
) -> None:
    with sqlite3.connect(app.db) as db:
        db.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER, pad BLOB)")
        db.execute("CREATE TABLE totals (id INTEGER PRIMARY KEY, total INTEGER)")
        db.execute("INSERT INTO totals VALUES (1, 0)")
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 20000) "
            "INSERT INTO ledger (amount, pad) SELECT 0, randomblob(1000) FROM n"
        )
    db.close()
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"""
import sqlite3, random, time
db = sqlite3.connect({str(app.db)!r}, isolation_level=None, timeout=30)
db.execute("PRAGMA journal_mode=WAL")
deadline = time.time() + 60
while time.time() < deadline:
    amount = random.randint(1, 100)
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO ledger (amount, pad) VALUES (?, randomblob(500))", (amount,))
    db.execute("UPDATE totals SET total = total + ? WHERE id = 1", (amount,))
    db.execute("COMMIT")
""",
        ]
    )
    try:
        time.sleep(0.5)
        run = json.loads(app.cli("backup", "--json", check=True).stdout)
    finally:
        writer.kill()
        writer.wait()
    target = tmp_path / "restore.sqlite3"
    app.cli(
        "restore-db",
        run["database_snapshot"]["id"],
        extra={"KAMAL_BACKUP_ALLOW_RESTORE": "true", "RESTORE_SQLITE_DATABASE_PATH": str(target)},
        check=True,
    )

    restored = sqlite3.connect(target)
    assert restored.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    (total,) = restored.execute("SELECT total FROM totals").fetchone()
    (ledger_sum, last_id) = restored.execute("SELECT sum(amount), max(id) FROM ledger").fetchone()
    assert total == ledger_sum  # one consistent point in time, mid-write
    assert total > 0  # the writer really was writing during the backup
    source = sqlite3.connect(app.db)
    source_rows = source.execute(
        "SELECT id, amount, pad FROM ledger WHERE id <= ? ORDER BY id", (last_id,)
    ).fetchall()
    assert (
        restored.execute("SELECT id, amount, pad FROM ledger ORDER BY id").fetchall() == source_rows
    )
    assert (
        source.execute("SELECT max(id) FROM ledger").fetchone()[0] > last_id
    )  # writes went on after the copy
    assert sqlite_rows(target) == sqlite_rows(app.db)


def test_schedule_stops_promptly_on_sigterm_mid_backup_and_leaves_nothing(
    app: App, tmp_path: Path
) -> None:
    add_bulk(app.db, 250000)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**app.env, "BACKUP_SCHEDULE_SECONDS": "1", "TMPDIR": str(scratch)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kamal_backup", "schedule"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "backing up sqlite database" in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert started.wait(60), "".join(lines)
    time.sleep(1.5)  # inside the dump: the online copy or restic reading it
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=20)
    elapsed = time.monotonic() - sent
    reader.join(5)
    log = "".join(lines)
    assert code == 0, log
    assert elapsed < 10, log
    assert "received SIGTERM" in log and "scheduler stopped" in log
    assert "Traceback" not in log
    assert app.snapshot_ids("type:database") == [], log  # the interrupted run left no snapshot
    assert list(scratch.iterdir()) == []  # the private dump copy is gone
    leftovers = subprocess.run(
        ["pgrep", "-f", str(app.repo)], capture_output=True, text=True
    ).stdout
    assert leftovers == ""
    state = json.loads(
        (Path(app.env["KAMAL_BACKUP_STATE_DIR"]) / "shop" / "last_backup.json").read_text()
    )
    assert state["status"] == "interrupted"


def test_sigint_to_a_manual_backup_exits_130(app: App) -> None:
    add_bulk(app.db, 150000)
    proc = start_until(app, "backing up sqlite database")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=20)
    rest = proc.stderr.read()
    assert code == 130, rest
    assert rest.strip().splitlines()[-1] == "kamal-backup: error: interrupted"
    assert app.snapshot_ids("type:database") == []  # the file half may have finished (issue 14)


def test_too_old_restic_is_named(app: App, tmp_path: Path) -> None:
    old = Path(__file__).resolve().parents[2] / ".tools" / "restic-0.14" / "restic"
    if not old.is_file():
        pytest.fail("bin/bootstrap installs Debian bookworm's restic 0.14 for this test")
    shim = tmp_path / "oldbin"
    shim.mkdir()
    (shim / "restic").symlink_to(old)
    result = app.cli("backup", extra={"PATH": f"{shim}:{os.environ['PATH']}"})
    assert result.returncode == 1
    assert "restic 0.14.0 is too old: kamal-backup needs restic >= 0.17.0" in result.stderr
    assert app.snapshot_ids() == []


def _kill_when(
    app: App, marker: str, env: dict[str, str] | None = None, delay: float = 0.7
) -> tuple[int, str]:
    """Starts `backup`, SIGKILLs kamal-backup itself once `marker` is logged; (exit code, log)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kamal_backup", "backup"],
        env=env or app.env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            break
    time.sleep(delay)
    proc.kill()
    proc.wait(timeout=20)
    return proc.returncode, "".join(seen)


def _orphans(app: App) -> str:
    time.sleep(1.0)  # the kernel delivers the parent-death signal asynchronously
    return subprocess.run(["pgrep", "-af", str(app.root)], capture_output=True, text=True).stdout


def test_sigkill_during_the_database_dump_leaves_no_snapshot_and_no_orphans(app: App) -> None:
    add_bulk(app.db, 300000)
    code, log = _kill_when(app, "backing up sqlite database", delay=2.5)
    assert code == -9, log
    assert _orphans(app) == ""  # restic and the dump died with kamal-backup
    assert app.snapshot_ids("type:database") == []  # the file half may have finished (issue 14)
    run = json.loads(app.cli("backup", "--json", check=True).stdout)  # the next backup succeeds
    assert run["status"] == "success"


def test_sigkill_during_the_file_backup_is_not_reported_as_a_backup(
    app: App, tmp_path: Path
) -> None:
    first = json.loads(app.cli("backup", "--json", check=True).stdout)
    for i in range(40):
        (app.files / f"big-{i}.bin").write_bytes(os.urandom(2_000_000))
    # The halves run at once (issue 14): kill once the dump is saved, the files still going.
    code, log = _kill_when(app, "database snapshot", delay=0.0)
    assert code == -9, log
    assert _orphans(app) == ""
    files = app.snapshot_ids("type:files")
    databases = app.snapshot_ids("type:database")
    assert files == [first["files_snapshot"]["id"]]  # the killed file backup saved nothing
    assert len(databases) == 2  # the interrupted run's dump exists ...
    evidence = json.loads(app.cli("evidence", check=True).stdout)
    # ... but the latest backup is still the complete first run, and the partial one is named
    assert evidence["latest_database_snapshot"]["id"] == first["database_snapshot"]["id"]
    assert evidence["latest_files_snapshot"]["id"] == first["files_snapshot"]["id"]
    assert len(evidence["incomplete_runs"]) == 1
    target = tmp_path / "r.sqlite3"
    restored = json.loads(
        app.cli(
            "restore-db",
            "latest",
            "--json",
            extra={
                "KAMAL_BACKUP_ALLOW_RESTORE": "true",
                "RESTORE_SQLITE_DATABASE_PATH": str(target),
            },
            check=True,
        ).stdout
    )
    assert restored["snapshot"]["id"] == first["database_snapshot"]["id"]
    second = json.loads(app.cli("backup", "--json", check=True).stdout)
    assert second["status"] == "success"
