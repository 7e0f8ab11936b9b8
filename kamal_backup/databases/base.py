"""The adapter interface every database engine implements."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kamal_backup.databases.urls import DatabaseUrl, parse_database_url
from kamal_backup.errors import ConfigError, OperationFailed
from kamal_backup.models import Snapshot
from kamal_backup.restic import Restic
from kamal_backup.settings import Settings, secret
from kamal_backup.verification import DatabaseFigures, FigureMethod

ByteCounter = Callable[[int], None]


@dataclass(frozen=True)
class DumpCommand:
    """What restic runs with --stdin-from-command: argv and the extra environment it needs."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    # Blocks until the manifest figures, taken from the same view as the dump, are ready.
    figures: Callable[[], DatabaseFigures] | None = None


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

    def source_missing(self) -> bool:
        """True when the source plainly does not exist (there is nothing a safety snapshot keeps)."""
        return False

    @abc.abstractmethod
    def check_source(self) -> None:
        """Raises ConfigError when the source database is not usable for a backup."""

    @abc.abstractmethod
    @contextmanager
    def dump_command(self, figures: bool = True) -> Iterator[DumpCommand]:
        """Prepares and yields the command whose stdout is the dump; cleans up afterwards.

        With `figures`, the command also carries the manifest figures of the same view.
        """

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
    def restore(
        self, restic: Restic, snapshot: Snapshot, on_bytes: ByteCounter | None = None
    ) -> dict[str, Any]:
        """Restores the snapshot's dump into the restore target; returns details for the result.

        on_bytes is called with the size of each piece of the dump as it streams in.
        """

    @abc.abstractmethod
    def restored_figures(self, method: FigureMethod) -> DatabaseFigures:
        """The manifest figures of the restore target, computed exactly as at backup time."""

    def figure_method(self) -> FigureMethod:
        return "checksum" if self.settings.kamal_backup_manifest_checksums else "count"

    @abc.abstractmethod
    def client_versions(self) -> dict[str, str | None]:
        """Versions of the client programs this adapter uses (None where absent)."""


def dump_path(snapshot: Snapshot) -> str:
    """The path of the dump file inside a database snapshot."""
    if len(snapshot.paths) != 1:
        raise OperationFailed(f"snapshot {snapshot.short} is not a single-file database snapshot")
    return snapshot.paths[0]


class ServerAdapter(DatabaseAdapter):
    """A database server reached through DATABASE_URL and restored into RESTORE_DATABASE_URL."""

    restore_setting = "RESTORE_DATABASE_URL"
    default_port: ClassVar[int]
    secret_field: ClassVar[str]  # e.g. "pgpassword" (PGPASSWORD)
    restore_secret_field: ClassVar[str]  # e.g. "restore_pgpassword" (RESTORE_PGPASSWORD)

    @property
    def source(self) -> DatabaseUrl:
        raw = secret(self.settings.database_url)
        if raw is None:
            raise ConfigError("DATABASE_URL", f"is required when DATABASE_ADAPTER={self.name}")
        return parse_database_url("DATABASE_URL", raw)

    @property
    def target(self) -> DatabaseUrl | None:
        raw = secret(self.settings.restore_database_url)
        return parse_database_url("RESTORE_DATABASE_URL", raw) if raw else None

    def require_target(self) -> DatabaseUrl:
        target = self.target
        if target is None:
            raise ConfigError(
                self.restore_setting,
                f"is required for restore-db with DATABASE_ADAPTER={self.name}",
            )
        return target

    def source_password(self) -> str | None:
        # As with libpq, a password written in the URL wins over the environment variable.
        return self.source.password or secret(getattr(self.settings, self.secret_field))

    def target_password(self, target: DatabaseUrl) -> str | None:
        return (
            target.password
            or secret(getattr(self.settings, self.restore_secret_field))
            or self.source_password()
        )

    def check_source(self) -> None:
        self.source  # noqa: B018 (parsing it raises ConfigError for a bad URL)

    def source_label(self) -> str:
        return self.source.redacted()

    def restore_target_label(self) -> str | None:
        target = self.target
        return target.redacted() if target else None

    def restore_target_words(self) -> list[str]:
        target = self.target
        return [target.database, target.host or "localhost"] if target else []

    def restore_target_is_source(self) -> bool:
        target = self.target
        return target is not None and target.identity(self.default_port) == self.source.identity(
            self.default_port
        )
