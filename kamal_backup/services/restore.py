"""Restores behind the safety gates: database dumps into the restore target, files staged then swapped."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from kamal_backup import state
from kamal_backup.databases import adapter_for
from kamal_backup.databases.base import ByteCounter
from kamal_backup.errors import OperationFailed
from kamal_backup.locking import operation_lock
from kamal_backup.models import ResticStatus, RestoreResult, Snapshot, SnapshotRecord
from kamal_backup.services import gates, restic_for
from kamal_backup.services.snapshots import resolve_snapshot, validate_snapshot_argument
from kamal_backup.settings import Settings, resolve_path

log = logging.getLogger(__name__)

DEFAULT_FILES_TARGET = "/restore/files"
StatusCallback = Callable[[str, ResticStatus], None]


def restore_database(
    settings: Settings,
    snapshot: str = "latest",
    on_status: StatusCallback | None = None,
    lock_wait_seconds: float = 0.0,
) -> RestoreResult:
    """Restores a database snapshot into RESTORE_DATABASE_URL / RESTORE_SQLITE_DATABASE_PATH."""
    gates.enforce(gates.database_restore_verdicts(settings))
    validate_snapshot_argument(snapshot)
    adapter = adapter_for(settings)
    restic = restic_for(settings)
    restic.require_supported_version()
    chosen = resolve_snapshot(settings, restic, snapshot, "database")
    if chosen.adapter and chosen.adapter != adapter.name:
        raise OperationFailed(
            f"snapshot {chosen.short} is a {chosen.adapter} dump; "
            f"DATABASE_ADAPTER is {adapter.name}"
        )
    with operation_lock(settings.state_dir, "restore-db", lock_wait_seconds):
        started = datetime.now(UTC)
        clock = time.monotonic()
        log.info(
            "restoring database snapshot %s (%s) into %s",
            chosen.short,
            chosen.time.isoformat(),
            adapter.restore_target_label(),
        )
        details = adapter.restore(restic, chosen, on_bytes=_byte_progress(chosen, on_status))
        duration = round(time.monotonic() - clock, 3)
    log.info("database restored in %.1fs", duration)
    return _recorded(
        settings,
        RestoreResult(
            kind="database",
            snapshot=SnapshotRecord.from_snapshot(chosen),
            target=adapter.restore_target_label() or "",
            started_at=started,
            duration_seconds=duration,
            bytes_restored=details.get("bytes"),
            details=details,
        ),
    )


def restore_files(
    settings: Settings,
    snapshot: str = "latest",
    target: str = DEFAULT_FILES_TARGET,
    on_status: StatusCallback | None = None,
    lock_wait_seconds: float = 0.0,
) -> RestoreResult:
    """Restores a file snapshot under `target` (restic's layout: target/<original absolute path>).

    Each restored tree is staged in a hidden directory inside the target and swapped in only when
    restic has finished, so a failed restore leaves the previous content as it was.
    """
    gates.enforce(gates.file_restore_verdicts(settings, target))
    validate_snapshot_argument(snapshot)
    restic = restic_for(settings)
    restic.require_supported_version()
    chosen = resolve_snapshot(settings, restic, snapshot, "files")
    destination = resolve_path(Path(target.strip()))

    with operation_lock(settings.state_dir, "restore-files", lock_wait_seconds):
        started = datetime.now(UTC)
        clock = time.monotonic()
        log.info(
            "restoring file snapshot %s (%s) into %s",
            chosen.short,
            chosen.time.isoformat(),
            destination,
        )
        try:
            destination.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OperationFailed(
                f"cannot create restore target {destination}: {exc.strerror}"
            ) from None
        try:
            staging = Path(tempfile.mkdtemp(prefix=".kamal-backup-restore-", dir=destination))
        except OSError as exc:
            raise OperationFailed(f"cannot write in {destination}: {exc.strerror}") from None
        try:
            summary = restic.restore(
                chosen.id,
                staging,
                on_status=(lambda status: on_status("restore", status)) if on_status else None,
            )
            restored = [_swap_in(staging, destination, path) for path in chosen.paths]
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        duration = round(time.monotonic() - clock, 3)
    log.info("files restored in %.1fs", duration)
    return _recorded(
        settings,
        RestoreResult(
            kind="files",
            snapshot=SnapshotRecord.from_snapshot(chosen),
            target=str(destination),
            started_at=started,
            duration_seconds=duration,
            bytes_restored=summary.get("bytes_restored") or summary.get("total_bytes"),
            details={"paths": restored, "files_restored": summary.get("files_restored")},
        ),
    )


def _recorded(settings: Settings, result: RestoreResult) -> RestoreResult:
    """Keeps the restore in the state directory: evidence shows when a drill last succeeded."""
    state.record_restore(settings.state_dir, result)
    return result


def _byte_progress(snapshot: Snapshot, on_status: StatusCallback | None) -> ByteCounter | None:
    """Turns streamed byte counts into restore progress against the dump's recorded size."""
    if on_status is None:
        return None
    total = snapshot.summary.total_bytes_processed if snapshot.summary else 0
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        percent = min(done / total, 1.0) if total else 0.0
        on_status("restore", ResticStatus(total_bytes=total, bytes_done=done, percent_done=percent))

    return advance


def _swap_in(staging: Path, destination: Path, snapshot_path: str) -> str:
    """Moves one restored tree from staging to its place, replacing what was there."""
    relative = snapshot_path.lstrip("/")
    staged = staging / relative
    final = destination / relative
    if not staged.exists() and not staged.is_symlink():
        raise OperationFailed(f"restic did not restore {snapshot_path}")
    final.parent.mkdir(parents=True, exist_ok=True)
    aside: Path | None = None
    if final.exists() or final.is_symlink():
        aside = final.with_name(f".{final.name}.kamal-backup-replaced-{os.getpid()}")
        try:
            os.rename(final, aside)
        except OSError as exc:
            if exc.errno in (errno.EBUSY, errno.EXDEV):
                raise OperationFailed(
                    f"{final} is a mount point; restore into a directory that contains it instead"
                ) from None
            raise
    try:
        os.rename(staged, final)
    except BaseException:
        if aside is not None:
            os.rename(aside, final)
        raise
    if aside is not None:
        with contextlib.suppress(FileNotFoundError):
            if aside.is_dir() and not aside.is_symlink():
                shutil.rmtree(aside)
            else:
                aside.unlink()
    return str(final)
