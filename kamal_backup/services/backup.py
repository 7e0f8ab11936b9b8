"""One backup run: a database snapshot, a file snapshot, verification, retention, check."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kamal_backup import process, state
from kamal_backup.databases import DatabaseAdapter, adapter_for
from kamal_backup.errors import ConfigError, Interrupted, KamalBackupError, OperationFailed
from kamal_backup.locking import operation_lock
from kamal_backup.models import BackupRun, BackupSummary, ResticStatus, SnapshotRecord
from kamal_backup.notify import notified
from kamal_backup.restic import Restic
from kamal_backup.services import RESTORE_WORK_PATTERNS, app_tags, restic_for
from kamal_backup.services.check import run_check
from kamal_backup.services.retention import apply_retention
from kamal_backup.settings import Settings

log = logging.getLogger(__name__)

StatusCallback = Callable[[str, ResticStatus], None]


def run_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def check_backup_paths(settings: Settings) -> None:
    if not settings.backup_paths:
        raise ConfigError(
            "BACKUP_PATHS", "is required for a backup (one or more mounted directories)"
        )
    for path in settings.backup_paths:
        if not path.exists():
            raise ConfigError("BACKUP_PATHS", f"{path} does not exist")
        if not path.is_dir():
            raise ConfigError("BACKUP_PATHS", f"{path} is not a directory")


@notified("backup")
def run_backup(
    settings: Settings,
    on_status: StatusCallback | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    lock_wait_seconds: float = 0.0,
) -> BackupRun:
    """Backs up the database and the files; raises on any failure after recording it."""
    adapter = adapter_for(settings)
    restic = restic_for(settings)

    with operation_lock(settings.state_dir, "backup", lock_wait_seconds):
        started = now()
        clock = time.monotonic()
        run = BackupRun(run=run_timestamp(started), status="running", started_at=started)
        try:
            # Inside the recorded run: a backup that cannot even start (a path gone, the database
            # file missing) must show as failed in evidence, not leave the last success standing.
            check_backup_paths(settings)
            adapter.check_source()
            _perform(settings, run, restic, adapter, on_status)
        except BaseException as exc:
            run.status = (
                "interrupted" if isinstance(exc, Interrupted | KeyboardInterrupt) else "failed"
            )
            run.error = str(exc) if isinstance(exc, KamalBackupError) else exc.__class__.__name__
            _finish(settings, run, clock)
            raise
        run.status = (
            "failed"
            if run.retention_error or (run.check and run.check.status == "failed")
            else "success"
        )
        _finish(settings, run, clock)
    if run.retention_error:
        raise OperationFailed(
            f"backup saved (database {run.database_snapshot.short_id if run.database_snapshot else '?'}, "
            f"files {run.files_snapshot.short_id if run.files_snapshot else '?'}) but retention failed: "
            f"{run.retention_error}"
        )
    if run.check and run.check.status == "failed":
        raise OperationFailed(
            "backup saved but the repository check after it failed; see `kamal-backup evidence`"
        )
    return run


_DENIED = (
    "forbidden",
    "403",
    "permission denied",
    "access denied",
    "not allowed",
    "append-only",
    "accessdenied",
)


def retention_failure(exc: KamalBackupError) -> str:
    """The retention error, explaining append-only repositories when deleting was refused."""
    text = str(exc)
    if any(word in text.lower() for word in _DENIED):
        text += (
            "; the repository refuses deletes (append-only?): set RESTIC_FORGET_AFTER_BACKUP=false "
            "and run `kamal-backup prune` from a trusted machine that may delete"
        )
    return text


def _finish(settings: Settings, run: BackupRun, clock: float) -> None:
    run.finished_at = datetime.now(UTC)
    run.duration_seconds = round(time.monotonic() - clock, 3)
    state.record_backup(settings.state_dir, run)


def snapshot_database(
    settings: Settings,
    restic: Restic,
    adapter: DatabaseAdapter,
    run: str,
    *extra_tags: str,
    on_status: StatusCallback | None = None,
    host: str | None = None,
) -> BackupSummary:
    """Streams the database dump into a snapshot of run `run`: a backup's, or a pre-restore one."""
    filename = adapter.dump_filename(run)
    log.info("backing up %s database %s as %s", adapter.name, adapter.source_label(), filename)
    with adapter.dump_command() as command:
        summary = restic.backup_command(
            command.argv,
            filename=filename,
            extra_env=command.env,
            tags=app_tags(
                settings, "type:database", f"adapter:{adapter.name}", f"run:{run}", *extra_tags
            ),
            on_status=(lambda status: on_status("database", status)) if on_status else None,
            host=host,
        )
    log.info(
        "database snapshot %s saved (%d bytes, %d new)",
        summary.snapshot_id[:8],
        summary.total_bytes_processed,
        summary.data_added,
    )
    return summary


def _perform(
    settings: Settings,
    run: BackupRun,
    restic: Restic,
    adapter: DatabaseAdapter,
    on_status: StatusCallback | None,
) -> None:
    if restic.ensure_repository(settings.restic_init_if_missing):
        log.info("initialised restic repository %s", settings.repository_display)

    run_tag = f"run:{run.run}"
    db_summary = snapshot_database(settings, restic, adapter, run.run, on_status=on_status)
    process.raise_if_cancelled()

    paths = list(settings.backup_paths)
    log.info("backing up files: %s", ", ".join(str(p) for p in paths))
    if on_status is not None:
        on_status("files", ResticStatus())  # the phase starts before restic's first status line
    file_summary = restic.backup_paths(
        paths,
        tags=app_tags(settings, "type:files", run_tag),
        excludes=adapter.excluded_paths(),
        exclude_patterns=[*settings.backup_excludes, *RESTORE_WORK_PATTERNS],
        on_status=(lambda status: on_status("files", status)) if on_status else None,
    )
    log.info(
        "file snapshot %s saved (%d files, %d bytes)",
        file_summary.snapshot_id[:8],
        file_summary.total_files_processed,
        file_summary.total_bytes_processed,
    )

    # Trust the repository, not restic's summary line: both snapshots must be listed.
    found = {s.id: s for s in restic.snapshots(app_tags(settings, run_tag))}
    for label, snapshot_id in (
        ("database", db_summary.snapshot_id),
        ("file", file_summary.snapshot_id),
    ):
        if snapshot_id not in found:
            raise OperationFailed(
                f"the {label} snapshot {snapshot_id[:8]} is not in the repository after backup"
            )
    run.database_snapshot = SnapshotRecord.from_snapshot(found[db_summary.snapshot_id])
    run.files_snapshot = SnapshotRecord.from_snapshot(found[file_summary.snapshot_id])
    log.info(
        "verified snapshots %s and %s in the repository",
        db_summary.snapshot_id[:8],
        file_summary.snapshot_id[:8],
    )

    if settings.restic_forget_after_backup:
        try:
            run.retention = apply_retention(settings, restic)
        except Interrupted:
            raise
        except KamalBackupError as exc:
            run.retention_error = retention_failure(exc)
            log.error("retention failed: %s", run.retention_error)
    else:
        log.info("retention skipped (RESTIC_FORGET_AFTER_BACKUP=false)")

    if settings.restic_check_after_backup:
        run.check = run_check(settings, restic)
