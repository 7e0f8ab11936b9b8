"""Restores behind the safety gates: database dumps (with a safety snapshot before a production
restore), file snapshots or parts of them staged beside their destination and swapped in."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from kamal_backup import process, state
from kamal_backup.databases import DatabaseAdapter, adapter_for, adapters_for
from kamal_backup.databases.base import ByteCounter, CommitsOnItsOwn
from kamal_backup.errors import ConfigError, Interrupted, KamalBackupError, OperationFailed
from kamal_backup.locking import operation_lock
from kamal_backup.models import (
    FILES_PART,
    PRE_RESTORE_TAG,
    ResticStatus,
    RestoreResult,
    RunRestoreResult,
    Snapshot,
    SnapshotRecord,
)
from kamal_backup.notify import notified
from kamal_backup.prestart import ExpectedDump, expected_database_dump
from kamal_backup.redact import redact
from kamal_backup.restic import Restic
from kamal_backup.services import (
    RESTORE_PREVIOUS,
    RESTORE_STAGING,
    app_tags,
    gates,
    restic_for,
)
from kamal_backup.services.backup import run_timestamp, snapshot_database
from kamal_backup.services.retention import safety_snapshot_host
from kamal_backup.services.snapshots import (
    complete_runs,
    expected_parts,
    good_runs,
    latest_complete_run,
    list_snapshots,
    no_good_run,
    resolve_snapshot,
    say_suspicious,
    validate_snapshot_argument,
)
from kamal_backup.settings import Settings, resolve_path, secret

log = logging.getLogger(__name__)

DEFAULT_FILES_TARGET = "/restore/files"
StatusCallback = Callable[[str, ResticStatus], None]
SafetyCallback = Callable[[SnapshotRecord], None]


# Databases ------------------------------------------------------------------------------------


def targeting_source(settings: Settings) -> Settings:
    """The settings with every database's restore target set to its source (--in-place)."""
    for database in settings.database_list:
        source = secret(database.url) or str(database.path)
        settings = settings.with_restore_target(database.name, source, database.source_setting)
    return settings


@notified("restore-db")
def restore_database(
    settings: Settings,
    snapshot: str = "latest",
    on_status: StatusCallback | None = None,
    lock_wait_seconds: float = 0.0,
    database: str | None = None,
    *,
    into_source: bool = False,
    on_safety_snapshot: SafetyCallback | None = None,
    locked_by_caller: bool = False,
    snapshots: Sequence[Snapshot] | None = None,
) -> RestoreResult:
    """Restores one database snapshot into that database's restore target.

    Without `database`: the database a snapshot id holds, or primary for 'latest'. With
    `into_source` the target is the source database itself. Whenever the target is the source,
    a safety snapshot of the current database (the backup's own dump, tagged pre-restore) is
    taken first; if it fails, nothing is restored.
    """
    if into_source:
        settings = targeting_source(settings)
    gates.enforce(gates.database_restore_verdicts(settings, database))
    validate_snapshot_argument(snapshot)
    restic = restic_for(settings)
    restic.require_supported_version()
    guess = (
        None
        if snapshots is not None
        else expected_database_dump(settings.state_dir, snapshot, database)
    )
    warmed = _warmed_adapter(settings, guess.database if guess else database)
    # restic opens the repository for the likely dump, and the target's client versions are
    # asked, while the listing decides what to read.
    with restic.early_dump(*_early_target(guess, warmed)):
        ahead = (
            None if snapshots is not None else _ahead(settings, snapshot, database, guess, warmed)
        )
        if ahead is not None:
            done = _restore_ahead(
                settings,
                restic,
                snapshot,
                database,
                ahead,
                on_status,
                lock_wait_seconds,
                locked_by_caller,
            )
            if isinstance(done, RestoreResult):
                return done
            snapshots = done  # the listing chose another snapshot: restored below, as usual
        if snapshots is None:
            parts: dict[str, Callable[[], object]] = {
                "listing": lambda: list_snapshots(settings, restic=restic)
            }
            if warmed is not None:
                parts["clients"] = lambda: _warm(warmed)
            finished = process.run_parts(parts)
            # The listing and the likely dump are taken: whatever else was started before the
            # settings (prestart.py) will not be, and holds a process (a dump: a lock) till then.
            process.stop_prestarted()
            if (failed := finished.first_failure()) is not None:
                raise failed[1]
            snapshots = cast(list[Snapshot], finished.results["listing"])
        return _restore_database(
            settings,
            restic,
            snapshot,
            on_status,
            lock_wait_seconds,
            database,
            on_safety_snapshot=on_safety_snapshot,
            locked_by_caller=locked_by_caller,
            snapshots=snapshots,
            warmed=warmed,
        )


def _warmed_adapter(settings: Settings, database: str | None) -> DatabaseAdapter | None:
    """The adapter a restore will most likely use, or None when it cannot be made yet."""
    try:
        return adapter_for(settings, database)
    except KamalBackupError:
        return None


def _warm(adapter: DatabaseAdapter) -> None:
    """adapter.warm_restore(), whose errors restore() meets again in their usual place."""
    try:
        adapter.warm_restore()
    except Exception as exc:
        log.debug(
            "asking the restore target ahead failed (asked again later): %s", redact(str(exc))
        )


def _early_target(
    expected: ExpectedDump | None, adapter: DatabaseAdapter | None
) -> tuple[str | None, str | None]:
    """(id, path) to dump early (`adapter` is the expected snapshot's database's), or (None, None)
    when there is no guess, the restore would first take a safety snapshot (a dump started now
    would only wait through it) or the adapter does not read a pipe."""
    if expected is None or adapter is None:
        return None, None
    try:
        if adapter.restore_target_is_source() or not adapter.restores_from_pipe:
            return None, None
    except KamalBackupError:
        return None, None
    return expected.id, expected.path


@dataclass(frozen=True)
class _Ahead:
    """A restore that can start before the listing has chosen its snapshot: the state
    directory's record of the snapshot it expects, and the adapter restoring it."""

    snapshot: Snapshot
    size: int | None
    adapter: DatabaseAdapter


class _NotAhead(Exception):
    """The restore cannot start before the listing after all (its target does not exist yet,
    or the dump commits part of itself): restored after the listing, as usual."""


class _Withdrawn(Exception):
    """The listing did not confirm the snapshot a restore started with: it chose another (its
    `snapshots` to choose again from) or it failed (`cause`)."""

    def __init__(
        self, snapshots: list[Snapshot] | None = None, cause: BaseException | None = None
    ) -> None:
        super().__init__("the listing did not confirm the snapshot restored ahead")
        self.snapshots = snapshots
        self.cause = cause


def _ahead(
    settings: Settings,
    argument: str,
    database: str | None,
    expected: ExpectedDump | None,
    adapter: DatabaseAdapter | None,
) -> _Ahead | None:
    """What to restore before the listing answers, or None to wait for it as usual: only a
    restore whose whole work on the target is one transaction (committed only once the listing
    has chosen the very snapshot it read), into a target that is not the source (no safety
    snapshot first), of a snapshot the state directory recorded, which a gate lets through."""
    if expected is None or adapter is None or not adapter.restores_in_one_transaction:
        return None
    if _early_target(expected, adapter) != (expected.id, expected.path):
        return None
    if database is not None and database != adapter.database_name:
        return None
    if expected.adapter is not None and expected.adapter != adapter.name:
        return None  # DATABASE_ADAPTER changed since: the usual path refuses it untouched
    try:
        gates.enforce(gates.database_restore_verdicts(settings, adapter.database_name))
        record = SnapshotRecord.model_validate(dict(expected.record))
        snapshot = Snapshot.model_validate(record.model_dump())
    except (KamalBackupError, ValueError):  # pydantic's ValidationError is a ValueError
        return None  # the usual path says what is wrong, in its place
    if (snapshot.id, snapshot.paths) != (expected.id, [expected.path]) or record.suspicious:
        return None  # a suspicious run is never latest: the listing would not confirm it
    return _Ahead(snapshot, record.total_bytes_processed, adapter)


def _restore_ahead(
    settings: Settings,
    restic: Restic,
    argument: str,
    database: str | None,
    ahead: _Ahead,
    on_status: StatusCallback | None,
    lock_wait_seconds: float,
    locked_by_caller: bool,
) -> RestoreResult | list[Snapshot]:
    """Restores the expected snapshot while the listing runs, and commits it only once the
    listing has chosen that very snapshot, exactly as the usual path would (`_choose`).

    When the listing chooses another snapshot, or fails, the import is stopped (whatever it has
    done so far) and rolled back, the target as it was; an import that is in before the listing
    answers waits for it in its transaction. Returns the result, or the listing to restore its
    choice from as usual; raises the listing's failure.
    """
    adapter, expected = ahead.adapter, ahead.snapshot
    decided = threading.Event()
    confirmed: list[Snapshot] = []
    listed: list[Snapshot] = []

    def listing() -> Snapshot:
        try:
            every = list_snapshots(settings, restic=restic)
            listed.extend(every)
            try:
                chooser, chosen = _choose(settings, restic, argument, database, every)
            except KamalBackupError as exc:
                raise _Withdrawn(every) from exc  # the usual path raises it in its place
            if chosen.id != expected.id or not _same_database(chooser, adapter):
                raise _Withdrawn(every)
            confirmed.append(chosen)
            return chosen
        except _Withdrawn:
            raise
        except BaseException as exc:
            raise _Withdrawn(cause=exc) from exc
        finally:
            decided.set()

    def commit_if() -> bool:
        while not decided.wait(0.1):
            if process.cancelled():
                return False
        return bool(confirmed)

    def restore() -> dict[str, Any]:
        _warm(adapter)
        exists = adapter.restore_target_exists()
        if exists is None:
            # Its server did not answer: the usual path says why, in its place.
            raise _NotAhead("the restore target's server could not be asked")
        if not exists:
            # Creating it is no part of the transaction: only once the listing has chosen.
            raise _NotAhead("the restore target does not exist yet")
        log.info(
            "restoring database snapshot %s (%s) into %s, committed once the listing confirms it",
            expected.short,
            expected.time.isoformat(),
            adapter.restore_target_label(),
        )
        try:
            return adapter.restore_if(
                restic, expected, commit_if, on_bytes=_byte_progress(ahead.size, on_status)
            )
        except CommitsOnItsOwn as exc:
            raise _NotAhead(str(exc)) from exc

    with _lock(settings, "restore-db", lock_wait_seconds, locked_by_caller):
        started = datetime.now(UTC)
        clock = time.monotonic()
        # A failed restore lets the listing finish (a second at most); a listing that does not
        # confirm stops the restore.
        outcome = process.run_parts(
            {"listing": listing, "restore": restore},
            let_finish=lambda exc: not isinstance(exc, _Withdrawn),
        )
        duration = round(time.monotonic() - clock, 3)
    process.stop_prestarted()
    if process.cancelled():
        raise Interrupted()
    withdrawn = outcome.failures.get("listing")
    if isinstance(withdrawn, _Withdrawn):
        if withdrawn.cause is not None:
            raise withdrawn.cause
        log.info("the listing did not choose snapshot %s: nothing of it was kept", expected.short)
        return withdrawn.snapshots or []
    not_ahead = outcome.failures.get("restore")
    if isinstance(not_ahead, _NotAhead):
        log.info("%s: restoring after the listing", not_ahead)
        return listed
    if (failed := outcome.first_failure()) is not None:
        raise failed[1]
    chosen = confirmed[0]
    details = cast(dict[str, Any], outcome.results["restore"])
    if (size := _dump_size(chosen)) is not None:
        details["bytes"] = size  # what the usual path reports: the listing's record of the dump
    return _database_restored(settings, adapter, chosen, started, duration, details, None)


def _choose(
    settings: Settings,
    restic: Restic,
    snapshot: str,
    database: str | None,
    snapshots: Sequence[Snapshot],
) -> tuple[DatabaseAdapter, Snapshot]:
    """The adapter and the snapshot a restore-db argument names, from the listing; raises when
    it names none of this app's database snapshots, or one no configured database can take."""
    if database is None and snapshot != "latest":
        database = resolve_snapshot(settings, restic, snapshot, "database", snapshots).database
        if database is not None and database not in {d.name for d in settings.database_list}:
            raise ConfigError(
                "SNAPSHOT",
                f"{snapshot} is a snapshot of database {database}, which is not configured",
            )
        gates.enforce(gates.database_restore_verdicts(settings, database))
    adapter = adapter_for(settings, database)
    chosen = resolve_snapshot(
        settings, restic, snapshot, "database", snapshots, database=adapter.database_name
    )
    if chosen.adapter and chosen.adapter != adapter.name:
        raise OperationFailed(
            f"snapshot {chosen.short} is a {chosen.adapter} dump; "
            f"DATABASE_ADAPTER is {adapter.name}"
        )
    return adapter, chosen


def _same_database(first: DatabaseAdapter, second: DatabaseAdapter) -> bool:
    return (first.name, first.database_name) == (second.name, second.database_name)


def _restore_database(
    settings: Settings,
    restic: Restic,
    snapshot: str,
    on_status: StatusCallback | None,
    lock_wait_seconds: float,
    database: str | None,
    *,
    on_safety_snapshot: SafetyCallback | None,
    locked_by_caller: bool,
    snapshots: Sequence[Snapshot],
    warmed: DatabaseAdapter | None = None,
) -> RestoreResult:
    adapter, chosen = _choose(settings, restic, snapshot, database, snapshots)
    if warmed is not None and _same_database(warmed, adapter):
        adapter = warmed  # it knows the target's client versions already
    with _lock(settings, "restore-db", lock_wait_seconds, locked_by_caller):
        started = datetime.now(UTC)
        clock = time.monotonic()
        safety = None
        skipped = None
        if adapter.restore_target_is_source() and adapter.source_missing():
            # Nothing exists to be overwritten, so there is nothing a safety snapshot could keep.
            skipped = f"{adapter.source_label()} does not exist: nothing to keep"
            log.warning("no safety snapshot: %s", skipped)
        elif adapter.restore_target_is_source():
            safety = take_safety_snapshot(settings, restic, adapter, on_status)
            if on_safety_snapshot is not None:
                on_safety_snapshot(safety)
        log.info(
            "restoring database snapshot %s (%s) into %s",
            chosen.short,
            chosen.time.isoformat(),
            adapter.restore_target_label(),
        )
        details = adapter.restore(
            restic, chosen, on_bytes=_byte_progress(_dump_size(chosen), on_status)
        )
        if skipped:
            details["safety_snapshot_skipped"] = skipped
        duration = round(time.monotonic() - clock, 3)
    return _database_restored(settings, adapter, chosen, started, duration, details, safety)


def _database_restored(
    settings: Settings,
    adapter: DatabaseAdapter,
    chosen: Snapshot,
    started: datetime,
    duration: float,
    details: dict[str, Any],
    safety: SnapshotRecord | None,
) -> RestoreResult:
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
            safety_snapshot=safety,
        ),
    )


def restore_all_databases(
    settings: Settings,
    snapshot: str = "latest",
    on_status: StatusCallback | None = None,
    lock_wait_seconds: float = 0.0,
    *,
    into_source: bool = False,
    on_safety_snapshot: SafetyCallback | None = None,
) -> list[RestoreResult]:
    """Restores every database of a run (the newest complete one, or the run of a snapshot id).

    Refuses before restoring anything when any database has no restore target or a gate refuses.
    """
    targets = targeting_source(settings) if into_source else settings
    adapters = adapters_for(targets)
    if not adapters:
        raise ConfigError("DATABASE_ADAPTER", "is none: this app has no database to restore")
    for adapter in adapters:
        if adapter.restore_target_label() is None:
            raise ConfigError(
                adapter.restore_setting,
                f"is required: restore-db restores every database of the run and database "
                f"{adapter.database_name} has no restore target (or name one with --database)",
            )
        gates.enforce(gates.database_restore_verdicts(targets, adapter.database_name))
    validate_snapshot_argument(snapshot)
    restic = restic_for(settings)
    restic.require_supported_version()
    every = list_snapshots(settings, restic=restic)
    if snapshot == "latest":
        members = [s for s in latest_complete_run(every, expected_parts(settings))]
        if not members:
            raise ConfigError(
                "SNAPSHOT", no_good_run(every, expected_parts(settings), settings.app_name)
            )
        say_suspicious(every, members[0].run, latest=True)
    else:
        run = resolve_snapshot(settings, restic, snapshot, "database", every).run
        members = [s for s in every if run is not None and s.run == run]
    by_database = {s.database: s for s in members if s.kind == "database"}
    missing = [a.database_name for a in adapters if a.database_name not in by_database]
    if missing:
        raise ConfigError("SNAPSHOT", f"the run has no snapshot of database {', '.join(missing)}")
    return [
        restore_database(
            settings,
            by_database[adapter.database_name].id,
            on_status=on_status,
            lock_wait_seconds=lock_wait_seconds,
            database=adapter.database_name,
            into_source=into_source,
            on_safety_snapshot=on_safety_snapshot,
            snapshots=every,
        )
        for adapter in adapters
    ]


def take_safety_snapshot(
    settings: Settings,
    restic: Restic,
    adapter: DatabaseAdapter,
    on_status: StatusCallback | None = None,
) -> SnapshotRecord:
    """Snapshots the production database as it is now, exactly as a backup would dump it."""
    run = run_timestamp(datetime.now(UTC))
    log.info("taking a safety snapshot of %s before restoring into it", adapter.source_label())
    try:
        adapter.check_source()
        summary = snapshot_database(
            settings,
            restic,
            adapter,
            run,
            PRE_RESTORE_TAG,
            on_status=on_status,
            host=safety_snapshot_host(settings),
        )
        found = {s.id: s for s in restic.snapshots(app_tags(settings, f"run:{run}"))}
    except Interrupted:
        raise
    except KamalBackupError as exc:
        raise OperationFailed(
            f"the safety snapshot of the current database failed, so nothing was restored: {exc}"
        ) from None
    if summary.snapshot_id not in found:
        raise OperationFailed(
            f"the safety snapshot {summary.snapshot_id[:8]} is not in the repository, "
            "so nothing was restored"
        )
    record = SnapshotRecord.from_snapshot(found[summary.snapshot_id])
    log.info("safety snapshot %s saved (tag %s)", record.short_id, PRE_RESTORE_TAG)
    return record


def _lock(
    settings: Settings, operation: str, wait_seconds: float, locked_by_caller: bool
) -> contextlib.AbstractContextManager[None]:
    """The app's operation lock, unless the caller (a drill) already holds it for the whole run."""
    if locked_by_caller:
        return contextlib.nullcontext()
    return operation_lock(settings.state_dir, operation, wait_seconds)


def _recorded(settings: Settings, result: RestoreResult) -> RestoreResult:
    """Keeps the restore in the state directory: evidence shows when a drill last succeeded."""
    state.record_restore(settings.state_dir, result)
    return result


def _dump_size(snapshot: Snapshot) -> int | None:
    return snapshot.summary.total_bytes_processed if snapshot.summary else None


def _byte_progress(total: int | None, on_status: StatusCallback | None) -> ByteCounter | None:
    """Turns streamed byte counts into restore progress against the dump's recorded size."""
    if on_status is None:
        return None
    total = total or 0
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        percent = min(done / total, 1.0) if total else 0.0
        on_status(
            "database", ResticStatus(total_bytes=total, bytes_done=done, percent_done=percent)
        )

    return advance


# A whole run -----------------------------------------------------------------------------------

_RUN = re.compile(r"^\d{8}T\d{6}Z$")


def find_run(
    snapshots: Sequence[Snapshot], argument: str, app_name: str, expected: frozenset[str]
) -> dict[str, Snapshot]:
    """The snapshots of run `argument` ('latest': the newest complete run) by part
    (database:<name>, files)."""
    value = argument.strip()
    complete = complete_runs(snapshots, expected)
    if value == "latest":
        good = good_runs(snapshots, expected)
        if not good:
            raise ConfigError("RUN", no_good_run(snapshots, expected, app_name))
        value = max(good)
    elif not _RUN.match(value):
        raise ConfigError("RUN", f"{argument!r} is not 'latest' or a run such as 20260101T030000Z")
    members = {s.part: s for s in snapshots if s.run == value and s.part and not s.pre_restore}
    if not members:
        raise ConfigError("RUN", f"{value} is not a backup run of app {app_name}")
    if value not in complete:
        raise ConfigError(
            "RUN",
            f"run {value} is not complete (it has only its {', '.join(sorted(members))} "
            "snapshots); restore a snapshot by id with restore-db or restore-files",
        )
    say_suspicious(snapshots, value, latest=argument.strip() == "latest")
    return {part: members[part] for part in sorted(expected, key=lambda p: p == FILES_PART)}


@notified("restore")
def restore_run(
    settings: Settings,
    run: str = "latest",
    *,
    in_place: bool = False,
    files_target: str = DEFAULT_FILES_TARGET,
    on_status: StatusCallback | None = None,
    on_safety_snapshot: SafetyCallback | None = None,
) -> RunRestoreResult:
    """Restores every database and the files of one backup run, into scratch targets or in place.

    Every gate of every part is checked before anything is restored. A failure part-way raises
    an error that says exactly which parts were restored.
    """
    database_settings = targeting_source(settings) if in_place else settings
    for database in settings.database_list:
        gates.enforce(gates.database_restore_verdicts(database_settings, database.name))
    if settings.backup_paths:
        if in_place:
            gates.enforce(gates.in_place_file_restore_verdicts(settings))
        else:
            gates.enforce(gates.file_restore_verdicts(settings, files_target))
    restic = restic_for(settings)
    restic.require_supported_version()
    every = list_snapshots(settings, restic=restic)
    members = find_run(every, run, settings.app_name, expected_parts(settings))
    chosen = next(iter(members.values())).run or run
    log.info("restoring run %s %s", chosen, "in place" if in_place else "into scratch targets")
    parts: list[RestoreResult] = []
    several = len(settings.database_list) > 1

    def label(part: str) -> str:
        return part.replace(":", " ") if several else part.split(":")[0]

    order = list(members)
    current = order[0]
    try:
        for current, snapshot in members.items():
            if current == FILES_PART:
                parts.append(
                    restore_files(
                        settings,
                        snapshot.id,
                        None if in_place else files_target,
                        on_status,
                        in_place=in_place,
                    )
                )
                continue
            parts.append(
                restore_database(
                    settings,
                    snapshot.id,
                    on_status,
                    database=snapshot.database,
                    into_source=in_place,
                    on_safety_snapshot=on_safety_snapshot,
                    snapshots=every,  # the run's listing: no second one per database
                )
            )
    except KamalBackupError as exc:
        rest = [label(part) for part in order[order.index(current) + 1 :]]
        if not parts:
            left = f", so the {', '.join(rest)} were not restored" if rest else ""
            failed = OperationFailed(f"run {chosen}: the {label(current)} part failed{left}: {exc}")
            failed.exit_code = exc.exit_code  # a configuration error stays exit 2
            raise failed from None
        done = "; ".join(
            f"the {p.kind} snapshot {p.snapshot.short_id} was restored into {p.target}"
            for p in parts
        )
        raise OperationFailed(
            f"run {chosen}: {done}, but the {label(current)} part failed and was not restored"
            + (f" (nor the {', '.join(rest)})" if rest else "")
            + f": {exc}"
        ) from None
    return RunRestoreResult(run=chosen, in_place=in_place, parts=parts)


# Files ----------------------------------------------------------------------------------------


@dataclass
class _Item:
    """One path of the snapshot and where it goes; `staged` is set once restic has restored it."""

    source: str
    destination: Path
    staging: Path | None = None
    staged: Path | None = None
    mount: bool = False
    previous: list[str] = field(default_factory=list)


@notified("restore-files")
def restore_files(
    settings: Settings,
    snapshot: str = "latest",
    target: str | None = DEFAULT_FILES_TARGET,
    on_status: StatusCallback | None = None,
    lock_wait_seconds: float = 0.0,
    *,
    paths: Sequence[str] = (),
    in_place: bool = False,
    keep_previous: bool = False,
    locked_by_caller: bool = False,
    snapshots: Sequence[Snapshot] | None = None,
) -> RestoreResult:
    """Restores a file snapshot, or only `paths` of it, under `target` or in place.

    Into a scratch target, files land at target/<original absolute path>. In place (`in_place`,
    or a target that is a backup path), each path comes back at its original location. Either
    way each path is restored by restic into a staging directory beside its destination (same
    filesystem) and swapped in only when every path has been staged, so a failed or killed
    restore leaves the destinations as they were.
    """
    if target is None:  # not given: the default scratch directory, or nothing when in place
        target = "" if in_place else DEFAULT_FILES_TARGET
    text = target.strip()
    if text == DEFAULT_FILES_TARGET and in_place:
        text = ""
    if in_place and text and not gates.is_backup_path(settings, text):
        raise ConfigError(
            "TARGET",
            f"{text} is not a backup path; --in-place puts files back at their original paths, "
            "so give no TARGET (or one of BACKUP_PATHS)",
        )
    in_place = in_place or (bool(text) and gates.is_backup_path(settings, text))
    if in_place:
        gates.enforce(gates.in_place_file_restore_verdicts(settings))
    else:
        gates.enforce(gates.file_restore_verdicts(settings, text))
    validate_snapshot_argument(snapshot)
    selected = [_absolute_selection(path) for path in paths]
    restic = restic_for(settings)
    restic.require_supported_version()
    chosen = resolve_snapshot(settings, restic, snapshot, "files", snapshots)
    sources = _sources(restic, chosen, selected)
    if in_place:
        if text:
            within = resolve_path(Path(text))
            sources = [s for s in sources if resolve_path(Path(s)).is_relative_to(within)]
            if not sources:
                raise ConfigError("TARGET", f"snapshot {chosen.short} holds nothing under {text}")
        items = [_Item(source, resolve_path(Path(source))) for source in sources]
        gates.enforce(
            gates.in_place_file_restore_verdicts(settings, [item.destination for item in items])
        )
    else:
        root = resolve_path(Path(text))
        items = [_Item(source, root / source.lstrip("/")) for source in sources]

    with _lock(settings, "restore-files", lock_wait_seconds, locked_by_caller):
        started = datetime.now(UTC)
        clock = time.monotonic()
        removed = [str(path) for item in items for path in _clear_leftovers(item)]
        log.info(
            "restoring %s of file snapshot %s (%s) %s",
            ", ".join(sources),
            chosen.short,
            chosen.time.isoformat(),
            "in place" if in_place else f"into {root}",
        )
        summaries: list[dict[str, Any]] = []
        try:
            for item in items:
                summaries.append(_stage(restic, chosen, item, on_status))
            stamp = run_timestamp(started)
            _swap_all(items, keep_previous, stamp)
        finally:
            for item in items:
                if item.staging is not None:
                    shutil.rmtree(item.staging, ignore_errors=True)
        duration = round(time.monotonic() - clock, 3)
    log.info("files restored in %.1fs", duration)
    kept = [path for item in items for path in item.previous]
    for path in kept:
        log.info("the previous content is kept at %s", path)
    return _recorded(
        settings,
        RestoreResult(
            kind="files",
            snapshot=SnapshotRecord.from_snapshot(chosen),
            target="in place" if in_place else str(root),
            started_at=started,
            duration_seconds=duration,
            bytes_restored=sum(
                s.get("bytes_restored") or s.get("total_bytes") or 0 for s in summaries
            ),
            details={
                "paths": [str(item.destination) for item in items],
                "in_place": in_place,
                "selected": selected,
                "files_restored": sum(s.get("files_restored") or 0 for s in summaries),
                "previous_kept": kept,
                "leftovers_removed": removed,
            },
        ),
    )


def _absolute_selection(path: str) -> str:
    text = path.strip()
    if not text.startswith("/"):
        raise ConfigError("--path", f"{path!r} must be an absolute path as in the snapshot")
    return re.sub(r"^/+", "/", os.path.normpath(text))


def _sources(restic: Restic, snapshot: Snapshot, selected: list[str]) -> list[str]:
    """The snapshot paths to restore: all of them, or each selected path that is in the snapshot."""
    if not selected:
        return list(snapshot.paths)
    for path in selected:
        inside = any(Path(path).is_relative_to(root) for root in snapshot.paths)
        if not inside or not restic.exists(snapshot.id, path):
            raise ConfigError("--path", f"{path} is not in snapshot {snapshot.short}")
    # A path inside another selected one is restored with it.
    return [
        path
        for path in dict.fromkeys(selected)
        if not any(other != path and Path(path).is_relative_to(other) for other in selected)
    ]


def _short_name(name: str) -> str:
    return name[:100]


def _staging_home(item: _Item) -> tuple[Path, str]:
    """Where the staging directory goes: beside the destination, or inside it for a mount point."""
    if item.mount:
        return item.destination, f".{RESTORE_STAGING}"
    return item.destination.parent, f".{_short_name(item.destination.name)}.{RESTORE_STAGING}"


def _clear_leftovers(item: _Item) -> list[Path]:
    """Removes staging directories of an interrupted restore; reports its kept-aside content."""
    item.mount = is_mount_point(item.destination)
    home, prefix = _staging_home(item)
    removed: list[Path] = []
    if not home.is_dir():
        return removed
    previous = (
        f".{RESTORE_PREVIOUS}"
        if item.mount
        else f".{_short_name(item.destination.name)}.{RESTORE_PREVIOUS}"
    )
    for entry in home.iterdir():
        if entry.name.startswith(prefix) and entry.is_dir() and not entry.is_symlink():
            log.warning("removing %s, left by an interrupted restore", entry)
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        elif entry.name.startswith(previous):
            log.warning(
                "%s holds content an earlier restore set aside (kept with --keep-previous, or "
                "left by an interrupted in-place restore: then %s may be partly restored and "
                "restoring it again completes it); remove it when it is no longer needed",
                entry,
                item.destination,
            )
    return removed


def _stage(
    restic: Restic, snapshot: Snapshot, item: _Item, on_status: StatusCallback | None
) -> dict[str, Any]:
    """restic restores the item into a fresh staging directory on the destination's filesystem."""
    home, prefix = _staging_home(item)
    try:
        home.mkdir(parents=True, exist_ok=True)
        item.staging = Path(tempfile.mkdtemp(prefix=prefix, dir=home))
    except OSError as exc:
        raise OperationFailed(f"cannot write in {home}: {exc.strerror}") from None
    log.info("staging %s in %s", item.source, item.staging)
    summary = restic.restore(
        snapshot.id,
        item.staging,
        on_status=(lambda status: on_status("files", status)) if on_status else None,
        includes=[item.source],
    )
    staged = item.staging / item.source.lstrip("/")
    if not staged.exists() and not staged.is_symlink():
        raise OperationFailed(f"restic did not restore {item.source}")
    item.staged = staged
    return summary


def _swap_all(items: list[_Item], keep_previous: bool, stamp: str) -> None:
    """Swaps every staged item into place; an item that fails to swap is rolled back."""
    for item in items:
        if item.staged is None or item.staging is None:
            raise OperationFailed(f"{item.source} was not staged")
        if item.mount:
            _swap_children(item, item.staging, item.staged, keep_previous, stamp)
        else:
            _swap_whole(item, item.staged, keep_previous, stamp)
        log.info("swapped the restored %s into place", item.destination)


def _aside_path(directory: Path, name: str, stamp: str) -> Path:
    return directory / f".{_short_name(name)}.{RESTORE_PREVIOUS}{stamp}-{os.getpid()}"


def _swap_whole(item: _Item, staged: Path, keep_previous: bool, stamp: str) -> None:
    """Replaces the destination by the staged tree in one atomic exchange (rename as fallback)."""
    destination = item.destination
    if not destination.exists() and not destination.is_symlink():
        os.rename(staged, destination)
        return
    try:
        exchange(staged, destination)
        previous = staged  # the exchange left the old content where the staged tree was
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OperationFailed(f"cannot swap {destination} into place: {exc.strerror}") from None
        previous = _aside_path(destination.parent, destination.name, stamp)
        os.rename(destination, previous)
        try:
            os.rename(staged, destination)
        except BaseException:
            os.rename(previous, destination)
            raise
    if keep_previous:
        kept = _aside_path(destination.parent, destination.name, stamp)
        if previous != kept:
            os.rename(previous, kept)
        item.previous.append(str(kept))
    else:
        _remove(previous)


def _swap_children(
    item: _Item, staging: Path, staged: Path, keep_previous: bool, stamp: str
) -> None:
    """A mount point cannot be renamed: its entries are swapped one by one, rolled back on error."""
    destination = item.destination
    info = staged.lstat()  # before its entries move out, which changes its mtime
    aside = Path(tempfile.mkdtemp(prefix=f".{RESTORE_PREVIOUS}{stamp}-", dir=destination))
    internal = {staging.name, aside.name}
    current = sorted(name for name in os.listdir(destination) if name not in internal)
    restored = sorted(os.listdir(staged))
    moved_aside: list[str] = []
    placed: list[str] = []
    try:
        for name in current:
            os.rename(destination / name, aside / name)
            moved_aside.append(name)
        for name in restored:
            os.rename(staged / name, destination / name)
            placed.append(name)
    except BaseException:
        for name in reversed(placed):
            os.rename(destination / name, staged / name)
        for name in reversed(moved_aside):
            os.rename(aside / name, destination / name)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    item.staging = None
    if keep_previous:
        item.previous.append(str(aside))
    else:
        shutil.rmtree(aside, ignore_errors=True)
    # The mount point itself keeps its identity; give it the snapshot's owner, mode and times.
    with contextlib.suppress(PermissionError):
        os.chown(destination, info.st_uid, info.st_gid)
    os.chmod(destination, info.st_mode & 0o7777)
    os.utime(destination, ns=(info.st_atime_ns, info.st_mtime_ns))


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def is_mount_point(path: Path) -> bool:
    """True for a mount point, including a bind mount from the same filesystem (same st_dev)."""
    if os.path.ismount(path):
        return True
    try:
        table = Path("/proc/self/mountinfo").read_text(errors="surrogateescape")
    except OSError:
        return False
    wanted = str(path)
    for line in table.splitlines():
        fields = line.split(" ")
        if len(fields) > 4 and _MOUNTINFO_ESCAPE.sub(_unescape, fields[4]) == wanted:
            return True
    return False


_MOUNTINFO_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(match: re.Match[str]) -> str:
    return chr(int(match.group(1), 8))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(first: Path, second: Path) -> None:
    """Atomically exchanges two paths (Linux renameat2 RENAME_EXCHANGE); OSError if unsupported."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(second))
