"""restic opens the repository for a dump while kamal-backup still lists snapshots (issue 14):
the backup's comparison manifest and a restore's dump start early, on a guess from the state
directory that the listing confirms or discards. Real restic, real SQLite."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import App
from tests.integration.databases import pg_databases, psql

pytestmark = pytest.mark.integration

ALLOW = {"KAMAL_BACKUP_ALLOW_RESTORE": "true"}
# process.py's debug lines for a process started before the settings (prestart.py).
TAKEN = ": taking the process started ahead"
STOPPED = ": stopping the process started ahead that nothing took"


def timing_restic(app: App) -> Path:
    """A `restic` first on PATH that notes when each command starts and ends (a dump: starts)."""
    real = shutil.which("restic")
    assert real is not None
    bin_dir = app.root / "timing-bin"
    bin_dir.mkdir()
    log = app.root / "restic-times"
    (bin_dir / "restic").write_text(
        "#!/bin/sh\n"
        f'echo "$(date +%s.%N) start $1" >> "{log}"\n'
        # A dump is restic itself (no end line): stopping it is stopping restic, not a shell.
        f'[ "$1" = dump ] && exec "{real}" "$@"\n'
        f'"{real}" "$@"\n'
        "code=$?\n"
        f'echo "$(date +%s.%N) end $1 $code" >> "{log}"\n'
        "exit $code\n"
    )
    (bin_dir / "restic").chmod(0o755)
    app.env["PATH"] = f"{bin_dir}:{app.env['PATH']}"
    return log


def events(log: Path) -> list[tuple[float, str, str, str]]:
    """(time, start|end, command, exit code or '') in order; the log starts afresh."""
    found = []
    for line in log.read_text().splitlines():
        moment, what, command, *code = line.split()
        found.append((float(moment), what, command, "".join(code)))
    log.unlink()
    return found


def started(found: list[tuple[float, str, str, str]]) -> list[str]:
    return sorted(c for _, w, c, _ in found if w == "start")


def when(found: list[tuple[float, str, str, str]], what: str, command: str) -> list[float]:
    return [t for t, w, c, _ in found if w == what and c == command]


def state_file(app: App, name: str) -> Path:
    found = list((app.root / "state").glob(f"*/{name}"))
    assert len(found) == 1, found
    return found[0]


def no_restic_left(app: App) -> None:
    """No restic of this app (its repository or its timing wrapper, both under its root) runs."""
    running = subprocess.run(["pgrep", "-af", "restic"], capture_output=True, text=True).stdout
    assert str(app.root) not in running, running


def test_the_baseline_manifest_is_kept_here_or_read_while_the_halves_run(app: App) -> None:
    app.cli("backup", check=True)
    log = timing_restic(app)
    # The first run kept its manifest's figures in the state directory: the second run's
    # comparison reads them there, with no restic process.
    second = json.loads(app.cli("backup", "--json", check=True).stdout)
    assert second["status"] == "success" and second["baseline_run"] is not None
    assert "dump" not in started(events(log))
    kept = state_file(app, "last_manifest_figures.json")
    assert json.loads(kept.read_text())["manifest"]["run"] == second["run"]

    # Without them (another machine's state, a lost file), one dump, started before the
    # halves' two backups ended and before the listing.
    kept.unlink()
    third = json.loads(app.cli("backup", "--json", check=True).stdout)
    assert third["status"] == "success" and third["baseline_run"] == second["run"]
    found = events(log)
    assert started(found).count("dump") == 1, found
    halves_end = sorted(when(found, "end", "backup"))[1]
    assert when(found, "start", "dump")[0] < halves_end, found
    assert when(found, "start", "dump")[0] < when(found, "start", "snapshots")[0], found

    # A wrong guess (the state names a manifest the repository does not have) costs only its
    # process: the comparison reads the figures the third run kept.
    last_success = state_file(app, "last_success.json")
    record = json.loads(last_success.read_text())
    record["manifest_snapshot"] = "deadbeef"
    last_success.write_text(json.dumps(record))
    fourth = json.loads(app.cli("backup", "--json", check=True).stdout)
    assert fourth["status"] == "success" and fourth["baseline_run"] == third["run"]
    assert started(events(log)).count("dump") == 1
    no_restic_left(app)


def test_a_wrong_guess_waiting_on_its_pipe_does_not_block_tagging_a_suspicious_run(
    app: App,
) -> None:
    # Enough files that a manifest does not fit a pipe buffer: a guessed dump nobody reads
    # waits on its pipe, holding restic's lock, until it is stopped.
    for i in range(1500):
        (app.files / f"upload-{i:04d}-{'x' * 40}.txt").write_text(f"file {i}\n")
    app.cli("backup", check=True)
    older = state_file(app, "last_success.json").read_text()
    app.cli("backup", check=True)
    # The guess is now the first run's manifest; the comparison is with the second run.
    state_file(app, "last_success.json").write_text(older)
    with sqlite3.connect(app.db) as db:
        db.execute("DELETE FROM notes")
    db.close()
    log = timing_restic(app)
    emptied = app.cli("backup", "--json", timeout=120)
    assert emptied.returncode == 1, emptied.stderr
    run = json.loads(emptied.stdout)
    assert run["status"] == "suspicious", run
    found = events(log)
    # The guessed dump only: the comparison reads the figures the second run kept, and finds
    # the emptied table.
    assert started(found).count("dump") == 1, found
    # `restic tag` takes the exclusive lock: the guessed dump was stopped first, so the tag
    # went through at once (exit 0, no `restic unlock`, no wait for the lock).
    assert [code for _, w, c, code in found if w == "end" and c == "tag"] == ["0"], found
    assert "unlock" not in started(found)
    # Nor late: a dump blocked on a full pipe ignores SIGTERM once its lock is gone, so it is
    # ended by closing the pipe after a moment (waiting out a 5 s grace for it was a stall).
    stall = when(found, "start", "tag")[0] - when(found, "end", "snapshots")[0]
    assert stall < 4.0, found
    tagged = json.loads(app.restic("snapshots", "--json", "--tag", "suspicious").stdout)
    assert run["database_snapshot"]["id"] in {s["id"] for s in tagged}
    no_restic_left(app)


def test_restore_lists_once_and_opens_the_dump_meanwhile(app: App) -> None:
    with pg_databases("kb_early", "kb_early_target") as [source, target]:
        psql(f'CREATE DATABASE "{source}"')
        # A dump larger than a pipe buffer: a guessed dump nobody reads blocks on its pipe.
        psql(
            "CREATE TABLE notes AS SELECT g AS id, 'first' AS body, md5(g::text) AS pad "
            "FROM generate_series(1, 5000) g",
            source,
        )
        app.env.update(
            {
                "DATABASE_ADAPTER": "postgresql",
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{source}?sslmode=disable",
            }
        )
        first_run = json.loads(app.cli("backup", "--json", check=True).stdout)
        psql("UPDATE notes SET body = 'second'", source)
        second_run = json.loads(app.cli("backup", "--json", check=True).stdout)
        env = {**ALLOW, "RESTORE_DATABASE_URL": f"postgres://postgres@127.0.0.1/{target}"}
        bodies = "SELECT DISTINCT body FROM notes"
        log = timing_restic(app)

        # The last backup's snapshot, by id: the state's guess is right, the dump opened early,
        # and all three restic processes were started before the settings were read
        # (kamal_backup/prestart.py) and taken by the restore: none of its own.
        clock = time.monotonic()
        restored = app.cli(
            "--verbose",
            "restore-db",
            second_run["database_snapshot"]["id"][:8],
            extra=env,
            check=True,
        )
        right_guess = time.monotonic() - clock
        found = events(log)
        assert started(found) == ["dump", "snapshots", "version"], found
        assert when(found, "start", "dump")[0] < when(found, "end", "snapshots")[0], found
        assert restored.stderr.count(TAKEN) == 3, restored.stderr
        dump = second_run["database_snapshot"]["id"][:8]
        assert f"restic dump {dump}{TAKEN}" in restored.stderr
        assert STOPPED not in restored.stderr
        assert psql(bodies, target).split() == ["second"]

        # A snapshot the state does not know: no guess, one dump after the listing.
        restored = app.cli(
            "--verbose", "restore-db", first_run["database_snapshot"]["id"][:8], extra=env
        )
        assert restored.returncode == 0, restored.stderr
        found = events(log)
        assert started(found) == ["dump", "snapshots", "version"], found
        assert when(found, "start", "dump")[0] > when(found, "end", "snapshots")[0], found
        assert restored.stderr.count(TAKEN) == 2, restored.stderr
        assert psql(bodies, target).split() == ["first"]

        # `latest` while the state names the first run (another machine backed up since): the
        # guess is discarded and the listing's latest is restored.
        last_success = state_file(app, "last_success.json")
        record = json.loads(last_success.read_text())
        record["database_snapshots"] = first_run["database_snapshots"]
        last_success.write_text(json.dumps(record))
        clock = time.monotonic()
        app.cli("restore-db", extra=env, check=True)
        wrong_guess = time.monotonic() - clock
        found = events(log)
        assert started(found) == ["dump", "dump", "snapshots", "version"], found
        # The guessed dump, blocked on its full pipe, is stopped at once (not after a 5 s grace).
        assert wrong_guess < right_guess + 3.0, (wrong_guess, right_guess)
        assert psql(bodies, target).split() == ["second"]

        # Refused after the processes were started (no restore target): they are stopped with
        # SIGTERM, so the dump's restic lock goes with it, and nothing is left running.
        refused = app.cli("--verbose", "restore-db", extra=ALLOW)
        assert refused.returncode == 2, refused.stderr
        assert "RESTORE_DATABASE_URL" in refused.stderr
        assert refused.stderr.count(STOPPED) == 3, refused.stderr
        assert app.restic("list", "locks", "--no-lock").stdout.split() == []
        no_restic_left(app)


def backed_up_big_file(app: App) -> tuple[str, str]:
    """A files snapshot holding a file larger than a pipe buffer: (snapshot id, its path)."""
    big = app.files / "big.bin"
    big.write_bytes(b"x" * (4 << 20))
    app.cli("backup", check=True)
    files = json.loads(app.restic("snapshots", "--json", "--tag", "type:files").stdout)[-1]
    return files["id"], str(big)


def locks(app: App) -> list[str]:
    return app.restic("list", "locks", "--no-lock").stdout.split()


def test_a_prestarted_dump_nobody_took_is_stopped_with_its_lock_removed(app: App) -> None:
    from kamal_backup import process

    snapshot, path = backed_up_big_file(app)
    env = {**app.env, "XDG_CACHE_HOME": str(app.root / "cache")}
    assert process.prestart(["restic", "dump", snapshot, path], env)
    try:
        deadline = time.monotonic() + 30
        while not locks(app) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(locks(app)) == 1  # blocked on its full pipe, holding restic's lock
    finally:
        process.stop_prestarted()
    assert locks(app) == []
    no_restic_left(app)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_python_still_imports_stops_the_prestarted_restic(
    app: App, sig: signal.Signals
) -> None:
    """SIGTERM or Ctrl-C before the command has its own handlers: it still ends through
    finish(), which stops the restic processes started ahead with SIGTERM, so no lock is left
    behind, and says `interrupted` (exit 130) in one line, not a traceback."""
    app.cli("backup", check=True)
    env = {**app.env, **ALLOW, "RESTORE_SQLITE_DATABASE_PATH": str(app.root / "restored.db")}
    # A PostgreSQL-like guess is needed for a prestarted dump: the state's record says postgres.
    state = state_file(app, "last_success.json")
    record = json.loads(state.read_text())
    for snapshot in record["database_snapshots"].values():
        snapshot["adapter"] = "postgres"
    state.write_text(json.dumps(record))
    command = subprocess.Popen(
        [sys.executable, "-m", "kamal_backup", "restore-db"],
        env=env,
        cwd=app.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while "dump" not in restic_children(command.pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert "dump" in restic_children(command.pid)
    command.send_signal(sig)
    _, stderr = command.communicate(timeout=30)
    # As Ctrl-C: the documented 130 and one line (the CLI's own, when it answered first).
    assert command.returncode == 130, stderr
    assert stderr.decode().strip().splitlines()[-1].endswith("interrupted"), stderr
    assert b"Traceback" not in stderr
    assert locks(app) == []
    no_restic_left(app)


def restic_children(pid: int) -> list[str]:
    """The restic commands (dump, snapshots, version) running as children of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"\nPPid:\t{pid}\n" in status and b"restic" in argv:
            found.append(argv[argv.index(b"restic") + 1].decode())
    return sorted(found)
