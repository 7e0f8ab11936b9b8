"""A `latest` you can trust: each run compared with the last good run, suspicious runs tagged,
accepted, and the good runs retention must keep."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kamal_backup import state
from kamal_backup.errors import ConfigError, Interrupted, KamalBackupError, OperationFailed
from kamal_backup.humanize import human_bytes
from kamal_backup.models import (
    RECORD_TYPES,
    SUSPICIOUS_TAG,
    AcceptResult,
    BackupRun,
    Snapshot,
)
from kamal_backup.restic import Restic
from kamal_backup.services import app_tags, restic_for
from kamal_backup.services.snapshots import expected_parts, good_runs
from kamal_backup.settings import Settings
from kamal_backup.verification import Manifest, TableFigures

log = logging.getLogger(__name__)

ACCEPTED_BY = "accepted-by"
ACCEPTED_AT = "accepted-at"
_RUN = re.compile(r"^\d{8}T\d{6}Z$")
_TIME = "%Y%m%dT%H%M%SZ"


# What a run holds, as far as the comparison is concerned ----------------------------------------


@dataclass(frozen=True)
class DatabaseSide:
    """One database of a run: its dump's size and (from the manifest) its tables' row counts."""

    dump_bytes: int | None = None
    tables: tuple[TableFigures, ...] | None = None  # None: the run has no manifest figures


@dataclass(frozen=True)
class RunSide:
    run: str
    databases: Mapping[str, DatabaseSide] = field(default_factory=dict)
    files: tuple[int, int] | None = None  # (file count, bytes)


def run_side(run: str, snapshots: Sequence[Snapshot], manifest: Manifest | None) -> RunSide:
    """The figures of `run` from its snapshots' summaries (dump size, files and bytes) and its
    manifest (row counts); a figure neither holds is None and is not compared."""
    databases: dict[str, DatabaseSide] = {}
    files: tuple[int, int] | None = None
    for snapshot in snapshots:
        if snapshot.run != run or snapshot.pre_restore:
            continue
        summary = snapshot.summary
        if snapshot.kind == "database" and snapshot.database:
            figures = manifest.databases.get(snapshot.database) if manifest else None
            databases[snapshot.database] = DatabaseSide(
                dump_bytes=summary.total_bytes_processed if summary else None,
                tables=tuple(figures.tables) if figures is not None else None,
            )
        elif snapshot.kind == "files":
            if summary is not None and summary.total_files_processed:
                files = (summary.total_files_processed, summary.total_bytes_processed)
            elif manifest is not None and manifest.files is not None:
                files = (manifest.files.files, manifest.files.bytes)
            elif summary is not None:
                files = (0, summary.total_bytes_processed)
    return RunSide(run=run, databases=databases, files=files)


# The comparison ---------------------------------------------------------------------------------


def fell(before: int | None, after: int | None, limit: float) -> bool:
    """Whether a figure fell by more than `limit` (a fraction); growth never counts."""
    if before is None or after is None or before <= 0 or limit >= 1:
        return False
    return after < before * (1 - limit)


def _drop(before: int, after: int) -> str:
    if after <= 0:
        return "-100%"
    return f"-{min(99, round((1 - after / before) * 100))}%"


def compare_database(
    before: DatabaseSide, after: DatabaseSide, limit: float, baseline: str
) -> list[str]:
    """What shrank in one database; `limit` 1.0 (100%) compares nothing."""
    if limit >= 1:
        return []
    findings: list[str] = []
    if before.tables is not None and after.tables is not None:
        had = {table.table: table.rows for table in before.tables}
        now = {table.table: table.rows for table in after.tables}
        rows_before, rows_after = sum(had.values()), sum(now.values())
        if had and not now:
            findings.append(f"no tables (run {baseline} had {len(had):,}, {rows_before:,} rows)")
        else:
            for table, rows in had.items():
                if rows > 0 and table not in now:
                    findings.append(f"table {table}: {rows:,} rows → table gone")
                elif rows > 0 and now[table] == 0:
                    findings.append(f"table {table}: {rows:,} → 0 rows")
        if fell(rows_before, rows_after, limit):
            findings.append(
                f"rows: {rows_before:,} → {rows_after:,} ({_drop(rows_before, rows_after)})"
            )
    dump_before, dump_after = before.dump_bytes, after.dump_bytes
    if dump_before is not None and dump_after is not None and fell(dump_before, dump_after, limit):
        findings.append(
            f"dump: {human_bytes(dump_before)} → {human_bytes(dump_after)} "
            f"({_drop(dump_before, dump_after)})"
        )
    return findings


def compare_runs(
    before: RunSide,
    after: RunSide,
    limit_for: Callable[[str | None], float],
    several: bool | None = None,
) -> list[str]:
    """One line per finding, such as `table users: 10,412 → 0 rows`.

    `limit_for(name)` is a database's threshold, `limit_for(None)` the files'. A database missing
    on either side (newly configured, removed) is not compared, nor are files new in this run.
    Files the last good run had and this run has none of are a finding: an unset or misspelled
    BACKUP_PATHS would otherwise end the file backups with every run reported a success. With
    several databases each line names its database.
    """
    several = len(after.databases) > 1 if several is None else several
    findings: list[str] = []
    for name, now in after.databases.items():
        then = before.databases.get(name)
        if then is None:
            continue
        prefix = f"database {name}: " if several else ""
        findings += [
            prefix + line for line in compare_database(then, now, limit_for(name), before.run)
        ]
    limit = limit_for(None)
    if before.files is not None and before.files[0] > 0 and after.files is None and limit < 1:
        files_before, bytes_before = before.files
        findings.append(
            f"files: {files_before:,} ({human_bytes(bytes_before)}) → no file snapshot "
            "(this run backed up no files: is BACKUP_PATHS set?)"
        )
    if before.files is not None and after.files is not None:
        (files_before, bytes_before), (files_after, bytes_after) = before.files, after.files
        if fell(files_before, files_after, limit):
            findings.append(
                f"files: {files_before:,} → {files_after:,} ({_drop(files_before, files_after)})"
            )
        if fell(bytes_before, bytes_after, limit):
            findings.append(
                f"file bytes: {human_bytes(bytes_before)} → {human_bytes(bytes_after)} "
                f"({_drop(bytes_before, bytes_after)})"
            )
    return findings


# A backup's comparison --------------------------------------------------------------------------


def last_good_run(
    snapshots: Sequence[Snapshot], expected: Collection[str], before: str | None = None
) -> str | None:
    """The newest complete, not suspicious run (older than run `before`, when given)."""
    backups = [s for s in snapshots if s.kind not in RECORD_TYPES]
    runs = [run for run in good_runs(backups, expected) if before is None or run < before]
    return max(runs) if runs else None


def baseline_manifest(
    settings: Settings, restic: Restic, manifests: Sequence[Snapshot], baseline: str
) -> Manifest | None:
    """The baseline run's manifest: the figures this machine kept of it when the listing names
    the very snapshot they were saved as (no restic process), else one `restic dump`."""
    from kamal_backup.services.drill import newest_manifest, read_manifest

    newest = newest_manifest(manifests, baseline)
    if newest is not None:
        kept = state.manifest_figures(settings.state_dir, newest.id)
        if kept is not None and kept.run == baseline:
            log.debug("the manifest of run %s comes from the state directory", baseline)
            return kept
    return read_manifest(restic, manifests, baseline)


def judge_run(
    settings: Settings,
    restic: Restic,
    run: BackupRun,
    snapshots: Sequence[Snapshot],
    manifest: Manifest | None,
    manifest_id: str | None = None,
) -> dict[str, Snapshot]:
    """Compares the run just saved with the last good run; a suspicious run is tagged.

    `snapshots` is the app's listing taken after the run's snapshots were saved; `manifest` the
    run's own figures, saved as `manifest_id` (while the listing was taken, so maybe not in it). The previous manifest costs one `restic dump`, the tag one `restic tag`
    (only when something shrank). Returns the run's snapshots that were re-tagged, by their old
    id (restic gives a snapshot whose tags change a new id).
    """
    baseline = last_good_run(snapshots, expected_parts(settings), before=run.run)
    if baseline is None:
        log.info("no earlier good run: this run is not compared")
        return {}
    run.baseline_run = baseline
    manifests = [s for s in snapshots if s.kind == "manifest"]
    before = run_side(baseline, snapshots, baseline_manifest(settings, restic, manifests, baseline))
    after = run_side(run.run, snapshots, manifest)
    findings = compare_runs(before, after, settings.max_shrink, len(settings.database_list) > 1)
    if not findings:
        log.info("compared with run %s: nothing shrank", baseline)
        return {}
    run.suspicious = findings
    for line in findings:
        log.warning("suspicious against run %s: %s", baseline, line)
    mine = [s for s in snapshots if s.run == run.run and not s.pre_restore]
    ids = [s.id for s in mine]
    if manifest_id is not None and manifest_id not in ids:
        ids.append(manifest_id)
    try:
        renamed = restic.change_tags(ids, add=[SUSPICIOUS_TAG])
    except Interrupted:
        raise
    except KamalBackupError as exc:
        # Still reported as suspicious (exit 1); the repository may count the run as latest.
        run.suspicious.append(f"the {SUSPICIOUS_TAG} tag could not be written: {exc}")
        log.error("run %s could not be tagged %s: %s", run.run, SUSPICIOUS_TAG, exc)
        return {}
    if manifest_id is not None and manifest_id in renamed:
        run.manifest_snapshot = renamed[manifest_id][:8]
    if len(renamed) < len(ids):
        # An append-only repository: restic wrote the tagged copies but kept the originals.
        log.warning(
            "the untagged originals of run %s stay (the repository refuses deletes)", run.run
        )
    tagged: dict[str, Snapshot] = {}
    for snapshot in mine:
        new_id = renamed.get(snapshot.id, snapshot.id)
        tagged[snapshot.id] = snapshot.model_copy(
            update={
                "id": new_id,
                "short_id": new_id[:8],
                "tags": [*snapshot.tags, SUSPICIOUS_TAG],
            }
        )
    log.warning("run %s tagged %s: kept, but not `latest`", run.run, SUSPICIOUS_TAG)
    return tagged


def suspicious_message(run: BackupRun) -> str:
    return (
        f"backup {run.run} saved but SUSPICIOUS against run {run.baseline_run}: kept and tagged "
        f"{SUSPICIOUS_TAG}, `latest` stays {run.baseline_run}; if the shrink is intended: "
        f"kamal-backup accept {run.run}"
    )


# Accepting a run --------------------------------------------------------------------------------


def _tag_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@-]", "_", text)


def accept_run(
    settings: Settings,
    run: str,
    *,
    accepted_by: str | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> AcceptResult:
    """Marks a suspicious run as intended: its tag is removed, who and when are added as tags,
    and later runs compare against it (it becomes `latest` if it is the newest good run)."""
    from kamal_backup.services.drill import who_runs

    value = run.strip()
    if not _RUN.match(value):
        raise ConfigError("RUN", f"{run!r} is not a run such as 20260101T030000Z")
    restic = restic_for(settings)
    restic.require_supported_version()
    mine = [s for s in restic.snapshots(app_tags(settings)) if s.run == value and not s.pre_restore]
    if not [s for s in mine if s.kind not in RECORD_TYPES]:
        raise ConfigError("RUN", f"{value} is not a backup run of app {settings.app_name}")
    flagged = [s for s in mine if s.suspicious]
    if not flagged:
        return AcceptResult(run=value, changed=False)
    who = accepted_by or who_runs()
    moment = now().astimezone(UTC).replace(microsecond=0)
    renamed = restic.change_tags(
        [s.id for s in flagged],
        add=[f"{ACCEPTED_BY}:{_tag_safe(who)}", f"{ACCEPTED_AT}:{moment:{_TIME}}"],
        remove=[SUSPICIOUS_TAG],
    )
    if len(renamed) < len(flagged):
        # restic wrote untagged copies but could not delete the tagged originals: the run is
        # still suspicious (an append-only repository).
        raise OperationFailed(
            f"run {value} could not be accepted: the repository kept its suspicious snapshots",
            hint="the repository refuses deletes (append-only?): run `kamal-backup accept` from "
            "a trusted machine that may delete, as for `kamal-backup prune`",
        )
    log.info("run %s accepted by %s", value, who)
    return AcceptResult(
        run=value,
        changed=True,
        accepted_by=_tag_safe(who),
        accepted_at=moment,
        snapshot_ids=[renamed.get(s.id, s.id) for s in flagged],
    )


def accepted_runs(snapshots: Sequence[Snapshot]) -> dict[str, tuple[str, datetime | None]]:
    """Runs accepted after a shrink: run -> (who, when), from the snapshots' tags."""
    found: dict[str, tuple[str, datetime | None]] = {}
    for snapshot in snapshots:
        who = snapshot.tag_value(ACCEPTED_BY)
        if not snapshot.run or who is None or snapshot.suspicious:
            continue
        at = snapshot.tag_value(ACCEPTED_AT)
        try:
            when = datetime.strptime(at, _TIME).replace(tzinfo=UTC) if at else None
        except ValueError:
            when = None
        found.setdefault(snapshot.run, (who, when))
    return found


# What retention keeps ---------------------------------------------------------------------------


def drilled_runs(snapshots: Sequence[Snapshot]) -> set[str]:
    """Runs a passed drill verified (from the drill records' tags)."""
    return {
        run
        for s in snapshots
        if s.kind == "drill"
        and s.tag_value("status") == "passed"
        and s.tag_value("verification") == "verified"
        and "drilled-suspicious-run" not in s.tags
        and (run := s.tag_value("drilled-run"))
    }


def kept_good_runs(
    snapshots: Sequence[Snapshot],
    expected: Collection[str],
    keep: int,
    drilled: Collection[str] | None = None,
) -> list[str]:
    """The runs retention never forgets, newest first: the newest `keep` good runs, and the
    newest `keep` good runs a passed drill verified (`drilled`; by default read from the drill
    records among `snapshots`)."""
    if keep <= 0:
        return []
    backups = [s for s in snapshots if s.kind not in RECORD_TYPES]
    good = sorted(good_runs(backups, expected), reverse=True)
    drilled = drilled_runs(snapshots) if drilled is None else drilled
    kept = set(good[:keep]) | set([run for run in good if run in drilled][:keep])
    return sorted(kept, reverse=True)
