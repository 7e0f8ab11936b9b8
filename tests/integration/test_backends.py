"""Real backends on loopback: S3 (moto), rest-server in append-only mode, rclone."""

from __future__ import annotations

import collections
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import App, make_app, sqlite_rows
from tests.integration.servers import rest_server, s3_server

pytestmark = pytest.mark.integration

AWS = {
    "AWS_ACCESS_KEY_ID": "AKIAKAMALBACKUPTEST1",
    "AWS_SECRET_ACCESS_KEY": "s3-Secret/Key+kamal-backup-0042",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def test_s3_init_backup_list_check_restore_and_evidence(app: App, tmp_path: Path) -> None:
    with s3_server() as (_, port):
        app.env.update(
            {
                **AWS,
                "RESTIC_REPOSITORY": f"s3:http://127.0.0.1:{port}/shop-backups",
                "RESTIC_INIT_IF_MISSING": "true",
            }
        )
        outputs = []
        run = app.cli("backup", "--json", check=True)
        outputs.append(run)
        snapshots = json.loads(run.stdout)
        listed = app.cli("list", "--json", check=True)
        outputs.append(listed)
        assert len(json.loads(listed.stdout)) == 2
        outputs.append(app.cli("check", check=True))
        allow = {
            "KAMAL_BACKUP_ALLOW_RESTORE": "true",
            "RESTORE_SQLITE_DATABASE_PATH": str(tmp_path / "r.sqlite3"),
        }
        outputs.append(app.cli("restore-db", extra=allow, check=True))
        assert sqlite_rows(tmp_path / "r.sqlite3") == sqlite_rows(app.db)
        outputs.append(
            app.cli("restore-files", "latest", str(tmp_path / "files"), extra=allow, check=True)
        )
        assert (
            tmp_path / "files" / str(app.files).lstrip("/") / "uploads" / "a.txt"
        ).read_text() == "hello\n"
        evidence = app.cli("evidence", check=True)
        outputs.append(evidence)
        document = json.loads(evidence.stdout)
        assert document["restic_repository"] == f"s3:http://127.0.0.1:{port}/shop-backups"
        assert document["latest_database_snapshot"]["id"] == snapshots["database_snapshot"]["id"]
        for result in outputs:
            for secret in (
                AWS["AWS_SECRET_ACCESS_KEY"],
                AWS["AWS_ACCESS_KEY_ID"],
                app.env["RESTIC_PASSWORD"],
            ):
                assert secret not in result.stdout + result.stderr


def test_an_unreachable_s3_repository_fails_the_tick_and_the_next_succeeds(app: App) -> None:
    with s3_server() as (server, port):
        app.env.update(
            {
                **AWS,
                "RESTIC_REPOSITORY": f"s3:http://127.0.0.1:{port}/shop-backups",
                "RESTIC_INIT_IF_MISSING": "true",
                "KAMAL_BACKUP_REPOSITORY_TIMEOUT_SECONDS": "4",
                "BACKUP_SCHEDULE_SECONDS": "6",
            }
        )
        first = json.loads(app.cli("backup", "--json", check=True).stdout)["run"]
        server.send_signal(signal.SIGSTOP)  # the repository stops answering (state kept)
        try:
            down = app.cli("list")
            assert down.returncode == 1
            assert "did not answer within 4s" in down.stderr
            proc = subprocess.Popen(
                [sys.executable, "-m", "kamal_backup", "schedule"],
                env=app.env,
                stderr=subprocess.PIPE,
                text=True,
            )
            lines: list[str] = []
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line)
                if "scheduled backup failed" in line:
                    break
            server.send_signal(signal.SIGCONT)  # the fault is cleared
            for line in proc.stderr:
                lines.append(line)
                if "scheduled backup" in line and "succeeded" in line:
                    break
            proc.send_signal(signal.SIGTERM)
            lines.append(proc.communicate(timeout=30)[1])
        finally:
            server.send_signal(signal.SIGCONT)
        log = "".join(lines)
        assert "did not answer within 4s" in log
        assert proc.returncode == 0, log
        # A tick that ran past the interval starts the next at once, which SIGTERM then
        # stops: whatever the timing, the repository holds whole runs, each one the first
        # backup or a tick the log calls succeeded; nothing of the failed tick.
        succeeded = re.findall(r"scheduled backup (\S+) succeeded", log)
        assert succeeded, log
        listed = json.loads(app.cli("list", "--json", check=True).stdout)
        runs = collections.Counter(snapshot["run"] for snapshot in listed)
        assert runs == dict.fromkeys([first, *succeeded], 2), log


def test_append_only_rest_server(app: App, tmp_path: Path) -> None:
    data = tmp_path / "rest-data"
    data.mkdir()
    with rest_server(data, append_only=True) as port:
        app.env.update(
            {
                "RESTIC_REPOSITORY": f"rest:http://127.0.0.1:{port}/",
                "RESTIC_INIT_IF_MISSING": "true",
                "RESTIC_KEEP_LAST": "1",
                "RESTIC_KEEP_DAILY": "0",
                "RESTIC_KEEP_WEEKLY": "0",
                "RESTIC_KEEP_MONTHLY": "0",
                "RESTIC_KEEP_YEARLY": "0",
                "KAMAL_BACKUP_KEEP_GOOD": "0",  # so forget has something to delete
                "KAMAL_BACKUP_RETRY_LOCK": "",
            }
        )
        no_prune = {"RESTIC_FORGET_AFTER_BACKUP": "false"}
        first = json.loads(app.cli("backup", "--json", extra=no_prune, check=True).stdout)
        second = json.loads(app.cli("backup", "--json", extra=no_prune, check=True).stdout)
        assert first["retention"] == [] and second["retention"] == []
        evidence = json.loads(app.cli("evidence", extra=no_prune, check=True).stdout)
        assert evidence["client_side_forget_prune"] is False

        third = app.cli(
            "backup"
        )  # RESTIC_FORGET_AFTER_BACKUP left true: forget must delete, and cannot
        assert third.returncode == 1
        assert "backup saved" in third.stderr and "retention failed" in third.stderr
        assert "RESTIC_FORGET_AFTER_BACKUP=false" in third.stderr
        listed = json.loads(app.cli("list", "--json", extra=no_prune, check=True).stdout)
        assert len(listed) == 6  # nothing was deleted, and the third run's snapshots are there
        assert len({s["run"] for s in listed}) == 3


def test_rclone_backend(app: App, tmp_path: Path) -> None:
    if shutil.which("rclone") is None:
        pytest.fail("rclone is not on PATH: bin/test installs Debian's rclone")
    app.env.update(
        {
            "RCLONE_CONFIG_KBLOCAL_TYPE": "local",
            "RESTIC_REPOSITORY": f"rclone:kblocal:{tmp_path / 'rclone-repo'}",
            "RESTIC_INIT_IF_MISSING": "true",
        }
    )
    run = json.loads(app.cli("backup", "--json", check=True).stdout)
    assert (tmp_path / "rclone-repo" / "config").is_file()
    target = tmp_path / "r.sqlite3"
    app.cli(
        "restore-db",
        run["database_snapshot"]["short_id"],
        extra={"KAMAL_BACKUP_ALLOW_RESTORE": "true", "RESTORE_SQLITE_DATABASE_PATH": str(target)},
        check=True,
    )
    assert sqlite_rows(target) == sqlite_rows(app.db)


def test_two_apps_share_a_rest_server_repository(
    app: App, template_repository: Path, tmp_path: Path
) -> None:
    data = tmp_path / "rest-data"
    data.mkdir()
    with rest_server(data, append_only=False) as port:
        repo = f"rest:http://127.0.0.1:{port}/"
        app.env.update({"RESTIC_REPOSITORY": repo, "RESTIC_INIT_IF_MISSING": "true"})
        other = make_app(tmp_path / "other", template_repository, name="blog")
        other.env["RESTIC_REPOSITORY"] = repo
        app.cli("backup", check=True)
        other.cli("backup", check=True)
        time.sleep(1)
        app.cli(
            "backup",
            extra={
                "RESTIC_KEEP_LAST": "1",
                "RESTIC_KEEP_DAILY": "0",
                "RESTIC_KEEP_WEEKLY": "0",
                "RESTIC_KEEP_MONTHLY": "0",
                "RESTIC_KEEP_YEARLY": "0",
                "KAMAL_BACKUP_KEEP_GOOD": "0",  # the policy alone (issue 15)
            },
            check=True,
        )
        assert len(json.loads(app.cli("list", "--json", check=True).stdout)) == 2
        assert len(json.loads(other.cli("list", "--json", check=True).stdout)) == 2
