"""Restore drills for real: PostgreSQL, MariaDB and SQLite runs restored, verified and recorded."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kamal_backup import cli, process, state
from kamal_backup.console import preserved_logging
from kamal_backup.errors import DrillInterrupted
from kamal_backup.models import VERIFYING, ResticStatus
from kamal_backup.scheduler import run_schedule
from kamal_backup.services import drill as drill_service
from kamal_backup.services.backup import run_backup
from kamal_backup.services.drill import run_drill
from kamal_backup.services.evidence import build_evidence
from kamal_backup.settings import Settings, load_settings
from kamal_backup.verification import DrillRecord
from tests.conftest import App, sqlite_rows, start_until
from tests.integration.databases import mariadb, my_databases, pg_databases, psql
from tests.integration.servers import rest_server

pytestmark = pytest.mark.integration


def scratch(app: App) -> dict[str, str]:
    return {
        "KAMAL_BACKUP_ALLOW_RESTORE": "true",
        "RESTORE_SQLITE_DATABASE_PATH": str(app.root / "scratch" / "db.sqlite3"),
        "RESTORE_FILES_PATH": str(app.root / "scratch" / "files"),
    }


def settings_of(app: App, **extra: str) -> Settings:
    return load_settings(environ={**app.env, **scratch(app), **extra})


def drill_json(app: App, *args: str, extra: dict[str, str] | None = None) -> dict[str, object]:
    result = app.cli("drill", "--json", *args, extra={**scratch(app), **(extra or {})})
    assert result.stdout, result.stderr
    record: dict[str, object] = json.loads(result.stdout)
    record["_exit"] = result.returncode
    record["_stderr"] = result.stderr
    return record


def tables(record: dict[str, object]) -> dict[str, str]:
    verification = record["verification"]
    assert isinstance(verification, dict)
    return {check["table"]: check["verdict"] for check in verification["tables"]}


# Passing drills ---------------------------------------------------------------------------------


def test_sqlite_drill_with_files_passes_verified_and_is_recorded_twice(app: App) -> None:
    app.cli("backup", check=True)
    # Leftovers of an earlier drill: the drill says what it is about to drop and replace.
    scratch_db = app.root / "scratch" / "db.sqlite3"
    scratch_db.parent.mkdir()
    with sqlite3.connect(scratch_db) as db:
        db.execute("CREATE TABLE leftover (id INTEGER)")
        db.execute("CREATE TABLE other (id INTEGER)")
    db.close()
    old = app.root / "scratch" / "files" / str(app.files).lstrip("/") / "old.txt"
    old.parent.mkdir(parents=True)
    old.write_text("from an earlier drill\n")
    record = drill_json(app)
    assert record["_exit"] == 0, record["_stderr"]
    stderr = str(record["_stderr"])
    said = f"WARNING drill: {scratch_db} has 2 tables; they will be dropped"
    assert said in stderr
    files = app.root / "scratch" / "files"
    assert f"WARNING drill: {files} holds 1 file (22 B); it will be replaced" in stderr
    assert stderr.index(said) < stderr.index("restoring")  # said before anything is written
    # The long step after the restore says what it does.
    assert stderr.index("INFO drill: verifying the restored database and files") < (
        stderr.index("INFO drill: verified:")
    )
    assert not old.exists()
    assert record["status"] == "passed"
    verification = record["verification"]
    assert isinstance(verification, dict)
    assert verification["status"] == "verified"
    assert verification["method"] == "checksum"
    assert tables(record) == {"notes": "match"}
    assert verification["files_expected"] == verification["files_restored"] == 2
    assert verification["files_mismatched"] == 0
    assert isinstance(record["rto_seconds"], float) and record["rto_seconds"] > 0
    assert isinstance(record["rpo_seconds"], float) and record["rpo_seconds"] >= 0
    assert "@" in str(record["ran_by"])
    # The state directory and the repository both hold it.
    assert [r.id for r in state.drills(app.root / "state" / "shop")] == [record["id"]]
    assert len(app.snapshot_ids("kamal-backup", "app:shop", "type:drill")) == 1
    restored = app.root / "scratch" / "files" / str(app.files).lstrip("/") / "uploads" / "a.txt"
    assert restored.read_text() == "hello\n"


@pytest.fixture
def pg_app(app: App) -> Iterator[tuple[App, str, str]]:
    with pg_databases("kb_drill_src", "kb_drill_scratch") as (source, target):
        psql(f'CREATE DATABASE "{source}"')
        psql(
            "CREATE SCHEMA billing;"
            "CREATE TABLE public.customers (id serial PRIMARY KEY, name text, "
            "  seen timestamptz DEFAULT '2026-01-01 12:00+02', score float8, avatar bytea);"
            'CREATE TABLE billing."odd|name" (n numeric(12,2), j jsonb);'
            "INSERT INTO public.customers (name, score, avatar) SELECT 'Änne ' || g, g / 3.0,"
            "  decode(md5(g::text), 'hex') FROM generate_series(1, 500) g;"
            """INSERT INTO billing."odd|name" VALUES (1.5, '{"a": [1, 2]}'), (NULL, NULL);""",
            source,
        )
        app.env.update(
            {
                "DATABASE_ADAPTER": "postgres",
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{source}",
                "RESTORE_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{target}",
            }
        )
        yield app, source, target


def test_postgres_drill_with_files_passes_with_verified_matches(
    pg_app: tuple[App, str, str],
) -> None:
    app, _, target = pg_app
    app.cli("backup", check=True)
    psql(f'CREATE DATABASE "{target}"')
    psql("CREATE TABLE leftover (id int)", target)
    record = drill_json(app)
    assert record["_exit"] == 0, record["_stderr"]
    assert f"WARNING drill: {target} has 1 table; it will be dropped" in str(record["_stderr"])
    assert record["status"] == "passed"
    assert tables(record) == {"billing.odd|name": "match", "public.customers": "match"}
    rows = {c["table"]: c["rows_restored"] for c in record["verification"]["tables"]}  # type: ignore[index]
    assert rows == {"billing.odd|name": 2, "public.customers": 500}


def test_postgres_scratch_data_changed_before_verification_fails_naming_the_table(
    pg_app: tuple[App, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _, target = pg_app
    app.cli("backup", check=True)

    def tamper(record: DrillRecord) -> None:
        psql("UPDATE public.customers SET name = 'changed' WHERE id = 7", target)

    monkeypatch.setattr(
        drill_service, "run_drill", functools.partial(run_drill, before_verify=tamper)
    )
    monkeypatch.setattr("os.environ", {**app.env, **scratch(app)})
    with preserved_logging():  # the CLI's handler writes to CliRunner's stream, closed after
        result = CliRunner().invoke(cli.app, ["drill"])
    assert result.exit_code == 1
    assert "public.customers" in result.output
    assert "mismatch: same row count, different content" in result.output
    assert "billing.odd|name" in result.output
    last = state.drills(app.root / "state" / "shop")[0]
    assert last.status == "failed"
    assert last.verification.mismatched_tables == ["public.customers"]


def test_mariadb_drill_passes_and_a_myisam_table_is_counted_not_compared(app: App) -> None:
    with my_databases("kb_drill_src", "kb_drill_scratch") as (source, target):
        mariadb(
            f"CREATE DATABASE `{source}`; USE `{source}`;"
            "CREATE TABLE items (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(50), price DECIMAL(8,2),"
            "  data BLOB, at DATETIME) ENGINE=InnoDB;"
            "INSERT INTO items (name, price, data, at) VALUES ('Änne', 1.50, x'00ff', '2026-01-01 00:00:00'),"
            "  ('b', NULL, NULL, NULL), ('c', 3, '', '2026-02-02 10:00:00');"
            "CREATE TABLE counters (n INT) ENGINE=MyISAM; INSERT INTO counters VALUES (1), (2);"
        )
        app.env.update(
            {
                "DATABASE_ADAPTER": "mysql",
                "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{source}",
                "RESTORE_DATABASE_URL": f"mysql://root@127.0.0.1:3306/{target}",
            }
        )
        app.cli("backup", check=True)
        record = drill_json(app)
        assert record["_exit"] == 0, record["_stderr"]
        assert tables(record) == {"counters": "not comparable", "items": "match"}
        assert record["verification"]["status"] == "verified"  # type: ignore[index]

        # Changed scratch content is found in an InnoDB table.
        def tamper(_: DrillRecord) -> None:
            mariadb(f"UPDATE `{target}`.items SET price = 9.99 WHERE name = 'b'")

        failed = run_drill(settings_of(app), before_verify=tamper)
        assert failed.status == "failed"
        assert failed.verification.mismatched_tables == ["items"]


# Mismatches, checks, gates ----------------------------------------------------------------------


def test_a_changed_scratch_file_fails_the_drill_naming_the_path(app: App) -> None:
    app.cli("backup", check=True)
    settings = settings_of(app)
    photo = str(app.files / "uploads" / "ünï" / "photo.bin")

    def tamper(record: DrillRecord) -> None:
        Path(str(record.files_target) + photo).write_bytes(b"x" * 4096)

    record = run_drill(settings, before_verify=tamper)
    assert record.status == "failed"
    assert [m.path for m in record.verification.file_mismatches] == [photo]
    assert record.verification.file_mismatches[0].detail == "same size, different content"
    assert record.verification.mismatched_tables == []


def test_a_sqlite_row_changed_in_the_scratch_database_fails_the_drill(app: App) -> None:
    app.cli("backup", check=True)

    def tamper(record: DrillRecord) -> None:
        with sqlite3.connect(app.root / "scratch" / "db.sqlite3") as db:
            db.execute("DELETE FROM notes WHERE id = 3")
        db.close()

    record = run_drill(settings_of(app), before_verify=tamper)
    assert record.status == "failed"
    assert record.verification.tables[0].detail == "199 rows restored, 200 backed up"


def test_check_commands_decide_the_drill(app: App) -> None:
    app.cli("backup", check=True)
    failed = drill_json(app, "--check", "false")
    assert failed["_exit"] == 1 and failed["status"] == "failed"
    assert failed["check"]["exit_code"] == 1  # type: ignore[index]

    passed = drill_json(
        app, "--check", "sh -c 'test -f \"$KAMAL_BACKUP_DRILL_DATABASE_TARGET\" && echo seen'"
    )
    assert passed["_exit"] == 0, passed["_stderr"]
    assert passed["check"]["output"] == "seen"  # type: ignore[index]
    assert drill_json(app, "--check", "sh -c 'exit 0'")["_exit"] == 0

    missing = app.cli("drill", "--check", "no-such-program-xyz --flag", extra=scratch(app))
    assert missing.returncode == 1
    errors = [line for line in missing.stderr.splitlines() if "error" in line]
    assert errors == [
        "kamal-backup: error: drill failed: check command 'no-such-program-xyz' is not installed "
        "or not on PATH"
    ]
    assert "Traceback" not in missing.stderr
    last = state.drills(app.root / "state" / "shop")[0]
    assert last.status == "failed" and last.check is not None
    assert last.check.error == "check command 'no-such-program-xyz' is not installed or not on PATH"


def test_gates_refuse_drills(app: App) -> None:
    app.cli("backup", check=True)
    no_flag = app.cli("drill", extra={**scratch(app), "KAMAL_BACKUP_ALLOW_RESTORE": "false"})
    assert no_flag.returncode == 3
    into_source = app.cli(
        "drill",
        extra={
            **scratch(app),
            "RESTORE_SQLITE_DATABASE_PATH": str(app.db),
            "KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE": "true",
        },
    )
    assert into_source.returncode == 3
    assert str(app.db) in into_source.stderr and "never writes to the backup source" in (
        into_source.stderr
    )
    into_files = app.cli(
        "drill",
        "--files-target",
        str(app.files),
        extra={**scratch(app), "KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE": "true"},
    )
    assert into_files.returncode == 3
    assert "never writes into a backup path" in into_files.stderr
    assert state.drills(app.root / "state" / "shop") == []


def holding_database_dumps(app: App) -> tuple[str, Path]:
    """A PATH whose `restic` holds every `dump` of a SQLite database until a signal ends it
    (manifests and the rest run as usual), and the file it touches once one is held: a signal
    then lands while the database is restored, whatever the machine's load."""
    real = shutil.which("restic")
    held = app.root / "held-bin"
    held.mkdir()
    marker = app.root / "dump-held"
    (held / "restic").write_text(
        f'#!/bin/sh\nif [ "$1" = dump ]; then case "$3" in *.sqlite3) touch "{marker}"; '
        f'sleep 600;; esac; fi\nexec "{real}" "$@"\n'
    )
    (held / "restic").chmod(0o755)
    return f"{held}:{app.env['PATH']}", marker


def kill_held_dumps(app: App) -> None:
    """Kills what a failed test left held (each held dump leads its own process group)."""
    wrapper = str(app.root / "held-bin").encode()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and wrapper in (entry / "cmdline").read_bytes():
                os.killpg(int(entry.name), signal.SIGKILL)


def test_a_drill_killed_halfway_is_recorded_as_interrupted(app: App) -> None:
    app.cli("backup", check=True)
    app.env.update(scratch(app))
    # A loaded CI machine once read the log line late, when both parts were restored and
    # verified: the record said "verified". The dump is held now, as a big database's would be.
    plain_path = app.env["PATH"]
    app.env["PATH"], held = holding_database_dumps(app)
    proc = start_until(app, "restoring database snapshot", "drill")
    app.env["PATH"] = plain_path
    try:
        deadline = time.monotonic() + 60
        while not held.exists():  # the signal lands on a running restore
            assert time.monotonic() < deadline, "the database's dump never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 130
    finally:
        proc.kill()
        kill_held_dumps(app)  # only when it failed: the drill stops them itself
    [record] = state.drills(app.root / "state" / "shop")
    assert record.status == "interrupted"
    assert record.verification.status == "not verified"
    # The scratch database is never swapped in half-made.
    assert not (app.root / "scratch" / "db.sqlite3").exists()
    # The next drill stores the interrupted record in the repository too.
    drill_json(app)
    assert len(app.snapshot_ids("type:drill")) == 2


def test_a_drill_cancelled_after_its_files_were_restored_says_so(app: App) -> None:
    """The interruption names what stays restored (the TUI says it with the cancel)."""
    app.cli("backup", check=True)
    app.env["PATH"], held = holding_database_dumps(app)
    settings = settings_of(app)
    restored_files = app.root / "scratch" / "files" / str(app.files).lstrip("/")
    raised: list[BaseException] = []

    def drill() -> None:
        with process.cancel_scope("drill") as scope:
            scopes.append(scope)
            try:
                run_drill(settings)
            except BaseException as exc:
                raised.append(exc)

    scopes: list[process.CancelScope] = []
    worker = threading.Thread(target=drill, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while not (held.exists() and restored_files.exists()):
            assert time.monotonic() < deadline and worker.is_alive(), "the parts never got there"
            time.sleep(0.05)
        scopes[0].cancel()
        worker.join(timeout=30)
        assert not worker.is_alive()
    finally:
        kill_held_dumps(app)
    [exc] = raised
    assert isinstance(exc, DrillInterrupted), repr(exc)
    [record] = state.drills(app.root / "state" / "shop")
    assert record.status == "interrupted"
    [files] = record.parts
    assert files.kind == "files"
    assert exc.restored == [
        f"files snapshot {files.snapshot_id[:8]} was restored into {files.target}"
    ]
    assert exc.unfinished == {"database"}
    assert str(exc) == f"interrupted: {exc.restored[0]}"  # the CLI's line says it too


# History, evidence, scheduler, retention, append-only -------------------------------------------


def test_evidence_with_an_empty_state_directory_reads_drills_from_the_repository(
    app: App, tmp_path: Path
) -> None:
    app.cli("backup", check=True)
    record = drill_json(app)
    laptop = settings_of(app, KAMAL_BACKUP_STATE_DIR=str(tmp_path / "laptop-state"))
    evidence = build_evidence(laptop)
    assert evidence.drills.last is not None and evidence.drills.last.id == record["id"]
    assert [h.id for h in evidence.drills.history] == [record["id"]]
    assert evidence.drills.history[0].verification == "verified"


def test_a_backup_without_manifest_drills_as_not_verified_and_passes(app: App) -> None:
    run_backup(load_settings(environ=app.env), manifest=False)
    record = drill_json(app)
    assert record["_exit"] == 0
    assert record["verification"]["status"] == "not verified"  # type: ignore[index]
    assert record["verification"]["reason"] == "no manifest"  # type: ignore[index]


def test_each_parts_progress_ends_full(app: App) -> None:
    """A part's line ends at 100% with its size, even a restore too small to report progress."""
    app.cli("backup", check=True)
    statuses: dict[str, list[ResticStatus]] = {}
    order: list[str] = []

    def collect(label: str, status: ResticStatus) -> None:
        statuses.setdefault(label, []).append(status)
        order.append(label)

    record = run_drill(settings_of(app), on_status=collect)
    assert record.status == "passed"
    assert statuses.keys() == {"database", "files", VERIFYING}
    assert order[-1] == VERIFYING and order.count(VERIFYING) == 1  # once both are restored
    for part in record.parts:
        last = statuses[part.kind][-1]
        assert last.percent_done == 1.0
        assert last.total_bytes == last.bytes_done == part.bytes_restored
        assert part.bytes_restored


def test_a_database_only_app_without_manifest_drills_as_not_verified(app: App) -> None:
    # Nothing to recompute at all: the verification step has no part to run.
    app.env["BACKUP_PATHS"] = ""
    run_backup(load_settings(environ=app.env), manifest=False)
    record = drill_json(app)
    assert record["_exit"] == 0, record["_stderr"]
    assert record["status"] == "passed"
    assert record["verification"]["status"] == "not verified"  # type: ignore[index]
    assert [part["kind"] for part in record["parts"]] == ["database"]  # type: ignore[union-attr]
    assert len(state.drills(app.root / "state" / "shop")) == 1


def test_the_scheduler_runs_a_due_drill_after_a_backup(app: App) -> None:
    settings = settings_of(app, KAMAL_BACKUP_DRILL_SCHEDULE_SECONDS="604800")
    failures = run_schedule(settings, threading.Event(), max_runs=1)
    assert failures == 0
    [record] = state.drills(app.root / "state" / "shop")
    assert record.ran_by == "scheduler" and record.status == "passed"
    # Not due again right after: a second run backs up without drilling.
    run_schedule(settings, threading.Event(), max_runs=1)
    assert len(state.drills(app.root / "state" / "shop")) == 1
    # Overdue once older than the schedule (fake clock: timing only).
    from kamal_backup.services.health import check_health

    later = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1)
    report = check_health(settings, now=later)
    assert report.drill_overdue is True and report.last_drill_status == "passed"


def test_stopping_the_scheduler_stops_its_drill_and_records_it_interrupted(app: App) -> None:
    app.env["PATH"], held = holding_database_dumps(app)
    settings = settings_of(app, KAMAL_BACKUP_DRILL_SCHEDULE_SECONDS="604800")
    stop = threading.Event()
    failures: list[int] = []
    scheduler = threading.Thread(
        target=lambda: failures.append(run_schedule(settings, stop)), daemon=True
    )
    scheduler.start()
    try:
        deadline = time.monotonic() + 60
        while not held.exists():
            assert time.monotonic() < deadline and scheduler.is_alive(), "the drill never started"
            time.sleep(0.05)
        stop.set()  # what SIGTERM does to `kamal-backup schedule`
        scheduler.join(timeout=30)
        assert not scheduler.is_alive(), "the scheduler waited for its drill to finish"
    finally:
        stop.set()
        kill_held_dumps(app)  # only when it failed: the drill stops them itself
    assert failures == [0]  # the backup succeeded; a drill stopped by shutdown is no failure
    [record] = state.drills(app.root / "state" / "shop")
    assert record.ran_by == "scheduler" and record.status == "interrupted"
    assert not (app.root / "scratch" / "db.sqlite3").exists()


def test_retention_forgets_manifests_with_their_runs_and_keeps_drill_records(app: App) -> None:
    app.env["RESTIC_KEEP_LAST"] = "1"
    app.env["RESTIC_KEEP_DAILY"] = "0"
    app.env["KAMAL_BACKUP_KEEP_GOOD"] = "0"  # else the drilled and last good runs stay
    app.cli("backup", check=True)
    drill_json(app)
    app.cli("backup", check=True)
    app.cli("backup", check=True)
    manifests = json.loads(
        app.restic("snapshots", "--json", "--no-lock", "--tag", "type:manifest").stdout
    )
    kept_runs = {
        tag
        for s in json.loads(
            app.restic("snapshots", "--json", "--no-lock", "--tag", "type:database").stdout
        )
        for tag in s["tags"]
        if tag.startswith("run:")
    }
    assert len(manifests) < 3  # the first run was forgotten, and its manifest with it
    assert {t for s in manifests for t in s["tags"] if t.startswith("run:")} == kept_runs
    assert len(app.snapshot_ids("type:drill")) == 1
    # A manifest never makes a run complete, and never shows as a backup.
    listed = json.loads(app.cli("list", "--json", check=True).stdout)
    assert {s["type"] for s in listed} == {"database", "files"}


def test_an_append_only_repository_accepts_manifests_and_drill_records(
    app: App, tmp_path: Path
) -> None:
    data = tmp_path / "rest"
    data.mkdir()
    with rest_server(data, append_only=True) as port:
        app.env.update(
            {
                "RESTIC_REPOSITORY": f"rest:http://127.0.0.1:{port}/shop",
                "RESTIC_INIT_IF_MISSING": "true",
                "RESTIC_FORGET_AFTER_BACKUP": "false",
            }
        )
        app.cli("backup", check=True)
        record = drill_json(app)
        assert record["_exit"] == 0, record["_stderr"]
        assert record["verification"]["status"] == "verified"  # type: ignore[index]
        listed = json.loads(app.cli("drill", "--json", extra=scratch(app), check=True).stdout)
        assert listed["status"] == "passed"
        assert all(r.stored_in_repository for r in state.drills(app.root / "state" / "shop"))


def test_a_drill_restores_and_verifies_every_database_and_names_the_changed_one(
    app: App,
) -> None:
    from tests.conftest import make_sqlite

    cache = app.root / "app" / "storage" / "cache.sqlite3"
    make_sqlite(cache, rows=7)
    scratch_cache = app.root / "scratch" / "cache.sqlite3"
    app.env["DATABASES"] = json.dumps(
        {"cache": {"adapter": "sqlite", "path": str(cache), "restore_path": str(scratch_cache)}}
    )
    app.cli("backup", check=True)

    record = run_drill(settings_of(app))
    assert record.status == "passed", (record.error, record.verification.tables)
    assert record.verification.status == "verified"
    assert record.verification.databases == ["primary", "cache"]
    assert {(check.database, check.verdict) for check in record.verification.tables} == {
        ("primary", "match"),
        ("cache", "match"),
    }
    assert record.database_targets == {
        "primary": str(app.root / "scratch" / "db.sqlite3"),
        "cache": str(scratch_cache),
    }
    assert sorted((p.kind, p.database or "") for p in record.parts) == [
        ("database", "cache"),
        ("database", "primary"),
        ("files", ""),
    ]
    assert sqlite_rows(scratch_cache) == sqlite_rows(cache)
    assert record.verification.files_mismatched == 0

    def tamper(_record: DrillRecord) -> None:
        with sqlite3.connect(scratch_cache) as db:
            db.execute("DELETE FROM notes WHERE id = 3")
        db.close()

    failed = run_drill(settings_of(app), before_verify=tamper)
    assert failed.status == "failed"
    assert failed.verification.mismatched_tables == ["cache.notes"]
    assert cli.drill_failure(failed) == "verification found mismatches: tables cache.notes"


def test_database_target_is_a_usage_error_with_several_databases(app: App) -> None:
    from tests.conftest import make_sqlite

    cache = app.root / "app" / "storage" / "cache.sqlite3"
    make_sqlite(cache, rows=3)
    app.env["DATABASES"] = json.dumps({"cache": {"adapter": "sqlite", "path": str(cache)}})
    app.cli("backup", check=True)
    result = app.cli("drill", "--database-target", str(app.root / "x.sqlite3"), extra=scratch(app))
    assert result.returncode == 2
    assert "--database-target: applies only to an app with one database" in result.stderr
    # Without --database-target, the cache has no restore target: refused, naming it.
    refused = app.cli("drill", extra=scratch(app))
    assert refused.returncode == 2, refused.stderr
    assert "databases.cache.restore_path: is required" in refused.stderr
    assert not (app.root / "scratch").exists()
