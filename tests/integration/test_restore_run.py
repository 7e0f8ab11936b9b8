"""`restore RUN`: the database and the files of one run together, into scratch or production."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import App, sqlite_rows
from tests.integration.test_in_place_restore import IN_PLACE, assert_same_tree

pytestmark = pytest.mark.integration


def test_restore_latest_run_into_scratch_targets_reports_each_part(
    app: App, tmp_path: Path
) -> None:
    run = json.loads(app.cli("backup", "--json", check=True).stdout)
    scratch_db = tmp_path / "scratch" / "db.sqlite3"
    files = tmp_path / "scratch-files"
    result = app.cli(
        "restore",
        "latest",
        "--target",
        str(files),
        extra={
            "KAMAL_BACKUP_ALLOW_RESTORE": "true",
            "RESTORE_SQLITE_DATABASE_PATH": str(scratch_db),
        },
        check=True,
    )
    assert (
        f"run {run['run']}: restored database snapshot {run['database_snapshot']['short_id']}"
        in result.stdout
    )
    assert (
        f"run {run['run']}: restored file snapshot {run['files_snapshot']['short_id']}"
        in result.stdout
    )
    assert sqlite_rows(scratch_db) == sqlite_rows(app.db)
    assert_same_tree(app.files, files / str(app.files).lstrip("/"))


def test_restore_run_in_place_puts_production_back(app: App, tmp_path: Path) -> None:
    first = json.loads(app.cli("backup", "--json", check=True).stdout)
    rows = sqlite_rows(app.db)
    tree = tmp_path / "as-backed-up"
    shutil.copytree(app.files, tree, symlinks=True)
    app.cli("backup", check=True)  # a newer run: the restore names the older one
    app.db.unlink()
    (app.files / "uploads" / "a.txt").unlink()
    (app.files / "junk.txt").write_text("created later")

    refused = app.cli("restore", first["run"], "--in-place", extra=IN_PLACE)
    assert refused.returncode == 3 and "KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE" in refused.stderr
    assert not app.db.exists()

    everything = {**IN_PLACE, "KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE": "true"}
    result = app.cli("restore", first["run"], "--in-place", "--json", extra=everything, check=True)
    parts = json.loads(result.stdout)["parts"]
    assert [p["kind"] for p in parts] == ["database", "files"]
    assert parts[1]["snapshot"]["id"] == first["files_snapshot"]["id"]
    assert sqlite_rows(app.db) == rows
    assert_same_tree(tree, app.files)


def test_a_failure_part_way_says_which_parts_were_restored(app: App, tmp_path: Path) -> None:
    app.cli("backup", check=True)
    scratch_db = tmp_path / "db.sqlite3"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = app.cli(
        "restore",
        "--target",
        str(blocker / "files"),
        extra={
            "KAMAL_BACKUP_ALLOW_RESTORE": "true",
            "RESTORE_SQLITE_DATABASE_PATH": str(scratch_db),
        },
    )
    assert result.returncode == 1, result.stderr
    assert (
        "the database snapshot" in result.stderr
        and f"was restored into {scratch_db}" in result.stderr
    )
    assert "the files part failed and was not restored" in result.stderr
    assert sqlite_rows(scratch_db) == sqlite_rows(app.db)


@pytest.mark.parametrize("argument", ["yesterday", "20200101T000000Z"])
def test_an_unknown_run_is_refused_with_exit_2(app: App, argument: str) -> None:
    app.cli("backup", check=True)
    result = app.cli(
        "restore",
        argument,
        extra={
            "KAMAL_BACKUP_ALLOW_RESTORE": "true",
            "RESTORE_SQLITE_DATABASE_PATH": "/restore/x.sqlite3",
        },
    )
    assert result.returncode == 2, result.stderr
    assert "RUN:" in result.stderr


def test_a_failed_database_part_restores_no_files(app: App, tmp_path: Path) -> None:
    app.cli("backup", check=True)
    occupied = tmp_path / "db.sqlite3"
    (occupied / "a directory where the database goes").mkdir(parents=True)
    files = tmp_path / "files"
    result = app.cli(
        "restore",
        "--target",
        str(files),
        extra={
            "KAMAL_BACKUP_ALLOW_RESTORE": "true",
            "RESTORE_SQLITE_DATABASE_PATH": str(occupied),
        },
    )
    assert result.returncode == 2, result.stderr  # the target is wrong: a configuration error
    assert "the database part failed, so the files were not restored" in result.stderr
    assert "RESTORE_SQLITE_DATABASE_PATH" in result.stderr
    assert not files.exists()
