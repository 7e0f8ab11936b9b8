"""Restoring into the production database: a safety snapshot first, on all three engines."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import App
from tests.integration.databases import mariadb, my_databases, pg_databases, psql, unique

pytestmark = pytest.mark.integration

PRODUCTION = {
    "KAMAL_BACKUP_ALLOW_RESTORE": "true",
    "KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE": "true",
}


@dataclass
class Engine:
    """One engine's source database and how to read or change it."""

    app: App
    rows: Callable[[], list[str]]
    execute: Callable[[str], None]
    scratch_env: dict[str, str]
    scratch_rows: Callable[[], list[str]]


def _sqlite_rows(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        found = [str(row) for row in db.execute("SELECT id, body FROM items ORDER BY id")]
    db.close()
    return found


def _sqlite_execute(path: Path, sql: str) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(sql)
    db.close()


def _ignore(_output: str) -> None:
    return None


SCHEMA = "CREATE TABLE items (id INT PRIMARY KEY, body VARCHAR(50));"
SEED = "INSERT INTO items VALUES (1, 'as backed up'), (2, 'also backed up');"
CHANGE = "UPDATE items SET body = 'changed after the backup' WHERE id = 1; INSERT INTO items VALUES (3, 'new');"


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def engine(request: pytest.FixtureRequest, app: App, tmp_path: Path) -> Iterator[Engine]:
    kind = request.param
    if kind == "sqlite":
        app.db.unlink()
        _sqlite_execute(app.db, SCHEMA + SEED)
        scratch = tmp_path / "scratch.sqlite3"
        yield Engine(
            app,
            lambda: _sqlite_rows(app.db),
            lambda sql: _sqlite_execute(app.db, sql),
            {"RESTORE_SQLITE_DATABASE_PATH": str(scratch)},
            lambda: _sqlite_rows(scratch),
        )
    elif kind == "postgres":
        with pg_databases("kb_prod", "kb_scratch") as (source, scratch):
            psql(f'CREATE DATABASE "{source}"')
            psql(SCHEMA + SEED, source)
            app.env.update(
                {
                    "DATABASE_ADAPTER": "postgres",
                    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{source}",
                }
            )

            def pg_rows(database: str) -> list[str]:
                return psql("SELECT id, body FROM items ORDER BY id", database).splitlines()

            yield Engine(
                app,
                lambda: pg_rows(source),
                lambda sql: _ignore(psql(sql, source)),
                {"RESTORE_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{scratch}"},
                lambda: pg_rows(scratch),
            )
    else:
        with my_databases("kb_prod", "kb_scratch") as (source, scratch):
            mariadb(f"CREATE DATABASE `{source}`")
            mariadb(SCHEMA + SEED, source)
            app.env.update(
                {
                    "DATABASE_ADAPTER": "mysql",
                    "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{source}",
                }
            )

            def my_rows(database: str) -> list[str]:
                return mariadb("SELECT id, body FROM items ORDER BY id", database).splitlines()

            yield Engine(
                app,
                lambda: my_rows(source),
                lambda sql: _ignore(mariadb(sql, source)),
                {"RESTORE_DATABASE_URL": f"mysql://root@127.0.0.1:3306/{scratch}"},
                lambda: my_rows(scratch),
            )


def test_production_restore_takes_a_safety_snapshot_first(engine: Engine) -> None:
    app = engine.app
    backup = json.loads(app.cli("backup", "--json", check=True).stdout)
    backed_up = engine.rows()
    engine.execute(CHANGE)
    before_restore = engine.rows()
    assert before_restore != backed_up

    refused = app.cli(
        "restore-db", "latest", "--in-place", extra={"KAMAL_BACKUP_ALLOW_RESTORE": "true"}
    )
    assert refused.returncode == 3 and "KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE" in refused.stderr
    assert engine.rows() == before_restore

    result = app.cli("restore-db", "latest", "--in-place", extra=PRODUCTION, check=True)
    assert engine.rows() == backed_up  # the production database equals the backup
    safety_id = result.stdout.split("safety snapshot ", 1)[1].split()[0]
    assert f"safety snapshot {safety_id} of the current database saved" in result.stderr
    [safety] = [
        s
        for s in json.loads(app.cli("list", "--json", check=True).stdout)
        if s["short_id"] == safety_id
    ]
    assert {"type:database", "pre-restore", f"run:{safety['run']}"} <= set(safety["tags"])
    assert safety["run"] != backup["run"]
    # `list` marks it, so nobody restores it by mistake for a backup.
    [row] = [line for line in app.cli("list", check=True).stdout.splitlines() if safety_id in line]
    assert "(pre-restore safety)" in row

    # The safety snapshot holds the database as it was just before the restore.
    app.cli("restore-db", safety["id"], extra={**PRODUCTION, **engine.scratch_env}, check=True)
    assert engine.scratch_rows() == before_restore

    # It is not a backup run: latest still names the backup, and evidence lists no partial run.
    evidence = json.loads(app.cli("evidence", check=True).stdout)
    assert evidence["latest_database_snapshot"]["id"] == backup["database_snapshot"]["id"]
    assert evidence["incomplete_runs"] == []


def test_a_failed_safety_snapshot_restores_nothing(
    engine: Engine, request: pytest.FixtureRequest
) -> None:
    app = engine.app
    app.cli("backup", check=True)
    engine.execute(CHANGE)
    before = engine.rows()
    kind = app.env["DATABASE_ADAPTER"]
    if kind == "sqlite":
        # The file is there but unreadable as a database: the dump fails, a restore would not.
        broken = b"not a database at all" * 100
        app.db.write_bytes(broken)
        result = app.cli("restore-db", "latest", "--in-place", extra=PRODUCTION)
        assert app.db.read_bytes() == broken
    else:
        # The backup's own user cannot log in any more; the restore would use an admin user.
        user = unique("kb_dumper")
        source_db = app.env["DATABASE_URL"].rsplit("/", 1)[1]
        if kind == "postgres":
            psql(f'CREATE ROLE "{user}" NOLOGIN')
            request.addfinalizer(lambda: psql(f'DROP ROLE IF EXISTS "{user}"'))
            source = f"postgres://{user}@127.0.0.1:5432/{source_db}"
            target = f"postgres://postgres@127.0.0.1:5432/{source_db}"
        else:
            mariadb(f"CREATE USER '{user}'@'%' ACCOUNT LOCK")
            request.addfinalizer(lambda: mariadb(f"DROP USER IF EXISTS '{user}'@'%'"))
            source = f"mysql://{user}@127.0.0.1:3306/{source_db}"
            target = f"mysql://root@127.0.0.1:3306/{source_db}"
        result = app.cli(
            "restore-db",
            "latest",
            extra={**PRODUCTION, "DATABASE_URL": source, "RESTORE_DATABASE_URL": target},
        )
        assert engine.rows() == before
    assert result.returncode == 1, result.stderr
    assert (
        "the safety snapshot of the current database failed, so nothing was restored"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert app.snapshot_ids("pre-restore") == []


def test_a_missing_sqlite_file_is_restored_without_a_safety_snapshot(app: App) -> None:
    app.cli("backup", check=True)
    rows = sqlite3.connect(app.db).execute("SELECT count(*) FROM notes").fetchone()
    app.db.unlink()
    result = app.cli("restore-db", "latest", "--in-place", "--json", extra=PRODUCTION, check=True)
    assert (
        "does not exist: nothing to keep"
        in json.loads(result.stdout)["details"]["safety_snapshot_skipped"]
    )
    assert sqlite3.connect(app.db).execute("SELECT count(*) FROM notes").fetchone() == rows
    assert app.snapshot_ids("pre-restore") == []


def _on_a_terminal(app: App, typed: str) -> tuple[int, str]:
    """Runs a production restore with stdin on a pseudo-terminal and types `typed`."""
    controller, terminal = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kamal_backup", "restore-db", "latest", "--in-place"],
        env={**app.env, **PRODUCTION},
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(terminal)
    os.write(controller, f"{typed}\n".encode())
    out, err = proc.communicate(timeout=120)
    os.close(controller)
    return proc.returncode, out + err


def test_on_a_terminal_the_app_name_must_be_typed(app: App) -> None:
    app.cli("backup", check=True)
    _sqlite_execute(app.db, "DELETE FROM notes;")
    code, output = _on_a_terminal(app, "not-the-app")
    assert code == 3, output
    assert "is not the app name 'shop'" in output
    assert sqlite3.connect(app.db).execute("SELECT count(*) FROM notes").fetchone() == (0,)
    assert app.snapshot_ids("pre-restore") == []

    code, output = _on_a_terminal(app, "shop")
    assert code == 0, output
    assert sqlite3.connect(app.db).execute("SELECT count(*) FROM notes").fetchone() == (200,)
