"""Real app shapes: Rails 8's four SQLite databases, PostgreSQL plus a SQLite cache, database-only
and files-only apps, and a repository written before databases had names."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kamal_backup.databases.sqlite import integrity_check
from tests.conftest import App, make_sqlite, sqlite_rows
from tests.integration.databases import pg_databases, psql

pytestmark = pytest.mark.integration

RAILS_DATABASES = ("production", "production_cache", "production_queue", "production_cable")
RESTORE = {"KAMAL_BACKUP_ALLOW_RESTORE": "true"}
KEEP_TWO = {
    "RESTIC_KEEP_LAST": "2",
    "RESTIC_KEEP_DAILY": "0",
    "RESTIC_KEEP_WEEKLY": "0",
    "RESTIC_KEEP_MONTHLY": "0",
    "RESTIC_KEEP_YEARLY": "0",
    # The policy's groups alone (the kept good runs are proven in test_trust.py).
    "KAMAL_BACKUP_KEEP_GOOD": "0",
}


@contextmanager
def writers(paths: list[Path]) -> Iterator[dict[Path, int]]:
    """One thread per database inserting rows (ids 1, 2, 3, …) until the block ends."""
    stop = threading.Event()
    written: dict[Path, int] = {}

    started = threading.Barrier(len(paths) + 1)

    def write(path: Path) -> None:
        with sqlite3.connect(path, timeout=30, isolation_level=None) as db:
            db.execute("CREATE TABLE IF NOT EXISTS seq (id INTEGER PRIMARY KEY, body BLOB)")
            db.execute("INSERT INTO seq (body) VALUES (randomblob(2000))")
            count = 1
            started.wait()
            while not stop.is_set():
                db.execute("INSERT INTO seq (body) VALUES (randomblob(2000))")
                count += 1
            written[path] = count
        db.close()

    threads = [threading.Thread(target=write, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    started.wait()  # every writer is writing before the block (the backup) starts
    try:
        yield written
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def seq_ids(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        ids = [row[0] for row in db.execute("SELECT id FROM seq ORDER BY id")]
    db.close()
    return ids


def rails_config(app: App) -> Path:
    storage = app.root / "app" / "storage"
    lines = ["databases:"]
    for name in RAILS_DATABASES:
        key = "primary" if name == "production" else name.removeprefix("production_")
        lines += [
            f"  {key}:",
            "    adapter: sqlite3",
            f"    path: {storage / (name + '.sqlite3')}",
            f"    restore_path: {app.root / 'restore' / (key + '.sqlite3')}",
        ]
    config = app.root / "kamal-backup.yml"
    config.write_text("\n".join(lines) + "\n")
    return config


def test_rails_8_app_backs_up_its_four_live_sqlite_databases_and_restores_each(app: App) -> None:
    storage = app.root / "app" / "storage"
    paths = [storage / f"{name}.sqlite3" for name in RAILS_DATABASES]
    for path in paths:
        make_sqlite(path, rows=50)
    unconfigured = storage / "uploads" / "legacy.db"
    make_sqlite(unconfigured, rows=5)
    keep_open = sqlite3.connect(unconfigured)  # an open WAL database keeps its -wal file
    keep_open.execute("INSERT INTO notes (body) VALUES ('x')")
    config = rails_config(app)
    env = {
        k: v for k, v in app.env.items() if k not in ("DATABASE_ADAPTER", "SQLITE_DATABASE_PATH")
    }
    env["KAMAL_BACKUP_CONFIG"] = str(config)
    env["BACKUP_PATHS"] = str(storage)
    app.env = env

    with writers(paths) as written:
        result = app.cli("backup", "--json", check=True)
    keep_open.close()
    run = json.loads(result.stdout)
    assert sorted(run["database_snapshots"]) == ["cable", "cache", "primary", "queue"]
    assert f"{unconfigured} is a live SQLite database" in result.stderr
    assert run["warnings"] and str(unconfigured) in run["warnings"][0]

    tagged = app.snapshot_ids("kamal-backup", f"run:{run['run']}")
    assert len(tagged) == 5  # four databases and the files
    names = {name: run["database_snapshots"][name]["paths"][0] for name in ("primary", "cache")}
    assert names["primary"] == f"/databases-shop-sqlite-{run['run']}.sqlite3"
    assert names["cache"] == f"/databases-shop-cache-sqlite-{run['run']}.sqlite3"

    listing = app.restic("ls", "--json", run["files_snapshot"]["id"]).stdout
    files = {json.loads(line).get("path") for line in listing.splitlines() if '"path"' in line}
    for path in paths:
        for suffix in ("", "-wal", "-shm", "-journal"):
            assert f"{path}{suffix}" not in files
    assert str(unconfigured) in files  # not configured: copied raw, as before
    assert str(storage / "uploads" / "a.txt") in files

    listed = json.loads(app.cli("list", "--json", check=True).stdout)
    assert sorted(s["database"] for s in listed if s["type"] == "database") == [
        "cable",
        "cache",
        "primary",
        "queue",
    ]

    restored = json.loads(app.cli("restore-db", "--json", extra=RESTORE, check=True).stdout)
    assert sorted(r["snapshot"]["database"] for r in restored) == [
        "cable",
        "cache",
        "primary",
        "queue",
    ]
    for name in RAILS_DATABASES:
        key = "primary" if name == "production" else name.removeprefix("production_")
        target = app.root / "restore" / f"{key}.sqlite3"
        assert integrity_check(target) == "ok"
        dumped = app.root / f"{name}.dump"
        snapshot = run["database_snapshots"][key]
        dumped.write_bytes(
            __import__("subprocess")
            .run(
                ["restic", "dump", snapshot["id"], snapshot["paths"][0]],
                env={**app.env, "PATH": app.env["PATH"]},
                capture_output=True,
                check=True,
            )
            .stdout
        )
        ids = seq_ids(target)
        assert ids == seq_ids(dumped)  # identical to what the backup took
        assert ids == list(range(1, len(ids) + 1))  # a consistent cut: no torn writes
        # the writer wrote before the copy began and went on after it: it ran during the backup
        assert 1 <= len(ids) < written[storage / f"{name}.sqlite3"]

    one = json.loads(
        app.cli("restore-db", "--database", "queue", "--json", extra=RESTORE, check=True).stdout
    )
    assert one["snapshot"]["database"] == "queue"

    evidence = json.loads(app.cli("evidence", check=True).stdout)
    assert [d["name"] for d in evidence["databases"]] == ["primary", "cache", "queue", "cable"]
    assert all(d["latest_snapshot"]["run"] == run["run"] for d in evidence["databases"])


def test_restore_db_refuses_first_when_a_database_has_no_target(app: App) -> None:
    cache = app.root / "app" / "storage" / "cache.sqlite3"
    make_sqlite(cache, rows=10)
    databases = {"cache": {"adapter": "sqlite", "path": str(cache)}}
    app.env["DATABASES"] = json.dumps(databases)
    app.cli("backup", check=True)
    target = app.root / "restore" / "primary.sqlite3"
    result = app.cli("restore-db", extra={**RESTORE, "RESTORE_SQLITE_DATABASE_PATH": str(target)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "databases.cache.restore_path" in result.stderr and "cache" in result.stderr
    assert not target.exists()  # refused before restoring anything


def test_postgres_primary_with_a_sqlite_cache_in_one_run(app: App) -> None:
    with pg_databases("apps_src", "apps_restore") as (source, target):
        psql(f'CREATE DATABASE "{source}"')
        psql(
            "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 300) g",
            source,
        )
        cache = app.root / "app" / "storage" / "cache.sqlite3"
        make_sqlite(cache, rows=30)
        app.env.update(
            {
                "DATABASE_ADAPTER": "postgres",
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{source}",
                "RESTORE_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{target}",
                "DATABASES": json.dumps(
                    {
                        "cache": {
                            "adapter": "sqlite",
                            "path": str(cache),
                            "restore_path": str(app.root / "restore" / "cache.sqlite3"),
                        }
                    }
                ),
            }
        )
        run = json.loads(app.cli("backup", "--json", check=True).stdout)
        assert run["database_snapshots"]["primary"]["adapter"] == "postgres"
        assert run["database_snapshots"]["cache"]["adapter"] == "sqlite"
        assert run["files_snapshot"] is not None
        restored = json.loads(app.cli("restore-db", "--json", extra=RESTORE, check=True).stdout)
        assert [r["snapshot"]["database"] for r in restored] == ["primary", "cache"]
        assert psql("SELECT count(*) FROM t", target).strip() == "300"
        assert integrity_check(app.root / "restore" / "cache.sqlite3") == "ok"


def test_database_only_app_needs_no_backup_paths(app: App) -> None:
    app.env["BACKUP_PATHS"] = ""
    run = json.loads(app.cli("backup", "--json", check=True).stdout)
    assert run["files_snapshot"] is None and run["status"] == "success"
    assert len(app.snapshot_ids()) == 1
    listed = json.loads(app.cli("list", "--json", check=True).stdout)
    assert [s["type"] for s in listed] == ["database"]
    evidence = json.loads(app.cli("evidence", check=True).stdout)
    assert evidence["latest_database_snapshot"]["id"] == run["database_snapshot"]["id"]
    assert evidence["latest_files_snapshot"] is None and evidence["incomplete_runs"] == []
    target = app.root / "restore.sqlite3"
    app.cli(
        "restore-db", extra={**RESTORE, "RESTORE_SQLITE_DATABASE_PATH": str(target)}, check=True
    )
    assert integrity_check(target) == "ok"
    health = app.cli("health", "--repository", "--json")
    assert json.loads(health.stdout)["healthy"] is True


def test_files_only_app_has_no_database_snapshot(app: App) -> None:
    app.env["DATABASE_ADAPTER"] = "none"
    run = json.loads(app.cli("backup", "--json", check=True).stdout)
    assert run["database_snapshots"] == {} and run["database_snapshot"] is None
    assert run["files_snapshot"]["type"] == "files"
    listed = json.loads(app.cli("list", "--json", check=True).stdout)
    assert [s["type"] for s in listed] == ["files"]
    evidence = json.loads(app.cli("evidence", check=True).stdout)
    assert evidence["databases"] == [] and evidence["database_adapter"] is None
    assert evidence["latest_files_snapshot"]["id"] == run["files_snapshot"]["id"]
    out = app.root / "out"
    app.cli("restore-files", "latest", str(out), extra=RESTORE, check=True)
    assert (out / str(app.files).lstrip("/") / "uploads" / "a.txt").read_text() == "hello\n"
    refused = app.cli("restore-db", extra=RESTORE)
    assert refused.returncode == 2 and "DATABASE_ADAPTER" in refused.stderr


def legacy_run(app: App, run: str) -> None:
    """A run as the code before named databases wrote it: no database: tag."""
    tags = f"kamal-backup,app:shop,type:database,adapter:sqlite,run:{run}"
    app.restic(
        "backup",
        "--host",
        "shop",
        "--tag",
        tags,
        "--stdin-from-command",
        "--stdin-filename",
        f"databases-shop-sqlite-{run}.sqlite3",
        "--",
        "cat",
        str(app.db),
    )
    app.restic(
        "backup",
        "--host",
        "shop",
        "--tag",
        f"kamal-backup,app:shop,type:files,run:{run}",
        "--exclude",
        str(app.db),
        str(app.files),
    )


def test_a_repository_from_before_named_databases_lists_restores_and_keeps_retention(
    app: App,
) -> None:
    legacy_run(app, "20260101T000000Z")
    legacy_run(app, "20260102T000000Z")
    listed = json.loads(app.cli("list", "--json", check=True).stdout)
    assert {s["database"] for s in listed if s["type"] == "database"} == {"primary"}
    target = app.root / "restored.sqlite3"
    restored = json.loads(
        app.cli(
            "restore-db",
            "--json",
            extra={**RESTORE, "RESTORE_SQLITE_DATABASE_PATH": str(target)},
            check=True,
        ).stdout
    )
    assert "run:20260102T000000Z" in restored["snapshot"]["tags"]
    assert integrity_check(target) == "ok"

    run = json.loads(app.cli("backup", "--json", extra=KEEP_TWO, check=True).stdout)
    databases = json.loads(app.cli("list", "--type", "database", "--json", check=True).stdout)
    # Retention grouped the older primary snapshots with the new one: two kept, one forgotten.
    assert [s["run"] for s in databases] == [run["run"], "20260102T000000Z"]
    assert all(s["database"] == "primary" for s in databases)
    # With primary the only database, older snapshots keep their ids (no retagging).
    assert databases[1]["id"] in {s["id"] for s in listed}
    files = json.loads(app.cli("list", "--type", "files", "--json", check=True).stdout)
    assert [s["run"] for s in files] == [run["run"], "20260102T000000Z"]


def test_retention_groups_per_database_and_for_files(app: App) -> None:
    cache = app.root / "app" / "storage" / "cache.sqlite3"
    make_sqlite(cache, rows=5)
    app.env["DATABASES"] = json.dumps({"cache": {"adapter": "sqlite", "path": str(cache)}})
    runs = [
        json.loads(app.cli("backup", "--json", extra=KEEP_TWO, check=True).stdout) for _ in range(3)
    ]
    last = runs[-1]
    assert [(r["type"], r["database"], r["kept"]) for r in last["retention"]] == [
        ("database", "primary", 2),
        ("database", "cache", 2),
        ("files", None, 2),
    ]
    kept_runs = {r["run"] for r in runs[1:]}
    for tag in ("database:primary", "database:cache", "type:files"):
        assert len(app.snapshot_ids("app:shop", tag)) == 2, tag
    listed = json.loads(app.cli("list", "--json", check=True).stdout)
    assert {s["run"] for s in listed} == kept_runs


def test_in_place_restore_of_every_database_takes_a_safety_snapshot_of_each(app: App) -> None:
    cache = app.root / "app" / "storage" / "cache.sqlite3"
    make_sqlite(cache, rows=9)
    app.env["DATABASES"] = json.dumps({"cache": {"adapter": "sqlite", "path": str(cache)}})
    app.cli("backup", check=True)
    backed_up = {"primary": sqlite_rows(app.db), "cache": sqlite_rows(cache)}
    for path in (app.db, cache):
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM notes")
        db.close()
    allow = {**RESTORE, "KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE": "true"}
    result = app.cli("restore-db", "--in-place", "--json", extra=allow, check=True)
    restored = json.loads(result.stdout)
    assert [r["snapshot"]["database"] for r in restored] == ["primary", "cache"]
    assert sqlite_rows(app.db) == backed_up["primary"]
    assert sqlite_rows(cache) == backed_up["cache"]
    safety = {r["safety_snapshot"]["database"] for r in restored}
    assert safety == {"primary", "cache"}
    assert all("pre-restore" in r["safety_snapshot"]["tags"] for r in restored)


def test_older_snapshots_are_tagged_primary_once_a_second_database_is_configured(app: App) -> None:
    legacy_run(app, "20260101T000000Z")
    legacy_run(app, "20260102T000000Z")
    cache = app.root / "app" / "storage" / "cache.sqlite3"
    make_sqlite(cache, rows=5)
    app.env["DATABASES"] = json.dumps({"cache": {"adapter": "sqlite", "path": str(cache)}})
    run = json.loads(app.cli("backup", "--json", extra=KEEP_TWO, check=True).stdout)
    primary = json.loads(app.cli("list", "--type", "database", "--json", check=True).stdout)
    by_database: dict[str, list[str]] = {}
    for snapshot in primary:
        by_database.setdefault(snapshot["database"], []).append(snapshot["run"])
    assert by_database == {
        "primary": [run["run"], "20260102T000000Z"],
        "cache": [run["run"]],
    }
    assert len(app.snapshot_ids("database:primary")) == 2  # the older one was tagged
