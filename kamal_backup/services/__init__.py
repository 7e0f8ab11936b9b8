"""The operations kamal-backup performs, shared by the CLI, the scheduler and the TUI."""

from __future__ import annotations

from kamal_backup.restic import Restic
from kamal_backup.settings import Settings


def restic_for(settings: Settings) -> Restic:
    return Restic(
        settings.restic_environment(),
        host=settings.host,
        metadata_timeout=settings.kamal_backup_repository_timeout_seconds,
        retry_lock=settings.kamal_backup_retry_lock or None,
    )


def app_tags(settings: Settings, *extra: str) -> list[str]:
    return ["kamal-backup", f"app:{settings.app_name}", *extra]
