"""Path policy: system directories, path normalisation and the overlap between two paths."""

from __future__ import annotations

import os
import re
from pathlib import Path

# Directories that are never a sensible backup source or restore target on their own.
SYSTEM_ROOTS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/snap",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/usr/bin",
        "/usr/lib",
        "/usr/local",
        "/usr/sbin",
        "/var",
        "/var/lib",
        "/var/log",
        "/var/run",
        "/var/tmp",
    }
)
# BACKUP_PATHS separators: ':' (like PATH) and newlines. Never ',' (a legal file name character).
_SEPARATORS = re.compile(r"[:\n]")


def resolve_path(path: Path) -> Path:
    """The absolute, normalised, symlink-resolved form of a path (it need not exist)."""
    # PurePosixPath keeps a leading "//"; collapse it so "//etc" is seen as "/etc".
    text = re.sub(r"^/+", "/", str(path))
    return Path(os.path.realpath(text))


def normalise(path: Path) -> Path:
    """The path with '.', '..' and repeated slashes folded, symlinks left alone."""
    return Path(re.sub(r"^/+", "/", os.path.normpath(path)))


def is_system_root(path: Path) -> bool:
    return str(resolve_path(path)) in SYSTEM_ROOTS


def split_paths(raw: str) -> list[str]:
    """BACKUP_PATHS as written: split on ':' and newlines, blanks dropped."""
    return [part.strip() for part in _SEPARATORS.split(raw) if part.strip()]


def overlap(target: Path, source: Path) -> str | None:
    """How `target` overlaps the backup path `source` (equal, inside, containing), or None."""
    if target == source:
        return f"it is the backup path {source}"
    if target.is_relative_to(source):
        return f"it is inside the backup path {source}"
    if source.is_relative_to(target):
        return f"it contains the backup path {source}"
    return None
