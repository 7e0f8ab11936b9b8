"""The restic processes `restore-db` starts before the settings are imported (issue 14): which
command lines and environments start them, that they are exactly what the restore asks for
later, and that a spawn takes one only when argv and environment are the same."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kamal_backup import entry, process, restic
from kamal_backup.models import LEGACY_DATABASE
from kamal_backup.prestart import (
    LISTING_NICENESS,
    PRIMARY,
    Prestart,
    expected_database_dump,
    plan,
)
from kamal_backup.services import app_tags, restic_for
from kamal_backup.settings import PRIMARY as SETTINGS_PRIMARY
from kamal_backup.settings import load_settings

SNAPSHOT = "5addbc500c48149bf0b35f1c82d591df6c4226e3ba313f3840c95d337b548d8f"
PATH_IN_SNAPSHOT = "/databases-shop-postgres-20261128T144303Z.pgdump"


def environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "APP_NAME": "shop",
        "DATABASE_ADAPTER": "postgres",
        "DATABASE_URL": "postgres://app@db.internal/shop",
        "RESTORE_DATABASE_URL": "postgres://app@127.0.0.1/shop_restore",
        "RESTIC_REPOSITORY": "s3:http://127.0.0.1:9000/bucket",
        "RESTIC_PASSWORD": "correct horse",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "KAMAL_BACKUP_ALLOW_RESTORE": "true",
        "KAMAL_BACKUP_STATE_DIR": str(tmp_path / "state"),
        "UNRELATED": "not for restic",
        **extra,
    }


def record(snapshot: str = SNAPSHOT, database: str | None = "primary", **extra: Any) -> dict:
    return {
        "id": snapshot,
        "short_id": snapshot[:8],
        "paths": [PATH_IN_SNAPSHOT],
        "database": database,
        "adapter": "postgres",
        **extra,
    }


def last_success(tmp_path: Path, **databases: dict) -> None:
    state = tmp_path / "state" / "shop"
    state.mkdir(parents=True, exist_ok=True)
    (state / "last_success.json").write_text(json.dumps({"database_snapshots": databases}))


def commands(found: list[Prestart]) -> list[list[str]]:
    return [command.argv for command in found]


def test_primary_is_the_models_legacy_database() -> None:
    assert PRIMARY == LEGACY_DATABASE == SETTINGS_PRIMARY


def test_restore_db_starts_the_expected_dump_first_then_version_and_listing(
    tmp_path: Path,
) -> None:
    """The dump first: the restore waits for its first byte, which comes after its key
    derivation; the version check and the listing are needed later."""
    last_success(tmp_path, primary=record())
    found = plan(["restore-db"], environ(tmp_path))
    assert commands(found) == [
        ["restic", "dump", SNAPSHOT, PATH_IN_SNAPSHOT],
        ["restic", "version"],
        ["restic", "snapshots", "--no-lock", "--tag", "kamal-backup,app:shop", "--json"],
    ]
    # The same for a snapshot id the state knows, --database, --json and --verbose.
    for args in (
        ["restore-db", SNAPSHOT[:8]],
        ["--verbose", "restore-db", "--json", "--database", "primary"],
        ["restore-db", "--database=primary", "latest"],
    ):
        assert commands(plan(args, environ(tmp_path)))[0][1] == "dump", args


def test_what_is_started_is_exactly_what_the_restore_asks_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drift guard: a prestarted process is only ever used when the settings' restic
    environment and the restore's own argv are the same, so both are compared here."""
    last_success(tmp_path, primary=record())
    env = environ(tmp_path, RESTIC_PASSWORD_FILE=f"{tmp_path}/./password")
    found = plan(["restore-db"], env)
    settings = load_settings(environ=env)
    client = restic_for(settings)
    assert all(command.env == client.environment for command in found)
    assert "UNRELATED" not in found[0].env and found[0].env["AWS_SECRET_ACCESS_KEY"] == "secret"

    asked: list[list[str]] = []

    def run(argv: list[str], **_: object) -> process.Completed:
        asked.append(list(argv))
        out = "restic 0.18.0 compiled with go1.24 on linux/amd64" if argv[1] == "version" else "[]"
        return process.Completed(tuple(argv), 0, out, "")

    monkeypatch.setattr(restic.process, "run", run)
    monkeypatch.setattr(restic.process, "require_tool", lambda *_: "restic")
    client.require_supported_version()
    client.snapshots(app_tags(settings))
    assert asked == commands(found)[1:]

    class Spawned(Exception):
        pass

    @contextlib.contextmanager
    def spawn(argv: list[str], env: dict[str, str], **_: object) -> Iterator[None]:
        asked.append(list(argv))
        assert env == found[0].env
        raise Spawned
        yield

    monkeypatch.setattr(restic.process, "spawn", spawn)
    with pytest.raises(Spawned), client.early_dump(SNAPSHOT, PATH_IN_SNAPSHOT):
        pass
    assert asked[-1] == commands(found)[0]


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["restore-files"], {}),
        (["restore-db", "--in-place"], {}),
        (["restore-db", "--help"], {}),
        (["restore-db", "latest", "extra"], {}),
        (["restore-db", "not-an-id"], {}),
        (["--env-file", "app.env", "restore-db"], {}),
        (["restore-db"], {"KAMAL_BACKUP_ALLOW_RESTORE": "false"}),
        (["restore-db"], {"KAMAL_BACKUP_CONFIG": "/etc/kamal-backup.yml"}),
        (["restore-db"], {"RESTIC_PASSWORD_COMMAND": "vault read secret"}),
        (["restore-db"], {"RESTIC_PASSWORD": ""}),
        (["restore-db"], {"RESTIC_REPOSITORY": ""}),
        (["restore-db"], {"APP_NAME": ""}),
    ],
)
def test_nothing_starts_for_other_command_lines_or_settings_from_elsewhere(
    tmp_path: Path, args: list[str], extra: dict[str, str]
) -> None:
    last_success(tmp_path, primary=record())
    assert plan(args, environ(tmp_path, **extra)) == []


def test_no_dump_without_a_guess_or_for_sqlite(tmp_path: Path) -> None:
    env = environ(tmp_path)
    assert len(plan(["restore-db"], env)) == 2  # no state directory yet
    last_success(tmp_path, primary=record(adapter="sqlite"))
    assert len(plan(["restore-db"], env)) == 2  # restic restore writes SQLite's file
    last_success(tmp_path, primary=record())
    assert len(plan(["restore-db", "deadbeef"], env)) == 2  # an id the state does not know
    (tmp_path / "state" / "shop" / "last_success.json").write_text("{not json")
    assert len(plan(["restore-db"], env)) == 2


def test_the_guess_follows_the_database_and_the_last_restore(tmp_path: Path) -> None:
    other = "ab" * 32
    last_success(
        tmp_path,
        primary=record(),
        queue=record(other, "queue", paths=["/databases-shop-queue.sqlite3"]),
    )
    state = tmp_path / "state"
    assert expected_database_dump(state / "shop", "latest", None).id == SNAPSHOT  # type: ignore[union-attr]
    queue = expected_database_dump(state / "shop", "latest", "queue")
    assert queue is not None and queue.id == other and queue.database == "queue"
    assert expected_database_dump(state / "shop", "latest", "cache") is None
    restored = "cd" * 32
    (state / "shop" / "last_restore_database.json").write_text(
        json.dumps({"snapshot": record(restored)})
    )
    assert expected_database_dump(state / "shop", restored[:10], None).id == restored  # type: ignore[union-attr]
    # A legacy record without a database tag is the primary database's.
    last_success(tmp_path, primary=record(database=None))
    assert expected_database_dump(state / "shop", "latest", "primary") is not None


def test_a_spawn_takes_the_prestarted_child_only_for_the_same_argv_and_environment() -> None:
    env = {"PATH": os.environ["PATH"]}
    argv = ["sh", "-c", "echo $$"]
    assert process.prestart(argv, env)
    prestarted = str(next(iter(process._prestarted.values())).pid)  # sh: setpriv execs it
    assert process.prestart(["sh", "-c", "echo other; sleep 30"], env)
    started = time.monotonic()
    try:
        # Another environment: not taken, a process of its own.
        assert process.run(argv, env={**env, "X": "1"}).stdout.strip() != prestarted
        # The same: taken, once; the next run starts its own.
        assert process.run(argv, env=env).stdout.strip() == prestarted
        assert process.run(argv, env=env).stdout.strip() != prestarted
    finally:
        process.stop_prestarted()
    # The one nobody took (sleeping 30 s) was stopped.
    assert time.monotonic() - started < 10
    assert not process._prestarted


def test_a_prestarted_child_that_failed_is_run_again() -> None:
    env = {"PATH": os.environ["PATH"]}
    marker = f"/tmp/kb-prestart-{os.getpid()}"
    argv = ["sh", "-c", f"if [ -e {marker} ]; then echo second; else touch {marker}; exit 3; fi"]
    try:
        assert process.prestart(argv, env)
        deadline = time.monotonic() + 10
        while not os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        result = process.run(argv, env=env)
        assert (result.returncode, result.stdout.strip()) == (0, "second")
    finally:
        process.stop_prestarted()
        os.unlink(marker)


def test_a_missing_program_starts_nothing() -> None:
    assert not process.prestart(["kamal-backup-no-such-program"], {"PATH": "/nonexistent"})
    assert not process._prestarted


def test_the_prestarted_child_joins_the_operation_that_takes_it() -> None:
    env = {"PATH": os.environ["PATH"]}
    argv = ["sleep", "30"]
    assert process.prestart(argv, env)
    try:
        with process.cancel_scope("restore") as scope, process.spawn(argv, env=env) as child:
            assert scope.children == [child]
            scope.cancel(grace_seconds=1)
            assert child.wait(timeout=5) != 0
    finally:
        process.stop_prestarted()


def test_a_child_with_other_pipes_is_not_taken() -> None:
    env = {"PATH": os.environ["PATH"]}
    argv = ["sh", "-c", "echo $$"]
    assert process.prestart(argv, env)
    prestarted = next(iter(process._prestarted.values())).pid
    try:
        with process.spawn(argv, env=env, stdout=subprocess.DEVNULL) as child:
            assert child.pid != prestarted
        assert process.has_prestarted()
    finally:
        process.stop_prestarted()
    assert not process.has_prestarted()


@pytest.mark.parametrize(
    "odd",
    [
        {"id": "not-an-id"},
        {"database": 7},
        {"adapter": ["postgres"]},
        {"paths": [3]},
        {"paths": ["/a", "/b"]},
    ],
)
def test_a_record_of_the_wrong_shape_is_no_guess(tmp_path: Path, odd: dict) -> None:
    last_success(tmp_path, primary={**record(), **odd})
    assert expected_database_dump(tmp_path / "state" / "shop", "latest", None) is None


def test_the_listing_yields_the_cpu_only_where_the_restore_does_not_wait_for_it(
    tmp_path: Path,
) -> None:
    """A PostgreSQL restore starts before its listing answers (it waits only to commit): its
    listing runs at LISTING_NICENESS. A MariaDB restore waits for its listing: nice 0."""
    last_success(tmp_path, primary=record())
    found = plan(["restore-db"], environ(tmp_path))
    assert [command.niceness for command in found] == [0, 0, LISTING_NICENESS]
    assert LISTING_NICENESS > 0
    last_success(tmp_path, primary=record(adapter="mysql"))
    assert [command.niceness for command in plan(["restore-db"], environ(tmp_path))] == [0, 0, 0]


@pytest.fixture
def signal_handlers() -> Iterator[None]:
    """The SIGINT and SIGTERM handlers as they were, again after the test."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_prestart_is_held_until_its_processes_are_registered(
    signal_handlers: None, sig: signal.Signals
) -> None:
    """A signal that lands while prestart starts a process (inside subprocess.Popen, or before
    the registry has it) does not raise there: prestart finishes, then the command ends as
    Ctrl-C does, and SIGTERM from then on is entry's (finish() stops what started)."""
    finished: list[str] = []

    def starting_two(args: list[str]) -> int:
        os.kill(os.getpid(), sig)
        time.sleep(0.05)  # the handler has run by now: a raise would land here
        finished.append("registered")
        return 2

    with pytest.raises(KeyboardInterrupt):
        entry._prestart_then_signals(starting_two)
    assert finished == ["registered"]
    assert signal.getsignal(signal.SIGTERM) is entry._terminated
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_during_a_prestart_that_started_nothing_keeps_its_default(
    tmp_path: Path,
) -> None:
    """Nothing to stop: SIGTERM ends the process by the signal, as before prestart existed."""
    code = (
        "import os, signal\n"
        "from kamal_backup import entry\n"
        "def nothing(args):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return 0\n"
        "entry._prestart_then_signals(nothing)\n"
        "print('survived')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        timeout=60,
    )
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert "survived" not in done.stdout
