"""The adapter interface every database engine implements."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kamal_backup.models import Snapshot
from kamal_backup.restic import Restic
from kamal_backup.settings import Settings


@dataclass(frozen=True)
class DumpCommand:
    """What restic runs with --stdin-from-command: argv and the extra environment it needs."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


class DatabaseAdapter(abc.ABC):
    """One database engine: how to dump it, restore it, and describe its targets."""

    name: ClassVar[str]
    extension: ClassVar[str]
    restore_setting: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def dump_filename(self, run: str) -> str:
        """The flat stdin file name of the dump inside its snapshot."""
        return f"databases-{self.settings.app_name}-{self.name}-{run}.{self.extension}"

    def excluded_paths(self) -> list[str]:
        """Files under BACKUP_PATHS the file snapshot must leave out (they are in the dump)."""
        return []

    @abc.abstractmethod
    def check_source(self) -> None:
        """Raises ConfigError when the source database is not usable for a backup."""

    @abc.abstractmethod
    @contextmanager
    def dump_command(self) -> Iterator[DumpCommand]:
        """Prepares and yields the command whose stdout is the dump; cleans up afterwards."""

    @abc.abstractmethod
    def source_label(self) -> str:
        """The source, redacted, for logs and evidence."""

    @abc.abstractmethod
    def restore_target_label(self) -> str | None:
        """The restore target, redacted; None when no restore target is configured."""

    @abc.abstractmethod
    def restore_target_words(self) -> list[str]:
        """The parts of the restore target the production-like gate inspects."""

    @abc.abstractmethod
    def restore_target_is_source(self) -> bool:
        """True when the restore target is the configured source database."""

    @abc.abstractmethod
    def restore(self, restic: Restic, snapshot: Snapshot) -> dict[str, Any]:
        """Restores the snapshot's dump into the restore target; returns details for the result."""

    @abc.abstractmethod
    def client_versions(self) -> dict[str, str | None]:
        """Versions of the client programs this adapter uses (None where absent)."""


def dump_path(snapshot: Snapshot) -> str:
    """The path of the dump file inside a database snapshot."""
    if len(snapshot.paths) != 1:
        from kamal_backup.errors import OperationFailed

        raise OperationFailed(f"snapshot {snapshot.short} is not a single-file database snapshot")
    return snapshot.paths[0]
