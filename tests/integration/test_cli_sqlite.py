"""Every command end to end: the real CLI, real restic 0.18, a real SQLite app and its files."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import App, make_app, sqlite_rows

pytestmark = pytest.mark.integration

ALLOW = {"KAMAL_BACKUP_ALLOW_RESTORE": "true"}


def test_version_flags() -> None:
    import subprocess
    import sys

    from kamal_backup import __version__

    for args in (["version"], ["--version"], ["-v"]):
        result = subprocess.run(
            [sys.executable, "-m", "kamal_backup", *args], capture_output=True, text=True
        )
        assert result.returncode == 0
        assert result.stdout.strip() == f"kamal-backup {__version__}"


def test_help_lists_every_command() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "kamal_backup", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for command in (
        "backup",
        "restore-db",
        "restore-files",
        "list",
        "check",
        "evidence",
        "schedule",
        "version",
    ):
        assert command in result.stdout


def test_backup_creates_one_database_and_one_file_snapshot_per_run(app: App) -> None:
    result = app.cli("backup", "--json", check=True)
    run = json.loads(result.stdout)
    assert run["status"] == "success"
    db, files = run["database_snapshot"], run["files_snapshot"]
    assert db["tags"] == [
        "kamal-backup",
        "app:shop",
        "type:database",
        "adapter:sqlite",
        "database:primary",
        f"run:{run['run']}",
    ]
    assert files["tags"] == ["kamal-backup", "app:shop", "type:files", f"run:{run['run']}"]
    assert db["paths"] == [f"/databases-shop-sqlite-{run['run']}.sqlite3"]
    assert files["paths"] == [str(app.files)]
    assert db["hostname"] == files["hostname"] == "shop"
    assert sorted(app.snapshot_ids()) == sorted([db["id"], files["id"]])
    # Non-TTY output: one timestamped line per step on stderr.
    assert "database snapshot" in result.stderr and "file snapshot" in result.stderr
    assert all(line[:4].isdigit() and "Z " in line for line in result.stderr.splitlines() if line)


def test_list_shows_this_apps_snapshots_only(
    app: App, template_repository: Path, tmp_path: Path
) -> None:
    app.cli("backup", check=True)
    other = make_app(tmp_path / "other", template_repository, name="blog")
    other.env["RESTIC_REPOSITORY"] = app.env["RESTIC_REPOSITORY"]
    other.cli("backup", check=True)

    listed = json.loads(app.cli("list", "--json", check=True).stdout)
    assert len(listed) == 2
    assert {s["type"] for s in listed} == {"database", "files"}
    assert all("app:shop" in s["tags"] for s in listed)
    only_db = json.loads(app.cli("list", "--json", "--type", "database", check=True).stdout)
    assert [s["type"] for s in only_db] == ["database"]
    table = app.cli("list", check=True).stdout
    assert listed[0]["short_id"] in table and listed[1]["short_id"] in table


def test_restore_db_round_trip_is_identical_and_atomic(app: App, tmp_path: Path) -> None:
    app.cli("backup", check=True)
    target = tmp_path / "restore" / "db" / "restore.sqlite3"
    result = app.cli(
        "restore-db",
        "latest",
        "--json",
        extra={**ALLOW, "RESTORE_SQLITE_DATABASE_PATH": str(target)},
        check=True,
    )
    restored = json.loads(result.stdout)
    assert restored["details"]["integrity_check"] == "ok"
    assert sqlite_rows(target) == sqlite_rows(app.db)
    assert [p.name for p in target.parent.iterdir()] == ["restore.sqlite3"]  # no temp file left


def test_restore_db_removes_a_stale_wal_next_to_the_target(app: App, tmp_path: Path) -> None:
    app.cli("backup", check=True)
    target = tmp_path / "restore.sqlite3"
    stale = sqlite3.connect(target)
    stale.execute("PRAGMA journal_mode=WAL")
    stale.execute("CREATE TABLE stale (x)")
    stale.commit()
    stale.close()
    Path(f"{target}-wal").write_bytes(b"garbage that must not be replayed")
    app.cli("restore-db", extra={**ALLOW, "RESTORE_SQLITE_DATABASE_PATH": str(target)}, check=True)
    assert not Path(f"{target}-wal").exists()
    assert sqlite_rows(target) == sqlite_rows(app.db)


def test_restore_files_reproduces_bytes_modes_symlinks_and_names(app: App, tmp_path: Path) -> None:
    storage = app.files
    script = storage / "bin" / "run.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o750)
    (storage / "link-to-a").symlink_to("uploads/a.txt")
    (storage / "empty-dir").mkdir()
    (storage / "Ωmega – ☃.txt").write_bytes(b"\x00\x01binary\xff")  # noqa: RUF001
    app.cli("backup", check=True)

    target = tmp_path / "restored"
    app.cli("restore-files", "latest", str(target), extra=ALLOW, check=True)
    restored_root = target / str(storage).lstrip("/")
    for original in storage.rglob("*"):
        copy = restored_root / original.relative_to(storage)
        assert copy.is_symlink() == original.is_symlink(), original
        if original.is_symlink():
            assert os.readlink(copy) == os.readlink(original)
            continue
        assert copy.stat().st_mode == original.stat().st_mode, original
        if original.is_file():
            assert copy.read_bytes() == original.read_bytes(), original
    assert sorted(p.name for p in target.iterdir()) == [str(storage).lstrip("/").split("/")[0]]


def test_a_repository_path_that_is_a_file_fails_at_once(app: App, tmp_path: Path) -> None:
    # restic retries "not a directory" for minutes; a scheduled backup would hang on it.
    not_a_directory = tmp_path / "repo-file"
    not_a_directory.write_text("not a repository\n")
    for extra in ({}, {"RESTIC_INIT_IF_MISSING": "true"}):
        started = time.monotonic()
        result = app.cli(
            "backup", extra={"RESTIC_REPOSITORY": str(not_a_directory), **extra}, timeout=60
        )
        assert time.monotonic() - started < 20
        assert result.returncode == 1, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("kamal-backup: error: repository unreachable: not a directory: ")
        assert str(not_a_directory) in last
        assert "Traceback" not in result.stderr


def test_paths_print_as_they_are_never_as_markup(app: App, tmp_path: Path) -> None:
    # rich read "[bold]" as a style and "[/x]" as a closing tag (a crash after the restore), and
    # ":smile:" as an emoji code.
    app.cli("backup", check=True)
    target = tmp_path / "[bold]restored[/x]:smile:"
    result = app.cli("restore-files", "latest", str(target), extra=ALLOW, check=True)
    assert f"into {target} (" in result.stdout
    assert (target / str(app.files).lstrip("/") / "uploads" / "a.txt").read_text() == "hello\n"


def test_restore_files_replaces_previous_content_and_leaves_other_files(
    app: App, tmp_path: Path
) -> None:
    app.cli("backup", check=True)
    target = tmp_path / "restored"
    restored_root = target / str(app.files).lstrip("/")
    restored_root.mkdir(parents=True)
    (restored_root / "leftover.txt").write_text("from an older drill")
    (target / "unrelated.txt").write_text("keep me")
    app.cli("restore-files", "latest", str(target), extra=ALLOW, check=True)
    assert not (restored_root / "leftover.txt").exists()
    assert (restored_root / "uploads" / "a.txt").read_text() == "hello\n"
    assert (target / "unrelated.txt").read_text() == "keep me"
    assert not [p for p in target.iterdir() if p.name.startswith(".kamal-backup")]


def test_sqlite_file_under_a_backup_path_is_excluded_from_the_file_snapshot(
    app: App, tmp_path: Path
) -> None:
    inside = app.files / "db" / "app.sqlite3"
    inside.parent.mkdir()
    os.replace(app.db, inside)
    app.env["SQLITE_DATABASE_PATH"] = str(inside)
    sqlite3.connect(inside).execute("PRAGMA journal_mode=WAL").close()
    run = json.loads(app.cli("backup", "--json", check=True).stdout)
    listing = app.restic("ls", "--json", run["files_snapshot"]["id"]).stdout
    names = [json.loads(line).get("path") for line in listing.splitlines() if '"node"' in line]
    assert str(app.files / "uploads" / "a.txt") in names
    assert not [n for n in names if n and n.startswith(str(inside))]


# Gates ---------------------------------------------------------------------------------------


def test_restores_are_refused_without_allow_restore(app: App, tmp_path: Path) -> None:
    for args in (["restore-db"], ["restore-files", "latest", str(tmp_path / "out")]):
        result = app.cli(*args, extra={"RESTORE_SQLITE_DATABASE_PATH": str(tmp_path / "r.sqlite3")})
        assert result.returncode == 3, result.stderr
        assert "KAMAL_BACKUP_ALLOW_RESTORE=true" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr


def test_restore_db_without_restore_target_never_touches_the_source(app: App) -> None:
    before = app.db.read_bytes()
    result = app.cli("restore-db", extra=ALLOW)
    assert result.returncode == 2
    assert "RESTORE_SQLITE_DATABASE_PATH" in result.stderr
    assert app.db.read_bytes() == before


def test_production_like_restore_targets_are_refused_then_allowed(app: App, tmp_path: Path) -> None:
    app.cli("backup", check=True)
    target = tmp_path / "production" / "app.sqlite3"
    refused = app.cli("restore-db", extra={**ALLOW, "RESTORE_SQLITE_DATABASE_PATH": str(target)})
    assert refused.returncode == 3
    assert "KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE=true" in refused.stderr
    assert not target.exists()
    app.cli(
        "restore-db",
        extra={
            **ALLOW,
            "RESTORE_SQLITE_DATABASE_PATH": str(target),
            "KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE": "true",
        },
        check=True,
    )
    assert sqlite_rows(target) == sqlite_rows(app.db)


def test_in_place_file_restore_is_refused_then_allowed(app: App) -> None:
    app.cli("backup", check=True)
    inside = app.files / "restore-here"
    refused = app.cli("restore-files", "latest", str(inside), extra=ALLOW)
    assert refused.returncode == 3
    assert "KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE=true" in refused.stderr
    # Allowed, this target gets a copy, not the files put back: the refusal says how to do that.
    assert "use --in-place (or the backup path itself as the target)" in refused.stderr
    assert not inside.exists()
    app.cli(
        "restore-files",
        "latest",
        str(inside),
        extra={**ALLOW, "KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE": "true"},
        check=True,
    )
    assert (inside / str(app.files).lstrip("/") / "uploads" / "a.txt").read_text() == "hello\n"


@pytest.mark.parametrize(
    "argument", ["--help", "-o", "--target=/", "latest;rm", "../x", "LATEST", "abc"]
)
def test_snapshot_arguments_that_are_not_ids_are_refused(
    app: App, argument: str, tmp_path: Path
) -> None:
    result = app.cli(
        "restore-db",
        "--",
        argument,
        extra={**ALLOW, "RESTORE_SQLITE_DATABASE_PATH": str(tmp_path / "r.sqlite3")},
    )
    assert result.returncode == 2, result.stderr
    assert "SNAPSHOT" in result.stderr
    assert not (tmp_path / "r.sqlite3").exists()


def test_another_apps_snapshot_and_the_wrong_type_are_refused(
    app: App, template_repository: Path, tmp_path: Path
) -> None:
    app.cli("backup", check=True)
    other = make_app(tmp_path / "other", template_repository, name="blog")
    other.env["RESTIC_REPOSITORY"] = app.env["RESTIC_REPOSITORY"]
    blog_run = json.loads(other.cli("backup", "--json", check=True).stdout)
    shop_run = json.loads(app.cli("backup", "--json", check=True).stdout)
    extra = {**ALLOW, "RESTORE_SQLITE_DATABASE_PATH": str(tmp_path / "r.sqlite3")}

    foreign = app.cli("restore-db", blog_run["database_snapshot"]["id"], extra=extra)
    assert foreign.returncode == 2 and "not a database snapshot of app shop" in foreign.stderr
    wrong_type = app.cli("restore-db", shop_run["files_snapshot"]["short_id"], extra=extra)
    assert wrong_type.returncode == 2
    assert not (tmp_path / "r.sqlite3").exists()
    by_id = app.cli(
        "restore-db", shop_run["database_snapshot"]["short_id"], "--json", extra=extra, check=True
    )
    assert json.loads(by_id.stdout)["snapshot"]["id"] == shop_run["database_snapshot"]["id"]


# Failures ------------------------------------------------------------------------------------


def test_corrupt_database_fails_the_backup_and_leaves_no_snapshot(app: App) -> None:
    data = bytearray(app.db.read_bytes())
    data[100:4096] = os.urandom(4096 - 100)  # keep the header, wreck the schema page
    app.db.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(f"{app.db}{suffix}").unlink(missing_ok=True)
    result = app.cli("backup")
    assert result.returncode == 1, result.stderr
    assert "SQLite backup" in result.stderr
    assert "Traceback" not in result.stderr
    assert app.snapshot_ids("type:database") == []  # the file half may have finished (issue 14)
    state = json.loads(
        (Path(app.env["KAMAL_BACKUP_STATE_DIR"]) / "shop" / "last_backup.json").read_text()
    )
    assert state["status"] == "failed"


def test_missing_repository_without_init_is_a_clear_error(app: App, tmp_path: Path) -> None:
    result = app.cli("backup", extra={"RESTIC_REPOSITORY": str(tmp_path / "nowhere")})
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "RESTIC_INIT_IF_MISSING" in result.stderr
    assert not (tmp_path / "nowhere").exists()
    # With it set, a command that never creates the repository says which one does (the hint
    # told operators to set what they had set).
    listed = app.cli(
        "list",
        extra={"RESTIC_REPOSITORY": str(tmp_path / "nowhere"), "RESTIC_INIT_IF_MISSING": "true"},
    )
    assert listed.returncode == 1
    assert "`backup` creates it when RESTIC_INIT_IF_MISSING=true" in listed.stderr
    assert not (tmp_path / "nowhere").exists()


def test_init_if_missing_creates_the_repository(app: App, tmp_path: Path) -> None:
    repo = tmp_path / "fresh-repo"
    app.cli(
        "backup",
        extra={"RESTIC_REPOSITORY": str(repo), "RESTIC_INIT_IF_MISSING": "true"},
        check=True,
    )
    assert (repo / "config").is_file()


def test_wrong_password_is_one_redacted_line(app: App) -> None:
    result = app.cli("list", extra={"RESTIC_PASSWORD": "wrong-password-4242"})
    assert result.returncode == 1
    assert "wrong restic repository password" in result.stderr
    assert "wrong-password-4242" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_backup_path_is_a_config_error(app: App, tmp_path: Path) -> None:
    result = app.cli("backup", extra={"BACKUP_PATHS": str(tmp_path / "missing")})
    assert result.returncode == 2
    assert result.stderr.startswith("kamal-backup: error: BACKUP_PATHS:")
    assert app.snapshot_ids() == []
    state = json.loads(
        (Path(app.env["KAMAL_BACKUP_STATE_DIR"]) / "shop" / "last_backup.json").read_text()
    )
    assert state["status"] == "failed" and state["error"].startswith("BACKUP_PATHS:")


def test_bad_setting_is_one_line_exit_2(app: App) -> None:
    result = app.cli("backup", extra={"BACKUP_SCHEDULE_SECONDS": "often"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "BACKUP_SCHEDULE_SECONDS" in result.stderr


# Check and evidence --------------------------------------------------------------------------


def test_check_records_its_result_and_evidence_reports_everything(app: App) -> None:
    run = json.loads(app.cli("backup", "--json", check=True).stdout)
    check = app.cli("check", "--json", extra={"RESTIC_CHECK_READ_DATA_SUBSET": "100%"}, check=True)
    assert json.loads(check.stdout)["status"] == "success"

    evidence = json.loads(app.cli("evidence", check=True).stdout)
    assert evidence["schema_version"] == 1
    assert evidence["app_name"] == "shop"
    assert evidence["database_adapter"] == "sqlite"
    assert evidence["restic_repository"] == app.env["RESTIC_REPOSITORY"]
    assert evidence["backup_paths"] == [str(app.files)]
    assert evidence["client_side_forget_prune"] is True
    assert evidence["retention"]["keep_daily"] == 7
    assert evidence["latest_database_snapshot"]["id"] == run["database_snapshot"]["id"]
    assert evidence["latest_files_snapshot"]["id"] == run["files_snapshot"]["id"]
    assert evidence["last_check"]["status"] == "success"
    assert evidence["last_check"]["read_data_subset"] == "100%"
    assert evidence["last_backup"]["status"] == "success"
    assert evidence["last_backup"]["duration_seconds"] > 0
    assert evidence["tool_versions"]["restic"].startswith("0.1")
    assert evidence["tool_versions"]["sqlite3"] == sqlite3.sqlite_version
    assert set(evidence["tool_versions"]) >= {
        "restic",
        "sqlite3",
        "pg_dump",
        "pg_restore",
        "mariadb-dump",
        "mariadb",
    }
    assert evidence["kamal_backup_version"]


def test_evidence_can_be_saved_to_a_file(app: App, tmp_path: Path) -> None:
    out = tmp_path / "evidence" / "shop.json"
    result = app.cli("evidence", "--output", str(out), check=True)
    assert json.loads(out.read_text()) == json.loads(result.stdout)


def test_check_after_backup_runs_check(app: App) -> None:
    run = json.loads(
        app.cli("backup", "--json", extra={"RESTIC_CHECK_AFTER_BACKUP": "true"}, check=True).stdout
    )
    assert run["check"]["status"] == "success"


def test_retention_can_be_turned_off(app: App) -> None:
    run = json.loads(
        app.cli(
            "backup", "--json", extra={"RESTIC_FORGET_AFTER_BACKUP": "false"}, check=True
        ).stdout
    )
    assert run["retention"] == []
    evidence = json.loads(
        app.cli("evidence", extra={"RESTIC_FORGET_AFTER_BACKUP": "false"}, check=True).stdout
    )
    assert evidence["client_side_forget_prune"] is False


def test_unlock_runs_against_the_repository(app: App) -> None:
    result = app.cli("unlock", check=True)
    assert "stale locks removed" in result.stdout


def test_an_unreachable_repository_fails_in_seconds_with_one_line(app: App) -> None:
    """restic's retry lines say "connection refused" at once: no need to wait out the timeout
    (120 s by default, left as it is here)."""
    import time

    started = time.monotonic()
    result = app.cli("list", extra={"RESTIC_REPOSITORY": "rest:http://127.0.0.1:9/shop"})
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "kamal-backup: error: repository unreachable: connection refused "
        "(rest:http://127.0.0.1:9/shop)"
    ]


def test_a_passing_check_says_passed_as_the_tui_does(app: App) -> None:
    app.cli("backup", check=True)
    result = app.cli("check", check=True)
    assert result.stdout.startswith("repository check passed (")


def test_the_scheduler_reports_an_unreachable_repository_in_seconds(app: App) -> None:
    import signal
    import subprocess
    import sys
    import time

    env = {**app.env, "RESTIC_REPOSITORY": "rest:http://127.0.0.1:9/shop"}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kamal_backup", "schedule"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    failed = ""
    for line in proc.stderr:
        if "scheduled backup failed" in line:
            failed = line
            break
    elapsed = time.monotonic() - started
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert elapsed < 15
    assert "repository unreachable: connection refused (rest:http://127.0.0.1:9/shop)" in failed
    assert proc.returncode == 0


def test_schedule_runs_backups_on_its_interval_until_stopped(app: App) -> None:
    import signal
    import subprocess
    import sys
    import time

    env = {**app.env, "BACKUP_SCHEDULE_SECONDS": "3", "BACKUP_START_DELAY_SECONDS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kamal_backup", "schedule"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(app.snapshot_ids("type:database")) < 2:
        time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    _, log = proc.communicate(timeout=30)
    assert proc.returncode == 0, log
    assert "first in 1s" in log
    assert log.count("scheduled backup") >= 2 and "succeeded" in log
    runs = {s["run"] for s in json.loads(app.cli("list", "--json", check=True).stdout)}
    assert len(runs) >= 2  # separate runs, each with its database and file snapshot
    listed = json.loads(app.cli("list", "--json", check=True).stdout)
    for run in runs:
        assert sorted(s["type"] for s in listed if s["run"] == run) in (
            ["database", "files"],
            ["database"],
        )


def test_a_corrupted_pack_fails_check_and_evidence_shows_it(app: App) -> None:
    app.cli("backup", check=True)
    packs = sorted(
        (app.repo / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0
    )
    pack = packs[-1]
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    result = app.cli("check", extra={"RESTIC_CHECK_READ_DATA_SUBSET": "100%"})
    assert result.returncode == 1
    assert "repository check failed" in result.stdout
    evidence = json.loads(app.cli("evidence", check=True).stdout)
    assert evidence["last_check"]["status"] == "failed"
    assert evidence["last_check"]["exit_code"] == 1
    assert evidence["last_check"]["checked_at"]


def test_env_file_configures_a_laptop_run(app: App, tmp_path: Path) -> None:
    env_file = tmp_path / "backup.env"
    env_file.write_text(
        "".join(f"{k}={v}\n" for k, v in app.env.items() if k not in ("PATH", "HOME"))
    )
    app.cli("backup", check=True)
    bare = {"PATH": app.env["PATH"], "HOME": app.env["HOME"]}
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "kamal_backup", "--env-file", str(env_file), "list", "--json"],
        env=bare,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 2
    missing = subprocess.run(
        [sys.executable, "-m", "kamal_backup", "--env-file", str(tmp_path / "nope"), "list"],
        env=bare,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "--env-file" in missing.stderr
