"""A WAL database on a read-only directory: readable while its -shm exists, else a clear hint."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kamal_backup.databases.sqlite import copy_database
from kamal_backup.errors import OperationFailed

pytestmark = pytest.mark.integration
NOBODY = 65534


def copy_as_nobody(source: Path, destination: Path) -> str:
    """copy_database in a forked child that gave up root (root ignores file permissions)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no threads of its own, only sqlite calls, then _exit
        os.close(read)
        code = 0
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            copy_database(source, destination)
            message = "copied"
        except OperationFailed as exc:
            message, code = str(exc), 1
        except BaseException as exc:  # report, never raise into pytest from a fork
            message, code = f"unexpected {exc.__class__.__name__}: {exc}", 2
        os.write(write, message.encode())
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    return message


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    # pytest's tmp_path lies under a 0700 directory that nobody cannot enter.
    path = Path(tempfile.mkdtemp(prefix="kamal-backup-ro-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    for sub in path.rglob("*"):
        if sub.is_dir():
            sub.chmod(0o755)
    shutil.rmtree(path)


def test_wal_database_on_a_read_only_directory(shared_dir: Path) -> None:
    directory = shared_dir / "db"
    directory.mkdir()
    source = directory / "app.sqlite3"
    out = shared_dir / "out"
    out.mkdir()
    out.chmod(0o777)
    app = sqlite3.connect(source)
    app.execute("PRAGMA journal_mode=WAL")
    app.execute("CREATE TABLE t (x)")
    app.execute("INSERT INTO t VALUES (1)")
    app.commit()
    for path in directory.iterdir():
        path.chmod(0o644)
    directory.chmod(0o555)

    assert copy_as_nobody(source, out / "running.sqlite3") == "copied"  # the app has it open

    app.close()  # the app stops: SQLite checkpoints and removes -wal and -shm
    assert not (directory / "app.sqlite3-shm").exists()
    message = copy_as_nobody(source, out / "stopped.sqlite3")
    assert "mount the database's directory read-write" in message, message
