"""The manifest's file walk (verification.walk_files) agrees with the exclusion rules it speeds up."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kamal_backup import verification
from kamal_backup.verification import (
    HASH_CACHE,
    FilesFigures,
    excluded_by_pattern,
    source_files,
    walk_files,
)

PATTERNS = [
    "*.kamal-backup-staging*",  # one component, anywhere
    "cache/tmp",  # two components
    "*.log",
    "/srv/ignored",  # absolute: only below the original path /srv
]


def build_tree(root: Path) -> None:
    files = {
        "a.txt": b"alpha",
        "b/c.txt": b"gamma",
        "b/deep/d.bin": os.urandom(3000),
        "b/deep/x.log": b"left out",
        "cache/tmp/e.txt": b"left out with its directory",
        "cache/keep.txt": b"kept: cache alone is not cache/tmp",
        "upload.kamal-backup-staging-1/f.txt": b"left out with its directory",
        "ignored/g.txt": b"left out by the absolute pattern",
        "ignored-not/h.txt": b"kept",
        "empty.txt": b"",
    }
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "link-to-file").symlink_to("a.txt")
    (root / "link-to-dir").symlink_to("b")
    (root / "dangling").symlink_to("nowhere")
    os.mkfifo(root / "b" / "fifo")


def reference_walk(root: Path, original: str, skip: set[str], patterns: list[str]) -> FilesFigures:
    """The walk as it was: os.walk, and every file asked of excluded_by_pattern."""
    entries: dict[str, str] = {}
    total = 0
    for directory, dirs, names in os.walk(root):
        dirs.sort()
        base = Path(directory)
        for name in sorted(names + [d for d in dirs if (base / d).is_symlink()]):
            path = base / name
            key = original + "/" + str(path.relative_to(root))
            if key in skip or excluded_by_pattern(key, original, patterns):
                continue
            info = path.lstat()
            if path.is_symlink():
                digest = "link:" + hashlib.sha256(os.fsencode(os.readlink(path))).hexdigest()
                entries[key] = f"0:{digest}"
            elif path.is_file():
                entries[key] = f"{info.st_size}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
                total += info.st_size
    return FilesFigures(files=len(entries), bytes=total, entries=entries)


def test_the_walk_hashes_what_restic_keeps_and_agrees_with_the_exclusion_rules(
    tmp_path: Path,
) -> None:
    root = tmp_path / "srv"
    build_tree(root)
    skip = {"/srv/b/c.txt"}
    walked = walk_files([(root, "/srv")], sorted(skip), PATTERNS)
    expected = reference_walk(root, "/srv", skip, PATTERNS)
    assert walked == expected
    assert list(walked.entries) == list(expected.entries)  # the same order, too
    assert set(walked.entries) == {
        "/srv/a.txt",
        "/srv/b/deep/d.bin",
        "/srv/cache/keep.txt",
        "/srv/dangling",
        "/srv/empty.txt",
        "/srv/ignored-not/h.txt",
        "/srv/link-to-dir",
        "/srv/link-to-file",
    }
    assert walked.entries["/srv/a.txt"] == f"5:{hashlib.sha256(b'alpha').hexdigest()}"
    assert walked.entries["/srv/link-to-dir"].startswith("0:link:")


def test_an_excluded_root_and_a_missing_root_yield_nothing(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    build_tree(root)
    assert walk_files([(root, "/srv/ignored")], (), PATTERNS).files == 0
    assert walk_files([(tmp_path / "missing", "/missing")]).files == 0
    # A restored tree is keyed by the original path it stands for.
    restored = walk_files([(root / "b", "/data/b")])
    assert "/data/b/deep/d.bin" in restored.entries


def test_the_hash_cache_reads_only_changed_files_and_gives_the_same_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "srv"
    build_tree(root)
    cache = tmp_path / "state" / HASH_CACHE
    read: list[str] = []
    real_digest = verification.file_digest

    def counting_digest(path: Path | str) -> str:
        read.append(str(path))
        return real_digest(path)

    monkeypatch.setattr(verification, "file_digest", counting_digest)
    # The files were written just now: only the racy-time rule keeps them out of the cache.
    first = source_files([root], (), PATTERNS, cache=cache)
    source_files([root], (), PATTERNS, cache=cache)
    assert len(read) == 2 * 7  # seven regular files (/srv/ignored is not this root), twice
    monkeypatch.setattr(verification, "_RACY_NS", -(10**12))  # as if written long ago
    read.clear()
    assert source_files([root], (), PATTERNS, cache=cache) == first
    assert len(read) == 7
    read.clear()
    assert source_files([root], (), PATTERNS, cache=cache) == first
    assert read == []  # unchanged files are not read again

    (root / "a.txt").write_bytes(b"alpha, changed")
    (root / "b" / "deep" / "d.bin").unlink()
    again = source_files([root], (), PATTERNS, cache=cache)
    assert read == [f"{root}/a.txt"]
    assert again == walk_files([(root, str(root))], (), PATTERNS)
    assert again.entries[f"{root}/a.txt"].endswith(hashlib.sha256(b"alpha, changed").hexdigest())
    assert f"{root}/b/deep/d.bin" not in again.entries


def test_a_broken_hash_cache_is_ignored(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    build_tree(root)
    cache = tmp_path / HASH_CACHE
    cache.write_bytes(b"not a database")
    assert source_files([root], (), PATTERNS, cache=cache) == walk_files(
        [(root, str(root))], (), PATTERNS
    )


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file the walk reads, as the path it read; hashes remembered at once (no racy time)."""
    read: list[str] = []
    real_digest = verification.file_digest

    def counting_digest(path: Path | str) -> str:
        read.append(str(path))
        return real_digest(path)

    monkeypatch.setattr(verification, "file_digest", counting_digest)
    monkeypatch.setattr(verification, "_RACY_NS", -(10**12))
    return read


def _tick() -> None:
    """Lets the clock move past the last change, so the next one gets a new ctime."""
    time.sleep(0.05)


def test_an_unchanged_directory_is_taken_whole_and_nothing_is_written_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "srv"
    build_tree(root)
    for number in range(30):
        (root / "many" / f"{number // 10}").mkdir(parents=True, exist_ok=True)
        (root / "many" / f"{number // 10}" / f"f{number}.txt").write_text(f"file {number}\n")
    cache = tmp_path / "state" / HASH_CACHE
    read = _counting(monkeypatch)
    first = source_files([root], (), PATTERNS, cache=cache)
    assert len(read) == 37 and first == walk_files([(root, str(root))], (), PATTERNS)
    saved = cache.read_bytes(), cache.stat().st_mtime_ns
    read.clear()
    rows: list[str] = []
    real_known = verification.HashCache.known

    def known(self: verification.HashCache, key: str) -> dict[str, object]:
        rows.append(key)
        return real_known(self, key)  # type: ignore[return-value]

    monkeypatch.setattr(verification.HashCache, "known", known)
    again = source_files([root], (), PATTERNS, cache=cache)
    assert again == first and list(again.entries) == list(first.entries)
    assert read == [] and rows == []  # every directory was taken whole
    assert (cache.read_bytes(), cache.stat().st_mtime_ns) == saved  # and nothing written

    _tick()
    (root / "many" / "1" / "f12.txt").write_text("file 12, changed\n")
    changed = source_files([root], (), PATTERNS, cache=cache)
    assert read == [f"{root}/many/1/f12.txt"]  # its neighbours' hashes come from the cache
    assert rows == [f"{root}/many/1"]  # only its directory is walked file by file
    assert changed == walk_files([(root, str(root))], (), PATTERNS)
    read.clear()
    rows.clear()
    _tick()
    (root / "many" / "2" / "new.txt").write_text("added")
    added = source_files([root], (), PATTERNS, cache=cache)
    assert read == [f"{root}/many/2/new.txt"]
    # Its directory, and the parent, whose entry for that directory changed (its mtime).
    assert rows == [f"{root}/many", f"{root}/many/2"]
    assert added == walk_files([(root, str(root))], (), PATTERNS)


def test_the_cache_follows_every_kind_of_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "srv"
    build_tree(root)
    cache = tmp_path / HASH_CACHE
    _counting(monkeypatch)
    note = root / "b" / "c.txt"

    def same_size_same_mtime() -> None:
        before = note.stat()
        note.write_bytes(b"GAMMA")
        os.utime(note, ns=(before.st_atime_ns, before.st_mtime_ns))

    def file_becomes_directory() -> None:
        (root / "empty.txt").unlink()
        (root / "empty.txt").mkdir()
        (root / "empty.txt" / "inside.txt").write_text("now a directory")

    def link_retargeted() -> None:
        (root / "link-to-file").unlink()
        (root / "link-to-file").symlink_to("b/c.txt")  # the same length as before: a.txt

    changes: list[Callable[[], object]] = [
        lambda: (root / "new.txt").write_text("added"),
        lambda: (root / "a.txt").unlink(),
        lambda: (root / "b" / "deep" / "d.bin").rename(root / "b" / "deep" / "e.bin"),
        lambda: (root / "b" / "deep").rename(root / "b" / "moved"),
        same_size_same_mtime,
        file_becomes_directory,
        link_retargeted,
        lambda: note.chmod(0o600),
        lambda: (root / "cache" / "keep.txt").unlink(),
    ]
    source_files([root], (), PATTERNS, cache=cache)
    for change in changes:
        _tick()
        change()
        walked = source_files([root], (), PATTERNS, cache=cache)
        assert walked == walk_files([(root, str(root))], (), PATTERNS)
        # Taken again, unchanged, from the cache: still the same.
        assert source_files([root], (), PATTERNS, cache=cache) == walked
    assert walked.entries[str(note)] == f"5:{hashlib.sha256(b'GAMMA').hexdigest()}"


def test_other_exclusions_or_roots_are_never_answered_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "srv"
    build_tree(root)
    cache = tmp_path / HASH_CACHE
    _counting(monkeypatch)
    tree = [(root, str(root))]
    narrow = source_files([root], (), PATTERNS, cache=cache)
    wide = source_files([root], (), [], cache=cache)
    assert f"{root}/b/deep/x.log" in wide.entries and wide == walk_files(tree)
    skipped = source_files([root], [f"{root}/a.txt"], [], cache=cache)
    assert skipped == walk_files(tree, [f"{root}/a.txt"])
    assert source_files([root], (), PATTERNS, cache=cache) == narrow
    # The same directories below another root: a relative pattern may then match differently.
    below = source_files([root / "cache"], (), ["cache/tmp"], cache=cache)
    assert below == walk_files([(root / "cache", f"{root}/cache")], (), ["cache/tmp"])
    assert f"{root}/cache/tmp/e.txt" in below.entries


def test_undecodable_names_are_remembered_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "srv"
    (root / os.fsdecode(b"d\xe9j\xe0")).mkdir(parents=True)
    (root / os.fsdecode(b"d\xe9j\xe0") / os.fsdecode(b"caf\xe9.txt")).write_text("latin-1 names")
    (root / "nl\nname.txt").write_text("a newline in the name")
    cache = tmp_path / HASH_CACHE
    read = _counting(monkeypatch)
    first = source_files([root], (), (), cache=cache)
    assert len(read) == 2 and first == walk_files([(root, str(root))])
    read.clear()
    assert source_files([root], (), (), cache=cache) == first
    assert read == []


def test_a_file_changed_while_it_is_read_is_read_again_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    target = root / "busy.txt"
    target.write_text("before")
    cache = tmp_path / HASH_CACHE
    real_digest = verification.file_digest
    read = _counting(monkeypatch)

    def changing_digest(path: Path | str) -> str:
        _tick()
        target.write_text("during")  # after the walk took the figures, before it reads
        return real_digest(path)

    counting = verification.file_digest
    monkeypatch.setattr(verification, "file_digest", changing_digest)
    during = source_files([root], (), (), cache=cache)
    assert during.entries[str(target)].endswith(hashlib.sha256(b"during").hexdigest())
    monkeypatch.setattr(verification, "file_digest", counting)
    after = source_files([root], (), (), cache=cache)
    assert read == [str(target)]  # the remembered figures were taken before the change
    assert after.entries[str(target)].endswith(hashlib.sha256(b"during").hexdigest())


def test_a_directory_with_a_file_changed_just_now_is_not_taken_whole_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "srv"
    build_tree(root)
    cache = tmp_path / HASH_CACHE
    read = _counting(monkeypatch)
    source_files([root], (), PATTERNS, cache=cache)
    _tick()
    (root / "b" / "c.txt").write_bytes(b"GAMMA")
    # Written within the racy window of this walk: read, never remembered.
    monkeypatch.setattr(verification, "_RACY_NS", 10**12)
    read.clear()
    source_files([root], (), PATTERNS, cache=cache)
    assert read == [f"{root}/b/c.txt"]
    read.clear()
    source_files([root], (), PATTERNS, cache=cache)
    assert read == [f"{root}/b/c.txt"]  # read again; its neighbours still come from the cache


def test_a_cache_of_the_per_file_format_is_replaced(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    build_tree(root)
    cache = tmp_path / HASH_CACHE
    with contextlib.closing(sqlite3.connect(cache)) as db, db:
        db.execute(
            "CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
            "ctime_ns INTEGER, inode INTEGER, digest TEXT)"
        )
        db.execute("INSERT INTO files VALUES (?, 5, 0, 0, 0, ?)", (f"{root}/a.txt", "0" * 64))
    assert source_files([root], (), PATTERNS, cache=cache) == walk_files(
        [(root, str(root))], (), PATTERNS
    )
    with contextlib.closing(sqlite3.connect(cache)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"directories"}


def test_a_cancel_stops_the_walk_before_the_next_file_it_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One directory of big files would otherwise be read to its end after a cancel."""
    from kamal_backup import process
    from kamal_backup.errors import Interrupted

    for i in range(5):
        (tmp_path / f"big-{i}.bin").write_bytes(b"x" * 1000)
    read: list[str] = []
    real_value = verification._value

    with process.cancel_scope("drill") as scope:

        def value_then_cancel(path: str, info: os.stat_result) -> str | None:
            read.append(path)
            scope.cancel()
            return real_value(path, info)

        monkeypatch.setattr(verification, "_value", value_then_cancel)
        with pytest.raises(Interrupted):
            walk_files([(tmp_path, "/data")])
    assert len(read) == 1
