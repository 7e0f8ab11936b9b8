"""SQLite: an online, page-for-page copy with the backup API; atomic, checked restores."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kamal_backup.databases.base import (
    ByteCounter,
    DatabaseAdapter,
    DumpCommand,
    TargetTables,
    dump_path,
)
from kamal_backup.databases.pipeline import ByteProgress
from kamal_backup.errors import ConfigError, Interrupted, OperationFailed
from kamal_backup.humanize import count
from kamal_backup.models import Snapshot
from kamal_backup.paths import resolve_path
from kamal_backup.process import StderrTail, cancelled, find_tool
from kamal_backup.redact import redact
from kamal_backup.restic import Restic, error_for
from kamal_backup.verification import DatabaseFigures, FigureMethod, TableFigures

SIDECARS = ("-wal", "-shm", "-journal")
_HEADER = b"SQLite format 3\x00"
_PAGES_PER_STEP = 4096
_MODULUS = 2**64


def copy_database(source: Path, destination: Path) -> None:
    """Copies a live database with SQLite's online backup API.

    One backup step takes a consistent read snapshot: in WAL mode writers go on meanwhile, and
    the copy keeps the source's page layout, which is what lets restic deduplicate day to day
    (VACUUM INTO would rewrite every page).
    """
    uri = f"file:{quote(str(source))}?mode=ro"

    def stop_when_cancelled(status: int, remaining: int, total: int) -> None:
        if cancelled():
            raise Interrupted()

    try:
        with (
            contextlib.closing(
                sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)
            ) as src,
            contextlib.closing(sqlite3.connect(destination)) as dst,
        ):
            # An open read transaction pins one snapshot for every step, so concurrent writers
            # neither restart the copy nor make it inconsistent, and cancellation is checked
            # between steps instead of after the whole file.
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
            src.backup(dst, pages=_PAGES_PER_STEP, progress=stop_when_cancelled)
            src.execute("COMMIT")
    except sqlite3.Error as exc:
        hint = None
        if "readonly" in str(exc) or "read-only" in str(exc):
            # A WAL database's readers write its -shm index: absent, it cannot be created on a
            # read-only mount (it exists while the app has the database open).
            hint = (
                "a database in WAL mode can only be read where its -shm file can be created: "
                "mount the database's directory read-write"
            )
        raise OperationFailed(
            f"SQLite backup of {source} failed: {redact(str(exc))}", hint=hint
        ) from None


def integrity_check(path: Path) -> str:
    """'ok', or the first problem PRAGMA integrity_check reports."""
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        ) as db:
            row = db.execute("PRAGMA integrity_check").fetchone()
    except sqlite3.Error as exc:
        return str(exc)
    return str(row[0]) if row else "no result"


LIVE_SUFFIXES = (".sqlite3", ".sqlite", ".db")


def unconfigured_live_databases(paths: list[Path], excluded: list[str]) -> list[Path]:
    """SQLite files with a -wal beside them under `paths` that no configured database covers.

    Copied raw with the files, such a database (and its WAL) may be torn: backup and validate
    warn about each by name.
    """
    skip = set(excluded)
    found: list[Path] = []
    for root in paths:
        for directory, _, files in os.walk(root):
            names = set(files)
            for name in sorted(files):
                if name.endswith(LIVE_SUFFIXES) and f"{name}-wal" in names:
                    path = Path(directory) / name
                    if str(resolve_path(path)) not in skip:
                        found.append(path)
    return found


# Rows hashed between two looks at the cancel: cheap beside the hashing, and prompt even for
# rows of a megabyte.
_CANCEL_EVERY = 64


def sqlite_figures(path: Path, method: FigureMethod) -> DatabaseFigures:
    """Row counts and order-independent checksums (sum of 64-bit BLAKE2 hashes of each row)."""
    tables: list[TableFigures] = []
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        ) as db:
            names = [
                row[0]
                for row in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                    "AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL%' ORDER BY name"
                )
            ]
            for name in names:
                if cancelled():
                    raise Interrupted()
                quoted = '"' + name.replace('"', '""') + '"'
                if method == "count":
                    (rows,) = db.execute(f"SELECT count(*) FROM {quoted}").fetchone()  # noqa: S608
                    tables.append(TableFigures(table=name, rows=rows))
                    continue
                rows = total = 0
                for row in db.execute(f"SELECT * FROM {quoted}"):  # noqa: S608
                    digest = hashlib.blake2b(repr(row).encode(), digest_size=8).digest()
                    total = (total + int.from_bytes(digest, "big")) % _MODULUS
                    rows += 1
                    if not rows % _CANCEL_EVERY and cancelled():  # a big table takes a while
                        raise Interrupted()
                tables.append(TableFigures(table=name, rows=rows, checksum=str(total)))
    except sqlite3.Error as exc:
        raise OperationFailed(f"counting the SQLite database {path}: {redact(str(exc))}") from None
    return DatabaseFigures(
        adapter="sqlite",
        method=method,
        consistency="counted from the online-backup copy restic stored: the same bytes as the dump",
        tables=tables,
    )


class SqliteAdapter(DatabaseAdapter):
    name = "sqlite"
    aliases = ("sqlite3",)
    tools = ("sqlite3",)
    extension = "sqlite3"
    restores_from_pipe = False  # restic writes the file itself

    @property
    def source(self) -> Path:
        if self.database.path is None:
            raise ConfigError(self.database.source_setting, "is required for adapter sqlite")
        return self.database.path

    @property
    def target(self) -> Path | None:
        return self.database.restore_path

    def source_missing(self) -> bool:
        return not self.source.exists() and not self.source.is_symlink()

    def check_source(self) -> None:
        setting = self.database.source_setting
        if not self.source.is_file():
            raise ConfigError(setting, f"{self.source} does not exist or is not a file")
        try:
            with self.source.open("rb") as handle:
                header = handle.read(len(_HEADER))
        except OSError as exc:
            raise ConfigError(setting, f"cannot read {self.source}: {exc.strerror}") from None
        if header != _HEADER:
            raise ConfigError(setting, f"{self.source} is not a SQLite database")

    def excluded_paths(self) -> list[str]:
        source = resolve_path(self.source)
        return [str(source) + suffix for suffix in ("", *SIDECARS)]

    @contextmanager
    def dump_command(self, figures: bool = True) -> Iterator[DumpCommand]:
        workdir = Path(tempfile.mkdtemp(prefix="kamal-backup-sqlite-"))
        try:
            copy = workdir / "database.sqlite3"
            copy_database(self.source, copy)
            if cancelled():
                raise Interrupted()
            argv = (find_tool("cat") or "cat", str(copy))
            if not figures:
                yield DumpCommand(argv=argv)
                return
            # Counted from the very copy restic streams, beside it: the same bytes as the dump.
            method = self.figure_method()
            with ThreadPoolExecutor(max_workers=1) as pool:
                # In this operation's context: cancelling it stops the count too.
                future = pool.submit(contextvars.copy_context().run, sqlite_figures, copy, method)
                yield DumpCommand(argv=argv, figures=future.result)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def restored_figures(self, method: FigureMethod) -> DatabaseFigures:
        target = self.database.restore_path
        if target is None:
            raise ConfigError(self.restore_setting, "is required for a drill with sqlite")
        return sqlite_figures(target, method)

    def source_label(self) -> str:
        return str(self.source)

    def restore_target_label(self) -> str | None:
        target = self.target
        return str(target) if target else None

    def restore_target_words(self) -> list[str]:
        target = self.target
        return [str(target)] if target else []

    def restore_target_is_source(self) -> bool:
        target = self.target
        return target is not None and resolve_path(target) == resolve_path(self.source)

    def restore_target_tables(self, timeout: float) -> TargetTables:
        target = self.target
        if target is None:
            raise ConfigError(self.restore_setting, "is not set")
        if not target.exists():
            return TargetTables(str(target), None)
        # Without a WAL beside it the file alone is the database: immutable opens it without
        # locks or sidecars, so looking never changes the directory.
        mode = "mode=ro" if Path(f"{target}-wal").exists() else "immutable=1"
        try:
            with contextlib.closing(
                sqlite3.connect(f"file:{quote(str(target))}?{mode}", uri=True, timeout=timeout)
            ) as db:
                (tables,) = db.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                ).fetchone()
        except sqlite3.Error as exc:
            raise OperationFailed(redact(str(exc))) from None
        return TargetTables(str(target), tables)

    def restore(
        self, restic: Restic, snapshot: Snapshot, on_bytes: ByteCounter | None = None
    ) -> dict[str, Any]:
        target = self.target
        if target is None:
            raise ConfigError(
                self.restore_setting,
                f"is required for restore-db of database {self.describe_database()}",
            )
        if target.is_dir():
            raise ConfigError(self.restore_setting, f"{target} is a directory")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                self.restore_setting, f"cannot create {target.parent}: {exc.strerror}"
            ) from None

        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.restore-", dir=target.parent)
        except OSError as exc:
            raise OperationFailed(f"cannot write in {target.parent}: {exc.strerror}") from None
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                # restic writes the file itself: no byte of it passes through Python.
                with (
                    restic.dump(snapshot.id, dump_path(snapshot), stdout=handle.fileno()) as child,
                    ByteProgress(lambda: os.fstat(handle.fileno()).st_size, on_bytes),
                ):
                    tail = StderrTail(child.stderr)
                    returncode = child.wait()
                    stderr = tail.text()
                if cancelled():
                    raise Interrupted()
                if returncode != 0:
                    # restic writes the file: its own write error is about the target's disk.
                    if written := re.search(r"write /dev/stdout: ([^\n]+)", stderr):
                        raise OperationFailed(
                            f"cannot write the restored database in {target.parent}: "
                            f"{written.group(1).strip()}"
                        )
                    raise error_for(returncode, stderr, "reading the database dump")
                handle.flush()
                os.fsync(handle.fileno())
            verdict = integrity_check(tmp)
            _remove_sidecars(tmp)  # a WAL-mode file grows -wal/-shm when opened, even read-only
            if verdict != "ok":
                raise OperationFailed(
                    f"restored SQLite file failed PRAGMA integrity_check: {verdict}"
                )
            size = tmp.stat().st_size
            if target.exists():
                tmp.chmod(target.stat().st_mode & 0o777)
            # A stale WAL next to the target would be replayed into the restored file.
            _remove_sidecars(target)
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            _remove_sidecars(tmp)
            if isinstance(exc, OSError):
                raise OperationFailed(
                    f"writing the restored database next to {target} failed: {exc.strerror}; "
                    "the previous file is untouched"
                ) from None
            raise
        return {"bytes": size, "integrity_check": "ok"}

    def probe(self) -> str:
        self.check_source()
        uri = f"file:{quote(str(self.source))}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
                tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.Error as exc:
            raise OperationFailed(f"cannot read {self.source}: {redact(str(exc))}") from None
        return f"{self.source} readable ({count(tables, 'schema entry', 'schema entries')})"

    def client_versions(self) -> dict[str, str | None]:
        return {"sqlite3": sqlite3.sqlite_version}


def _remove_sidecars(database: Path) -> None:
    for suffix in SIDECARS:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{database}{suffix}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
