"""`validate`: green on a good setup, one failed check named for each broken part, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import App
from tests.integration.databases import mariadb, my_databases, pg_databases, psql

pytestmark = pytest.mark.integration


def checks(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    return {check["name"]: check for check in json.loads(result.stdout)["checks"]}


def repository_files(app: App) -> list[str]:
    return sorted(str(p.relative_to(app.repo)) for p in app.repo.rglob("*"))


def test_validate_is_green_on_a_good_setup_and_writes_nothing(app: App) -> None:
    app.env["RESTORE_SQLITE_DATABASE_PATH"] = str(app.root / "restore" / "db.sqlite3")
    before = repository_files(app)
    result = app.cli("validate", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    found = checks(result)
    assert {"settings", "tool restic", "database primary", "repository", "safety flags"} <= set(
        found
    )
    assert found[f"backup path {app.files}"]["status"] == "ok"
    assert found["restore target primary"]["status"] == "ok"
    assert all(check["status"] != "fail" for check in found.values())
    assert repository_files(app) == before
    assert not (app.root / "state").exists()  # no state recorded
    text = app.cli("validate")
    assert text.returncode == 0 and "database primary" in text.stdout


def test_a_wrong_restic_password_is_a_failed_repository_check(app: App) -> None:
    result = app.cli("validate", "--json", extra={"RESTIC_PASSWORD": "wrong-pw-424242"})
    assert result.returncode == 1
    assert checks(result)["repository"]["status"] == "fail"
    assert "wrong-pw-424242" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_database_that_is_down_is_a_failed_database_check(app: App) -> None:
    extra = {"DATABASE_ADAPTER": "postgres", "DATABASE_URL": "postgres://app@127.0.0.1:1/app"}
    result = app.cli("validate", "--json", extra=extra)
    assert result.returncode == 1
    found = checks(result)
    assert found["database primary"]["status"] == "fail"
    assert "cannot connect" in found["database primary"]["detail"]
    assert found["repository"]["status"] == "ok"


def test_a_missing_client_is_a_failed_tool_check(app: App, tmp_path: Path) -> None:
    only_restic = tmp_path / "bin"
    only_restic.mkdir()
    found_restic = shutil.which("restic")
    assert found_restic
    (only_restic / "restic").symlink_to(found_restic)
    with pg_databases("validate") as (name,):
        psql(f'CREATE DATABASE "{name}"')
        extra = {
            "DATABASE_ADAPTER": "postgres",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
            "PATH": str(only_restic),
        }
        result = app.cli("validate", "--json", extra=extra)
    assert result.returncode == 1
    found = checks(result)
    assert found["tool pg_dump"]["status"] == "fail"
    assert found["tool restic"]["status"] == "ok"


def test_a_postgres_database_reports_server_and_client_majors(app: App) -> None:
    with pg_databases("validate") as (name,):
        psql(f'CREATE DATABASE "{name}"')
        extra = {
            "DATABASE_ADAPTER": "postgres",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        }
        result = app.cli("validate", "--json", extra=extra)
    assert result.returncode == 0, result.stdout
    assert "PostgreSQL 15 reachable" in checks(result)["database primary"]["detail"]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    # pytest's tmp_path lies under a 0700 directory that nobody cannot enter.
    path = Path(tempfile.mkdtemp(prefix="kamal-backup-validate-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_an_unreadable_backup_path_is_a_failed_check(app: App, shared_dir: Path) -> None:
    storage = shared_dir / "storage"
    storage.mkdir()
    (storage / "secret.key").write_text("x")
    (storage / "secret.key").chmod(0o600)  # root's: uid 65534 cannot read it
    database = shared_dir / "db.sqlite3"
    shutil.copy(app.db, database)
    database.chmod(0o644)
    env = {
        **app.env,
        "BACKUP_PATHS": str(storage),
        "SQLITE_DATABASE_PATH": str(database),
        "HOME": str(shared_dir),
        "XDG_CACHE_HOME": str(shared_dir / "cache"),
    }
    result = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            sys.executable,
            "-m",
            "kamal_backup",
            "validate",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=shared_dir,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    found = checks(result)
    assert found[f"backup path {storage}"]["status"] == "fail"
    assert "cannot read" in found[f"backup path {storage}"]["detail"]
    assert os.stat(storage / "secret.key").st_mode & 0o777 == 0o600


def test_an_unconfigured_live_sqlite_file_is_a_warning(app: App) -> None:
    import sqlite3

    live = app.files / "uploads" / "other.sqlite3"
    db = sqlite3.connect(live)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x)")
    db.execute("INSERT INTO t VALUES (1)")
    db.commit()
    try:
        result = app.cli("validate", "--json")
    finally:
        db.close()
    assert result.returncode == 0
    assert checks(result)[f"live SQLite {live}"]["status"] == "warn"


def test_a_configuration_error_exits_2(app: App) -> None:
    result = app.cli("validate", extra={"RESTIC_KEEP_LAST": "many"})
    assert result.returncode == 2
    assert result.stderr.startswith("kamal-backup: error: RESTIC_KEEP_LAST: ")


def test_a_mysql_database_is_probed_read_only(app: App) -> None:
    with my_databases("validate") as (name,):
        mariadb(f"CREATE DATABASE `{name}`")
        extra = {
            "DATABASE_ADAPTER": "mysql",
            "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{name}",
        }
        result = app.cli("validate", "--json", extra=extra)
    assert result.returncode == 0, result.stdout
    found = checks(result)
    assert "MariaDB" in found["database primary"]["detail"]
    assert found["tool mariadb-dump"]["status"] == "ok"
