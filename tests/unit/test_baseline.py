"""The comparison with the last good run (issue 15): thresholds, growth, strings of suspicious
runs, per-database thresholds, kept-good runs and the settings that set them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kamal_backup.errors import ConfigError
from kamal_backup.models import Snapshot, SnapshotSummary
from kamal_backup.services.baseline import (
    DatabaseSide,
    RunSide,
    compare_runs,
    kept_good_runs,
    last_good_run,
    run_side,
)
from kamal_backup.services.snapshots import latest_complete
from kamal_backup.settings import load_settings
from kamal_backup.verification import DatabaseFigures, Manifest, TableFigures

EXPECTED = frozenset({"database:primary", "files"})


def tables(**rows: int) -> tuple[TableFigures, ...]:
    return tuple(TableFigures(table=name, rows=count) for name, count in rows.items())


def side(run: str = "20260101T030000Z", **databases: DatabaseSide) -> RunSide:
    return RunSide(run=run, databases=databases, files=None)


def half(_: str | None) -> float:
    return 0.5


def test_an_emptied_table_is_a_finding_whatever_the_totals() -> None:
    before = side(primary=DatabaseSide(1000, tables(users=10_412, events=900_000)))
    after = side(primary=DatabaseSide(1000, tables(users=0, events=900_000)))
    assert compare_runs(before, after, half) == ["table users: 10,412 → 0 rows"]


def test_totals_fall_beyond_the_threshold_and_not_below_it() -> None:
    before = side(primary=DatabaseSide(10_000, tables(users=1000)))
    fell = side(primary=DatabaseSide(4_000, tables(users=400)))
    assert compare_runs(before, fell, half) == [
        "rows: 1,000 → 400 (-60%)",
        "dump: 9.8 KiB → 3.9 KiB (-60%)",
    ]
    kept = side(primary=DatabaseSide(6_000, tables(users=600)))
    assert compare_runs(before, kept, half) == []  # a 40% fall is within 50%
    assert compare_runs(before, kept, lambda _: 0.3) != []


def test_growth_is_never_suspicious() -> None:
    before = side(primary=DatabaseSide(100, tables(users=1)))
    after = side(primary=DatabaseSide(10**9, tables(users=10**6, new_table=5)))
    assert compare_runs(before, after, lambda _: 0.0) == []
    files_before = RunSide(run="r", files=(10, 100))
    files_after = RunSide(run="r2", files=(10_000, 10**9))
    assert compare_runs(files_before, files_after, lambda _: 0.0) == []


def test_no_tables_where_the_last_run_had_some() -> None:
    before = side(primary=DatabaseSide(50_000, tables(users=3, posts=2)))
    after = side(primary=DatabaseSide(300, ()))
    found = compare_runs(before, after, half)
    assert found[0] == "no tables (run 20260101T030000Z had 2, 5 rows)"
    assert not any(line.startswith("table ") for line in found)  # not one line per table


def test_each_database_has_its_own_threshold_and_100_percent_turns_it_off() -> None:
    before = side(
        primary=DatabaseSide(1000, tables(users=1000)), queue=DatabaseSide(1000, tables(jobs=500))
    )
    after = side(
        primary=DatabaseSide(1000, tables(users=1000)), queue=DatabaseSide(10, tables(jobs=0))
    )
    limits = {"primary": 0.5, "queue": 1.0, None: 0.5}
    assert compare_runs(before, after, lambda name: limits[name]) == []
    limits["queue"] = 0.9
    assert compare_runs(before, after, lambda name: limits[name]) == [
        "database queue: table jobs: 500 → 0 rows",
        "database queue: rows: 500 → 0 (-100%)",
        "database queue: dump: 1000 B → 10 B (-99%)",
    ]


def test_a_database_missing_on_one_side_or_new_files_are_not_compared() -> None:
    before = side(primary=DatabaseSide(1000, tables(users=10)))
    after = side(primary=DatabaseSide(1000, tables(users=10)), cache=DatabaseSide(0, ()))
    assert compare_runs(before, after, half) == []
    assert compare_runs(after, before, half) == []
    assert compare_runs(RunSide("a", files=None), RunSide("b", files=(0, 0)), half) == []


def test_files_the_last_run_had_and_this_run_has_none_of_are_a_finding() -> None:
    # BACKUP_PATHS unset or misspelled: the run has no file snapshot at all.
    assert compare_runs(RunSide("a", files=(3, 100_000)), RunSide("b", files=None), half) == [
        "files: 3 (97.7 KiB) → no file snapshot (this run backed up no files: is BACKUP_PATHS set?)"
    ]
    # Not when there were none before, nor when the files' threshold compares nothing.
    assert compare_runs(RunSide("a", files=(0, 0)), RunSide("b", files=None), half) == []
    never = lambda name: 1.0  # noqa: E731
    assert compare_runs(RunSide("a", files=(3, 10)), RunSide("b", files=None), never) == []


def snapshot(run: str, kind: str, *tags: str, size: int = 1000, files: int = 1) -> Snapshot:
    moment = datetime.strptime(run, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    extra = ["database:primary"] if kind == "database" else []
    return Snapshot(
        id=f"{run}-{kind}",
        time=moment + timedelta(seconds=1),
        tags=["kamal-backup", "app:shop", f"type:{kind}", f"run:{run}", *extra, *tags],
        summary=SnapshotSummary(total_bytes_processed=size, total_files_processed=files),
    )


def run(name: str, *tags: str) -> list[Snapshot]:
    return [snapshot(name, "database", *tags), snapshot(name, "files", *tags)]


def test_a_string_of_suspicious_runs_is_compared_with_the_last_good_one() -> None:
    good = "20260101T030000Z"
    listed = [*run(good)]
    listed += run("20260102T030000Z", "suspicious")
    listed += run("20260103T030000Z", "suspicious")
    listed += [snapshot("20260104T030000Z", "database")]  # incomplete: not good either
    assert last_good_run(listed, EXPECTED) == good
    assert last_good_run(listed, EXPECTED, before=good) is None
    latest = latest_complete(listed, "database", EXPECTED)
    assert latest is not None and latest.run == good
    # An accepted run (its tag removed) is good again.
    listed += run("20260105T030000Z", "accepted-by:ann@laptop")
    assert last_good_run(listed, EXPECTED) == "20260105T030000Z"


def test_run_side_reads_dump_sizes_and_files_from_the_listing_and_rows_from_the_manifest() -> None:
    name = "20260101T030000Z"
    manifest = Manifest(
        app_name="shop",
        run=name,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        databases={
            "primary": DatabaseFigures(
                adapter="sqlite", method="count", consistency="x", tables=list(tables(users=7))
            )
        },
    )
    found = run_side(
        name, [snapshot(name, "database", size=4096), snapshot(name, "files", files=3)], manifest
    )
    assert found.databases["primary"] == DatabaseSide(4096, tables(users=7))
    assert found.files == (3, 1000)
    assert run_side(name, run(name), None).databases["primary"].tables is None


def test_kept_good_runs_are_the_newest_good_ones_and_the_newest_drilled_ones() -> None:
    names = [f"202601{day:02d}T030000Z" for day in range(1, 8)]
    listed = [item for name in names for item in run(name)]
    listed += run("20260108T030000Z", "suspicious")
    drill = Snapshot(
        id="drill",
        time=datetime(2026, 1, 9, tzinfo=UTC),
        tags=["type:drill", "status:passed", "verification:verified", f"drilled-run:{names[0]}"],
    )
    assert kept_good_runs(listed, EXPECTED, 2) == [names[-1], names[-2]]
    assert kept_good_runs([*listed, drill], EXPECTED, 2) == [names[-1], names[-2], names[0]]
    assert kept_good_runs(listed, EXPECTED, 0) == []


def environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "APP_NAME": "shop",
        "DATABASE_ADAPTER": "sqlite",
        "SQLITE_DATABASE_PATH": str(tmp_path / "db.sqlite3"),
        "RESTIC_REPOSITORY": str(tmp_path / "repo"),
        "RESTIC_PASSWORD": "pw-for-tests-123",
        "HOME": str(tmp_path),
        **extra,
    }


def test_max_shrink_settings_percent_fraction_and_per_database(tmp_path: Path) -> None:
    settings = load_settings(environ=environ(tmp_path))
    assert settings.max_shrink() == 0.5 and settings.kamal_backup_keep_good == 3
    settings = load_settings(
        environ=environ(
            tmp_path,
            KAMAL_BACKUP_MAX_SHRINK="0.8",
            DATABASES='{"queue": {"adapter": "sqlite", "path": "/data/q.sqlite3", "max_shrink": "100%"}}',
        )
    )
    assert settings.max_shrink("primary") == 0.8 and settings.max_shrink(None) == 0.8
    assert settings.max_shrink("queue") == 1.0


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"KAMAL_BACKUP_MAX_SHRINK": "150%"}, "KAMAL_BACKUP_MAX_SHRINK"),
        ({"KAMAL_BACKUP_MAX_SHRINK": "half"}, "KAMAL_BACKUP_MAX_SHRINK"),
        ({"KAMAL_BACKUP_MAX_SHRINK": "50"}, "KAMAL_BACKUP_MAX_SHRINK"),
        ({"KAMAL_BACKUP_KEEP_GOOD": "-1"}, "KAMAL_BACKUP_KEEP_GOOD"),
        (
            {"DATABASES": '{"q": {"adapter": "sqlite", "path": "/q.db", "max_shrink": "-5%"}}'},
            "DATABASES",
        ),
    ],
)
def test_bad_thresholds_are_one_line_errors_naming_the_setting(
    tmp_path: Path, extra: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ(tmp_path, **extra))
    assert str(caught.value).startswith(named) and "\n" not in str(caught.value)


def test_a_run_never_takes_the_name_of_the_last_one(tmp_path: Path) -> None:
    from kamal_backup import state
    from kamal_backup.models import BackupRun
    from kamal_backup.services.backup import _start_after_the_last_run, run_timestamp

    settings = load_settings(environ=environ(tmp_path))
    first = datetime(2026, 11, 28, 3, 0, 0, 250_000, tzinfo=UTC)
    state.record_backup(
        settings.state_dir, BackupRun(run=run_timestamp(first), status="success", started_at=first)
    )
    clock = iter([first + timedelta(milliseconds=500), first + timedelta(seconds=1)])
    started = _start_after_the_last_run(settings, lambda: next(clock))
    assert run_timestamp(started) == "20261128T030001Z"
    # A start in another second is taken as it is.
    later = first + timedelta(seconds=5)
    assert _start_after_the_last_run(settings, lambda: later) == later
