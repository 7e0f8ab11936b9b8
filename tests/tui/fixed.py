"""Fixed data for the SVG snapshots: the real app and gates, with the repository's answers fixed.

Only what reads the repository or the clock is replaced; the gate verdicts, settings and every
widget are the real ones, built through the same `make_app` factory the CLI uses.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from kamal_backup.errors import ResticError
from kamal_backup.models import (
    BackupRun,
    CheckResult,
    FileEntry,
    RestoreResult,
    Snapshot,
    SnapshotRecord,
    SnapshotSummary,
    SnapshotType,
    TargetContents,
)
from kamal_backup.notify import ChannelStatus, DeliveryResult
from kamal_backup.services.evidence import Evidence, build_evidence
from kamal_backup.settings import load_settings
from kamal_backup.verification import (
    DrillPart,
    DrillRecord,
    DrillSummary,
    TableCheck,
    Verification,
)
from tui import KamalBackupApp, make_app
from tui.backend import Backend

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _snapshot(number: int, kind: str, run: datetime, size: int, added: int) -> Snapshot:
    stamp = run.strftime("%Y%m%dT%H%M%SZ")
    start = run + timedelta(seconds=1 if kind == "database" else 5 + number % 4)
    end = start + timedelta(seconds=4 if kind == "database" else 26 + (number % 5) * 3)
    tags = ["kamal-backup", "app:shop", f"type:{kind}", f"run:{stamp}"]
    if kind == "database":
        tags.insert(3, "adapter:postgres")
    snapshot_id = f"{number:02x}" * 32
    return Snapshot(
        id=snapshot_id,
        short_id=snapshot_id[:8],
        time=run + timedelta(seconds=4 if kind == "database" else 31),
        hostname="shop",
        paths=["/shop-db.dump"] if kind == "database" else ["/rails/storage"],
        tags=tags,
        summary=SnapshotSummary(
            total_files_processed=1 if kind == "database" else 1843,
            total_bytes_processed=size,
            data_added=added,
            files_new=0 if kind == "database" else 12,
            files_changed=1 if kind == "database" else 3,
            backup_start=start,
            backup_end=end,
        ),
    )


def fixed_snapshots() -> list[Snapshot]:
    snapshots: list[Snapshot] = []
    number = 0xA1
    for days in range(5):
        run = (NOW - timedelta(days=days)).replace(hour=3, minute=0, second=0)
        snapshots.append(
            _snapshot(number, "database", run, 184_000_000 - days * 900_000, 1_400_000)
        )
        number += 1
        if days != 2:  # the run two days ago was interrupted after its database snapshot
            snapshots.append(_snapshot(number, "files", run, 2_310_000_000, 8_200_000))
        number += 1
    return sorted(snapshots, key=lambda s: s.time, reverse=True)


class FixedBackend(Backend):
    def snapshots(self) -> list[Snapshot]:
        return fixed_snapshots()

    def files(self, snapshot_id: str, directory: str) -> list[FileEntry]:
        if directory == "/rails/storage":
            return [
                FileEntry(name="2b", type="dir", path="/rails/storage/2b"),
                FileEntry(name="9f", type="dir", path="/rails/storage/9f"),
                FileEntry(name="README", type="file", path="/rails/storage/README", size=1200),
            ]
        return []

    def last_backup(self) -> BackupRun:
        latest = fixed_snapshots()
        return BackupRun(
            run="20261126T030000Z",
            status="success",
            started_at=NOW.replace(hour=3, minute=0, second=0),
            finished_at=NOW.replace(hour=3, minute=0, second=48),
            duration_seconds=48.2,
            database_snapshot=SnapshotRecord.from_snapshot(latest[1]),
            files_snapshot=SnapshotRecord.from_snapshot(latest[0]),
        )

    def last_check(self) -> CheckResult:
        return CheckResult(
            status="success",
            checked_at=NOW.replace(hour=3, minute=1, second=2),
            duration_seconds=21.4,
            read_data_subset="5%",
            output="no errors were found",
            exit_code=0,
        )

    def last_restore(self, kind: SnapshotType) -> RestoreResult | None:
        if kind != "database":
            return None
        return RestoreResult(
            kind="database",
            snapshot=SnapshotRecord.from_snapshot(fixed_snapshots()[3]),
            target="postgres://shop:[REDACTED]@127.0.0.1:5432/shop_drill",
            started_at=NOW - timedelta(days=6, hours=2),
            duration_seconds=312.5,
        )

    def notification_status(self) -> list[ChannelStatus]:
        """The real channels of the settings, with fixed last deliveries."""
        results = {
            "healthchecks": (True, "HTTP 200", "backup", "success"),
            "ntfy": (False, "HTTP 503", "check", "failure"),
        }
        status = super().notification_status()
        for entry in status:
            ok, detail, operation, event = results[entry.channel]
            entry.last_delivery = DeliveryResult(
                channel=entry.channel,
                destination=entry.destination,
                event=event,
                operation=operation,
                ok=ok,
                detail=detail,
                at=NOW.replace(hour=3, minute=0, second=49),
            )
        return status

    def evidence(self) -> Evidence:
        # The real evidence of these settings, redacted by the real redactor; only the
        # repository's and the machine's answers are fixed.
        return build_evidence(
            self.settings,
            now=NOW,
            snapshots=fixed_snapshots(),
            drills=self.drill_history(),
            tools={"restic": "0.18.0", "pg_dump": "17.2", "psql": "17.2"},
        )

    def last_drill(self) -> DrillRecord | None:
        return None  # a laptop: no drill of its own; the container's come from the repository

    def drill_history(self) -> tuple[DrillRecord | None, list[DrillSummary]]:
        record = fixed_drill()
        earlier = record.summary().model_copy(
            update={"id": "20261119T031000Z-0b1c2d", "started_at": NOW - timedelta(days=7)}
        )
        return record, [record.summary(), earlier]

    def drill_targets(
        self, kinds: tuple[SnapshotType, ...], files_target: str
    ) -> list[TargetContents]:
        """What the scratch targets hold, fixed (the real answer needs the scratch server)."""
        found = []
        if "database" in kinds and self.settings.restore_database_url is not None:
            found.append(
                TargetContents(
                    part="database",
                    target="shop_drill",
                    state="holds",
                    summary="shop_drill has 12 tables; they will be dropped",
                )
            )
        if "files" in kinds:
            found.append(
                TargetContents(
                    part="files",
                    target=files_target,
                    state="holds",
                    summary=f"{files_target} holds 57 files (3.2 MiB); they will be replaced",
                )
            )
        return found

    def drill(
        self,
        kinds: tuple[SnapshotType, ...],
        snapshot: str,
        files_snapshot: str,
        files_target: str,
        on_status: Any,
    ) -> DrillRecord:
        return fixed_drill(self.settings.restore_database_url is not None)


class TaggedRuns(FixedBackend):
    """The fixed runs with extra tags on some: by position, the newest run first."""

    extra: ClassVar[dict[int, list[str]]] = {}

    def snapshots(self) -> list[Snapshot]:
        snapshots = fixed_snapshots()
        runs = sorted({s.run for s in snapshots if s.run}, reverse=True)
        for snapshot in snapshots:
            if snapshot.run:
                snapshot.tags += self.extra.get(runs.index(snapshot.run), [])
        return snapshots


class FailingListing(FixedBackend):
    """A repository whose error text carries credentials (as restic's sometimes does)."""

    def snapshots(self) -> list[Snapshot]:
        raise ResticError(
            "listing snapshots: Fatal: unable to open s3:https://AKIAEXAMPLE:"
            "never-shown-secret-key@s3.example.com/shop: 403 Forbidden",
            returncode=1,
        )


def fixed_drill(with_database: bool = True) -> DrillRecord:
    started = NOW - timedelta(hours=8, minutes=50)
    snapshots = fixed_snapshots()
    verification = Verification(
        status="verified",
        method="checksum",
        consistency="counted in the session that exported the snapshot pg_dump dumped",
        tables=[
            TableCheck(table=name, rows_expected=rows, rows_restored=rows, verdict="match")
            for name, rows in (
                ("public.users", 18_234),
                ("public.orders", 412_907),
                ("billing.invoices", 96_120),
            )
        ],
        files_expected=1843,
        files_restored=1843,
        bytes_expected=2_310_000_000,
        bytes_restored=2_310_000_000,
    )
    return DrillRecord(
        id="20261126T031000Z-4f9a2e",
        status="passed",
        ran_by="scheduler",
        started_at=started,
        finished_at=started + timedelta(minutes=6, seconds=20),
        run="20261126T030000Z",
        parts=[
            DrillPart(
                kind="database",
                snapshot_id=snapshots[1].id,
                snapshot_time=snapshots[1].time,
                run="20261126T030000Z",
                target="postgres://drill:[REDACTED]@127.0.0.1:5432/shop_drill",
                duration_seconds=212.4,
                bytes_restored=184_000_000,
            ),
            DrillPart(
                kind="files",
                snapshot_id=snapshots[0].id,
                snapshot_time=snapshots[0].time,
                run="20261126T030000Z",
                target="/restore/files",
                duration_seconds=131.0,
                bytes_restored=2_310_000_000,
            ),
        ][: 2 if with_database else 1],
        database_target="postgres://drill:[REDACTED]@127.0.0.1:5432/shop_drill",
        files_target="/restore/files",
        rto_seconds=371.2,
        rpo_seconds=3_600.0,
        verification=verification,
    )


def fixed_env(state: Path, **extra: str) -> dict[str, str]:
    return {
        "APP_NAME": "shop",
        "DATABASE_ADAPTER": "postgres",
        "DATABASE_URL": "postgres://shop:s3cret-db-pass@db.internal:5432/shop_production",
        "BACKUP_PATHS": "/rails/storage",
        "RESTIC_REPOSITORY": "s3:https://s3.eu-central-1.amazonaws.com/acme-backups/shop",
        "RESTIC_PASSWORD": "never-shown-on-screen-4471",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "never-shown-secret-key",
        "KAMAL_BACKUP_STATE_DIR": str(state),
        "KAMAL_BACKUP_HEALTHCHECK_URL": "https://hc-ping.com/3c1e9a4f-never-shown-uuid",
        "KAMAL_BACKUP_NTFY_URL": "https://ntfy.sh/never-shown-topic-8812",
        "KAMAL_BACKUP_NTFY_TOKEN": "tk_never-shown-token-5530",
        **extra,
    }


def fixed_app(
    state: Path, backend: type[FixedBackend] = FixedBackend, **extra: str
) -> KamalBackupApp:
    settings = load_settings(environ=fixed_env(state, **extra))
    return make_app(settings, backend=backend(settings), clock=lambda: NOW, timezone=UTC)
