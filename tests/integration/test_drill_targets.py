"""What a drill's scratch targets hold now, read-only, against the real servers and files."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kamal_backup.services.drill import describe_drill_targets, describe_files_target
from kamal_backup.settings import Settings, load_settings
from tests.integration.databases import mariadb, my_databases, pg_databases, psql

pytestmark = pytest.mark.integration

SECRET = "never-shown-scratch-pass"


def settings_for(tmp_path: Path, **extra: str) -> Settings:
    return load_settings(
        environ={
            "APP_NAME": "shop",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "BACKUP_PATHS": "/rails/storage",
            "RESTIC_REPOSITORY": str(tmp_path / "repo"),
            "RESTIC_PASSWORD": "unused",
            "KAMAL_BACKUP_STATE_DIR": str(tmp_path / "state"),
            "KAMAL_BACKUP_ALLOW_RESTORE": "true",
            "DATABASE_ADAPTER": "none",
            **extra,
        }
    )


def pg_settings(tmp_path: Path, target: str, port: int = 5432) -> Settings:
    return settings_for(
        tmp_path,
        DATABASE_ADAPTER="postgres",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
        RESTORE_DATABASE_URL=f"postgres://postgres:{SECRET}@127.0.0.1:{port}/{target}",
    )


def summaries(settings: Settings, files_target: str = "/nowhere", *parts: str) -> list[str]:
    found = describe_drill_targets(settings, files_target, parts or ("database",), timeout=5)  # type: ignore[arg-type]
    return [item.summary for item in found]


def test_postgres_target_tables_are_counted_and_a_missing_database_is_said(
    tmp_path: Path,
) -> None:
    with pg_databases("kb_targets") as (target,):
        settings = pg_settings(tmp_path, target)
        assert summaries(settings) == [f"{target} does not exist yet; the drill creates it"]
        psql(f'CREATE DATABASE "{target}"')
        assert summaries(settings) == [f"{target} has no tables"]
        psql(
            "CREATE TABLE leftover (id int); CREATE SCHEMA billing;"
            "CREATE TABLE billing.invoices (id int);"
            "CREATE TABLE events (at date) PARTITION BY RANGE (at);"
            "CREATE TABLE events_2026 PARTITION OF events"
            "  FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');"
            "CREATE VIEW recent AS SELECT 1 AS one;",
            target,
        )
        # leftover, billing.invoices and events (its partition goes with it); not the view.
        assert summaries(settings) == [f"{target} has 3 tables; they will be dropped"]
        assert "leftover" in psql("SELECT tablename FROM pg_tables", target)  # only looked


def test_postgres_target_that_cannot_be_reached_says_why_without_credentials(
    tmp_path: Path,
) -> None:
    (line,) = summaries(pg_settings(tmp_path, "kb_scratch", port=9))
    assert line.startswith("cannot tell what kb_scratch holds: ")
    assert "Connection refused" in line and SECRET not in line and "\n" not in line
    settings = settings_for(
        tmp_path,
        DATABASE_ADAPTER="postgres",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
        RESTORE_DATABASE_URL=f"postgres://nobody_here:{SECRET}@127.0.0.1:5432/kb_scratch",
    )
    (line,) = summaries(settings)
    assert 'role "nobody_here" does not exist' in line and SECRET not in line


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_a_target_that_does_not_answer_is_given_up_in_bounded_time(
    tmp_path: Path, silent_server: int
) -> None:
    settings = pg_settings(tmp_path, "kb_scratch", port=silent_server)
    started = time.monotonic()
    found = describe_drill_targets(settings, "/nowhere", ("database",), timeout=1)
    assert time.monotonic() - started < 4
    assert [item.summary for item in found] == [
        "cannot tell what kb_scratch holds: no answer within 1s"
    ]
    assert found[0].state == "unknown"


def test_mariadb_target_tables_are_counted(tmp_path: Path) -> None:
    with my_databases("kb_targets") as (target,):
        settings = settings_for(
            tmp_path,
            DATABASE_ADAPTER="mysql",
            DATABASE_URL="mysql://root@127.0.0.1:3306/mysql",
            RESTORE_DATABASE_URL=f"mysql://root@127.0.0.1:3306/{target}",
        )
        assert summaries(settings) == [f"{target} does not exist yet; the drill creates it"]
        mariadb(
            f"CREATE DATABASE `{target}`; CREATE TABLE `{target}`.a (x int);"
            f"CREATE TABLE `{target}`.b (x int); CREATE VIEW `{target}`.v AS SELECT 1;"
        )
        assert summaries(settings) == [f"{target} has 2 tables; they will be dropped"]


def test_sqlite_target_is_counted_without_touching_its_directory(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    target = scratch / "db.sqlite3"
    settings = settings_for(
        tmp_path,
        DATABASE_ADAPTER="sqlite",
        SQLITE_DATABASE_PATH=str(tmp_path / "app.sqlite3"),
        RESTORE_SQLITE_DATABASE_PATH=str(target),
    )
    assert summaries(settings) == [f"{target} does not exist yet; the drill creates it"]
    with sqlite3.connect(target) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE leftover (id INTEGER PRIMARY KEY AUTOINCREMENT)")
    db.close()
    before = sorted(p.name for p in scratch.iterdir())
    assert summaries(settings) == [f"{target} has 1 table; it will be dropped"]
    assert sorted(p.name for p in scratch.iterdir()) == before
    target.unlink()
    target.write_text("not a database\n")
    (line,) = summaries(settings)
    assert line == f"cannot tell what {target} holds: file is not a database"


def test_files_target_counts_what_the_drill_replaces_and_what_stays(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    target = tmp_path / "files"
    assert (
        describe_files_target(settings, str(target)).summary
        == f"{target} does not exist yet; the drill creates it"
    )
    target.mkdir()
    assert describe_files_target(settings, str(target)).summary == f"{target} is empty"
    replaced = target / "rails" / "storage" / "uploads"
    replaced.mkdir(parents=True)
    (replaced / "a.bin").write_bytes(b"x" * 2048)
    (replaced / "b.txt").write_text("hello\n")
    assert (
        describe_files_target(settings, str(target)).summary
        == f"{target} holds 2 files (2.0 KiB); they will be replaced"
    )
    (target / "notes.txt").write_text("mine\n")
    assert describe_files_target(settings, str(target)).summary == (
        f"{target} holds 3 files (2.0 KiB); 2 files under {target}/rails/storage will be "
        "replaced, the other stays"
    )
    (target / "notes.txt").unlink()
    (target / "rails" / "storage").rename(target / "rails" / "elsewhere")
    assert describe_files_target(settings, str(target)).summary == (
        f"{target} holds 2 files (2.0 KiB); the drill writes only under "
        f"{target}/rails/storage, so they stay"
    )
    (target / "rails" / "plain").write_text("x")
    assert describe_files_target(settings, str(target / "rails" / "plain")).summary == (
        f"cannot tell what {target}/rails/plain holds: it is not a directory"
    )


def test_counting_files_stops_in_bounded_time(tmp_path: Path) -> None:
    target = tmp_path / "files"
    (target / "many").mkdir(parents=True)
    for number in range(1500):
        (target / "many" / str(number)).write_bytes(b"")
    found = describe_files_target(settings_for(tmp_path), str(target), timeout=0)
    assert found.summary.startswith(f"{target} holds at least 1000 files (0 B); counting stopped")


def test_targets_the_gates_refuse_are_left_to_the_gates(tmp_path: Path) -> None:
    # The source itself: a drill never writes there; "/" and a backup path neither.
    settings = settings_for(
        tmp_path,
        DATABASE_ADAPTER="postgres",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
        RESTORE_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
    )
    assert describe_drill_targets(settings, "/", ("database", "files")) == []
    assert describe_drill_targets(settings, "/rails/storage/x", ("files",)) == []
