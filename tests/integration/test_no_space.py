"""Restores into a target that runs out of space: the previous content is not half replaced."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import App, add_bulk, sqlite_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs (this machine runs the tests as root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs for the no-space test: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_sqlite_restore_out_of_space_keeps_the_previous_file(app: App, small_disk: Path) -> None:
    target = small_disk / "restore.sqlite3"
    with sqlite3.connect(target) as db:
        db.execute("CREATE TABLE previous (x)")
        db.execute("INSERT INTO previous VALUES ('keep me')")
    db.close()
    before = target.read_bytes()
    add_bulk(app.db, 3000)  # about 3 MB: more than the disk holds
    app.cli("backup", check=True)
    result = app.cli(
        "restore-db",
        extra={"KAMAL_BACKUP_ALLOW_RESTORE": "true", "RESTORE_SQLITE_DATABASE_PATH": str(target)},
    )
    assert result.returncode == 1, result.stderr
    assert f"cannot write the restored database in {small_disk}: " in result.stderr
    assert "no space left on device" in result.stderr.lower() and "Traceback" not in result.stderr
    assert target.read_bytes() == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["restore.sqlite3"]
    assert sqlite_rows(app.db)  # the source is untouched too


def test_file_restore_out_of_space_keeps_the_previous_tree(app: App, small_disk: Path) -> None:
    (app.files / "big.bin").write_bytes(b"\x01" * 3_000_000)
    app.cli("backup", check=True)
    previous = small_disk / str(app.files).lstrip("/")
    previous.mkdir(parents=True)
    (previous / "old.txt").write_text("from the last drill")
    result = app.cli(
        "restore-files", "latest", str(small_disk), extra={"KAMAL_BACKUP_ALLOW_RESTORE": "true"}
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert (previous / "old.txt").read_text() == "from the last drill"
    assert sorted(p.name for p in previous.iterdir()) == ["old.txt"]
    assert not [p for p in small_disk.iterdir() if p.name.startswith(".kamal-backup")]
