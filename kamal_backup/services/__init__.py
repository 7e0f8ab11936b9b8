"""The operations kamal-backup performs, shared by the CLI, the scheduler and the TUI."""

from __future__ import annotations

from kamal_backup.restic import Restic
from kamal_backup.settings import Settings

# Name parts of what a file restore writes beside (or, in a mount point, inside) a backup path:
# the staging tree and the replaced content. Backups leave both out. A restore always starts
# these names with a dot, and so do the patterns: restic then rejects nearly every file on its
# name's first byte (a leading `*` cost it about 1 s of CPU per 100,000 files).
RESTORE_STAGING = "kamal-backup-staging-"
RESTORE_PREVIOUS = "kamal-backup-previous-"
RESTORE_WORK_PATTERNS = (f".*{RESTORE_STAGING}*", f".*{RESTORE_PREVIOUS}*")


def restic_for(settings: Settings) -> Restic:
    return Restic(
        settings.restic_environment(),
        host=settings.host,
        metadata_timeout=settings.kamal_backup_repository_timeout_seconds,
        retry_lock=settings.kamal_backup_retry_lock or None,
        location=settings.repository_display,
    )


def app_tags(settings: Settings, *extra: str) -> list[str]:
    return ["kamal-backup", f"app:{settings.app_name}", *extra]
