"""A `latest` you can trust (issue 15), with real restic, SQLite, PostgreSQL and rest-server:
runs compared with the last good run, suspicious runs kept and skipped, accept, kept-good
retention, and adopting the original tool's snapshots."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RESTIC_PASSWORD, App, make_sqlite
from tests.integration.databases import pg_databases, psql
from tests.integration.servers import recording_server, rest_server

pytestmark = pytest.mark.integration

ALLOW = {"KAMAL_BACKUP_ALLOW_RESTORE": "true"}
KEEP_ONE = {
    "RESTIC_KEEP_LAST": "1",
    "RESTIC_KEEP_DAILY": "0",
    "RESTIC_KEEP_WEEKLY": "0",
    "RESTIC_KEEP_MONTHLY": "0",
    "RESTIC_KEEP_YEARLY": "0",
}


def listing(app: App) -> list[dict[str, Any]]:
    """Every snapshot of the repository, records included, as restic lists them."""
    result = subprocess.run(
        ["restic", "snapshots", "--json", "--no-lock"],
        env={**os.environ, **app.env},
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(result.stdout))


def of_run(app: App, run: str) -> list[dict[str, Any]]:
    return [s for s in listing(app) if f"run:{run}" in (s.get("tags") or [])]


def evidence(app: App) -> dict[str, Any]:
    return dict(json.loads(app.cli("evidence", check=True).stdout))


def findings(stderr: str) -> list[str]:
    return [
        line.removeprefix("kamal-backup: suspicious: ")
        for line in stderr.splitlines()
        if line.startswith("kamal-backup: suspicious: ")
    ]


def test_sqlite_emptied_table_is_kept_tagged_skipped_by_latest_until_accepted(
    app: App, tmp_path: Path
) -> None:
    app.env.update(KEEP_ONE)  # with RESTIC_KEEP_LAST=1, only kept-good protects the good run
    make_sqlite(app.db, rows=800)  # 1,000 rows with the fixture's 200
    with sqlite3.connect(app.db) as db:
        assert db.execute("SELECT count(*) FROM notes").fetchone() == (1000,)
    db.close()

    # The very first run of an app has nothing to compare with: not suspicious.
    first = json.loads(app.cli("backup", "--json", check=True).stdout)
    assert first["status"] == "success" and first["baseline_run"] is None
    assert first["suspicious"] == []

    with sqlite3.connect(app.db) as db:
        db.execute("DELETE FROM notes")
    db.close()
    with recording_server() as server:
        hook = {"KAMAL_BACKUP_WEBHOOK_URL": server.url("/hooks/kamal")}
        emptied = app.cli("backup", extra=hook)
        events = [json.loads(r.body) for r in server.to("/hooks/kamal")]
    assert emptied.returncode == 1, emptied.stderr
    lines = findings(emptied.stderr)
    assert "table notes: 1,000 → 0 rows" in lines
    assert len(lines) == len(set(lines)) >= 1
    assert "Traceback" not in emptied.stderr
    # The notification says what happened, not just "failed".
    assert [e["event"] for e in events] == ["start", "failure"]
    assert "SUSPICIOUS" in str(events[1]["error"]) and "table notes" in str(events[1]["error"])

    state = json.loads((app.root / "state" / "shop" / "last_backup.json").read_text())
    bad_run = state["run"]
    assert state["status"] == "suspicious" and state["baseline_run"] == first["run"]
    tagged = of_run(app, bad_run)
    assert {t for s in tagged for t in s["tags"] if t.startswith("type:")} == {
        "type:database",
        "type:files",
        "type:manifest",
    }
    assert all("suspicious" in s["tags"] for s in tagged)
    # The failure event names the run and its snapshots as they are now (tagging gave new ids).
    assert events[1]["run"] == bad_run
    assert events[1]["snapshot_ids"] and set(events[1]["snapshot_ids"]) <= {s["id"] for s in tagged}
    listed = app.cli("list", check=True).stdout
    assert "database (suspicious)" in listed and "files (suspicious)" in listed

    # `latest` skips the suspicious run: restore-db latest brings back the 1,000 rows.
    target = tmp_path / "restored.sqlite3"
    restored = app.cli(
        "restore-db", extra={**ALLOW, "RESTORE_SQLITE_DATABASE_PATH": str(target)}, check=True
    )
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT count(*) FROM notes").fetchone() == (1000,)
    db.close()
    assert f"latest is run {first['run']}: the newer suspicious run {bad_run} is skipped" in (
        restored.stderr
    )
    # Named by its run, the suspicious run is restored, with a warning.
    by_name = app.cli(
        "restore", bad_run, extra={**ALLOW, "RESTORE_SQLITE_DATABASE_PATH": str(target),
                                   "RESTORE_FILES_PATH": str(tmp_path / "files")},
        check=True,
    )  # fmt: skip
    assert f"run {bad_run} is suspicious" in by_name.stderr

    # A string of empty backups stays suspicious (each is compared with the last good run), and
    # RESTIC_KEEP_LAST=1 does not rotate the good run out.
    for _ in range(3):
        again = app.cli("backup")
        assert again.returncode == 1 and "table notes: 1,000 → 0 rows" in findings(again.stderr)
    good = of_run(app, first["run"])
    assert {s["id"] for s in good} >= {
        first["database_snapshot"]["id"],
        first["files_snapshot"]["id"],
    }
    # A drill of a suspicious run restores and verifies it, and says the run is suspicious: in
    # its warning, its result line, its record and the evidence report.
    drill = app.cli(
        "drill",
        bad_run,
        extra={
            **ALLOW,
            "RESTORE_SQLITE_DATABASE_PATH": str(tmp_path / "drill" / "db.sqlite3"),
            "RESTORE_FILES_PATH": str(tmp_path / "drill" / "files"),
        },
        check=True,
    )
    assert f"drill: run {bad_run} is suspicious" in drill.stderr
    assert f"run {bad_run} is suspicious" in drill.stdout and "drill PASSED" in drill.stdout
    report = evidence(app)
    assert report["drills"]["last"]["suspicious_run"] is True
    assert report["drills"]["history"][0]["suspicious_run"] is True
    markdown = app.cli("evidence", "--format", "markdown", check=True).stdout
    assert f"{bad_run} \\(suspicious\\)" in markdown  # Markdown-escaped parentheses
    assert len(report["suspicious_runs"]) == 4 and bad_run in report["suspicious_runs"]
    assert report["kept_good_runs"] == [first["run"]]
    assert report["latest_database_snapshot"]["run"] == first["run"]
    assert report["last_backup"]["suspicious"] and report["last_backup"]["status"] == "suspicious"

    # accept: the newest emptied run becomes `latest`, and the next run compares against it.
    newest = max(report["suspicious_runs"])
    accepted = app.cli("accept", newest, check=True)
    assert f"run {newest} accepted by" in accepted.stdout
    assert not any("suspicious" in s["tags"] for s in of_run(app, newest))
    report = evidence(app)
    assert report["latest_database_snapshot"]["run"] == newest
    assert [a["run"] for a in report["accepted_runs"]] == [newest]
    assert report["accepted_runs"][0]["accepted_by"] and report["accepted_runs"][0]["accepted_at"]
    assert newest not in report["suspicious_runs"] and len(report["suspicious_runs"]) == 3
    assert "not suspicious" in app.cli("accept", newest, check=True).stdout
    after = json.loads(app.cli("backup", "--json", check=True).stdout)
    assert after["baseline_run"] == newest and after["suspicious"] == []

    wrong = app.cli("accept", "yesterday")
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "RUN" in wrong.stderr


def test_postgres_emptied_table_and_a_new_empty_database(app: App, tmp_path: Path) -> None:
    with pg_databases("kb_trust", "kb_trust_new", "kb_trust_restore") as (source, new, target):
        psql(f'CREATE DATABASE "{source}"')
        psql(f'CREATE DATABASE "{new}"')
        psql(
            "CREATE TABLE users (id serial PRIMARY KEY, email text);"
            "INSERT INTO users (email) SELECT 'u' || g || '@example.com' "
            "FROM generate_series(1, 1000) g;",
            source,
        )
        app.env.update(
            {
                "DATABASE_ADAPTER": "postgres",
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{source}",
                "BACKUP_PATHS": "",
            }
        )
        del app.env["SQLITE_DATABASE_PATH"]
        good = json.loads(app.cli("backup", "--json", check=True).stdout)
        assert good["suspicious"] == []

        psql("DELETE FROM users", source)
        emptied = app.cli("backup")
        assert emptied.returncode == 1
        assert "table public.users: 1,000 → 0 rows" in findings(emptied.stderr)
        emptied_run = json.loads((app.root / "state" / "shop" / "last_backup.json").read_text())[
            "run"
        ]
        assert all("suspicious" in s["tags"] for s in of_run(app, emptied_run))

        restore = {**ALLOW, "RESTORE_DATABASE_URL": f"postgres://postgres@127.0.0.1/{target}"}
        app.cli("restore-db", "latest", extra=restore, check=True)
        assert psql("SELECT count(*) FROM users", target).strip() == "1000"

        # DATABASE_URL pointed at a new, empty database: suspicious against the good run.
        pointed = app.cli("backup", extra={"DATABASE_URL": f"postgres://postgres@127.0.0.1/{new}"})
        assert pointed.returncode == 1
        assert any(line.startswith("no tables (run ") for line in findings(pointed.stderr))

        app.cli("accept", emptied_run, check=True)
        report = evidence(app)
        assert report["latest_database_snapshot"]["run"] == emptied_run
        assert report["accepted_runs"][0]["run"] == emptied_run


def test_a_files_only_app_whose_path_was_emptied_is_suspicious(app: App) -> None:
    app.env.update({"DATABASE_ADAPTER": "none"})
    del app.env["SQLITE_DATABASE_PATH"]
    storage = app.files / "many"
    storage.mkdir()
    for index in range(98):  # 100 files with the fixture's two
        (storage / f"{index}.txt").write_text(f"file {index}\n")
    first = json.loads(app.cli("backup", "--json", check=True).stdout)
    assert first["files_snapshot"]["total_bytes_processed"] > 0
    for path in sorted(app.files.rglob("*"), reverse=True):
        if path.is_file():
            path.unlink()
    emptied = app.cli("backup")
    assert emptied.returncode == 1
    assert any(line.startswith("files: 100 → 0") for line in findings(emptied.stderr))


def test_back_to_back_runs_never_share_a_name(app: App) -> None:
    # A run is named by its start to the second; a tiny app backs up in well under a second, and
    # two runs under one name read as one run, the second never compared with the first.
    runs = [json.loads(app.cli("backup", "--json", check=True).stdout) for _ in range(3)]
    names = [run["run"] for run in runs]
    assert names == sorted(set(names)), names
    assert [run["baseline_run"] for run in runs[1:]] == names[:2]


def test_a_run_whose_file_backup_stopped_is_suspicious(app: App) -> None:
    # A misspelled BACKUP_PATHS (BACKUP_PATH) leaves the app database-only: the run saves its
    # database and would report a success; against a run with files it is suspicious.
    app.cli("backup", check=True)
    paths = app.env.pop("BACKUP_PATHS")
    dropped = app.cli("backup", extra={"BACKUP_PATH": paths})
    assert dropped.returncode == 1, dropped.stderr
    [finding] = findings(dropped.stderr)
    assert finding.startswith("files: 2 (") and finding.endswith(
        ") → no file snapshot (this run backed up no files: is BACKUP_PATHS set?)"
    ), finding
    run = json.loads((app.root / "state" / "shop" / "last_backup.json").read_text())["run"]
    assert all("suspicious" in s["tags"] for s in of_run(app, run))
    # Accepted (the files were dropped on purpose), the next database-only run is good.
    app.cli("accept", run, check=True)
    assert app.cli("backup").returncode == 0


def original_tool_snapshot(
    env: dict[str, str], host: str, run: str, kind: str, source: Path
) -> None:
    """A snapshot as the original kamal-backup made it: its tags, a random container host."""
    tags = ["kamal-backup", "app:shop", f"type:{kind}", f"run:{run}"]
    if kind == "database":
        tags.append("adapter:sqlite")
    argv = [
        "restic",
        "backup",
        "--host",
        host,
        "--time",
        f"{run[:4]}-{run[4:6]}-{run[6:8]} 03:00:00",
    ]
    for tag in tags:
        argv += ["--tag", tag]
    if kind == "database":
        argv += ["--stdin", "--stdin-filename", f"databases-shop-sqlite-{run}.sqlite3"]
        subprocess.run(argv, input=source.read_bytes(), env=env, check=True, capture_output=True)
    else:
        subprocess.run([*argv, str(source.parent)], env=env, check=True, capture_output=True)


def make_inherited_history(app: App) -> list[str]:
    env = {**os.environ, **app.env, "RESTIC_PASSWORD": RESTIC_PASSWORD}
    runs = ["20260101T030000Z", "20260102T030000Z", "20260103T030000Z"]
    for host, run in zip(("6f1a2b3c4d5e", "a9b8c7d6e5f4", "0123456789ab"), runs, strict=True):
        original_tool_snapshot(env, host, run, "database", app.db)
        original_tool_snapshot(env, host, run, "files", app.files / "uploads" / "a.txt")
    return runs


def test_adopt_rewrites_the_original_tools_hosts_and_retention_then_applies(app: App) -> None:
    runs = make_inherited_history(app)
    before = listing(app)
    assert len({s["hostname"] for s in before}) == 3

    dry = json.loads(app.cli("adopt", "--dry-run", "--json", check=True).stdout)
    assert dry["dry_run"] is True and len(dry["snapshots"]) == 6
    by_id = {s["id"]: s for s in before}
    assert {s["id"]: s for s in listing(app)} == by_id  # --dry-run changes nothing

    done = app.cli("adopt", check=True)
    assert "rewrote 6 snapshots to host shop" in done.stdout
    after = listing(app)
    assert {s["hostname"] for s in after} == {"shop"} and len(after) == 6
    assert sorted(s["time"] for s in after) == sorted(s["time"] for s in before)
    assert {tuple(sorted(s["tags"])) for s in after} == {tuple(sorted(s["tags"])) for s in before}
    assert "already under host shop" in app.cli("adopt", check=True).stdout

    # One host group now: RESTIC_KEEP_LAST=1 leaves only the newest run of the inherited history.
    pruned = app.cli("prune", extra={**KEEP_ONE, "KAMAL_BACKUP_KEEP_GOOD": "0"}, check=True)
    assert "removed 2" in pruned.stdout
    assert {t for s in listing(app) for t in s["tags"] if t.startswith("run:")} == {
        f"run:{runs[-1]}"
    }


def test_adopt_on_an_append_only_repository_is_refused_with_the_trusted_machine_hint(
    app: App, tmp_path: Path
) -> None:
    data = tmp_path / "rest-data"
    data.mkdir()
    with rest_server(data, append_only=True) as port:
        app.env["RESTIC_REPOSITORY"] = f"rest:http://127.0.0.1:{port}/"
        app.env["KAMAL_BACKUP_RETRY_LOCK"] = ""
        subprocess.run(
            ["restic", "init"],
            env={**os.environ, **app.env},
            check=True,
            capture_output=True,
        )
        # A suspicious run on an append-only repository: restic writes the tagged copies (the
        # originals stay), so the run is still kept out of `latest`; accepting it needs a
        # machine that may delete.
        no_forget = {"RESTIC_FORGET_AFTER_BACKUP": "false"}
        app.cli("backup", extra=no_forget, check=True)
        with sqlite3.connect(app.db) as db:
            db.execute("DELETE FROM notes")
        db.close()
        emptied = app.cli("backup", extra=no_forget)
        assert emptied.returncode == 1 and "table notes: 200 → 0 rows" in findings(emptied.stderr)
        suspicious = {r for s in listing(app) if "suspicious" in s["tags"] for r in s["tags"]}
        bad_run = next(t.removeprefix("run:") for t in suspicious if t.startswith("run:"))
        kept_out = app.cli("accept", bad_run)
        assert kept_out.returncode == 1 and "trusted machine" in kept_out.stderr
        assert any("suspicious" in s["tags"] for s in of_run(app, bad_run))

        make_inherited_history(app)
        before = listing(app)
        refused = app.cli("adopt")
        assert refused.returncode == 1
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
        assert "append-only" in refused.stderr and "trusted machine" in refused.stderr
        # Nothing is lost: every original snapshot is still there.
        assert {s["id"] for s in before} <= {s["id"] for s in listing(app)}
