"""Redacted evidence of the backup configuration and its latest results, for security reviews."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kamal_backup import __version__, redact, state
from kamal_backup.databases import adapters_for
from kamal_backup.databases.registry import client_tools
from kamal_backup.errors import KamalBackupError
from kamal_backup.models import SNAPSHOT_TYPES, CheckResult, SnapshotRecord
from kamal_backup.notify import channel_status
from kamal_backup.services.snapshots import (
    complete_runs,
    expected_parts,
    latest_complete,
    list_snapshots,
)
from kamal_backup.settings import Settings
from kamal_backup.tools import FALLBACK_TOOLS, tool_version, version_number

SCHEMA_VERSION = 1
OTHER_CLIENTS = client_tools()  # every client some registered adapter declares
_FALLBACKS = {preferred: older for older, preferred in FALLBACK_TOOLS.items()}


def tool_versions(settings: Settings) -> dict[str, str | None]:
    """restic and every database client: the one the adapter uses, else the one on PATH."""
    env = settings.restic_environment()
    versions: dict[str, str | None] = {
        "restic": version_number(tool_version("restic", env, ("version",)))
    }
    for name in OTHER_CLIENTS:
        found = tool_version(name, env) or tool_version(_FALLBACKS.get(name), env)
        versions[name] = version_number(found)
    for adapter in adapters_for(settings):
        versions.update(adapter.client_versions())
    return versions


def build_evidence(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """The evidence document; repository_error is set (and snapshots are null) when unreachable."""
    adapters = adapters_for(settings)
    primary = adapters[0] if adapters else None
    expected = expected_parts(settings)
    latest: dict[str, SnapshotRecord | None] = {"database": None, "files": None}
    latest_by_database: dict[str, SnapshotRecord | None] = {a.database_name: None for a in adapters}
    incomplete: list[str] = []
    repository_error: str | None = None
    try:
        snapshots = list_snapshots(settings)
    except KamalBackupError as exc:
        repository_error = str(exc)
    else:
        for name in latest_by_database:
            found = latest_complete(snapshots, "database", expected, name)
            latest_by_database[name] = SnapshotRecord.from_snapshot(found) if found else None
        if primary is not None:
            latest["database"] = latest_by_database[primary.database_name]
        found = latest_complete(snapshots, "files", expected)
        latest["files"] = SnapshotRecord.from_snapshot(found) if found else None
        complete = complete_runs(snapshots, expected)
        incomplete = sorted(
            {s.run for s in snapshots if s.run and not s.pre_restore and s.run not in complete},
            reverse=True,
        )

    last_check: CheckResult | None = state.last_check(settings.state_dir)
    last_backup = state.last_backup(settings.state_dir)
    evidence: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": (now or datetime.now(UTC)).isoformat(),
        "app_name": settings.app_name,
        "kamal_backup_version": __version__,
        "database_adapter": primary.name if primary else None,
        "database_source": primary.source_label() if primary else None,
        "databases": [
            {
                "name": adapter.database_name,
                "adapter": adapter.name,
                "source": adapter.source_label(),
                "restore_target": adapter.restore_target_label(),
                "latest_snapshot": _dump(latest_by_database.get(adapter.database_name)),
            }
            for adapter in adapters
        ],
        "restic_repository": settings.repository_display,
        "restic_host": settings.host,
        "backup_paths": [str(path) for path in settings.backup_paths],
        "backup_excludes": list(settings.backup_excludes),
        "schedule_seconds": settings.backup_schedule_seconds,
        "client_side_forget_prune": settings.restic_forget_after_backup,
        "retention": settings.retention,
        "check_after_backup": settings.restic_check_after_backup,
        "check_read_data_subset": settings.restic_check_read_data_subset or None,
        "latest_database_snapshot": _dump(latest["database"]),
        "latest_files_snapshot": _dump(latest["files"]),
        "incomplete_runs": incomplete,
        "last_check": _dump(last_check),
        "last_backup": None
        if last_backup is None
        else {
            "run": last_backup.run,
            "status": last_backup.status,
            "started_at": last_backup.started_at.isoformat(),
            "finished_at": last_backup.finished_at.isoformat() if last_backup.finished_at else None,
            "duration_seconds": last_backup.duration_seconds,
            "error": last_backup.error,
        },
        "last_restores": {
            kind: _dump(state.last_restore(settings.state_dir, kind)) for kind in SNAPSHOT_TYPES
        },
        "restore_safety": {
            "allow_restore": settings.kamal_backup_allow_restore,
            "allow_production_restore": settings.kamal_backup_allow_production_restore,
            "allow_in_place_file_restore": settings.kamal_backup_allow_in_place_file_restore,
        },
        "notifications": [entry.model_dump(mode="json") for entry in channel_status(settings)],
        "tool_versions": tool_versions(settings),
        "repository_error": repository_error,
    }
    return {key: redact.current().redact_obj(value) for key, value in evidence.items()}


def _dump(model: Any) -> Any:
    return None if model is None else model.model_dump(mode="json")


def write_evidence(document: dict[str, Any], path: Path) -> None:
    """Saves the evidence JSON atomically."""
    state.write_text_atomic(path, json.dumps(document, indent=2) + "\n")
