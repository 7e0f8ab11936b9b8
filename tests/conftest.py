"""Shared fixtures: real restic repositories, a small SQLite app, and the CLI as a subprocess."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kamal_backup import process, redact
from kamal_backup.restic import MINIMUM_VERSION, parse_version
from tests.restic_keys import cheapen_keys

ROOT = Path(__file__).resolve().parent.parent
RESTIC_PASSWORD = "correct-horse-battery-staple-7731"


def _start_rank(item: pytest.Item) -> int:
    """The soak (the longest test), then the TUI's, the other integration tests, unit tests."""
    if item.nodeid.startswith("tests/integration/test_soak.py"):
        return 0
    if item.nodeid.startswith("tests/tui/"):
        return 1
    return 2 if item.nodeid.startswith("tests/integration/") else 3


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first, short ones last (the order within each group kept): with two workers
    (xdist --dist worksteal) the run then does not end with one worker in a long test while
    the other idles. Every test stays independent of the order."""
    items.sort(key=_start_rank)


@pytest.fixture(scope="session")
def restic_binary() -> str:
    """The restic the tests run; a missing or old restic fails the run (it never skips)."""
    found = shutil.which("restic")
    if found is None:
        pytest.fail("restic is not on PATH: run bin/test, which installs restic 0.18")
    version = parse_version(
        subprocess.run([found, "version"], capture_output=True, text=True).stdout
    )
    if version is None or version < MINIMUM_VERSION:
        pytest.fail(f"restic {version} is too old; bin/test installs restic 0.18")
    return found


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    # Cancellation needs no reset: each operation opens its own scope. The unscoped fallback
    # must never be cancelled, whatever a test did.
    assert not process.current_scope().cancelled
    yield
    redact._current = redact.Redactor()


@pytest.fixture(scope="session")
def template_repository(tmp_path_factory: pytest.TempPathFactory, restic_binary: str) -> Path:
    """An initialised, empty repository; copying it saves restic init per test. Its key is
    re-wrapped with a cheap KDF (tests/restic_keys.py): every restic process opening it saves
    about 0.1 s of CPU."""
    repo = tmp_path_factory.mktemp("template") / "repo"
    subprocess.run(
        [restic_binary, "init", "--repo", str(repo)],
        check=True,
        capture_output=True,
        env={**os.environ, "RESTIC_PASSWORD": RESTIC_PASSWORD},
    )
    cheapen_keys(repo, RESTIC_PASSWORD)
    return repo


def make_sqlite(path: Path, rows: int = 200) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB)"
        )
        db.executemany(
            "INSERT INTO notes (body, data) VALUES (?, ?)",
            [(f"note {i} ünïcødé", os.urandom(32)) for i in range(rows)],
        )
    db.close()


def add_bulk(path: Path, rows: int, width: int = 1000) -> None:
    """Grows a SQLite database by rows x width random bytes, so a backup takes a moment."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS bulk (b BLOB)")
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?) "
            "INSERT INTO bulk SELECT randomblob(?) FROM n",
            (rows, width),
        )
    db.close()


def start_until(app: App, marker: str, *args: str) -> subprocess.Popen[str]:
    """Starts the CLI (default `backup`) and returns once its log shows `marker`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kamal_backup", *(args or ("backup",))],
        env=app.env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if marker in line:
            return proc
    raise AssertionError(f"kamal-backup exited ({proc.wait()}) before logging {marker!r}")


def sqlite_rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT id, body, data FROM notes ORDER BY id").fetchall()
    db.close()
    return rows


@dataclass
class App:
    """A small SQLite app with files, a repository and the environment kamal-backup reads."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return Path(self.env["SQLITE_DATABASE_PATH"])

    @property
    def files(self) -> Path:
        return Path(self.env["BACKUP_PATHS"].split(":")[0])

    @property
    def repo(self) -> Path:
        return Path(self.env["RESTIC_REPOSITORY"])

    def cli(
        self,
        *args: str,
        extra: dict[str, str] | None = None,
        check: bool = False,
        timeout: float = 240,
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **(extra or {})}
        result = subprocess.run(
            [sys.executable, "-m", "kamal_backup", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kamal-backup {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
            )
        return result

    def restic(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["restic", *args],
            env={
                **os.environ,
                "RESTIC_REPOSITORY": str(self.repo),
                "RESTIC_PASSWORD": self.env["RESTIC_PASSWORD"],
            },
            capture_output=True,
            text=True,
            check=True,
        )

    def snapshot_ids(self, *tags: str) -> list[str]:
        """Backup snapshots with every one of `tags`; manifests and drill records only when a
        tag names their type (they are documents about backups, not backups)."""
        import json

        args = ["snapshots", "--json", "--no-lock"]
        if tags:
            args += ["--tag", ",".join(tags)]
        records = {"type:manifest", "type:drill"}
        return [
            s["id"]
            for s in json.loads(self.restic(*args).stdout)
            if records & set(tags) or not records & set(s.get("tags") or [])
        ]


def base_env(root: Path, repo: Path, name: str = "shop") -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(root / "home"),
        "APP_NAME": name,
        "DATABASE_ADAPTER": "sqlite",
        "SQLITE_DATABASE_PATH": str(root / "app" / "db" / "app.sqlite3"),
        "BACKUP_PATHS": str(root / "app" / "storage"),
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_PASSWORD": RESTIC_PASSWORD,
        "KAMAL_BACKUP_STATE_DIR": str(root / "state"),
        "XDG_CACHE_HOME": str(root / "cache"),
    }


def make_app(root: Path, template: Path, name: str = "shop") -> App:
    repo = root / "repo"
    shutil.copytree(template, repo)
    app = App(root=root, env=base_env(root, repo, name))
    make_sqlite(app.db)
    storage = app.files
    (storage / "uploads" / "ünï").mkdir(parents=True)
    (storage / "uploads" / "a.txt").write_text("hello\n")
    (storage / "uploads" / "ünï" / "photo.bin").write_bytes(os.urandom(4096))
    return app


@pytest.fixture
def app(tmp_path: Path, template_repository: Path) -> App:
    return make_app(tmp_path, template_repository)
