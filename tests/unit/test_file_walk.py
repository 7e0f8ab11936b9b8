"""The manifest's file walk (verification.walk_files) agrees with the exclusion rules it speeds up."""

from __future__ import annotations

import hashlib
import os
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
