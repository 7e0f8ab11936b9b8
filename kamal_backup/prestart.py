"""The restic processes a `restore-db` will need, started before Python imports the settings.

`kamal-backup restore-db` spends its first few hundred milliseconds importing pydantic, the
settings and the services; its first restic processes then spend as long again opening the
repository (the key derivation, restic's lock). Started here, from the process environment
alone, restic opens the repository while Python imports:
- the dump of the snapshot the state directory expects (`expected_database_dump`, the restore's
  own guess), first: the restore waits for its first byte;
- `restic version` (the version check);
- the snapshot listing.

Nothing here decides anything. A process started here is used only when the restore asks for
exactly that command with exactly that environment (`process.spawn` takes it); settings read
from anywhere else do not match and start their own. The ones nobody took are stopped once the
restore has its listing, or at exit (SIGTERM first: restic removes its lock). They only read
the repository; the dump takes restic's shared lock, as any restore's dump does.

Nothing starts unless the command line is `restore-db` with at most a snapshot, --database and
--json (after an optional --verbose), stdin is not a terminal, KAMAL_BACKUP_ALLOW_RESTORE is
true, the repository and its password (or their files) come from the environment (not from a
password command, which would run a program), and no config file is named. `--in-place` starts
nothing: that restore takes a safety snapshot first.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from kamal_backup import process
from kamal_backup.environment import (
    LAST_SUCCESS,
    default_state_dir,
    last_restore_file,
    restic_passthrough,
)

RESTIC = "restic"
# The database a snapshot without a database tag belongs to (models.LEGACY_DATABASE).
PRIMARY = "primary"
_SNAPSHOT = re.compile(r"^(latest|[0-9a-f]{8,64})$")
_SNAPSHOT_ID = re.compile(r"^[0-9a-f]{64}$")
_YES = frozenset({"1", "true", "yes", "on", "t", "y"})
_FROM_ENVIRONMENT = ("RESTIC_REPOSITORY", "RESTIC_PASSWORD")
_FILES = ("RESTIC_REPOSITORY_FILE", "RESTIC_PASSWORD_FILE")


class Prestart(NamedTuple):
    """One restic process to start ahead: its argv, its environment and how nice it runs."""

    argv: list[str]
    env: dict[str, str]
    # Above 0, the process yields the CPU to Python and to the dump while they start (a
    # PostgreSQL restore does not wait for its listing; it waits only to commit).
    niceness: int = 0


# For a listing the restore does not wait for: a share of the CPU, not none (a busy server).
LISTING_NICENESS = 10


@dataclass(frozen=True)
class ExpectedDump:
    """The one file of a database snapshot a restore expects to read, and what it is."""

    id: str
    path: str
    database: str | None
    adapter: str | None
    # The state file's record of the snapshot as it was read (a SnapshotRecord's JSON fields).
    record: Mapping[str, Any]


def prestart(args: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    """Starts what `plan` names; how many processes started.

    Nothing on a terminal: there the restore may wait for the operator to confirm, and a dump
    started now would hold restic's lock, and the listing would be as old as the prompt. Only a
    shortcut: any error here starts nothing more and lets the command go on as it would.
    """
    started = 0
    with contextlib.suppress(Exception):  # the command meets any such error in its own place
        if sys.stdin.isatty():
            return 0
        for command in plan(args, os.environ if environ is None else environ):
            started += process.prestart(command.argv, command.env, command.niceness)
    return started


def plan(args: Sequence[str], environ: Mapping[str, str]) -> list[Prestart]:
    """Each restic process worth starting ahead for this command line."""
    wanted = _restore_db_arguments(args)
    if wanted is None:
        return []
    snapshot, database = wanted
    app = environ.get("APP_NAME", "")
    if not app or "," in app or environ.get("KAMAL_BACKUP_CONFIG"):
        return []
    if environ.get("KAMAL_BACKUP_ALLOW_RESTORE", "").strip().lower() not in _YES:
        return []
    if environ.get("RESTIC_PASSWORD_COMMAND"):
        return []
    if not (environ.get("RESTIC_REPOSITORY") or environ.get("RESTIC_REPOSITORY_FILE")):
        return []
    if not (environ.get("RESTIC_PASSWORD") or environ.get("RESTIC_PASSWORD_FILE")):
        return []
    env = restic_passthrough(environ)
    for name in _FROM_ENVIRONMENT:
        if environ.get(name):
            env[name] = environ[name]
    for name in _FILES:
        if environ.get(name):
            env[name] = str(Path(environ[name]))
    state_dir = Path(environ.get("KAMAL_BACKUP_STATE_DIR") or default_state_dir(environ)) / app
    expected = expected_database_dump(state_dir, snapshot, database)
    listing = [RESTIC, "snapshots", "--no-lock", "--tag", f"kamal-backup,app:{app}", "--json"]
    # A SQLite database is restored by `restic restore`, not read from a dump.
    if expected is None or expected.adapter == "sqlite":
        return [Prestart([RESTIC, "version"], env), Prestart(listing, env)]
    # A PostgreSQL restore starts with the expected dump and waits for the listing only to
    # commit (services/restore.py, _restore_ahead): the listing can yield the CPU meanwhile.
    # The dump goes first: its first byte, after its key derivation, is when the restore starts.
    niceness = LISTING_NICENESS if expected.adapter == "postgres" else 0
    return [
        Prestart([RESTIC, "dump", expected.id, expected.path], env),
        Prestart([RESTIC, "version"], env),
        Prestart(listing, env, niceness),
    ]


def expected_database_dump(
    state_dir: Path, argument: str, database: str | None
) -> ExpectedDump | None:
    """The database snapshot a restore will most likely read, from the state directory alone:
    for 'latest', the last successful backup's; for an id, the snapshot with that id among the
    last successful backup's and the last restore's. Only a guess: the listing decides."""
    snapshots = _read(state_dir / LAST_SUCCESS).get("database_snapshots")
    known = (
        [r for r in snapshots.values() if isinstance(r, dict)]
        if isinstance(snapshots, dict)
        else []
    )
    if argument != "latest":
        restored = _read(state_dir / last_restore_file("database")).get("snapshot")
        if isinstance(restored, dict):
            known.append(restored)
        found = next((r for r in known if str(r.get("id", "")).startswith(argument)), None)
    else:
        wanted = database or PRIMARY
        found = next((r for r in known if (r.get("database") or PRIMARY) == wanted), None)
    if found is None:
        return None
    paths, database, adapter = found.get("paths"), found.get("database"), found.get("adapter")
    if not (isinstance(paths, list) and len(paths) == 1 and isinstance(paths[0], str)):
        return None
    if not all(isinstance(value, str | None) for value in (database, adapter)):
        return None
    if not _SNAPSHOT_ID.match(str(found.get("id", ""))):
        return None
    return ExpectedDump(
        id=str(found["id"]), path=paths[0], database=database, adapter=adapter, record=found
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _restore_db_arguments(args: Sequence[str]) -> tuple[str, str | None] | None:
    """(snapshot, database) of `[--verbose] restore-db [SNAPSHOT] [--database NAME] [--json]`;
    None for any other command line."""
    rest = list(args)
    if rest[:1] == ["--verbose"]:
        rest.pop(0)
    if rest[:1] != ["restore-db"]:
        return None
    rest.pop(0)
    snapshot: str | None = None
    database: str | None = None
    while rest:
        arg = rest.pop(0)
        if arg == "--json":
            continue
        if arg == "--database" and rest:
            database = rest.pop(0)
        elif arg.startswith("--database="):
            database = arg.partition("=")[2]
        elif not arg.startswith("-") and snapshot is None:
            snapshot = arg
        else:
            return None
    snapshot = snapshot or "latest"
    return (snapshot, database) if _SNAPSHOT.match(snapshot) else None
