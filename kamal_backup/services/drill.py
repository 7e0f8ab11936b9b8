"""Restore drills: restore a run into scratch targets, verify it against its manifest, record it."""

from __future__ import annotations

import functools
import getpass
import json
import logging
import os
import re
import secrets
import shlex
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kamal_backup import process, redact, state
from kamal_backup.databases import adapter_for, adapters_for
from kamal_backup.errors import (
    ConfigError,
    DrillInterrupted,
    Interrupted,
    KamalBackupError,
    OperationFailed,
    ToolMissing,
)
from kamal_backup.humanize import human_bytes
from kamal_backup.locking import operation_lock
from kamal_backup.models import (
    FILES_PART,
    RECORD_TYPES,
    VERIFYING,
    ResticStatus,
    Snapshot,
    SnapshotType,
    TargetContents,
    database_part,
)
from kamal_backup.notify import notified
from kamal_backup.paths import resolve_path
from kamal_backup.restic import Restic
from kamal_backup.services import app_tags, gates, restic_for
from kamal_backup.services.restore import restore_database, restore_files
from kamal_backup.services.snapshots import (
    expected_parts,
    latest_complete,
    list_records,
    no_good_run,
    suspicious_runs,
    validate_snapshot_argument,
)
from kamal_backup.settings import Settings, secret
from kamal_backup.verification import (
    CheckCommandResult,
    DatabaseCheck,
    DrillPart,
    DrillRecord,
    DrillSummary,
    Manifest,
    restored_files,
    verify,
)

log = logging.getLogger(__name__)

StatusCallback = Callable[[str, ResticStatus], None]
# Called between the restore and the verification with the record so far: the tests' seam for
# changing scratch data, which a real drill must then report.
BeforeVerify = Callable[[DrillRecord], None]
PARTS: tuple[SnapshotType, ...] = ("database", "files")
_RUN = re.compile(r"^\d{8}T\d{6}Z$")
_OUTPUT_KEEP = 2000
# Variables a check command never needs: the repository's and the backup source's credentials.
_WITHHELD = ("RESTIC_", "AWS_", "B2_", "AZURE_", "GOOGLE_", "OS_", "ST_")
_WITHHELD_NAMES = ("DATABASE_URL", "PGPASSWORD", "MYSQL_PWD", "SQLITE_DATABASE_PATH")
# How long looking at a scratch target may take: a drill, or the wizard, waits for it.
INSPECT_SECONDS = 5.0


def who_runs() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def drill_settings(settings: Settings, database_target: str | None) -> Settings:
    """The settings with --database-target in place of the only database's restore target."""
    if not database_target:
        return settings
    databases = settings.database_list
    if len(databases) != 1:
        names = ", ".join(d.name for d in databases) or "none"
        raise ConfigError(
            "--database-target",
            f"applies only to an app with one database; this app has {len(databases)} "
            f"({names}): set each database's restore target instead",
        )
    value = database_target.strip()
    if "://" in value:
        redact.current().add_environment({"RESTORE_DATABASE_URL": value})
    return settings.with_restore_target(databases[0].name, value, "--database-target")


def split_check(command: str | None, setting: str) -> list[str] | None:
    if command is None or not command.strip():
        return None
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(setting, f"cannot be split into arguments: {exc}") from None
    return argv or None


def resolve_part(
    backups: Sequence[Snapshot],
    argument: str,
    kind: SnapshotType,
    app_name: str,
    expected: frozenset[str] = frozenset(),
    database: str | None = None,
) -> Snapshot:
    """The snapshot of `kind` (and database) a drill argument names: latest, a run, or any
    snapshot of a run."""
    value = argument.strip()
    what = f"database {database}" if database and kind == "database" else kind

    def fits(snapshot: Snapshot) -> bool:
        return snapshot.kind == kind and (database is None or snapshot.database == database)

    if value == "latest":
        found = latest_complete(backups, kind, expected, database)
        if found is None:
            raise ConfigError("SNAPSHOT", no_good_run(backups, expected, app_name))
        return found
    if _RUN.match(value):
        matches = [s for s in backups if s.run == value and fits(s)]
        if not matches:
            raise ConfigError("SNAPSHOT", f"run {value} has no {what} snapshot of app {app_name}")
        return max(matches, key=lambda s: s.time)
    value = validate_snapshot_argument(value)
    named = [s for s in backups if s.id.startswith(value)]
    if len(named) > 1:
        raise ConfigError("SNAPSHOT", f"{value} matches {len(named)} snapshots; give more digits")
    if not named:
        raise ConfigError("SNAPSHOT", f"{value} is not a snapshot of app {app_name}")
    if fits(named[0]):
        return named[0]
    same_run = [s for s in backups if s.run and s.run == named[0].run and fits(s)]
    if not same_run:
        raise ConfigError("SNAPSHOT", f"the run of {value} has no {what} snapshot")
    return max(same_run, key=lambda s: s.time)


def newest_manifest(manifests: Sequence[Snapshot], run: str | None) -> Snapshot | None:
    """The run's newest manifest snapshot among `manifests`, or None."""
    found = [s for s in manifests if run and s.run == run]
    return max(found, key=lambda s: s.time) if found else None


def read_manifest(
    restic: Restic, manifests: Sequence[Snapshot], run: str | None
) -> Manifest | None:
    """The run's manifest (one `restic dump`), or None for a run made before manifests."""
    newest = newest_manifest(manifests, run)
    if newest is None or len(newest.paths) != 1:
        return None
    try:
        return Manifest.model_validate_json(restic.read_file(newest.id, newest.paths[0]))
    except ValidationError:
        log.warning("the manifest of run %s cannot be read; the drill cannot verify it", run)
        return None


# What the scratch targets hold now ---------------------------------------------------------------


def describe_drill_targets(
    settings: Settings,
    files_target: str,
    parts: Sequence[SnapshotType] = PARTS,
    timeout: float = INSPECT_SECONDS,
) -> list[TargetContents]:
    """What each scratch target of a drill holds now, one line each, read-only and bounded in
    time: said before the drill drops or replaces it. A target the gates refuse (not set, a
    system directory, the backup source or a backup path) is left to the gates' own words."""
    found: list[TargetContents] = []
    if "database" in parts:
        adapters = adapters_for(settings)
        for adapter in adapters:
            if adapter.restore_target_label() is None or gates.database_target_is_source(
                settings, adapter
            ):
                continue
            part = "database" if len(adapters) == 1 else f"database {adapter.database_name}"
            try:
                held = adapter.restore_target_tables(timeout)
            except (KamalBackupError, process.TimedOut) as exc:
                name = _target_name(adapter.restore_target_label() or "")
                found.append(_cannot_tell(part, name, exc, timeout))
                continue
            found.append(_database_contents(part, held.name, held.tables))
    if "files" in parts and settings.backup_paths:
        refused = {
            verdict.gate
            for _, verdict in gates.drill_verdicts(settings, files_target, ("files",))
            if not verdict.allowed
        }
        if not refused & {"restore target", "drill target"}:
            found.append(describe_files_target(settings, files_target, timeout))
    return found


def _target_name(label: str) -> str:
    """A database target's name for a sentence: the database (the URL's last part), or a path."""
    return label.rsplit("/", 1)[-1].split("?", 1)[0] if "://" in label else label


def _cannot_tell(part: str, name: str, exc: BaseException, timeout: float) -> TargetContents:
    if isinstance(exc, process.TimedOut):
        cause = f"no answer within {timeout:g}s"
    else:
        cause = redact.redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "failed")
    return TargetContents(
        part=part, target=name, state="unknown", summary=f"cannot tell what {name} holds: {cause}"
    )


def _database_contents(part: str, name: str, tables: int | None) -> TargetContents:
    if tables is None:
        return TargetContents(
            part=part,
            target=name,
            state="missing",
            summary=f"{name} does not exist yet; the drill creates it",
        )
    if tables == 0:
        return TargetContents(
            part=part, target=name, state="empty", summary=f"{name} has no tables"
        )
    summary = (
        f"{name} has 1 table; it will be dropped"
        if tables == 1
        else f"{name} has {tables} tables; they will be dropped"
    )
    return TargetContents(part=part, target=name, state="holds", summary=summary)


def describe_files_target(
    settings: Settings, files_target: str, timeout: float = INSPECT_SECONDS
) -> TargetContents:
    """What a scratch directory holds now: its files (and their size), counted within
    `timeout` seconds, and which of them the drill replaces (those at target/<backup path>)."""
    target = files_target.strip()
    root = resolve_path(Path(target))
    if not root.exists() and not root.is_symlink():
        return TargetContents(
            part="files",
            target=target,
            state="missing",
            summary=f"{target} does not exist yet; the drill creates it",
        )
    if not root.is_dir():
        return TargetContents(
            part="files",
            target=target,
            state="unknown",
            summary=f"cannot tell what {target} holds: it is not a directory",
        )
    replaced = [str(root / str(path).lstrip("/")) for path in settings.backup_paths]
    deadline = time.monotonic() + timeout
    counts = {"files": 0, "bytes": 0, "replaced": 0}
    stopped = False
    pending = [str(root)]
    try:
        while pending and not stopped:
            directory = pending.pop()
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                        continue
                    counts["files"] += 1
                    counts["bytes"] += entry.stat(follow_symlinks=False).st_size
                    if any(entry.path.startswith(f"{prefix}/") for prefix in replaced):
                        counts["replaced"] += 1
                    if counts["files"] % 1000 == 0 and time.monotonic() > deadline:
                        stopped = True
                        break
    except OSError as exc:
        cause = exc.strerror or str(exc)
        return TargetContents(
            part="files",
            target=target,
            state="unknown",
            summary=f"cannot tell what {target} holds: {cause.lower()} ({exc.filename})",
        )
    files, replacing = counts["files"], counts["replaced"]
    if files == 0:
        return TargetContents(
            part="files", target=target, state="empty", summary=f"{target} is empty"
        )
    under = ", ".join(replaced)
    held = f"{target} holds {'at least ' if stopped else ''}{_files(files)} ({human_bytes(counts['bytes'])})"
    if stopped:
        tail = f"; counting stopped after {timeout:g}s; those under {under} will be replaced"
    elif replacing == files:
        tail = "; it will be replaced" if files == 1 else "; they will be replaced"
    elif replacing == 0:
        tail = (
            f"; the drill writes only under {under}, so {'it stays' if files == 1 else 'they stay'}"
        )
    else:
        rest = files - replacing
        tail = (
            f"; {_files(replacing)} under {under} will be replaced, "
            f"{'the other stays' if rest == 1 else f'the other {rest} stay'}"
        )
    return TargetContents(part="files", target=target, state="holds", summary=held + tail)


def _files(count: int) -> str:
    return f"{count} file{'' if count == 1 else 's'}"


@notified("drill")
def run_drill(
    settings: Settings,
    snapshot: str = "latest",
    *,
    database_target: str | None = None,
    files_target: str | None = None,
    check: str | None = None,
    parts: Sequence[SnapshotType] = PARTS,
    files_snapshot: str | None = None,
    ran_by: str | None = None,
    on_status: StatusCallback | None = None,
    before_verify: BeforeVerify | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DrillRecord:
    """Restores a run into the scratch targets, verifies it, runs the check, records the drill.

    Refusals and bad arguments raise before anything is restored (nothing is recorded). Once
    restoring starts, every outcome is recorded: a failed drill is returned with status
    "failed"; an interrupted one is recorded and Interrupted is raised.
    """
    started = now()
    clock = time.monotonic()
    settings = drill_settings(settings, database_target)
    has = {"database": bool(settings.database_list), "files": bool(settings.backup_paths)}
    wanted = tuple(kind for kind in PARTS if kind in parts and has[kind])
    if not wanted:
        setting = "DATABASE_ADAPTER" if "database" in parts else "BACKUP_PATHS"
        raise ConfigError(setting, f"this app has no {' or '.join(parts)} to drill")
    files_target = (files_target or str(settings.restore_files_path)).strip()
    verdicts = gates.drill_verdicts(settings, files_target, wanted)
    gates.enforce([verdict for _, verdict in verdicts])
    check_setting = "--check" if check is not None else "KAMAL_BACKUP_DRILL_CHECK_COMMAND"
    check_argv = split_check(
        check if check is not None else settings.kamal_backup_drill_check_command, check_setting
    )
    adapters = adapters_for(settings) if "database" in wanted else []
    restic = restic_for(settings)
    restic.require_supported_version()
    every = restic.snapshots(app_tags(settings))
    backups = [s for s in every if s.kind not in RECORD_TYPES]
    expected = expected_parts(settings)
    # By part: database:<name> for each database, files.
    chosen: dict[str, Snapshot] = {}
    for adapter in adapters:
        name = adapter.database_name
        chosen[database_part(name)] = resolve_part(
            backups, snapshot, "database", settings.app_name, expected, name
        )
    if "files" in wanted:
        chosen[FILES_PART] = resolve_part(
            backups, files_snapshot or snapshot, "files", settings.app_name, expected
        )
    targets = {adapter.database_name: adapter.restore_target_label() or "" for adapter in adapters}
    # Said before anything is written: what the scratch targets hold that the drill replaces.
    for contents in describe_drill_targets(settings, files_target, wanted):
        level = logging.INFO if contents.state in ("empty", "missing") else logging.WARNING
        log.log(level, "drill: %s", contents.summary)

    flagged = sorted({s.run for s in chosen.values() if s.run} & suspicious_runs(backups))
    for run in flagged:
        log.warning(
            "drill: run %s is suspicious (it shrank against the last good run): a passing drill "
            "proves the restore, not that the data is right",
            run,
        )
    record = DrillRecord(
        id=f"{started.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}",
        status="interrupted",
        ran_by=ran_by or who_runs(),
        started_at=started,
        run=next((s.run for s in chosen.values() if s.run), None),
        database_target=next(iter(targets.values()), None),
        database_targets=targets,
        files_target=files_target if FILES_PART in chosen else None,
        suspicious_run=bool(flagged),
        rpo_seconds=round(max((started - s.time).total_seconds() for s in chosen.values()), 1),
    )
    with operation_lock(settings.state_dir, "drill"):
        try:
            _perform(
                settings, restic, every, chosen, record, check_argv, on_status, before_verify, clock
            )
        except (Interrupted, KeyboardInterrupt) as exc:
            record.status = "interrupted"
            record.error = "interrupted"
            _finish(settings, restic, record, now)
            if isinstance(exc, Interrupted) and record.parts:
                kinds: Counter[str] = Counter(
                    "files" if key == FILES_PART else "database" for key in chosen
                )
                done: Counter[str] = Counter(part.kind for part in record.parts)
                unfinished = {kind for kind, count in kinds.items() if done[kind] < count}
                raise DrillInterrupted(_restored(record.parts), unfinished) from None
            raise
        except KamalBackupError as exc:
            record.status = "failed"
            record.error = redact.redact(str(exc))
        _finish(settings, restic, record, now)
    return record


def _perform(
    settings: Settings,
    restic: Restic,
    every: Sequence[Snapshot],
    chosen: Mapping[str, Snapshot],
    record: DrillRecord,
    check_argv: list[str] | None,
    on_status: StatusCallback | None,
    before_verify: BeforeVerify | None,
    clock: float,
) -> None:
    manifests = [s for s in every if s.kind == "manifest"]
    backups = [s for s in every if s.kind not in RECORD_TYPES]
    read: dict[str | None, Manifest | None] = {}
    for snapshot in chosen.values():
        if snapshot.run not in read:
            read[snapshot.run] = read_manifest(restic, manifests, snapshot.run)

    def restore(part: str, snapshot: Snapshot) -> DrillPart:
        log.info("drill: restoring %s snapshot %s", part, snapshot.short)
        kind: SnapshotType = "files" if part == FILES_PART else "database"
        if kind == "database":
            result = restore_database(
                settings,
                snapshot.id,
                on_status=on_status,
                database=snapshot.database,
                locked_by_caller=True,
                snapshots=backups,
            )
        else:
            result = restore_files(
                settings,
                snapshot.id,
                record.files_target or "",
                on_status=on_status,
                locked_by_caller=True,
                snapshots=backups,
            )
        if on_status is not None:
            # Its line ends full: a restore of a few small files reports no progress of its own.
            size = result.bytes_restored or 0
            on_status(kind, ResticStatus(total_bytes=size, bytes_done=size, percent_done=1.0))
        return DrillPart(
            kind=kind,
            database=snapshot.database,
            snapshot_id=snapshot.id,
            snapshot_time=snapshot.time,
            run=snapshot.run,
            target=result.target,
            duration_seconds=result.duration_seconds,
            bytes_restored=result.bytes_restored,
        )

    # The parts restore side by side (each database loads on its server while restic writes the
    # files), and are then verified side by side: a drill costs about its slowest part.
    restored = _side_by_side(
        {part: functools.partial(restore, part, s) for part, s in chosen.items()}
    )
    # In the chosen order (databases, then files), not the order they finished.
    record.parts = [part for key in chosen if isinstance(part := restored[key], DrillPart)]
    # Cancelled, a part killed under it may fail with its tool's error: the drill was interrupted.
    process.raise_if_cancelled()
    failures = {part: exc for part, exc in restored.items() if isinstance(exc, BaseException)}
    for exc in failures.values():
        if isinstance(exc, Interrupted | KeyboardInterrupt):
            raise exc
    if failures:
        part, exc = next(iter(failures.items()))
        if record.parts:
            # Say what did happen: the other parts are restored and stay restored.
            done = ", ".join(_restored(record.parts))
            failed = "file" if part == FILES_PART else part.replace(":", " ")
            raise OperationFailed(f"{done}, but the {failed} restore failed: {exc}") from None
        raise exc
    if before_verify is not None:
        before_verify(record)

    databases = {
        snapshot.database: snapshot
        for part, snapshot in chosen.items()
        if part != FILES_PART and snapshot.database
    }
    files = chosen.get(FILES_PART)
    files_target = Path(record.files_target or "/")
    computations: dict[str, Callable[[], object]] = {}
    for name, snapshot in databases.items():
        manifest = read.get(snapshot.run)
        figures = manifest.databases.get(name) if manifest is not None else None
        if figures is not None:
            computations[database_part(name)] = functools.partial(
                adapter_for(settings, name).restored_figures, figures.method
            )
    if files is not None:
        computations[FILES_PART] = functools.partial(restored_files, files_target, files.paths)
    if computations:  # rows and files read again: on a big database, the longest step
        log.info("drill: verifying the restored %s", " and ".join(_what(computations)))
        if on_status is not None:
            on_status(VERIFYING, ResticStatus())
    computed = _side_by_side(computations)
    process.raise_if_cancelled()
    for value in computed.values():
        if isinstance(value, BaseException):
            raise value

    def figures_of(key: str) -> Callable[[Any], Any]:
        return lambda _method: computed[key]

    checks: dict[str, DatabaseCheck] = {
        name: (read[snapshot.run], figures_of(database_part(name)))
        for name, snapshot in databases.items()
    }
    record.verification = verify(
        checks or None,
        (read[files.run], lambda: computed[FILES_PART]) if files else None,
    )
    process.raise_if_cancelled()
    record.rto_seconds = round(time.monotonic() - clock, 3)
    log.info("drill: %s", record.verification.summary())
    if check_argv is not None:
        record.check = run_check_command(settings, check_argv, record)
    failed_check = record.check is not None and record.check.status == "failed"
    record.status = (
        "failed" if record.verification.status == "mismatch" or failed_check else "passed"
    )


def _what(parts: Mapping[str, object]) -> list[str]:
    databases = len([key for key in parts if key != FILES_PART])
    said = [f"{databases} databases" if databases > 1 else "database"] if databases else []
    return said + (["files"] if FILES_PART in parts else [])


def _label(part: DrillPart) -> str:
    return f"database {part.database}" if part.kind == "database" and part.database else part.kind


def _restored(parts: Sequence[DrillPart]) -> list[str]:
    """Each restored part in words: "files snapshot 1a2b3c4d was restored into …"."""
    several = len([p for p in parts if p.kind == "database"]) > 1
    return [
        f"{_label(part) if several else part.kind} snapshot {part.snapshot_id[:8]} was restored "
        f"into {part.target}"
        for part in parts
    ]


def _side_by_side(calls: Mapping[str, Callable[[], Any]]) -> dict[str, Any]:
    """Runs each call as a part of the current operation (process.run_parts: its own thread, in
    the operation's cancel scope, so Ctrl-C, SIGTERM or the TUI's cancel stops its children);
    its result, or the exception it raised, by key. A part that fails leaves the others to
    finish: what they restored stays restored and is reported."""
    outcome = process.run_parts(calls, let_finish=lambda exc: True)
    return {**outcome.results, **outcome.failures}


def check_environment(settings: Settings, record: DrillRecord) -> dict[str, str]:
    env = {
        name: value
        for name, value in settings.environ.items()
        if not name.startswith(_WITHHELD) and name not in _WITHHELD_NAMES
    }
    # The first database's (primary's) target, and each database's by name.
    targets: dict[str, str] = {}
    for database in settings.database_list:
        target = secret(database.restore_url) or (
            str(database.restore_path) if database.restore_path else ""
        )
        targets.setdefault("KAMAL_BACKUP_DRILL_DATABASE_TARGET", target)
        suffix = re.sub(r"[^A-Z0-9]", "_", database.name.upper())
        targets[f"KAMAL_BACKUP_DRILL_DATABASE_TARGET_{suffix}"] = target
    env["KAMAL_BACKUP_DRILL_DATABASE_TARGET"] = ""
    env.update(targets)
    env["KAMAL_BACKUP_DRILL_FILES_TARGET"] = record.files_target or ""
    return env


def run_check_command(
    settings: Settings, argv: list[str], record: DrillRecord
) -> CheckCommandResult:
    """Runs the check without a shell, bounded in time; its exit status decides."""
    clock = time.monotonic()
    shown = [redact.redact(part) for part in argv]
    timeout = settings.kamal_backup_drill_check_timeout_seconds

    def result(exit_code: int | None, output: str, error: str | None) -> CheckCommandResult:
        return CheckCommandResult(
            command=shown,
            status="passed" if exit_code == 0 and error is None else "failed",
            exit_code=exit_code,
            duration_seconds=round(time.monotonic() - clock, 3),
            output=redact.redact(output.strip())[-_OUTPUT_KEEP:],
            error=error,
        )

    log.info("drill: running the check command %s", shown[0])
    try:
        completed = process.run(argv, env=check_environment(settings, record), timeout=timeout)
    except ToolMissing:
        return result(None, "", f"check command {shown[0]!r} is not installed or not on PATH")
    except process.TimedOut as exc:
        return result(None, exc.stderr, f"check command ran longer than {timeout}s and was killed")
    except PermissionError:
        return result(None, "", f"check command {shown[0]!r} cannot be run (permission denied)")
    error = None if completed.returncode == 0 else f"check command exited {completed.returncode}"
    return result(completed.returncode, completed.stdout + completed.stderr, error)


# Records ----------------------------------------------------------------------------------------


def drill_tags(settings: Settings, record: DrillRecord) -> list[str]:
    """The summary rides in the tags, so the history is one `restic snapshots` call."""
    summary = record.summary()
    tags = app_tags(
        settings,
        "type:drill",
        f"drill:{summary.id}",
        f"status:{summary.status}",
        f"verification:{summary.verification.replace(' ', '-')}",
        f"by:{re.sub(r'[^A-Za-z0-9_.@-]', '_', summary.ran_by)}",
    )
    if summary.run:
        tags.append(f"drilled-run:{summary.run}")
    if summary.suspicious_run:
        tags.append("drilled-suspicious-run")
    if summary.rto_seconds is not None:
        tags.append(f"rto:{summary.rto_seconds:g}")
    if summary.rpo_seconds is not None:
        tags.append(f"rpo:{summary.rpo_seconds:g}")
    if summary.check:
        tags.append(f"check:{summary.check}")
    return tags


def _finish(
    settings: Settings, restic: Restic, record: DrillRecord, now: Callable[[], datetime]
) -> None:
    record.finished_at = now()
    state.record_drill(settings.state_dir, record)
    log.info("drill %s %s", record.id, record.status.upper())
    if process.cancelled():
        # Nothing more may start now; the next drill stores this record in the repository.
        return
    store_pending_records(settings, restic)


def store_pending_records(settings: Settings, restic: Restic) -> None:
    """Saves every drill of the state directory not yet in the repository (append-only safe)."""
    for record in reversed(state.drills(settings.state_dir)):
        if record.stored_in_repository:
            continue
        try:
            document = redact.current().redact_obj(
                record.model_dump(mode="json", exclude={"stored_in_repository"})
            )
            restic.backup_bytes(
                json.dumps(document, indent=2).encode(),
                filename=f"drill-{settings.app_name}-{record.id}.json",
                tags=drill_tags(settings, record),
            )
        except KamalBackupError as exc:
            log.error("drill record %s not saved in the repository yet: %s", record.id, exc)
            return
        record.stored_in_repository = True
        state.record_drill(settings.state_dir, record)


def summary_from_tags(snapshot: Snapshot) -> DrillSummary | None:
    def number(key: str) -> float | None:
        value = snapshot.tag_value(key)
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    drill_id, status = snapshot.tag_value("drill"), snapshot.tag_value("status")
    if not drill_id or status not in ("passed", "failed", "interrupted"):
        return None
    try:
        started = datetime.strptime(drill_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        started = snapshot.time
    return DrillSummary(
        id=drill_id,
        status=status,  # type: ignore[arg-type]
        started_at=started,
        ran_by=snapshot.tag_value("by") or "",
        run=snapshot.tag_value("drilled-run"),
        suspicious_run="drilled-suspicious-run" in snapshot.tags,
        rto_seconds=number("rto"),
        rpo_seconds=number("rpo"),
        verification=(snapshot.tag_value("verification") or "").replace("-", " "),
        check=snapshot.tag_value("check"),
    )


def drill_history(
    settings: Settings, *, from_repository: bool = True, restic: Restic | None = None
) -> tuple[DrillRecord | None, list[DrillSummary]]:
    """The last drill (whole) and the history, newest first: this machine's and the repository's.

    The repository holds the drills every machine made (the container's scheduler, a laptop);
    the state directory adds the ones not stored there yet.
    """
    local = {record.id: record for record in state.drills(settings.state_dir)}
    summaries = {record.id: record.summary() for record in local.values()}
    stored: dict[str, Snapshot] = {}
    if from_repository:
        restic = restic or restic_for(settings)
        for snapshot in list_records(settings, "drill", restic):
            summary = summary_from_tags(snapshot)
            if summary is not None:
                summaries.setdefault(summary.id, summary)
                stored.setdefault(summary.id, snapshot)
    history = sorted(summaries.values(), key=lambda item: item.started_at, reverse=True)
    if not history:
        return None, []
    newest = history[0].id
    last = local.get(newest)
    if last is None and restic is not None and newest in stored:
        last = _read_record(restic, stored[newest])
    return last, history


def _read_record(restic: Restic, snapshot: Snapshot) -> DrillRecord | None:
    if len(snapshot.paths) != 1:
        return None
    try:
        data = json.loads(restic.read_file(snapshot.id, snapshot.paths[0]))
        return DrillRecord.model_validate({**data, "stored_in_repository": True})
    except (ValueError, ValidationError, OperationFailed):
        return None
