"""What the TUI asks of kamal-backup: the headless services, bound to one set of settings."""

from __future__ import annotations

from pathlib import Path

from kamal_backup import notify, state
from kamal_backup.databases import adapters_for
from kamal_backup.models import (
    BackupRun,
    CheckResult,
    FileEntry,
    GateVerdict,
    RestoreResult,
    Snapshot,
    SnapshotType,
    TargetContents,
)
from kamal_backup.services import gates, restic_for
from kamal_backup.services.backup import StatusCallback, run_backup
from kamal_backup.services.check import run_check
from kamal_backup.services.drill import describe_drill_targets, drill_history, run_drill
from kamal_backup.services.evidence import Evidence, build_evidence, write_evidence
from kamal_backup.services.restore import restore_all_databases, restore_database, restore_files
from kamal_backup.services.snapshots import list_snapshots
from kamal_backup.settings import Settings
from kamal_backup.verification import DrillRecord, DrillSummary


class Backend:
    """Each method is one service call; the app runs the slow ones in thread workers.

    The gate verdicts come straight from `kamal_backup.services.gates`, the functions the restore
    services enforce, so what the drill screen shows is what the restore will do.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Every database's name, source and restore target, for display (none: files only).
        self.adapters = adapters_for(settings)

    # Facts that need no repository --------------------------------------------------------

    def last_backup(self) -> BackupRun | None:
        return state.last_backup(self.settings.state_dir)

    def last_check(self) -> CheckResult | None:
        return state.last_check(self.settings.state_dir)

    def last_restore(self, kind: SnapshotType) -> RestoreResult | None:
        return state.last_restore(self.settings.state_dir, kind)

    def notification_status(self) -> list[notify.ChannelStatus]:
        return notify.channel_status(self.settings)

    def database_verdicts(self) -> list[GateVerdict]:
        """Every database's gate verdicts (restores enabled once), as restore-db enforces them."""
        if not self.adapters:
            return [
                GateVerdict(
                    gate="restore target",
                    variable=None,
                    allowed=False,
                    reason="this app has no database (DATABASE_ADAPTER=none)",
                )
            ]
        verdicts: list[GateVerdict] = []
        for adapter in self.adapters:
            for verdict in gates.database_restore_verdicts(self.settings, adapter.database_name):
                if verdict.gate == "restores enabled" and verdicts:
                    continue
                verdicts.append(verdict)
        return verdicts

    def file_verdicts(self, target: str) -> list[GateVerdict]:
        return gates.file_restore_verdicts(self.settings, target)

    def in_place_verdicts(self, paths: list[str]) -> list[GateVerdict]:
        return gates.in_place_file_restore_verdicts(self.settings, [Path(p) for p in paths])

    def drill_verdicts(
        self, kinds: tuple[SnapshotType, ...], files_target: str
    ) -> list[tuple[str, GateVerdict]]:
        """The verdicts the drill service enforces, by part: what the wizard shows."""
        return gates.drill_verdicts(self.settings, files_target, kinds)

    def drill_targets(
        self, kinds: tuple[SnapshotType, ...], files_target: str
    ) -> list[TargetContents]:
        """What the drill's scratch targets hold now (slow: a thread worker; read-only)."""
        return describe_drill_targets(self.settings, files_target, kinds)

    def last_drill(self) -> DrillRecord | None:
        found = state.drills(self.settings.state_dir)
        return found[0] if found else None

    # Repository work (slow: thread workers only) ------------------------------------------

    def snapshots(self) -> list[Snapshot]:
        return list_snapshots(self.settings)

    def files(self, snapshot_id: str, directory: str) -> list[FileEntry]:
        restic = restic_for(self.settings)
        restic.require_supported_version()
        return restic.ls(snapshot_id, directory)

    def evidence(self) -> Evidence:
        return build_evidence(self.settings)

    def save_evidence(self, document: Evidence, path: Path) -> None:
        write_evidence(document, path)

    def backup(self, on_status: StatusCallback | None) -> BackupRun:
        return run_backup(self.settings, on_status=on_status)

    def check(self) -> CheckResult:
        return run_check(self.settings)

    def restore_databases(
        self, snapshot: str, on_status: StatusCallback | None
    ) -> list[RestoreResult]:
        """Every database of the run (one database: the snapshot itself), as restore-db does."""
        if len(self.adapters) > 1:
            return restore_all_databases(self.settings, snapshot, on_status=on_status)
        return [restore_database(self.settings, snapshot, on_status=on_status)]

    def drill_history(self) -> tuple[DrillRecord | None, list[DrillSummary]]:
        """This machine's drills and the repository's (a laptop sees the container's)."""
        return drill_history(self.settings)

    def drill(
        self,
        kinds: tuple[SnapshotType, ...],
        snapshot: str,
        files_snapshot: str,
        files_target: str,
        on_status: StatusCallback | None,
    ) -> DrillRecord:
        return run_drill(
            self.settings,
            snapshot,
            files_snapshot=files_snapshot,
            files_target=files_target,
            parts=kinds,
            ran_by="tui",
            on_status=on_status,
        )

    def restore_database(self, snapshot: str, on_status: StatusCallback | None) -> RestoreResult:
        return restore_database(self.settings, snapshot, on_status=on_status)

    def restore_files(
        self,
        snapshot: str,
        target: str,
        on_status: StatusCallback | None,
        *,
        paths: list[str] | None = None,
        in_place: bool = False,
    ) -> RestoreResult:
        return restore_files(
            self.settings,
            snapshot,
            target,
            on_status=on_status,
            paths=paths or (),
            in_place=in_place,
        )
