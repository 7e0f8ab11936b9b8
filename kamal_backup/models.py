"""Typed results the services return and the front ends render."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SnapshotType = Literal["database", "files"]
SNAPSHOT_TYPES: tuple[SnapshotType, ...] = ("database", "files")
# The tag of the safety snapshot a production database restore takes first: not a backup run.
PRE_RESTORE_TAG = "pre-restore"
# A database snapshot made before several databases existed has no database: tag: it is this one.
LEGACY_DATABASE = "primary"
FILES_PART = "files"
# The tag of every snapshot of a run that shrank against the last good run: kept, never `latest`.
SUSPICIOUS_TAG = "suspicious"


def database_part(name: str) -> str:
    """The name of a database's part of a run, as completeness counts it."""
    return f"database:{name}"


# Small documents stored beside the backups: never a backup type, never listed as one.
RECORD_TYPES = ("manifest", "drill")


class Model(BaseModel):
    """The base of the core's models. defer_build: pydantic builds a model's validator when it
    is first used, not when its module is imported, so a command pays only for the models it
    uses (building all of them was about 30 ms of every command's start-up)."""

    model_config = ConfigDict(defer_build=True)


class BackupCounts(Model):
    """What restic counted while backing up (in snapshot summaries and backup output alike)."""

    model_config = ConfigDict(extra="ignore")

    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    data_added: int = 0
    data_added_packed: int = 0
    total_files_processed: int = 0
    total_bytes_processed: int = 0


class SnapshotSummary(BackupCounts):
    backup_start: datetime | None = None
    backup_end: datetime | None = None


class Snapshot(Model):
    """One restic snapshot as `restic snapshots --json` describes it."""

    model_config = ConfigDict(extra="ignore")

    id: str
    short_id: str = ""
    time: datetime
    hostname: str = ""
    paths: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    program_version: str | None = None
    summary: SnapshotSummary | None = None
    tree: str | None = None

    def tag_value(self, key: str) -> str | None:
        prefix = f"{key}:"
        for tag in self.tags:
            if tag.startswith(prefix):
                return tag[len(prefix) :]
        return None

    @property
    def kind(self) -> str | None:
        return self.tag_value("type")

    @property
    def run(self) -> str | None:
        return self.tag_value("run")

    @property
    def adapter(self) -> str | None:
        return self.tag_value("adapter")

    @property
    def database(self) -> str | None:
        """The database a database snapshot holds (primary when untagged, as before names)."""
        if self.kind != "database":
            return None
        return self.tag_value("database") or LEGACY_DATABASE

    @property
    def part(self) -> str | None:
        """Which part of its run this snapshot is: database:<name> or files."""
        if self.kind == "database":
            return database_part(self.database or LEGACY_DATABASE)
        return FILES_PART if self.kind == "files" else None

    @property
    def short(self) -> str:
        return self.short_id or self.id[:8]

    @property
    def pre_restore(self) -> bool:
        return PRE_RESTORE_TAG in self.tags

    @property
    def suspicious(self) -> bool:
        return SUSPICIOUS_TAG in self.tags


class FileEntry(Model):
    """One node of a snapshot's tree as `restic ls --json` describes it."""

    model_config = ConfigDict(extra="ignore")

    name: str
    type: str
    path: str
    size: int | None = None
    mtime: datetime | None = None

    @property
    def is_dir(self) -> bool:
        return self.type == "dir"


# The label of the one status a drill posts once every part is restored and it verifies them
# (no figures: the TUI says so in its status line; the CLI logs it).
VERIFYING = "verifying"


class ResticStatus(Model):
    """A progress line from restic's --json output (backup or restore)."""

    model_config = ConfigDict(extra="ignore")

    percent_done: float = 0.0
    total_files: int = 0
    files_done: int = 0
    files_restored: int = 0
    total_bytes: int = 0
    bytes_done: int = 0
    bytes_restored: int = 0
    seconds_elapsed: int = 0

    @property
    def bytes_processed(self) -> int:
        return self.bytes_done or self.bytes_restored


class BackupSummary(BackupCounts):
    """The summary line of `restic backup --json`."""

    snapshot_id: str
    total_duration: float = 0.0


class SnapshotRecord(Model):
    """A snapshot as recorded in state files and evidence."""

    id: str
    short_id: str
    time: datetime
    type: str | None
    adapter: str | None = None
    database: str | None = None
    run: str | None = None
    paths: list[str]
    tags: list[str]
    hostname: str
    total_bytes_processed: int | None = None
    data_added: int | None = None
    suspicious: bool = False

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> SnapshotRecord:
        summary = snapshot.summary
        return cls(
            id=snapshot.id,
            short_id=snapshot.short,
            time=snapshot.time,
            type=snapshot.kind,
            adapter=snapshot.adapter,
            database=snapshot.database,
            run=snapshot.run,
            paths=snapshot.paths,
            tags=snapshot.tags,
            hostname=snapshot.hostname,
            total_bytes_processed=summary.total_bytes_processed if summary else None,
            data_added=summary.data_added if summary else None,
            suspicious=snapshot.suspicious,
        )


class RetentionResult(Model):
    type: SnapshotType
    database: str | None = None
    kept: int
    removed: int
    removed_ids: list[str] = Field(default_factory=list)


class PruneResult(Model):
    """`prune`: retention applied (or, with dry_run, only planned) for each snapshot type."""

    dry_run: bool
    retention: list[RetentionResult]
    duration_seconds: float


class BackupRun(Model):
    """One run of `backup`: its snapshots, retention and the optional check.

    database_snapshot is the primary database's (else the first one's), as before several
    databases; database_snapshots has every database's by name.
    """

    run: str
    status: Literal["success", "failed", "interrupted", "running", "suspicious"]
    started_at: datetime
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    database_snapshot: SnapshotRecord | None = None
    database_snapshots: dict[str, SnapshotRecord] = Field(default_factory=dict)
    files_snapshot: SnapshotRecord | None = None
    warnings: list[str] = Field(default_factory=list)
    retention: list[RetentionResult] = Field(default_factory=list)
    retention_error: str | None = None
    check: CheckResult | None = None
    error: str | None = None
    # The half of a failed run that failed: "database <name>" or "files" (they run at once).
    failed_part: str | None = None
    manifest_snapshot: str | None = None
    manifest_error: str | None = None
    # The last good run this one was compared with, and what shrank (empty: nothing did).
    baseline_run: str | None = None
    suspicious: list[str] = Field(default_factory=list)


class CheckResult(Model):
    status: Literal["success", "failed"]
    checked_at: datetime
    duration_seconds: float
    read_data_subset: str | None
    output: str
    exit_code: int


class RestoreResult(Model):
    kind: Literal["database", "files"]
    snapshot: SnapshotRecord
    target: str
    started_at: datetime
    duration_seconds: float
    bytes_restored: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    # A production database restore: the snapshot of the database as it was just before.
    safety_snapshot: SnapshotRecord | None = None


class RunRestoreResult(Model):
    """`restore RUN`: each part of one backup run, restored in order (database, then files)."""

    run: str
    in_place: bool
    parts: list[RestoreResult]


class SchedulerStart(Model):
    """Written when `schedule` starts, so `health` can tell a new container from a dead one."""

    started_at: datetime
    schedule_seconds: int
    start_delay_seconds: int


class HealthReport(Model):
    healthy: bool
    status: Literal["fresh", "stale", "missing", "starting"]
    reason: str
    source: Literal["state", "repository"]
    last_success_at: datetime | None
    age_seconds: float | None
    limit_seconds: int
    # The last restore drill this machine knows of; overdue only when drills are scheduled.
    last_drill_at: datetime | None = None
    last_drill_status: str | None = None
    drill_overdue: bool | None = None


class AcceptResult(Model):
    """`accept RUN`: a suspicious run marked as intended, and who did it when."""

    run: str
    changed: bool
    accepted_by: str | None = None
    accepted_at: datetime | None = None
    snapshot_ids: list[str] = Field(default_factory=list)


class AdoptedSnapshot(Model):
    id: str
    time: datetime
    hostname: str
    type: str | None
    run: str | None = None


class AdoptResult(Model):
    """`adopt`: this app's snapshots made under other hosts, rewritten to RESTIC_HOST."""

    dry_run: bool
    host: str
    snapshots: list[AdoptedSnapshot] = Field(default_factory=list)


class GateVerdict(Model):
    """One restore safety gate's answer for a given target."""

    gate: str
    variable: str | None
    allowed: bool
    reason: str


class TargetContents(Model):
    """What a drill's scratch target holds now, in one line said before the drill starts:
    "shop_drill has 12 tables; they will be dropped" (issue 16)."""

    part: str  # "database", "database <name>" (several databases) or "files"
    target: str  # a database name or a path, never a credential
    state: Literal["holds", "empty", "missing", "unknown"]
    summary: str


BackupRun.model_rebuild()
