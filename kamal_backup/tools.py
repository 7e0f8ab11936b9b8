"""The external programs kamal-backup runs: where the image gets them, and their versions."""

from __future__ import annotations

import re
from collections.abc import Mapping

from kamal_backup import process

_NUMBER = re.compile(r"\d+(?:\.\d+)+")
# MariaDB's clients print their own version first: "Ver 10.19 Distrib 10.11.6-MariaDB".
_DISTRIB = re.compile(r"Distrib\s+(\d+(?:\.\d+)+)")


# Every program kamal-backup (or restic, for a backend) runs, and the Debian package the image
# installs it from; tests check the code against this list and the list against the Dockerfile.
EXTERNAL_TOOLS: dict[str, str] = {
    "restic": "restic",
    "setpriv": "util-linux",  # children die with kamal-backup (parent-death signal)
    "cat": "coreutils",  # streams the SQLite snapshot copy into restic
    "sqlite3": "sqlite3",  # version for evidence
    "mariadb-dump": "mariadb-client",
    "mariadb": "mariadb-client-core",
    "pg_dump": "postgresql-client-{major}",
    "pg_restore": "postgresql-client-{major}",
    "psql": "postgresql-client-{major}",
    "rclone": "rclone",  # restic runs it for rclone: repositories
    "ssh": "openssh-client",  # restic runs it for sftp: repositories
    "tini": "tini",  # the image's PID 1
}
# Older names tried when the preferred program is missing (not needed in the image).
FALLBACK_TOOLS: dict[str, str] = {"mysqldump": "mariadb-dump", "mysql": "mariadb"}


def tool_version(
    binary: str | None, env: Mapping[str, str], args: tuple[str, ...] = ("--version",)
) -> str | None:
    """The first line a tool prints for --version (its path resolved on PATH), or None."""
    if binary is None:
        return None
    path = binary if "/" in binary else process.find_tool(binary, env)
    if path is None:
        return None
    try:
        result = process.run([path, *args], env=env)
    except OSError:
        return None
    text = (result.stdout or result.stderr).strip().splitlines()
    return text[0].strip() if text and result.returncode == 0 else None


def version_number(text: str | None) -> str | None:
    if not text:
        return None
    distrib = _DISTRIB.search(text)
    if distrib:
        return distrib.group(1)
    match = _NUMBER.search(text)
    return match.group(0) if match else None
