"""One backup run: a snapshot per database, a file snapshot, verification, retention, check."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar

from kamal_backup import process, state
from kamal_backup.databases import DatabaseAdapter, adapters_for
from kamal_backup.databases.sqlite import unconfigured_live_databases
from kamal_backup.errors import (
    ConfigError,
    Interrupted,
    KamalBackupError,
    OperationFailed,
    SuspiciousRun,
)
from kamal_backup.locking import operation_lock
from kamal_backup.models import BackupRun, BackupSummary, ResticStatus, SnapshotRecord
from kamal_backup.notify import notified
from kamal_backup.restic import Restic
from kamal_backup.services import RESTORE_WORK_PATTERNS, app_tags, restic_for
from kamal_backup.services.baseline import judge_run, suspicious_message
from kamal_backup.services.check import run_check
from kamal_backup.services.retention import apply_retention, refuses_deletes
from kamal_backup.settings import Settings
from kamal_backup.verification import DatabaseFigures, FilesFigures, Manifest, source_files

log = logging.getLogger(__name__)

StatusCallback = Callable[[str, ResticStatus], None]


def run_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def check_backup_paths(settings: Settings) -> None:
    """Every backup path exists and is a directory (none at all: a database-only app)."""
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
    manifest: bool = True,
) -> BackupRun:
    """Backs up every database and the files; raises on any failure after recording it.

    With `manifest` (the default; off only to measure its cost), the run also stores the
    figures a drill verifies against: see kamal_backup/verification.py.
    """
    adapters = adapters_for(settings)
    restic = restic_for(settings)

    with operation_lock(settings.state_dir, "backup", lock_wait_seconds):
        started = now()
        clock = time.monotonic()
        run = BackupRun(run=run_timestamp(started), status="running", started_at=started)
        try:
            # Inside the recorded run: a backup that cannot even start (a path gone, the database
            # file missing) must show as failed in evidence, not leave the last success standing.
            check_backup_paths(settings)
            for adapter in adapters:
                adapter.check_source()
            _perform(settings, run, restic, adapters, on_status, manifest)
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
            else "suspicious"
            if run.suspicious
            else "success"
        )
        _finish(settings, run, clock)
    if run.suspicious:
        raise SuspiciousRun(suspicious_message(run), run.suspicious, run)
    if run.retention_error:
        raise OperationFailed(
            f"backup saved ({describe_snapshots(run)}) but retention failed: {run.retention_error}"
        )
    if run.check and run.check.status == "failed":
        raise OperationFailed(
            "backup saved but the repository check after it failed; see `kamal-backup evidence`"
        )
    return run


def retention_failure(exc: KamalBackupError) -> str:
    """The retention error, explaining append-only repositories when deleting was refused."""
    text = str(exc)
    if refuses_deletes(text):
        text += (
            "; the repository refuses deletes (append-only?): set RESTIC_FORGET_AFTER_BACKUP=false "
            "and run `kamal-backup prune` from a trusted machine that may delete"
        )
    return text


def describe_snapshots(run: BackupRun) -> str:
    """'database primary 1a2b3c4d, files 5e6f7a8b' for messages."""
    parts = [
        f"database {name} {record.short_id}" for name, record in run.database_snapshots.items()
    ]
    if run.files_snapshot:
        parts.append(f"files {run.files_snapshot.short_id}")
    return ", ".join(parts) or "no snapshots"


def manifest_filename(settings: Settings, run: str) -> str:
    return f"manifest-{settings.app_name}-{run}.json"


Figures = TypeVar("Figures", DatabaseFigures, FilesFigures)


def _figures_or_none(run: BackupRun, compute: Callable[[], Figures]) -> Figures | None:
    """The manifest figures; a failure to count is recorded and leaves the run unverifiable."""
    try:
        return compute()
    except Interrupted:
        raise
    except (KamalBackupError, OSError) as exc:
        text = str(exc) if isinstance(exc, KamalBackupError) else exc.__class__.__name__
        run.manifest_error = text
        log.error("manifest figures failed (drills of this run cannot verify): %s", text)
        return None


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
    on_figures: Callable[[Callable[[], DatabaseFigures]], None] | None = None,
) -> BackupSummary:
    """Streams the database dump into a snapshot of run `run`: a backup's, or a pre-restore one.

    With `on_figures`, the dump also takes the manifest figures from its own view; the callback
    gets their computation while the dump command is still open.
    """
    filename = adapter.dump_filename(run)
    name = adapter.database_name
    log.info(
        "backing up %s database %s (%s) as %s",
        adapter.name,
        name,
        adapter.source_label(),
        filename,
    )
    with adapter.dump_command(figures=on_figures is not None) as command:
        summary = restic.backup_command(
            command.argv,
            filename=filename,
            extra_env=command.env,
            tags=app_tags(
                settings,
                "type:database",
                f"adapter:{adapter.name}",
                f"database:{name}",
                f"run:{run}",
                *extra_tags,
            ),
            on_status=(lambda status: on_status("database", status)) if on_status else None,
            host=host,
        )
        if on_figures is not None and command.figures is not None:
            on_figures(command.figures)
    log.info(
        "database snapshot %s (%s) saved (%d bytes, %d new)",
        summary.snapshot_id[:8],
        name,
        summary.total_bytes_processed,
        summary.data_added,
    )
    return summary


def _perform(
    settings: Settings,
    run: BackupRun,
    restic: Restic,
    adapters: list[DatabaseAdapter],
    on_status: StatusCallback | None,
    manifest: bool = True,
) -> None:
    if restic.ensure_repository(settings.restic_init_if_missing):
        log.info("initialised restic repository %s", settings.repository_display)

    run_tag = f"run:{run.run}"
    made: dict[str, str] = {}  # part label -> snapshot id
    database_ids: dict[str, str] = {}
    db_figures: dict[str, DatabaseFigures] = {}
    for adapter in adapters:

        def keep_figures(
            compute: Callable[[], DatabaseFigures], name: str = adapter.database_name
        ) -> None:
            figures = _figures_or_none(run, compute)
            if figures is not None:
                db_figures[name] = figures

        summary = snapshot_database(
            settings,
            restic,
            adapter,
            run.run,
            on_status=on_status,
            on_figures=keep_figures if manifest else None,
        )
        made[f"database {adapter.database_name}"] = summary.snapshot_id
        database_ids[adapter.database_name] = summary.snapshot_id
        process.raise_if_cancelled()

    file_id: str | None = None
    file_figures: FilesFigures | None = None
    document: Manifest | None = None
    excludes = [path for adapter in adapters for path in adapter.excluded_paths()]
    if settings.backup_paths:
        paths = list(settings.backup_paths)
        for live in unconfigured_live_databases(paths, excludes):
            warning = (
                f"{live} is a live SQLite database (it has a -wal file) that is not configured: "
                "it is copied raw with the files and may be torn; add it to databases"
            )
            log.warning("%s", warning)
            run.warnings.append(warning)
        log.info("backing up files: %s", ", ".join(str(p) for p in paths))
        if on_status is not None:
            on_status("files", ResticStatus())  # the phase starts before restic's first status line
        # The files are hashed beside restic (page cache shared): a file changed while restic
        # reads it may then show as a mismatch in a drill, never as a false match.
        patterns = [*settings.backup_excludes, *RESTORE_WORK_PATTERNS]
        with ThreadPoolExecutor(max_workers=1) as pool:
            hashing = pool.submit(source_files, paths, excludes, patterns) if manifest else None
            file_summary = restic.backup_paths(
                paths,
                tags=app_tags(settings, "type:files", run_tag),
                excludes=excludes,
                exclude_patterns=patterns,
                on_status=(lambda status: on_status("files", status)) if on_status else None,
            )
            file_figures = _figures_or_none(run, hashing.result) if hashing else None
        log.info(
            "file snapshot %s saved (%d files, %d bytes)",
            file_summary.snapshot_id[:8],
            file_summary.total_files_processed,
            file_summary.total_bytes_processed,
        )
        file_id = made["files"] = file_summary.snapshot_id
    else:
        log.info("no BACKUP_PATHS: this run has no file snapshot")
    if manifest and (db_figures or file_figures is not None):
        document = Manifest(
            app_name=settings.app_name,
            run=run.run,
            created_at=datetime.now(UTC),
            databases=db_figures,
            files=file_figures,
        )
        saved = restic.backup_bytes(
            document.model_dump_json().encode(),
            filename=manifest_filename(settings, run.run),
            tags=app_tags(settings, "type:manifest", run_tag),
        )
        run.manifest_snapshot = saved.snapshot_id[:8]
        log.info("manifest %s saved", saved.snapshot_id[:8])

    # Trust the repository, not restic's summary line: every snapshot must be listed.
    # The app's whole listing: the comparison with the last good run reads it too.
    every = restic.snapshots(app_tags(settings))
    found = {s.id: s for s in every if s.run == run.run}
    for label, snapshot_id in made.items():
        if snapshot_id not in found:
            raise OperationFailed(
                f"the {label} snapshot {snapshot_id[:8]} is not in the repository after backup"
            )
    found.update(judge_run(settings, restic, run, every, document))
    run.database_snapshots = {
        name: SnapshotRecord.from_snapshot(found[snapshot_id])
        for name, snapshot_id in database_ids.items()
    }
    if run.database_snapshots:
        run.database_snapshot = run.database_snapshots.get(
            "primary", next(iter(run.database_snapshots.values()))
        )
    if file_id is not None:
        run.files_snapshot = SnapshotRecord.from_snapshot(found[file_id])
    log.info("verified snapshots %s in the repository", ", ".join(i[:8] for i in made.values()))

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
