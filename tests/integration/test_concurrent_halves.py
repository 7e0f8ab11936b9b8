"""The database half and the file half of a backup run at the same time (issue 14)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import App, add_bulk
from tests.integration.databases import pg_databases, psql

pytestmark = pytest.mark.integration


def snapshots_of_run(app: App, run: str) -> dict[str, dict]:  # type: ignore[type-arg]
    """restic's own records of one run's snapshots, by type."""
    listed = json.loads(
        app.restic("snapshots", "--json", "--no-lock", "--tag", f"run:{run}").stdout
    )
    return {next(t.split(":", 1)[1] for t in s["tags"] if t.startswith("type:")): s for s in listed}


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def counting_restic(app: App) -> Path:
    """A `restic` first on PATH that notes each command and runs the real restic."""
    real = shutil.which("restic")
    assert real is not None
    bin_dir = app.root / "counting-bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "restic"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> "{app.root}/restic-calls"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    app.env["PATH"] = f"{bin_dir}:{app.env['PATH']}"
    return app.root / "restic-calls"


def test_the_halves_overlap_in_time_and_a_run_starts_few_restic_processes(app: App) -> None:
    add_bulk(app.db, 20000)  # 20 MB each side: both halves take a moment after opening
    for i in range(10):
        (app.files / f"upload-{i}.bin").write_bytes(os.urandom(2_000_000))
    calls = counting_restic(app)
    run = json.loads(app.cli("backup", "--json", check=True).stdout)
    assert run["status"] == "success"

    found = snapshots_of_run(app, run["run"])
    database, files = found["database"], found["files"]
    assert {database["id"], files["id"]} == {
        run["database_snapshot"]["id"],
        run["files_snapshot"]["id"],
    }
    # restic's own clock: each half started before the other ended.
    db_start = moment(database["summary"]["backup_start"])
    db_end = moment(database["summary"]["backup_end"])
    files_start = moment(files["summary"]["backup_start"])
    files_end = moment(files["summary"]["backup_end"])
    assert db_start < files_end and files_start < db_end, (database["summary"], files["summary"])

    # version, the two halves, the manifest and one listing; the retention groups hold fewer
    # snapshots than RESTIC_KEEP_LAST, so no forget can remove one and none runs. Before
    # issue 14: version, cat config, 3 backups, snapshots, unlock, 3 snapshots, 2 forgets.
    commands = calls.read_text().split()
    assert sorted(commands) == ["backup", "backup", "backup", "snapshots", "version"], commands

    calls.unlink()
    only_last = {f"RESTIC_KEEP_{k}": "0" for k in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")}
    # The policy alone: no kept-good runs (issue 15) that would spare the first run.
    only_last["KAMAL_BACKUP_KEEP_GOOD"] = "0"
    run = json.loads(
        app.cli("backup", "--json", extra={**only_last, "RESTIC_KEEP_LAST": "1"}).stdout
    )
    assert run["status"] == "success", run
    # Retention that removes: ONE forget, of every group's removed snapshots and the manifest
    # of the run now gone, pruning (before issue 14: cat config, unlock, 4 listings and a
    # forget per type and for the manifests). Issue 15 added one dump, of the last good run's
    # manifest that this run is compared with: the figures the last run kept in the state
    # directory take its place.
    assert sorted(calls.read_text().split()) == [
        "backup",
        "backup",
        "backup",
        "forget",
        "snapshots",
        "version",
    ]
    assert [r["removed"] for r in run["retention"]] == [1, 1]


@pytest.fixture
def pg_app(app: App) -> Iterator[tuple[App, str]]:
    with pg_databases("kb_conc") as [source]:
        psql(f'CREATE DATABASE "{source}"')
        psql(
            "CREATE TABLE public.orders AS SELECT g AS id, md5(g::text) AS note "
            "FROM generate_series(1, 1000) g",
            source,
        )
        app.env.update(
            {
                "DATABASE_ADAPTER": "postgresql",
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{source}?sslmode=disable",
            }
        )
        yield app, source


def test_a_failed_dump_stops_the_file_half_and_the_run_names_the_database(
    pg_app: tuple[App, str],
) -> None:
    app, source = pg_app
    psql(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kamal_backup_conc') "
        "THEN CREATE ROLE kamal_backup_conc LOGIN; END IF; END $$"
    )
    for i in range(40):  # the file half is still reading when pg_dump is refused
        (app.files / f"big-{i}.bin").write_bytes(os.urandom(2_000_000))
    result = app.cli(
        "backup", extra={"DATABASE_URL": f"postgres://kamal_backup_conc@127.0.0.1/{source}"}
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "the database primary backup failed; stopping the files backup" in result.stderr
    assert lines[-1].startswith("kamal-backup: error: database backup: ")
    assert "permission denied for table orders" in lines[-1]
    assert "Traceback" not in result.stderr
    state = json.loads(
        (Path(app.env["KAMAL_BACKUP_STATE_DIR"]) / "shop" / "last_backup.json").read_text()
    )
    assert state["status"] == "failed" and state["failed_part"] == "database primary"
    assert app.snapshot_ids() == []  # the stopped file half saved nothing either
    assert not any("file snapshot" in line for line in lines)


def test_an_unreadable_file_fails_the_file_half_while_the_dump_goes_on(
    pg_app: tuple[App, str],
) -> None:
    """As an unprivileged user (root reads everything): one upload cannot be read. The dump
    is held up by a table lock meanwhile, so the file half fails while the database half runs;
    restic saved the (incomplete) file snapshot, and the database half finishes."""
    app, source = pg_app
    shared = Path(tempfile.mkdtemp(prefix="kamal-backup-conc-", dir="/tmp"))
    try:
        shared.chmod(0o755)
        storage = shared / "storage"
        storage.mkdir()
        (storage / "public.txt").write_text("readable\n")
        (storage / "secret.key").write_text("x")
        (storage / "secret.key").chmod(0o600)  # root's: uid 65534 cannot read it
        repo = shared / "repo"
        shutil.copytree(app.repo, repo)
        for path in [repo, *repo.rglob("*")]:
            os.chown(path, 65534, 65534)
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
        (shared / "home").mkdir()
        os.chown(shared / "home", 65534, 65534)
        env = {
            **app.env,
            "BACKUP_PATHS": str(storage),
            "RESTIC_REPOSITORY": str(repo),
            "KAMAL_BACKUP_STATE_DIR": str(shared / "home" / "state"),
            "HOME": str(shared / "home"),
            "XDG_CACHE_HOME": str(shared / "home" / "cache"),
        }
        holder = subprocess.Popen(
            ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", source],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write("BEGIN; LOCK TABLE public.orders IN ACCESS EXCLUSIVE MODE; SELECT 1;\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "1"  # the lock is held
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        proc = subprocess.Popen(
            [*nobody, sys.executable, "-m", "kamal_backup", "backup"],
            env=env,
            cwd=shared,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        seen = []
        env_restic = {"RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD": app.env["RESTIC_PASSWORD"]}
        try:
            for line in proc.stderr:
                seen.append(line)
                if "backup failed" in line:
                    break
            # The dump is still waiting for the lock: no database snapshot yet.
            waiting = json.loads(
                subprocess.run(
                    ["restic", "snapshots", "--json", "--no-lock", "--tag", "type:database"],
                    env={**os.environ, **env_restic},
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            assert waiting == []
        finally:
            holder.stdin.write("COMMIT;\n")
            holder.stdin.close()
            holder.wait(timeout=30)
        rest = proc.stderr.read()
        code = proc.wait(timeout=120)
        log = "".join(seen) + rest
        assert code == 1, log
        assert "the files backup failed; the database primary backup goes on" in log
        assert "database snapshot" in log and "(primary) saved" in log
        last = log.strip().splitlines()[-1]
        assert last.startswith("kamal-backup: error: file backup: some files could not be read")
        state = json.loads((shared / "home" / "state" / "shop" / "last_backup.json").read_text())
        assert state["status"] == "failed" and state["failed_part"] == "files"
        types = subprocess.run(
            ["restic", "snapshots", "--json", "--no-lock"],
            env={**os.environ, **env_restic},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        kinds = sorted(t for s in json.loads(types) for t in s["tags"] if t.startswith("type:"))
        assert kinds == ["type:database", "type:files"]  # the dump finished; files incomplete
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_each_half_ends_with_a_full_bar_of_its_own_bytes(app: App) -> None:
    """The last status of each half says it is done (100%, its snapshot's bytes), so its bar
    (rich on a terminal, a line in the TUI) stops while the other half runs on."""
    from kamal_backup.models import ResticStatus
    from kamal_backup.services.backup import run_backup
    from kamal_backup.settings import load_settings

    add_bulk(app.db, 2000)
    seen: dict[str, list[ResticStatus]] = {}
    run = run_backup(
        load_settings(environ=app.env),
        on_status=lambda label, status: seen.setdefault(label, []).append(status),
    )
    assert set(seen) == {"database", "files"}
    summaries = {"database": run.database_snapshot, "files": run.files_snapshot}
    for label, statuses in seen.items():
        last = statuses[-1]
        record = summaries[label]
        assert record is not None and record.total_bytes_processed
        assert last.percent_done == 1.0, (label, last)
        assert last.bytes_done == last.total_bytes == record.total_bytes_processed, (label, last)


def test_a_probe_that_fails_after_both_halves_are_saved_fails_no_run(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe beside the halves only bounds a backend that answers nothing. Under load its
    4 s could run out after both snapshots were saved (CI saw a run fail so): that run is good."""
    from kamal_backup.errors import RepositoryUnreachable
    from kamal_backup.services import backup as backup_service
    from kamal_backup.settings import load_settings

    def late_probe(halves: backup_service._Halves) -> None:
        deadline = time.monotonic() + 60
        while not (halves.files_summary and halves.database_summaries):
            assert time.monotonic() < deadline, "the halves never finished"
            time.sleep(0.01)
        raise RepositoryUnreachable(
            "repository unreachable: did not answer within 4s", returncode=-1
        )

    # A local repository has no probe; this one is treated as remote so that it has one.
    monkeypatch.setattr(backup_service, "is_local_repository", lambda repository: False)
    monkeypatch.setattr(backup_service._Halves, "probe", late_probe)
    run = backup_service.run_backup(load_settings(environ=app.env))
    assert run.status == "success"
    assert {"database", "files", "manifest"} == set(snapshots_of_run(app, run.run))
