"""One backup run: a snapshot per database, a file snapshot, verification, retention, check."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar, cast

from kamal_backup import process, state
from kamal_backup.databases import DatabaseAdapter, adapters_for
from kamal_backup.databases.sqlite import unconfigured_live_databases
from kamal_backup.errors import (
    ConfigError,
    Interrupted,
    KamalBackupError,
    OperationFailed,
    RepositoryLocked,
    RepositoryMissing,
    RepositoryUnreachable,
    SnapshotIncomplete,
    SuspiciousRun,
    WrongPassword,
)
from kamal_backup.locking import operation_lock
from kamal_backup.models import BackupRun, BackupSummary, ResticStatus, Snapshot, SnapshotRecord
from kamal_backup.notify import notified
from kamal_backup.restic import Restic, error_for, is_local_repository
from kamal_backup.services import RESTORE_WORK_PATTERNS, app_tags, restic_for
from kamal_backup.services.baseline import judge_run, suspicious_message
from kamal_backup.services.check import run_check
from kamal_backup.services.retention import apply_retention, refuses_deletes
from kamal_backup.settings import Settings
from kamal_backup.verification import (
    HASH_CACHE,
    DatabaseFigures,
    FilesFigures,
    Manifest,
    source_files,
)

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
        started = _start_after_the_last_run(settings, now)
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


def _start_after_the_last_run(settings: Settings, now: Callable[[], datetime]) -> datetime:
    """The run's start. A run is named by its start to the second (its run: tag), so a run that
    would share the last run's second waits for the next: two runs under one name would read
    as one run, the second never compared with the first (held by the operation lock, so no
    other run of this app starts meanwhile)."""
    started = now()
    last = state.last_backup(settings.state_dir)
    if last is None or run_timestamp(started) != last.run:
        return started
    time.sleep(1.0 - started.timestamp() % 1.0 + 0.01)
    return now()


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

    def started() -> None:  # logged once restic has the repository open (none on a bad password)
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
            # With several databases, an error names the one that failed.
            action=(
                f"database backup ({name})"
                if len(settings.database_list) > 1
                else "database backup"
            ),
            on_open=started,
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
    # The halves open the repository themselves: a missing one shows as their exit code 10,
    # a refused connection or an unknown host in their retry lines (Restic._exec).
    restic.require_supported_version()
    # The comparison after the halves reads the last good run's manifest: restic opens the
    # repository for it now, beside the halves (a guess from the state directory; the listing
    # decides, and a wrong guess costs only the process).
    with restic.early_dump(*(_last_manifest(settings) if manifest else (None, None))):
        listed = _save_and_judge(settings, run, restic, adapters, on_status, manifest)
    _retain_and_check(settings, run, restic, listed)


def _last_manifest(settings: Settings) -> tuple[str | None, str | None]:
    """(short id, path) of the last successful run's manifest, from the state directory; none
    when this machine kept that manifest's figures itself (the comparison reads those)."""
    last = state.last_success(settings.state_dir)
    if last is None or not last.manifest_snapshot:
        return None, None
    if state.manifest_figures(settings.state_dir, last.manifest_snapshot) is not None:
        return None, None
    return last.manifest_snapshot, "/" + manifest_filename(settings, last.run)


def _save_and_judge(
    settings: Settings,
    run: BackupRun,
    restic: Restic,
    adapters: list[DatabaseAdapter],
    on_status: StatusCallback | None,
    manifest: bool,
) -> list[Snapshot]:
    """The halves, the manifest, the verification listing and the comparison; returns the
    app's listing (the run's snapshots under their ids after any re-tagging)."""
    run_tag = f"run:{run.run}"
    halves = _Halves(settings, run, restic, adapters, on_status, manifest)
    outcome = halves.run()
    failure = outcome.first_failure()
    if (
        failure is not None
        and settings.restic_init_if_missing
        and all(isinstance(exc, RepositoryMissing) for exc in outcome.failures.values())
    ):
        log.info("restic repository does not exist; initialising it (RESTIC_INIT_IF_MISSING=true)")
        restic.init()
        log.info("initialised restic repository %s", settings.repository_display)
        halves = _Halves(settings, run, restic, adapters, on_status, manifest)
        outcome = halves.run()
        failure = outcome.first_failure()
    if process.cancelled():
        raise Interrupted()
    if failure is not None:
        part, exc = failure
        if part != "repository":
            run.failed_part = halves.name_of(part)
        if isinstance(exc, RepositoryMissing):
            raise error_for(10, "", "opening the repository") from None
        raise exc

    made: dict[str, str] = {}  # part label -> snapshot id
    for name, summary in halves.database_summaries.items():
        made[f"database {name}"] = summary.snapshot_id
    if halves.files_summary is not None:
        made["files"] = halves.files_summary.snapshot_id

    # The manifest is saved while the repository is listed: two restic processes at once. The
    # app's whole listing: verification, the comparison with the last good run and retention
    # all read it.
    after: dict[str, Callable[[], object]] = {
        "listing": lambda: restic.snapshots(app_tags(settings)),
    }
    document: Manifest | None = None
    if manifest and (halves.db_figures or halves.file_figures is not None):
        document = Manifest(
            app_name=settings.app_name,
            run=run.run,
            created_at=datetime.now(UTC),
            databases=halves.db_figures,
            files=halves.file_figures,
        )
        after["manifest"] = lambda: restic.backup_bytes(
            document.model_dump_json().encode(),
            filename=manifest_filename(settings, run.run),
            tags=app_tags(settings, "type:manifest", run_tag),
        )
    finished = process.run_parts(after)
    if process.cancelled():
        raise Interrupted()
    if (failed := finished.first_failure()) is not None:
        raise failed[1]
    saved = finished.results.get("manifest")
    if isinstance(saved, BackupSummary):
        run.manifest_snapshot = saved.snapshot_id[:8]
        log.info("manifest %s saved", saved.snapshot_id[:8])
    listed = cast(list[Snapshot], finished.results["listing"])

    # Trust the repository, not restic's summary line: every snapshot must be listed.
    found = {s.id: s for s in listed if s.run == run.run}
    for label, snapshot_id in made.items():
        if snapshot_id not in found:
            raise OperationFailed(
                f"the {label} snapshot {snapshot_id[:8]} is not in the repository after backup"
            )
    retagged = judge_run(
        settings,
        restic,
        run,
        listed,
        document,
        manifest_id=saved.snapshot_id if isinstance(saved, BackupSummary) else None,
    )
    if document is not None and isinstance(saved, BackupSummary) and not run.suspicious:
        # The next run compares with this one: its figures then need no `restic dump`.
        try:
            state.record_manifest_figures(settings.state_dir, saved.snapshot_id, document)
        except (OSError, KamalBackupError) as exc:  # only a saving lost: the next run dumps it
            log.warning("the manifest figures could not be kept in the state directory: %s", exc)
    if retagged:
        # Tagging gave the run's snapshots new ids: everything below reads the new ones.
        found.update(retagged)
        listed = [retagged.get(s.id, s) for s in listed]
    run.database_snapshots = {
        name: SnapshotRecord.from_snapshot(found[summary.snapshot_id])
        for name, summary in halves.database_summaries.items()
    }
    if run.database_snapshots:
        run.database_snapshot = run.database_snapshots.get(
            "primary", next(iter(run.database_snapshots.values()))
        )
    if halves.files_summary is not None:
        run.files_snapshot = SnapshotRecord.from_snapshot(found[halves.files_summary.snapshot_id])
    log.info(
        "verified snapshots %s in the repository",
        ", ".join(found[i].short_id for i in made.values()),
    )
    return listed


def _retain_and_check(
    settings: Settings, run: BackupRun, restic: Restic, listed: list[Snapshot]
) -> None:
    if settings.restic_forget_after_backup:
        try:
            run.retention = apply_retention(settings, restic, snapshots=listed)
        except Interrupted:
            raise
        except KamalBackupError as exc:
            run.retention_error = retention_failure(exc)
            log.error("retention failed: %s", run.retention_error)
    else:
        log.info("retention skipped (RESTIC_FORGET_AFTER_BACKUP=false)")

    if settings.restic_check_after_backup:
        run.check = run_check(settings, restic)


# Failures of the repository itself, which every half meets alike.
_REPOSITORY_ERRORS = (
    RepositoryMissing,
    RepositoryUnreachable,
    RepositoryLocked,
    WrongPassword,
    ConfigError,
)


class _Halves:
    """The two halves of a run, run at the same time: the database snapshot(s), one database
    after another, and the file snapshot. restic takes a non-exclusive lock for a backup, so
    both write to the repository at once; each half is a part of the operation's cancel scope.

    When a half fails, the other is stopped, except after an incomplete file snapshot (restic
    saved it, some files unreadable): then the databases finish, as they did when the halves
    ran one after the other.
    """

    def __init__(
        self,
        settings: Settings,
        run: BackupRun,
        restic: Restic,
        adapters: list[DatabaseAdapter],
        on_status: StatusCallback | None,
        manifest: bool,
    ) -> None:
        self.settings = settings
        self.run_record = run
        self.restic = restic
        self.adapters = adapters
        self.on_status = on_status
        self.manifest = manifest
        self.database_summaries: dict[str, BackupSummary] = {}
        self.db_figures: dict[str, DatabaseFigures] = {}
        self.files_summary: BackupSummary | None = None
        self.file_figures: FilesFigures | None = None
        self._current_database = ""

    def name_of(self, part: str) -> str:
        """'database primary' or 'files' for messages and the run record."""
        if part == "database" and self._current_database:
            return f"database {self._current_database}"
        return part

    def run(self) -> process.PartsOutcome[None]:
        parts: dict[str, Callable[[], None]] = {}
        if not is_local_repository(self.settings.restic_repository or "?:"):
            # A network backend that does not answer at all would hold a backup for good (restic
            # retries for many minutes): a bounded probe beside the halves stops them after
            # KAMAL_BACKUP_REPOSITORY_TIMEOUT_SECONDS. A local directory needs none.
            parts["repository"] = self.probe
        if self.adapters:
            parts["database"] = self.back_up_databases
        if self.settings.backup_paths:
            parts["files"] = self.back_up_files
        else:
            log.info("no BACKUP_PATHS: this run has no file snapshot")
        outcome = process.run_parts(
            parts,
            let_finish=lambda exc: isinstance(exc, SnapshotIncomplete),
            on_failure=self.log_failure,
        )
        late = outcome.failures.get("repository")
        if late is not None and all(
            part in outcome.results for part in parts if part != "repository"
        ):
            # Every half saved its snapshot, so the repository answered them: the probe is a
            # watchdog for a backend that answers nothing, and its own timeout (a slow first
            # answer under load) fails no run whose halves are in.
            log.warning("the repository probe failed after both halves were saved: %s", late)
            del outcome.failures["repository"]
        return outcome

    def probe(self) -> None:
        if not self.restic.repository_exists():
            raise error_for(10, "", "opening the repository")

    def log_failure(
        self, part: str, exc: BaseException, running: list[str], stopping: bool
    ) -> None:
        """One line when a half fails, saying what becomes of the other (the error itself ends
        the run's own message)."""
        if part == "repository" or isinstance(exc, _REPOSITORY_ERRORS):
            return  # not a half's own failure: the run's error says it
        others = " and ".join(self.name_of(other) for other in running)
        then = ""
        if others:
            then = (
                f"; stopping the {others} backup" if stopping else f"; the {others} backup goes on"
            )
        log.error("the %s backup failed%s", self.name_of(part), then)

    def back_up_databases(self) -> None:
        run = self.run_record
        for adapter in self.adapters:
            name = adapter.database_name
            self._current_database = name

            def keep_figures(compute: Callable[[], DatabaseFigures], name: str = name) -> None:
                figures = _figures_or_none(run, compute)
                if figures is not None:
                    self.db_figures[name] = figures

            if self.on_status is not None:
                self.on_status("database", ResticStatus())  # both bars show from the start
            self.database_summaries[name] = snapshot_database(
                self.settings,
                self.restic,
                adapter,
                run.run,
                on_status=self.on_status,
                on_figures=keep_figures if self.manifest else None,
            )
            process.raise_if_cancelled()
        self.finished("database", self.database_summaries.values())

    def back_up_files(self) -> None:
        settings, run = self.settings, self.run_record
        excludes = [path for adapter in self.adapters for path in adapter.excluded_paths()]
        paths = list(settings.backup_paths)
        for live in unconfigured_live_databases(paths, excludes):
            warning = (
                f"{live} is a live SQLite database (it has a -wal file) that is not configured: "
                "it is copied raw with the files and may be torn; add it to databases"
            )
            if warning not in run.warnings:  # the halves start again after `restic init`
                log.warning("%s", warning)
                run.warnings.append(warning)
        on_status = self.on_status
        if on_status is not None:
            on_status("files", ResticStatus())  # the phase starts before restic's first status line
        # The files are hashed beside restic (page cache shared): a file changed while restic
        # reads it may then show as a mismatch in a drill, never as a false match.
        patterns = [*settings.backup_excludes, *RESTORE_WORK_PATTERNS]
        with ThreadPoolExecutor(max_workers=1) as pool:
            # In this half's context: a stopped or cancelled half stops hashing too.
            hashing = (
                pool.submit(
                    contextvars.copy_context().run,
                    source_files,
                    paths,
                    excludes,
                    patterns,
                    # Files unchanged since the last run (size, mtime, ctime, inode) are not
                    # read again: their hashes come from the state directory.
                    cache=self.settings.state_dir / HASH_CACHE,
                )
                if self.manifest
                else None
            )
            summary = self.restic.backup_paths(
                paths,
                tags=app_tags(settings, "type:files", f"run:{run.run}"),
                excludes=excludes,
                exclude_patterns=patterns,
                on_status=(lambda status: on_status("files", status)) if on_status else None,
                on_open=lambda: log.info("backing up files: %s", ", ".join(map(str, paths))),
            )
            self.file_figures = _figures_or_none(run, hashing.result) if hashing else None
        log.info(
            "file snapshot %s saved (%d files, %d bytes)",
            summary.snapshot_id[:8],
            summary.total_files_processed,
            summary.total_bytes_processed,
        )
        self.files_summary = summary
        self.finished("files", [summary])

    def finished(self, label: str, summaries: Iterable[BackupSummary]) -> None:
        """A last status: the half is done, its bar full (the other half may still run)."""
        if self.on_status is not None:
            done = sum(summary.total_bytes_processed for summary in summaries)
            self.on_status(label, ResticStatus(percent_done=1.0, total_bytes=done, bytes_done=done))
