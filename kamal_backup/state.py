"""Atomic JSON state files: the last backup run and the last repository check."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from kamal_backup import redact
from kamal_backup.environment import LAST_SUCCESS, last_restore_file
from kamal_backup.errors import ConfigError
from kamal_backup.models import BackupRun, CheckResult, RestoreResult, SchedulerStart, SnapshotType
from kamal_backup.verification import DrillRecord, Manifest

_DRILLS = TypeAdapter(list[DrillRecord])

LAST_BACKUP = "last_backup.json"
LAST_CHECK = "last_check.json"
SCHEDULER = "scheduler.json"
DRILLS = "drills.json"
MANIFEST_FIGURES = "last_manifest_figures.json"
DRILLS_KEPT = 50

Model = TypeVar("Model", bound=BaseModel)


def ensure_dir(directory: Path) -> Path:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(
            "KAMAL_BACKUP_STATE_DIR", f"cannot create {directory}: {exc.strerror}"
        ) from None
    return directory


def write_text_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Writes a temp file in the same directory, fsyncs it and renames it over the old one."""
    ensure_dir(path.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if mode is not None:  # mkstemp makes 0600; a file another user reads needs more
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def write_json(path: Path, model: BaseModel) -> None:
    data = redact.current().redact_obj(model.model_dump(mode="json"))
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path, model: type[Model]) -> Model | None:
    """The recorded model, or None when there is none or it cannot be read."""
    try:
        return model.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return None


def record_backup(state_dir: Path, run: BackupRun) -> None:
    write_json(state_dir / LAST_BACKUP, run)
    if run.status == "success":
        # Kept apart from the last run: a failed run must not hide when backups last worked.
        write_json(state_dir / LAST_SUCCESS, run)


def last_success(state_dir: Path) -> BackupRun | None:
    return read_json(state_dir / LAST_SUCCESS, BackupRun)


class ManifestFigures(BaseModel):
    """What the next run's comparison reads of the last manifest this machine saved (its file
    entries left out), and the id of the manifest snapshot it was saved as."""

    snapshot_id: str
    manifest: Manifest


def record_manifest_figures(state_dir: Path, snapshot_id: str, manifest: Manifest) -> None:
    files = manifest.files
    if files is not None:
        files = files.model_copy(update={"entries": {}})
    kept = manifest.model_copy(update={"files": files})
    write_json(
        state_dir / MANIFEST_FIGURES, ManifestFigures(snapshot_id=snapshot_id, manifest=kept)
    )


def manifest_figures(state_dir: Path, snapshot_id: str) -> Manifest | None:
    """The figures of manifest snapshot `snapshot_id` (a whole id, or the short one a run
    records) when this machine saved that snapshot; None otherwise."""
    found = read_json(state_dir / MANIFEST_FIGURES, ManifestFigures)
    if found is None or len(snapshot_id) < 8 or not found.snapshot_id.startswith(snapshot_id):
        return None
    return found.manifest


def record_scheduler_start(state_dir: Path, start: SchedulerStart) -> None:
    write_json(state_dir / SCHEDULER, start)


def scheduler_start(state_dir: Path) -> SchedulerStart | None:
    return read_json(state_dir / SCHEDULER, SchedulerStart)


def last_backup(state_dir: Path) -> BackupRun | None:
    return read_json(state_dir / LAST_BACKUP, BackupRun)


def record_check(state_dir: Path, result: CheckResult) -> None:
    write_json(state_dir / LAST_CHECK, result)


def last_check(state_dir: Path) -> CheckResult | None:
    return read_json(state_dir / LAST_CHECK, CheckResult)


def record_restore(state_dir: Path, result: RestoreResult) -> None:
    write_json(state_dir / last_restore_file(result.kind), result)


def last_restore(state_dir: Path, kind: SnapshotType) -> RestoreResult | None:
    return read_json(state_dir / last_restore_file(kind), RestoreResult)


def drills(state_dir: Path) -> list[DrillRecord]:
    """The drills run from this machine, newest first (the last DRILLS_KEPT)."""
    try:
        return _DRILLS.validate_json((state_dir / DRILLS).read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return []


def record_drill(state_dir: Path, record: DrillRecord) -> None:
    """Adds or replaces (same id) a drill record, keeping the newest DRILLS_KEPT."""
    kept = [record, *(other for other in drills(state_dir) if other.id != record.id)]
    kept.sort(key=lambda item: item.started_at, reverse=True)
    data = redact.current().redact_obj(_DRILLS.dump_python(kept[:DRILLS_KEPT], mode="json"))
    write_text_atomic(state_dir / DRILLS, json.dumps(data, indent=2, sort_keys=True) + "\n")
