"""What a backup run holds (its manifest) and how restored data is compared with it."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import operator
import os
import re
import sqlite3
import stat
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

from pydantic import Field, model_validator

from kamal_backup.errors import Interrupted
from kamal_backup.models import Model
from kamal_backup.process import cancelled

MANIFEST_VERSION = 1
log = logging.getLogger(__name__)

FigureMethod = Literal["checksum", "count"]
_CHUNK = 1024 * 1024
# A verification lists at most this many mismatching paths or tables: enough to act on, while a
# record stays small enough for the state directory and a repository snapshot tag list.
MISMATCHES_KEPT = 50


class TableFigures(Model):
    """One table's row count and order-independent content checksum, as of one consistent view."""

    table: str
    rows: int
    checksum: str | None = None
    # False where the engine cannot guarantee the dump saw the same view (e.g. MyISAM tables).
    comparable: bool = True
    note: str | None = None


class DatabaseFigures(Model):
    adapter: str
    method: FigureMethod
    consistency: str
    tables: list[TableFigures] = Field(default_factory=list)


class FilesFigures(Model):
    """Every regular file and symlink under the backup paths: size and SHA-256 (symlink: target)."""

    files: int
    bytes: int
    # Original absolute path -> "size:sha256".
    entries: dict[str, str] = Field(default_factory=dict)


class Manifest(Model):
    """Stored with each run in the repository (a small snapshot tagged type:manifest)."""

    version: int = MANIFEST_VERSION
    app_name: str
    run: str
    created_at: datetime
    # Keyed by database name. A manifest written before several databases existed holds one
    # `database` entry: it is read as primary's.
    databases: dict[str, DatabaseFigures] = Field(default_factory=dict)
    files: FilesFigures | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_database_is_primary(cls, data: Any) -> Any:
        if isinstance(data, dict) and "database" in data:
            data = dict(data)
            single = data.pop("database")
            if single is not None:
                data.setdefault("databases", {"primary": single})
        return data


# Files ------------------------------------------------------------------------------------------


def file_digest(path: Path | str) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def _value(path: str, info: os.stat_result) -> str | None:
    """The manifest's "size:sha256" of a regular file or symlink (its target); None otherwise."""
    if stat.S_ISLNK(info.st_mode):
        return "0:link:" + hashlib.sha256(os.fsencode(os.readlink(path))).hexdigest()
    if stat.S_ISREG(info.st_mode):
        return f"{info.st_size}:{file_digest(path)}"
    return None


HASH_CACHE = "file-hashes.sqlite3"
# A file changed this recently may change again within the same timestamp tick without its
# mtime moving, so its hash is not remembered (git's "racily clean" rule).
_RACY_NS = 2_000_000_000
# What a remembered hash is trusted with: mode, size, mtime, ctime and inode, the figures restic
# itself compares to skip an unchanged file.
_Figures = tuple[int, int, int, int, int]
# Part of every directory stamp: a change of how stamps are made invalidates the old ones.
_STAMP_FORMAT = b"kamal-backup directory stamp 1\0"


_figures: Callable[[os.stat_result], _Figures] = operator.attrgetter(
    "st_mode", "st_size", "st_mtime_ns", "st_ctime_ns", "st_ino"
)


def _joined(names: Sequence[str]) -> bytes:
    """Names as the file system holds them (undecodable bytes kept), NUL-separated."""
    return "\0".join(names).encode("utf-8", "surrogateescape")


def _split(data: bytes) -> list[str]:
    return data.decode("utf-8", "surrogateescape").split("\0") if data else []


class _Reused(NamedTuple):
    """A directory as the cache remembers it: its entries' names and values, its subdirectories."""

    names: list[str]
    values: list[str]
    subdirectories: list[str]
    size: int


class HashCache:
    """The SHA-256 of each backed-up file, remembered with its mode, size, mtime, ctime and inode.

    A file whose figures are unchanged since the last backup is not read again: restic trusts
    the same figures to skip an unchanged file, so the manifest costs a stat per file instead of
    a read beside a `restic backup` that reads nothing new. The cache holds one row per
    directory; a directory's stamp (a SHA-256 over the name and figures of every entry, in
    order, and over the walk's roots and exclusions) lets a directory whose entries are all
    unchanged be taken whole, without a Python object per file. The cache is a convenience: an
    unreadable or unwritable one is ignored and every file is hashed.
    """

    def __init__(self, path: Path, scope: bytes = b"") -> None:
        self.path = path
        self._scope = hashlib.sha256(_STAMP_FORMAT + scope)
        # Files changed at or after this instant are not remembered.
        self.racy_after = time.time_ns() - _RACY_NS
        # Directory key (bytes) -> (stamp, names, entries, figures, subdirectories, bytes).
        self._rows: dict[bytes, tuple[Any, ...]] = {}
        self._visited: set[bytes] = set()
        self._changed: list[tuple[Any, ...]] = []
        if not path.is_file():
            return
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=5)) as db:
                self._rows = {
                    row[0]: row[1:]
                    for row in db.execute(
                        "SELECT path, stamp, names, entries, figures, subdirectories, bytes "
                        "FROM directories"
                    )
                }
        except (sqlite3.Error, OSError) as exc:
            log.debug("file hash cache %s not read: %s", path, exc)

    def stamp(
        self, relative: Sequence[str], names: list[str], infos: list[os.stat_result]
    ) -> bytes | None:
        """Over every entry's name and figures, in order, and the directory's place below its
        root (None if a figure does not fit: the directory is then walked file by file)."""
        digest = self._scope.copy()
        digest.update(_joined([*relative, ""]))
        digest.update(_joined(names))
        try:
            digest.update(
                struct.pack("<" + "IQqqQ" * len(infos), *chain.from_iterable(map(_figures, infos)))
            )
        except struct.error:
            return None
        return digest.digest()

    def reuse(self, key: str, stamp: bytes) -> _Reused | None:
        """The directory as remembered, if its stamp is the same as then."""
        path = key.encode("utf-8", "surrogateescape")
        row = self._rows.get(path)
        if row is None or row[0] != stamp:
            return None
        _, names, entries, _, subdirectories, size = row
        try:
            reused = _Reused(
                _split(names),
                entries.decode().split("\n") if entries else [],
                _split(subdirectories),
                int(size),
            )
        except (ValueError, TypeError, AttributeError, UnicodeError) as exc:
            log.debug("file hash cache %s: a row not read: %s", self.path, exc)
            return None
        if len(reused.names) != len(reused.values):
            return None
        self._visited.add(path)
        return reused

    def known(self, key: str) -> dict[str, tuple[_Figures, str]]:
        """The remembered files of a directory that changed: name -> (figures, value)."""
        row = self._rows.get(key.encode("utf-8", "surrogateescape"))
        if row is None:
            return {}
        try:
            figures = [tuple(item) for item in json.loads(row[3])]
            values = row[2].decode().split("\n") if row[2] else []
            return dict(zip(_split(row[1]), zip(figures, values, strict=True), strict=True))
        except (ValueError, TypeError, AttributeError, UnicodeError) as exc:
            log.debug("file hash cache %s: a row not read: %s", self.path, exc)
            return {}

    def fresh(self, info: os.stat_result) -> bool:
        """Whether a file changed too recently to be remembered (the racily-clean rule)."""
        return max(info.st_mtime_ns, info.st_ctime_ns) >= self.racy_after

    def remember(
        self,
        key: str,
        stamp: bytes | None,
        names: list[str],
        figures: list[_Figures],
        values: list[str],
        subdirectories: list[str],
        size: int,
    ) -> None:
        """What a directory's walk found; `stamp` None when it cannot be taken whole next time
        (an entry changed too recently, vanished or could not be read)."""
        path = key.encode("utf-8", "surrogateescape")
        self._visited.add(path)
        row = (
            stamp,
            _joined(names),
            "\n".join(values).encode(),
            json.dumps(figures, separators=(",", ":")),
            _joined(subdirectories),
            size,
        )
        if self._rows.get(path) != row:
            self._changed.append((path, *row))

    def save(self) -> None:
        """Keeps what this walk learned; forgets directories that are gone (or were not walked)."""
        gone = [(path,) for path in self._rows.keys() - self._visited]
        if not self._changed and not gone:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(sqlite3.connect(self.path, timeout=5)) as db, db:
                db.execute("DROP TABLE IF EXISTS files")  # one row per file, before stamps
                db.execute(
                    "CREATE TABLE IF NOT EXISTS directories (path BLOB PRIMARY KEY, stamp BLOB,"
                    " names BLOB, entries BLOB, figures TEXT, subdirectories BLOB, bytes INTEGER)"
                )
                db.executemany("DELETE FROM directories WHERE path = ?", gone)
                db.executemany(
                    "INSERT OR REPLACE INTO directories VALUES (?, ?, ?, ?, ?, ?, ?)", self._changed
                )
        except (sqlite3.Error, OSError) as exc:
            log.debug("file hash cache %s not saved: %s", self.path, exc)


def excluded_by_pattern(key: str, root: str, patterns: Sequence[str]) -> bool:
    """Whether restic's --exclude (as kamal-backup anchors it inside `root`) leaves `key` out.

    A relative pattern matches any run of path components below the root (so a directory's
    whole subtree goes with it); an absolute one matches the path or one of its parents.
    """
    if not patterns:
        return False
    relative = key[len(root) :].strip("/").split("/") if key.startswith(root) else []
    absolute = key.split("/")
    for raw in patterns:
        pattern = raw.strip().rstrip("/")
        if not pattern:
            continue
        if pattern.startswith("/"):
            if any(
                fnmatch.fnmatchcase("/".join(absolute[:end]), pattern)
                for end in range(2, len(absolute) + 1)
            ):
                return True
            continue
        width = pattern.count("/") + 1
        for start in range(len(relative)):
            if fnmatch.fnmatchcase("/".join(relative[start : start + width]), pattern):
                return True
    return False


class _Exclusions:
    """`excluded_by_pattern`, split so a walk asks only what a new path component adds.

    Every run of components (relative pattern) or prefix (absolute pattern) of a file's key
    either lies within its directory's key or ends at the file's name. The walk asks the first
    kind once per directory (`directory_adds`: a directory that matches takes its whole
    subtree) and the second per file (`name_adds`), so the answer is the same as asking
    `excluded_by_pattern` about every file, at a fraction of the cost.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        cleaned = [raw.strip().rstrip("/") for raw in patterns]
        self.absolute = [re.compile(fnmatch.translate(p)) for p in cleaned if p.startswith("/")]
        self.relative = [
            (p.count("/") + 1, re.compile(fnmatch.translate(p)))
            for p in cleaned
            if p and not p.startswith("/")
        ]
        # One-component patterns (the usual kind) asked of a name in one match.
        single = [fnmatch.translate(p) for p in cleaned if p and "/" not in p]
        self.single = re.compile("|".join(f"(?:{r})" for r in single)) if single else None
        self.multi = [(width, regex) for width, regex in self.relative if width > 1]

    def root_adds(self, root: str) -> bool:
        """Whether the root itself, or a parent of it, matches an absolute pattern."""
        parts = root.split("/")
        return any(
            regex.match("/".join(parts[:end]))
            for regex in self.absolute
            for end in range(2, len(parts) + 1)
        )

    def directory_adds(self, key: str, relative: list[str]) -> bool:
        """Whether a match ends exactly at this directory (full-width runs only)."""
        n = len(relative)
        return any(regex.match(key) for regex in self.absolute) or any(
            width <= n and regex.match("/".join(relative[n - width :]))
            for width, regex in self.relative
        )

    def name_adds(self, key: str, directory: list[str], name: str) -> bool:
        """Whether a match includes the last component (a run may be cut short at the end)."""
        if self.single is not None and self.single.match(name):
            return True
        if self.absolute and any(regex.match(key) for regex in self.absolute):
            return True
        if not self.multi:
            return False
        relative = [*directory, name]
        n = len(relative)
        return any(
            regex.match("/".join(relative[start : start + width]))
            for width, regex in self.multi
            for start in range(max(0, n - width), n)
        )


def _lstat_all(directory: str, names: list[str]) -> tuple[list[os.stat_result | None], bool]:
    """Each name's lstat (None where it vanished or cannot be read), and whether all succeeded."""
    lstat = os.lstat
    try:
        return [lstat(f"{directory}/{name}") for name in names], True
    except OSError:
        pass
    infos: list[os.stat_result | None] = []
    for name in names:
        try:
            infos.append(lstat(f"{directory}/{name}"))
        except (FileNotFoundError, PermissionError):
            infos.append(None)  # gone meanwhile, or unreadable (restic reports those itself)
    return infos, False


def walk_files(
    roots: Iterable[tuple[Path, str]],
    excluded: Sequence[str] = (),
    patterns: Sequence[str] = (),
    hashes: HashCache | None = None,
) -> FilesFigures:
    """Hashes every file under each (directory on disk, original path it stands for).

    Restored trees are walked with the original path they were backed up from, so the keys of
    a restored tree and of the backed-up tree are the same. Files are visited as `os.walk`
    visits them (directories sorted, symlinks to directories recorded as links, never
    followed); the walk works on strings and prunes excluded directories, so it stays cheap
    beside a `restic backup` of many small files. With `hashes`, a directory whose entries are
    all unchanged is taken from the cache whole, and only changed files are read.
    """
    skip = set(excluded)
    exclusions = _Exclusions(patterns)
    entries: dict[str, str] = {}
    total = 0
    for root, original in roots:
        if not root.exists() and not root.is_symlink():
            continue
        if exclusions.root_adds(original):
            continue
        # (directory on disk, its key, its components below the root), depth first in order.
        pending: list[tuple[str, str, list[str]]] = [(str(root), original, [])]
        while pending:
            directory, dir_key, dir_relative = pending.pop()
            if cancelled():
                raise Interrupted()
            try:
                names = os.listdir(directory)
            except OSError:
                continue  # as os.walk: an unreadable directory is left out
            names.sort()
            infos, complete = _lstat_all(directory, names)
            stamp = None
            if hashes is not None and complete:
                stamp = hashes.stamp(dir_relative, names, cast(list[os.stat_result], infos))
                reused = hashes.reuse(dir_key, stamp) if stamp is not None else None
                if reused is not None:
                    entries.update(
                        zip(
                            [f"{dir_key}/{name}" for name in reused.names],
                            reused.values,
                            strict=True,
                        )
                    )
                    total += reused.size
                    subdirectories = reused.subdirectories
                    pending += [
                        (f"{directory}/{name}", f"{dir_key}/{name}", [*dir_relative, name])
                        for name in reversed(subdirectories)
                    ]
                    continue
            known = hashes.known(dir_key) if hashes is not None else {}
            kept_names: list[str] = []
            kept_figures: list[_Figures] = []
            kept_values: list[str] = []
            kept_size = 0
            subdirectories = []
            whole = complete
            for name, info in zip(names, infos, strict=True):
                if info is None:
                    continue
                key = f"{dir_key}/{name}"
                if stat.S_ISDIR(info.st_mode):
                    if not exclusions.directory_adds(key, [*dir_relative, name]):
                        subdirectories.append(name)
                    continue
                if key in skip or exclusions.name_adds(key, dir_relative, name):
                    continue
                figures = _figures(info)
                remembered = known.get(name)
                if remembered is not None and remembered[0] == figures:
                    value, keep = remembered[1], True
                else:
                    if cancelled():  # per file read: a directory of big files takes a while
                        raise Interrupted()
                    try:
                        found = _value(f"{directory}/{name}", info)
                    except (FileNotFoundError, PermissionError):
                        whole = False
                        continue  # gone meanwhile, or unreadable (restic reports those itself)
                    if found is None:
                        continue  # neither a regular file nor a symlink
                    value, keep = found, hashes is not None and not hashes.fresh(info)
                    whole = whole and keep
                size = info.st_size if stat.S_ISREG(info.st_mode) else 0
                entries[key] = value
                total += size
                if keep:
                    kept_names.append(name)
                    kept_figures.append(figures)
                    kept_values.append(value)
                    kept_size += size
            if hashes is not None:
                hashes.remember(
                    dir_key,
                    stamp if whole else None,
                    kept_names,
                    kept_figures,
                    kept_values,
                    subdirectories,
                    kept_size,
                )
            pending += [
                (f"{directory}/{name}", f"{dir_key}/{name}", [*dir_relative, name])
                for name in reversed(subdirectories)
            ]
    return FilesFigures.model_construct(files=len(entries), bytes=total, entries=entries)


def source_files(
    paths: Sequence[Path],
    excluded: Sequence[str],
    patterns: Sequence[str] = (),
    cache: Path | None = None,
) -> FilesFigures:
    """The backed-up side: what restic reads, minus what its --exclude options leave out.

    With `cache` (a file in the state directory, see HASH_CACHE), files unchanged since the
    last backup are not read again.
    """
    roots = [(path, str(path)) for path in paths]
    hashes = None
    if cache is not None:
        scope = json.dumps([[str(path) for path in paths], sorted(excluded), list(patterns)])
        hashes = HashCache(cache, scope.encode("utf-8", "surrogateescape"))
    figures = walk_files(roots, excluded, patterns, hashes)
    if hashes is not None:
        hashes.save()
    return figures


def restored_files(target: Path, originals: Sequence[str]) -> FilesFigures:
    """The files restic restored under target/<original path>."""
    return walk_files((target / original.lstrip("/"), original) for original in originals)


# Comparison -------------------------------------------------------------------------------------

Verdict = Literal["match", "mismatch", "not comparable", "not verified"]


class TableCheck(Model):
    table: str
    # The database the table is in (None in records made before several databases existed).
    database: str | None = None
    rows_expected: int | None
    rows_restored: int | None
    verdict: Verdict
    detail: str | None = None


class FileCheck(Model):
    path: str
    verdict: Verdict
    detail: str


class Verification(Model):
    """What a drill found on its scratch targets, compared with the run's manifest."""

    status: Literal["verified", "mismatch", "not verified"]
    reason: str | None = None
    method: FigureMethod | None = None
    consistency: str | None = None
    tables: list[TableCheck] = Field(default_factory=list)
    files_expected: int | None = None
    files_restored: int | None = None
    bytes_expected: int | None = None
    bytes_restored: int | None = None
    files_mismatched: int = 0
    file_mismatches: list[FileCheck] = Field(default_factory=list)

    @property
    def databases(self) -> list[str]:
        return list(dict.fromkeys(check.database for check in self.tables if check.database))

    @property
    def mismatched_tables(self) -> list[str]:
        """The mismatching tables, as `database.table` when the run has several databases."""
        named = len(self.databases) > 1
        return [
            f"{check.database}.{check.table}" if named and check.database else check.table
            for check in self.tables
            if check.verdict == "mismatch"
        ]

    def summary(self) -> str:
        if self.status == "not verified":
            return f"not verified: {self.reason}"
        parts = []
        if self.tables:
            matched = sum(check.verdict == "match" for check in self.tables)
            parts.append(f"{matched}/{len(self.tables)} tables match")
            counted = sum(check.verdict == "not comparable" for check in self.tables)
            if counted:
                parts.append(f"{counted} counted, not comparable")
        if self.files_expected is not None:
            parts.append(
                f"{self.files_expected - self.files_mismatched}/{self.files_expected} files match"
            )
        return f"{self.status}: " + ", ".join(parts)


def compare_tables(
    expected: DatabaseFigures, found: DatabaseFigures, database: str | None = None
) -> list[TableCheck]:
    restored = {table.table: table for table in found.tables}
    checks: list[TableCheck] = []
    for table in expected.tables:
        got = restored.pop(table.table, None)
        if got is None:
            checks.append(
                TableCheck(
                    table=table.table,
                    rows_expected=table.rows,
                    rows_restored=None,
                    verdict="mismatch",
                    detail="missing from the restored database",
                    database=database,
                )
            )
            continue
        if not table.comparable:
            verdict: Verdict = "not comparable"
            detail = table.note or "counted, not comparable"
        elif got.rows != table.rows:
            verdict, detail = "mismatch", f"{got.rows} rows restored, {table.rows} backed up"
        elif expected.method == "checksum" and _kind(got.checksum) != _kind(table.checksum):
            # e.g. a scratch server too old for the hash the source used: rows were compared.
            verdict, detail = "not comparable", "checksummed differently here; row counts match"
        elif expected.method == "checksum" and got.checksum != table.checksum:
            verdict, detail = "mismatch", "same row count, different content"
        else:
            verdict, detail = "match", None
        checks.append(
            TableCheck(
                table=table.table,
                rows_expected=table.rows,
                rows_restored=got.rows,
                verdict=verdict,
                detail=detail,
                database=database,
            )
        )
    for table in restored.values():
        checks.append(
            TableCheck(
                table=table.table,
                rows_expected=None,
                rows_restored=table.rows,
                verdict="mismatch",
                detail="not in the backed-up database",
                database=database,
            )
        )
    return checks


def _kind(checksum: str | None) -> str:
    """The algorithm prefix of a checksum ("h:…", "m:…"); "" for unprefixed ones."""
    return checksum.split(":", 1)[0] if checksum and ":" in checksum else ""


def compare_files(expected: FilesFigures, found: FilesFigures) -> list[FileCheck]:
    mismatches: list[FileCheck] = []
    for path, value in expected.entries.items():
        got = found.entries.get(path)
        if got is None:
            mismatches.append(FileCheck(path=path, verdict="mismatch", detail="missing"))
        elif got != value:
            size, got_size = value.split(":", 1)[0], got.split(":", 1)[0]
            detail = (
                f"{got_size} bytes restored, {size} backed up"
                if size != got_size
                else "same size, different content"
            )
            mismatches.append(FileCheck(path=path, verdict="mismatch", detail=detail))
    for path in found.entries.keys() - expected.entries.keys():
        mismatches.append(FileCheck(path=path, verdict="mismatch", detail="not backed up"))
    return sorted(mismatches, key=lambda check: check.path)


DatabaseCheck = tuple[Manifest | None, Callable[[FigureMethod], DatabaseFigures]]


def verify(
    database: DatabaseCheck | Mapping[str, DatabaseCheck] | None,
    files: tuple[Manifest | None, Callable[[], FilesFigures]] | None,
) -> Verification:
    """Recomputes the restored parts' figures and compares each with its run's manifest.

    `database` is one database (primary) or a mapping from each database's name to its check.
    A part whose run has no manifest (a backup made before manifests existed) is "not verified",
    which is reported and is not a failure; any mismatch is.
    """
    result = Verification(status="verified")
    missing: list[str] = []
    databases: Mapping[str, DatabaseCheck]
    if database is None:
        databases = {}
    elif isinstance(database, tuple):
        databases = {"primary": database}
    else:
        databases = database
    for name, (manifest, compute) in databases.items():
        expected = manifest.databases.get(name) if manifest is not None else None
        if expected is None:
            missing.append(f"database {name}" if len(databases) > 1 else "database")
            continue
        result.method = result.method or expected.method
        result.consistency = result.consistency or expected.consistency
        result.tables.extend(compare_tables(expected, compute(expected.method), name))
    if files is not None:
        manifest, compute_files = files
        if manifest is None or manifest.files is None:
            missing.append("files")
        else:
            restored = compute_files()
            mismatches = compare_files(manifest.files, restored)
            result.files_expected = manifest.files.files
            result.files_restored = restored.files
            result.bytes_expected = manifest.files.bytes
            result.bytes_restored = restored.bytes
            result.files_mismatched = len(mismatches)
            result.file_mismatches = mismatches[:MISMATCHES_KEPT]
    if result.mismatched_tables or result.files_mismatched:
        result.status = "mismatch"
    elif missing:
        result.status = "not verified"
    if missing:
        parts = len(databases) + (files is not None)
        result.reason = (
            "no manifest" if len(missing) == parts else "no manifest for the " + ", ".join(missing)
        )
    return result


# Drill records ----------------------------------------------------------------------------------

DrillStatus = Literal["passed", "failed", "interrupted"]


class CheckCommandResult(Model):
    """The operator's check command, run against the scratch targets after verification."""

    command: list[str]
    status: Literal["passed", "failed"]
    exit_code: int | None
    duration_seconds: float
    output: str
    error: str | None = None


class DrillPart(Model):
    kind: Literal["database", "files"]
    database: str | None = None
    snapshot_id: str
    snapshot_time: datetime
    run: str | None
    target: str
    duration_seconds: float | None = None
    bytes_restored: int | None = None


class DrillRecord(Model):
    """One restore drill, passed, failed or interrupted: what a reviewer asks to see."""

    id: str
    status: DrillStatus
    ran_by: str
    started_at: datetime
    finished_at: datetime | None = None
    run: str | None = None
    parts: list[DrillPart] = Field(default_factory=list)
    # The primary's (or the only database's) target, as before several databases existed.
    database_target: str | None = None
    # Every database's scratch target, by name.
    database_targets: dict[str, str] = Field(default_factory=dict)
    files_target: str | None = None
    # The drilled run was tagged suspicious (it shrank against the last good run): a pass proves
    # the restore, not that the data is what the app should have.
    suspicious_run: bool = False
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    verification: Verification = Field(
        default_factory=lambda: Verification(status="not verified", reason="not reached")
    )
    check: CheckCommandResult | None = None
    error: str | None = None
    # State directory only: whether the record has reached the repository yet.
    stored_in_repository: bool = False

    def summary(self) -> DrillSummary:
        return DrillSummary(
            id=self.id,
            status=self.status,
            started_at=self.started_at,
            ran_by=self.ran_by,
            run=self.run,
            suspicious_run=self.suspicious_run,
            rto_seconds=self.rto_seconds,
            rpo_seconds=self.rpo_seconds,
            verification=self.verification.status,
            check=self.check.status if self.check else None,
        )


class DrillSummary(Model):
    """One line of the drill history (evidence, the TUI, repository snapshot tags)."""

    id: str
    status: DrillStatus
    started_at: datetime
    ran_by: str
    run: str | None = None
    suspicious_run: bool = False
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    verification: str
    check: str | None = None
