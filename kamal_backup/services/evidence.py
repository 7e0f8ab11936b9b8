"""Redacted evidence of the backup configuration and its latest results, for security reviews."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from kamal_backup import __version__, redact, state
from kamal_backup.databases import adapters_for
from kamal_backup.databases.registry import client_tools
from kamal_backup.errors import KamalBackupError
from kamal_backup.models import (
    SNAPSHOT_TYPES,
    CheckResult,
    RestoreResult,
    Snapshot,
    SnapshotRecord,
)
from kamal_backup.notify import ChannelStatus, channel_status
from kamal_backup.services.baseline import accepted_runs, kept_good_runs
from kamal_backup.services.drill import drill_history
from kamal_backup.services.snapshots import (
    complete_runs,
    expected_parts,
    latest_complete,
    list_snapshots,
    suspicious_runs,
)
from kamal_backup.settings import Settings
from kamal_backup.tools import FALLBACK_TOOLS, tool_version, version_number
from kamal_backup.verification import DrillRecord, DrillSummary

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


class LastBackup(BaseModel):
    run: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    error: str | None
    baseline_run: str | None = None
    suspicious: list[str] = Field(default_factory=list)


class AcceptedRun(BaseModel):
    """A run that shrank and was accepted as intended (`kamal-backup accept`)."""

    run: str
    accepted_by: str
    accepted_at: datetime | None


class RestoreSafety(BaseModel):
    allow_restore: bool
    allow_production_restore: bool
    allow_in_place_file_restore: bool


class DrillEvidence(BaseModel):
    """The last drill in full and the history (this machine's and the repository's)."""

    last: DrillRecord | None = None
    history: list[DrillSummary] = Field(default_factory=list)


class DatabaseEvidence(BaseModel):
    name: str
    adapter: str
    source: str
    restore_target: str | None
    latest_snapshot: SnapshotRecord | None


class Evidence(BaseModel):
    """The evidence document (field names are the JSON keys reviewers already read)."""

    schema_version: int
    generated_at: datetime
    app_name: str
    kamal_backup_version: str
    # The first database's (primary's), as before several databases existed; None: files only.
    database_adapter: str | None
    database_source: str | None
    databases: list[DatabaseEvidence]
    restic_repository: str
    restic_host: str
    backup_paths: list[str]
    backup_excludes: list[str]
    schedule_seconds: int
    client_side_forget_prune: bool
    retention: dict[str, int]
    check_after_backup: bool
    check_read_data_subset: str | None
    latest_database_snapshot: SnapshotRecord | None
    latest_files_snapshot: SnapshotRecord | None
    incomplete_runs: list[str]
    suspicious_runs: list[str]
    accepted_runs: list[AcceptedRun]
    kept_good_runs: list[str]
    last_check: CheckResult | None
    last_backup: LastBackup | None
    last_restores: dict[str, RestoreResult | None]
    restore_safety: RestoreSafety
    drills: DrillEvidence
    notifications: list[ChannelStatus]
    tool_versions: dict[str, str | None]
    repository_error: str | None

    def document(self) -> dict[str, Any]:
        """The JSON document, every string redacted."""
        data = self.model_dump(mode="json")
        return {key: redact.current().redact_obj(value) for key, value in data.items()}


def build_evidence(
    settings: Settings,
    now: datetime | None = None,
    *,
    snapshots: list[Snapshot] | None = None,
    drills: tuple[DrillRecord | None, list[DrillSummary]] | None = None,
    tools: dict[str, str | None] | None = None,
) -> Evidence:
    """The evidence; repository_error is set (and snapshots are null) when unreachable.

    `snapshots`, `drills` and `tools` stand in for the repository's and the machine's answers
    (the TUI's fixed screenshots); everything else is read as usual.
    """
    adapters = adapters_for(settings)
    primary = adapters[0] if adapters else None
    expected = expected_parts(settings)
    latest: dict[str, SnapshotRecord | None] = {"database": None, "files": None}
    latest_by_database: dict[str, SnapshotRecord | None] = {a.database_name: None for a in adapters}
    incomplete: list[str] = []
    suspicious: list[str] = []
    accepted: list[AcceptedRun] = []
    repository_error: str | None = None
    try:
        if snapshots is None:
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
        suspicious = sorted(suspicious_runs(snapshots), reverse=True)
        accepted = [
            AcceptedRun(run=run, accepted_by=who, accepted_at=when)
            for run, (who, when) in sorted(accepted_runs(snapshots).items(), reverse=True)
        ]
    try:
        last_drill, history = drills or drill_history(
            settings, from_repository=repository_error is None
        )
    except KamalBackupError as exc:
        repository_error = repository_error or str(exc)
        last_drill, history = drill_history(settings, from_repository=False)

    last_backup = state.last_backup(settings.state_dir)
    drilled = {
        h.run for h in history if h.run and h.status == "passed" and h.verification == "verified"
    }
    kept = (
        kept_good_runs(snapshots, expected, settings.kamal_backup_keep_good, drilled)
        if snapshots is not None and repository_error is None
        else []
    )
    evidence = Evidence(
        schema_version=SCHEMA_VERSION,
        generated_at=now or datetime.now(UTC),
        app_name=settings.app_name,
        kamal_backup_version=__version__,
        database_adapter=primary.name if primary else None,
        database_source=primary.source_label() if primary else None,
        databases=[
            DatabaseEvidence(
                name=adapter.database_name,
                adapter=adapter.name,
                source=adapter.source_label(),
                restore_target=adapter.restore_target_label(),
                latest_snapshot=latest_by_database.get(adapter.database_name),
            )
            for adapter in adapters
        ],
        restic_repository=settings.repository_display,
        restic_host=settings.host,
        backup_paths=[str(path) for path in settings.backup_paths],
        backup_excludes=list(settings.backup_excludes),
        schedule_seconds=settings.backup_schedule_seconds,
        client_side_forget_prune=settings.restic_forget_after_backup,
        retention=settings.retention,
        check_after_backup=settings.restic_check_after_backup,
        check_read_data_subset=settings.restic_check_read_data_subset or None,
        latest_database_snapshot=latest["database"],
        latest_files_snapshot=latest["files"],
        incomplete_runs=incomplete,
        suspicious_runs=suspicious,
        accepted_runs=accepted,
        kept_good_runs=kept,
        last_check=state.last_check(settings.state_dir),
        last_backup=None
        if last_backup is None
        else LastBackup.model_validate(
            last_backup.model_dump(include=set(LastBackup.model_fields))
        ),
        last_restores={
            kind: state.last_restore(settings.state_dir, kind) for kind in SNAPSHOT_TYPES
        },
        restore_safety=RestoreSafety(
            allow_restore=settings.kamal_backup_allow_restore,
            allow_production_restore=settings.kamal_backup_allow_production_restore,
            allow_in_place_file_restore=settings.kamal_backup_allow_in_place_file_restore,
        ),
        drills=DrillEvidence(last=last_drill, history=history),
        notifications=channel_status(settings),
        tool_versions=tool_versions(settings) if tools is None else tools,
        repository_error=repository_error,
    )
    # Redacted once here, so every front end (JSON, reports, the TUI) shows the same text.
    return Evidence.model_validate(evidence.document())


def evidence_json(evidence: Evidence) -> str:
    return json.dumps(evidence.document(), indent=2) + "\n"


def write_evidence(evidence: Evidence, path: Path, text: str | None = None) -> None:
    """Saves the evidence (JSON, or an already rendered report) atomically."""
    state.write_text_atomic(path, evidence_json(evidence) if text is None else text)
