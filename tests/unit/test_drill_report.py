"""Verification verdicts and the reviewer's reports: names are data, never markup."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kamal_backup.services.evidence import build_evidence
from kamal_backup.services.report import html_report, markdown_escape, markdown_report
from kamal_backup.settings import Settings, load_settings
from kamal_backup.verification import (
    DatabaseFigures,
    DrillPart,
    DrillRecord,
    FilesFigures,
    Manifest,
    TableFigures,
    compare_files,
    verify,
)

NASTY_TABLE = "<script>alert(1)</script>|*_[x](y)"
NASTY_PATH = "/rails/storage/<b>|`rm -rf`|[a](b).txt"


def figures(*tables: TableFigures) -> DatabaseFigures:
    return DatabaseFigures(
        adapter="postgres", method="checksum", consistency="c", tables=list(tables)
    )


def manifest(database: DatabaseFigures | None, files: FilesFigures | None) -> Manifest:
    return Manifest(
        app_name="shop",
        run="20261126T030000Z",
        created_at=datetime.now(UTC),
        database=database,
        files=files,
    )


def failed_drill(**fields: Any) -> DrillRecord:
    """A failed drill of the 03:00 run, started at 03:10 by op@host, with `fields` on top."""
    defaults: dict[str, Any] = {
        "id": "20261126T031000Z-abcdef",
        "status": "failed",
        "ran_by": "op@host",
        "started_at": datetime(2026, 11, 26, 3, 10, tzinfo=UTC),
        "run": "20261126T030000Z",
    }
    return DrillRecord(**{**defaults, **fields})


def test_verification_reports_every_kind_of_difference() -> None:
    backed_up = figures(
        TableFigures(table="a", rows=3, checksum="10"),
        TableFigures(table="b", rows=2, checksum="20"),
        TableFigures(table="gone", rows=1, checksum="1"),
        TableFigures(table="myisam", rows=5, checksum="5", comparable=False, note="counted"),
    )
    restored = figures(
        TableFigures(table="a", rows=3, checksum="10"),
        TableFigures(table="b", rows=2, checksum="21"),
        TableFigures(table="myisam", rows=4, checksum="4"),
        TableFigures(table="extra", rows=1, checksum="1"),
    )
    files = FilesFigures(files=2, bytes=6, entries={"/s/x": "3:aa", "/s/y": "3:bb"})
    found = FilesFigures(files=2, bytes=7, entries={"/s/x": "4:ab", "/s/z": "3:bb"})
    result = verify(
        (manifest(backed_up, files), lambda method: restored),
        (manifest(backed_up, files), lambda: found),
    )
    verdicts = {check.table: (check.verdict, check.detail) for check in result.tables}
    assert verdicts == {
        "a": ("match", None),
        "b": ("mismatch", "same row count, different content"),
        "gone": ("mismatch", "missing from the restored database"),
        "myisam": ("not comparable", "counted"),
        "extra": ("mismatch", "not in the backed-up database"),
    }
    assert result.status == "mismatch"
    assert {(m.path, m.detail) for m in result.file_mismatches} == {
        ("/s/x", "4 bytes restored, 3 backed up"),
        ("/s/y", "missing"),
        ("/s/z", "not backed up"),
    }


def test_counts_only_manifests_ignore_checksums_and_no_manifest_is_not_a_failure() -> None:
    counted = figures(TableFigures(table="a", rows=3))
    counted.method = "count"
    same_rows = figures(TableFigures(table="a", rows=3, checksum="999"))
    result = verify((manifest(counted, None), lambda method: same_rows), None)
    assert result.status == "verified" and result.method == "count"
    unverified = verify(
        (None, lambda method: same_rows), (None, lambda: FilesFigures(files=0, bytes=0))
    )
    assert unverified.status == "not verified" and unverified.reason == "no manifest"
    assert compare_files(FilesFigures(files=0, bytes=0), FilesFigures(files=0, bytes=0)) == []


def test_reports_escape_every_name_path_and_error(tmp_path: Path) -> None:
    settings = load_settings(
        environ={
            "APP_NAME": "shop",
            "DATABASE_ADAPTER": "sqlite",
            "SQLITE_DATABASE_PATH": str(tmp_path / "db.sqlite3"),
            "RESTIC_REPOSITORY": str(tmp_path / "repo"),
            "RESTIC_PASSWORD": "example-password",
            "KAMAL_BACKUP_STATE_DIR": str(tmp_path / "state"),
            "PATH": "/nonexistent",
        }
    )
    record = failed_drill(
        ran_by="<img src=x>@host",
        error="psql: ERROR: <b>bad</b> | *oops*",
    )
    record.verification = verify(
        (
            manifest(figures(TableFigures(table=NASTY_TABLE, rows=1, checksum="1")), None),
            lambda method: figures(TableFigures(table=NASTY_TABLE, rows=2, checksum="2")),
        ),
        None,
    )
    evidence = build_evidence(
        settings, snapshots=[], drills=(record, [record.summary()]), tools={"restic": "0.18.0"}
    )
    html = html_report(evidence)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x&gt;@host" in html
    markdown = markdown_report(evidence)
    assert re.search(r"(?<!\\)<", markdown) is None  # every < is escaped: no raw HTML
    assert markdown_escape(NASTY_TABLE) in markdown
    # An escaped cell can never split a table row or open a link.
    assert "|" not in markdown_escape(NASTY_PATH).replace("\\|", "")
    assert "](" not in markdown_escape(NASTY_PATH).replace("\\]\\(", "")
    assert "| 2026-11-26 03:10 UTC | failed | 20261126T030000Z |" in markdown


def test_the_cli_prints_names_as_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    from kamal_backup.cli import render_drill

    record = failed_drill(
        database_targets={"primary": "/restore/[bold]db[/x].sqlite3"},
        parts=[
            DrillPart(
                kind="database",
                database="primary",
                snapshot_id="ab" * 32,
                snapshot_time=datetime(2026, 11, 26, 3, 0, tzinfo=UTC),
                run="20261126T030000Z",
                target="/restore/[bold]db[/x].sqlite3",
            )
        ],
    )
    record.verification = verify(
        (
            manifest(figures(TableFigures(table="[red]t[/]", rows=1, checksum="1")), None),
            lambda method: figures(TableFigures(table="[red]t[/]", rows=2, checksum="2")),
        ),
        None,
    )
    render_drill(record)
    printed = capsys.readouterr().out
    assert "[red]t[/]" in printed
    assert "restored into /restore/[bold]db[/x].sqlite3" in printed
    assert "\\[" not in printed  # no escaping backslash shows either


def test_the_manifest_leaves_out_what_restic_excludes(tmp_path: Path) -> None:
    from kamal_backup.services import RESTORE_WORK_PATTERNS
    from kamal_backup.verification import source_files

    root = tmp_path / "storage"
    for name in (
        "keep.txt",
        "tmp/cache.bin",
        "a/b.log",
        "a/.x.kamal-backup-staging-1/f",
        "db.sqlite3",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    found = source_files(
        [root], [str(root / "db.sqlite3")], ["tmp", "*.log", *RESTORE_WORK_PATTERNS]
    )
    assert sorted(found.entries) == [str(root / "keep.txt")]
    assert found.files == 1 and found.bytes == len("keep.txt")


def test_a_failing_scheduled_drill_never_stops_the_backups(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    from kamal_backup.errors import Interrupted, OperationFailed
    from kamal_backup.models import BackupRun
    from kamal_backup.scheduler import run_schedule

    settings = load_settings(
        environ={
            "APP_NAME": "shop",
            "DATABASE_ADAPTER": "sqlite",
            "SQLITE_DATABASE_PATH": str(tmp_path / "db.sqlite3"),
            "RESTIC_REPOSITORY": str(tmp_path / "repo"),
            "RESTIC_PASSWORD": "example-password",
            "KAMAL_BACKUP_STATE_DIR": str(tmp_path / "state"),
            "KAMAL_BACKUP_DRILL_SCHEDULE_SECONDS": "60",
            "BACKUP_SCHEDULE_SECONDS": "1",
        }
    )
    backups: list[int] = []
    drills: list[int] = []

    class Stop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            return self.is_set()  # no real waiting between runs

    def backup(_: Settings) -> BackupRun:
        backups.append(1)
        return BackupRun(run="x", status="success", started_at=datetime.now(UTC))

    def drill(_: Settings) -> DrillRecord:
        drills.append(1)
        if len(drills) == 1:
            raise OperationFailed("the scratch database is unreachable")
        if len(drills) == 2:
            raise Interrupted()  # its restic killed from outside, not a shutdown
        raise RuntimeError("an unexpected bug")

    caplog.set_level("INFO", logger="kamal_backup")
    failures = run_schedule(settings, Stop(), backup=backup, drill=drill, max_runs=3)
    assert "a restore drill after a backup once the last is 60s old" in caplog.text
    assert failures == 0  # drills are not backups: their failures are logged, never counted
    assert len(backups) == 3 and len(drills) == 3  # none recorded, so each run's drill was due

    # A stop that comes while the backup runs starts no drill after it.
    stop = Stop()

    def stopped_backup(settings: Settings) -> BackupRun:
        stop.set()
        return backup(settings)

    assert run_schedule(settings, stop, backup=stopped_backup, drill=drill) == 0
    assert len(backups) == 4 and len(drills) == 3


def test_a_manifest_from_before_several_databases_reads_as_primary() -> None:
    old = {
        "version": 1,
        "app_name": "shop",
        "run": "20261126T030000Z",
        "created_at": "2026-11-26T03:00:05Z",
        "database": figures(TableFigures(table="a", rows=3, checksum="10")).model_dump(),
        "files": None,
    }
    read = Manifest.model_validate_json(json.dumps(old))
    assert list(read.databases) == ["primary"]
    assert read.databases["primary"].tables[0].table == "a"
    assert Manifest.model_validate({**old, "database": None}).databases == {}


def test_verification_names_the_database_of_a_mismatch_when_there_are_several() -> None:
    one = figures(TableFigures(table="t", rows=1, checksum="1"))
    two = figures(TableFigures(table="t", rows=1, checksum="2"))
    stored = Manifest(
        app_name="shop",
        run="20261126T030000Z",
        created_at=datetime.now(UTC),
        databases={"primary": one, "cache": one},
    )
    result = verify(
        {"primary": (stored, lambda method: one), "cache": (stored, lambda method: two)}, None
    )
    assert result.status == "mismatch"
    assert result.mismatched_tables == ["cache.t"]
    assert [(c.database, c.verdict) for c in result.tables] == [
        ("primary", "match"),
        ("cache", "mismatch"),
    ]
    # A database the manifest does not know is not verified, naming it.
    partial = verify({"primary": (stored, lambda m: one), "queue": (stored, lambda m: one)}, None)
    assert partial.status == "not verified"
    assert partial.reason == "no manifest for the database queue"


def test_a_database_whose_restore_failed_is_not_said_restored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A drill whose database restore failed (a wrong password, say) has no part for it."""
    from kamal_backup.cli import render_drill

    record = failed_drill(
        database_targets={"primary": "mysql://root@db/shop_drill"},
        error="mysql import failed: ERROR 1045 (28000): Access denied",
    )
    render_drill(record)
    printed = capsys.readouterr().out
    assert "restored into" not in printed
    assert "database primary not restored (target mysql://root@db/shop_drill)" in printed
    assert "drill FAILED" in printed
