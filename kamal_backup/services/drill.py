"""Restore drills: restore a run into scratch targets, verify it against its manifest, record it."""

from __future__ import annotations

import functools
import getpass
import json
import logging
import re
import secrets
import shlex
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from kamal_backup import process, redact, state
from kamal_backup.databases import adapter_for
from kamal_backup.errors import (
    ConfigError,
    Interrupted,
    KamalBackupError,
    OperationFailed,
    ToolMissing,
)
from kamal_backup.locking import operation_lock
from kamal_backup.models import RECORD_TYPES, ResticStatus, Snapshot, SnapshotType
from kamal_backup.notify import notified
from kamal_backup.restic import Restic
from kamal_backup.services import app_tags, gates, restic_for
from kamal_backup.services.restore import restore_database, restore_files
from kamal_backup.services.snapshots import (
    latest_complete,
    list_records,
    validate_snapshot_argument,
)
from kamal_backup.settings import Settings, check_url_scheme, secret
from kamal_backup.verification import (
    CheckCommandResult,
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


def who_runs() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def drill_settings(settings: Settings, database_target: str | None) -> Settings:
    """The settings with --database-target in place of the configured restore target."""
    if not database_target:
        return settings
    value = database_target.strip()
    if settings.database_adapter == "sqlite":
        path = Path(value)
        if not path.is_absolute():
            raise ConfigError("--database-target", f"{value} is not an absolute path")
        return settings.model_copy(update={"restore_sqlite_database_path": path})
    check_url_scheme("--database-target", value, settings.database_adapter)
    redact.current().add_environment({"RESTORE_DATABASE_URL": value})
    return settings.model_copy(update={"restore_database_url": SecretStr(value)})


def split_check(command: str | None, setting: str) -> list[str] | None:
    if command is None or not command.strip():
        return None
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(setting, f"cannot be split into arguments: {exc}") from None
    return argv or None


def resolve_part(
    backups: Sequence[Snapshot], argument: str, kind: SnapshotType, app_name: str
) -> Snapshot:
    """The snapshot of `kind` a drill argument names: latest, a run, or any snapshot of a run."""
    value = argument.strip()
    if value == "latest":
        found = latest_complete(backups, kind)
        if found is None:
            raise ConfigError("SNAPSHOT", f"no backup run of app {app_name} has completed yet")
        return found
    if _RUN.match(value):
        matches = [s for s in backups if s.run == value and s.kind == kind]
        if not matches:
            raise ConfigError("SNAPSHOT", f"run {value} has no {kind} snapshot of app {app_name}")
        return max(matches, key=lambda s: s.time)
    value = validate_snapshot_argument(value)
    named = [s for s in backups if s.id.startswith(value)]
    if len(named) > 1:
        raise ConfigError("SNAPSHOT", f"{value} matches {len(named)} snapshots; give more digits")
    if not named:
        raise ConfigError("SNAPSHOT", f"{value} is not a snapshot of app {app_name}")
    if named[0].kind == kind:
        return named[0]
    same_run = [s for s in backups if s.run and s.run == named[0].run and s.kind == kind]
    if not same_run:
        raise ConfigError("SNAPSHOT", f"the run of {value} has no {kind} snapshot")
    return max(same_run, key=lambda s: s.time)


def read_manifest(
    restic: Restic, manifests: Sequence[Snapshot], run: str | None
) -> Manifest | None:
    """The run's manifest (one `restic dump`), or None for a run made before manifests."""
    found = [s for s in manifests if run and s.run == run]
    if not found:
        return None
    newest = max(found, key=lambda s: s.time)
    if len(newest.paths) != 1:
        return None
    try:
        return Manifest.model_validate_json(restic.read_file(newest.id, newest.paths[0]))
    except ValidationError:
        log.warning("the manifest of run %s cannot be read; the drill cannot verify it", run)
        return None


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
    wanted = tuple(kind for kind in PARTS if kind in parts)
    settings = drill_settings(settings, database_target)
    files_target = (files_target or str(settings.restore_files_path)).strip()
    verdicts = gates.drill_verdicts(settings, files_target, wanted)
    gates.enforce([verdict for _, verdict in verdicts])
    check_setting = "--check" if check is not None else "KAMAL_BACKUP_DRILL_CHECK_COMMAND"
    check_argv = split_check(
        check if check is not None else settings.kamal_backup_drill_check_command, check_setting
    )
    adapter = adapter_for(settings)
    restic = restic_for(settings)
    restic.require_supported_version()
    every = restic.snapshots(app_tags(settings))
    backups = [s for s in every if s.kind not in RECORD_TYPES]
    chosen: dict[SnapshotType, Snapshot] = {}
    for kind in wanted:
        argument = files_snapshot if kind == "files" and files_snapshot else snapshot
        chosen[kind] = resolve_part(backups, argument, kind, settings.app_name)

    record = DrillRecord(
        id=f"{started.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}",
        status="interrupted",
        ran_by=ran_by or who_runs(),
        started_at=started,
        run=next((s.run for s in chosen.values() if s.run), None),
        database_target=adapter.restore_target_label() if "database" in chosen else None,
        files_target=files_target if "files" in chosen else None,
        rpo_seconds=round(max((started - s.time).total_seconds() for s in chosen.values()), 1),
    )
    with operation_lock(settings.state_dir, "drill"):
        try:
            _perform(
                settings, restic, every, chosen, record, check_argv, on_status, before_verify, clock
            )
        except (Interrupted, KeyboardInterrupt):
            record.status = "interrupted"
            record.error = "interrupted"
            _finish(settings, restic, record, now)
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
    chosen: Mapping[SnapshotType, Snapshot],
    record: DrillRecord,
    check_argv: list[str] | None,
    on_status: StatusCallback | None,
    before_verify: BeforeVerify | None,
    clock: float,
) -> None:
    adapter = adapter_for(settings)
    manifests = [s for s in every if s.kind == "manifest"]
    backups = [s for s in every if s.kind not in RECORD_TYPES]
    read: dict[str | None, Manifest | None] = {}
    for snapshot in chosen.values():
        if snapshot.run not in read:
            read[snapshot.run] = read_manifest(restic, manifests, snapshot.run)

    def restore(kind: SnapshotType, snapshot: Snapshot) -> DrillPart:
        log.info("drill: restoring %s snapshot %s", kind, snapshot.short)
        if kind == "database":
            result = restore_database(
                settings,
                snapshot.id,
                on_status=on_status,
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
        return DrillPart(
            kind=kind,
            snapshot_id=snapshot.id,
            snapshot_time=snapshot.time,
            run=snapshot.run,
            target=result.target,
            duration_seconds=result.duration_seconds,
            bytes_restored=result.bytes_restored,
        )

    # The parts restore side by side (the database loads on the server while restic writes the
    # files), and are then verified side by side: a drill costs about its slowest part.
    restored = _side_by_side(
        {kind: functools.partial(restore, kind, s) for kind, s in chosen.items()}
    )
    record.parts = [part for part in restored.values() if isinstance(part, DrillPart)]
    failures = {kind: exc for kind, exc in restored.items() if isinstance(exc, BaseException)}
    for exc in failures.values():
        if isinstance(exc, Interrupted | KeyboardInterrupt):
            raise exc
    if failures:
        kind, exc = next(iter(failures.items()))
        if record.parts:
            # Say what did happen: the other part is restored and stays restored.
            done = record.parts[0]
            raise OperationFailed(
                f"{done.kind} snapshot {done.snapshot_id[:8]} was restored into {done.target}, "
                f"but the {'file' if kind == 'files' else 'database'} restore failed: {exc}"
            ) from None
        raise exc
    process.raise_if_cancelled()
    if before_verify is not None:
        before_verify(record)

    database = chosen.get("database")
    files = chosen.get("files")
    files_target = Path(record.files_target or "/")
    method = {
        run: manifest.database.method
        for run, manifest in read.items()
        if manifest is not None and manifest.database is not None
    }
    computations: dict[str, Callable[[], object]] = {}
    if database is not None and database.run in method:
        computations["database"] = functools.partial(adapter.restored_figures, method[database.run])
    if files is not None:
        computations["files"] = functools.partial(restored_files, files_target, files.paths)
    computed = _side_by_side(computations)
    for value in computed.values():
        if isinstance(value, BaseException):
            raise value
    record.verification = verify(
        (read[database.run], lambda _method: computed["database"]) if database else None,
        (read[files.run], lambda: computed["files"]) if files else None,
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


def _side_by_side(calls: Mapping[str, Callable[[], Any]]) -> dict[str, Any]:
    """Runs each call in its own thread; its result, or the exception it raised, by key."""
    if len(calls) <= 1:
        found: dict[str, Any] = {}
        for key, call in calls.items():
            try:
                found[key] = call()
            except (Exception, KeyboardInterrupt) as exc:
                found[key] = exc
        return found
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = {key: pool.submit(call) for key, call in calls.items()}
    found = {}
    for key, future in futures.items():
        error = future.exception()
        found[key] = error if error is not None else future.result()
    return found


def check_environment(settings: Settings, record: DrillRecord) -> dict[str, str]:
    env = {
        name: value
        for name, value in settings.environ.items()
        if not name.startswith(_WITHHELD) and name not in _WITHHELD_NAMES
    }
    if settings.database_adapter == "sqlite":
        target = settings.restore_sqlite_database_path
        env["KAMAL_BACKUP_DRILL_DATABASE_TARGET"] = str(target) if target else ""
    else:
        env["KAMAL_BACKUP_DRILL_DATABASE_TARGET"] = secret(settings.restore_database_url) or ""
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
