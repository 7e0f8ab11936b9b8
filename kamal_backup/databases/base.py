"""The adapter interface every database engine implements."""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kamal_backup.databases.urls import DatabaseUrl, parse_database_url
from kamal_backup.errors import ConfigError, OperationFailed
from kamal_backup.models import Snapshot
from kamal_backup.restic import Restic
from kamal_backup.settings import Database, Settings, secret
from kamal_backup.verification import DatabaseFigures, FigureMethod

ByteCounter = Callable[[int], None]

_PRODUCTION_WORD = re.compile(r"(?:^|[/_.:-])(prod|live)(?:$|[/_.:-])", re.IGNORECASE)


def production_like_reason(words: list[str], *, is_source: bool) -> str | None:
    """Why a target looks like production, or None."""
    if is_source:
        return "it is the configured backup source"
    for word in words:
        if "production" in word.lower():
            return f"{word!r} contains 'production'"
        match = _PRODUCTION_WORD.search(word)
        if match:
            return f"{word!r} contains the word '{match.group(1)}'"
    return None


@dataclass(frozen=True)
class DumpCommand:
    """What restic runs with --stdin-from-command: argv and the extra environment it needs."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    # Blocks until the manifest figures, taken from the same view as the dump, are ready.
    figures: Callable[[], DatabaseFigures] | None = None


@dataclass(frozen=True)
class TargetTables:
    """What a restore target holds now: its name (a database name or a path, never a
    credential) and its user tables, None when it does not exist yet."""

    name: str
    tables: int | None


class DatabaseAdapter(abc.ABC):
    """One database engine: how to dump it, restore it, and describe its targets.

    Each engine declares, in its class: its name and aliases, the URL schemes it accepts (none
    for a file such as SQLite), its secret variables (source, restore target), the client
    programs it runs, and the dump's file extension. The registry reads these declarations.
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    url_schemes: ClassVar[tuple[str, ...]] = ()
    secret_variables: ClassVar[tuple[str, ...]] = ()
    tools: ClassVar[tuple[str, ...]] = ()
    extension: ClassVar[str]
    # Whether restore() reads `restic dump` from a pipe (so a dump started early can serve it).
    restores_from_pipe: ClassVar[bool] = True
    # Whether everything restore() does to the target is one transaction, committed at its end
    # only (restore_if can then decide, at the last moment, that it is not kept).
    restores_in_one_transaction: ClassVar[bool] = False

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self.restore_setting = database.restore_setting

    @property
    def database_name(self) -> str:
        return self.database.name

    def dump_filename(self, run: str) -> str:
        """The flat stdin file name of the dump inside its snapshot (primary keeps the seed's)."""
        app = self.settings.app_name
        if self.database.is_primary:
            return f"databases-{app}-{self.name}-{run}.{self.extension}"
        return f"databases-{app}-{self.database.name}-{self.name}-{run}.{self.extension}"

    def production_like_reason(self) -> str | None:
        """Why the restore target looks like production (or is the source), or None."""
        return production_like_reason(
            self.restore_target_words(), is_source=self.restore_target_is_source()
        )

    def describe_database(self) -> str:
        """'primary (postgres)' for messages."""
        return f"{self.database.name} ({self.name})"

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

    def warm_restore(self) -> None:  # noqa: B027 (an optional hook: a no-op by default)
        """Asks, ahead of restore(), what it would ask first (server and client versions), so
        that it runs beside the snapshot listing. Best effort: restore() asks again on error."""

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

    def restore_if(
        self,
        restic: Restic,
        snapshot: Snapshot,
        commit_if: Callable[[], bool],
        on_bytes: ByteCounter | None = None,
    ) -> dict[str, Any]:
        """restore() into a target that exists, committed only if `commit_if()`, asked once the
        whole dump has gone in, says yes; otherwise rolled back (the target as it was) and
        OperationFailed raised; CommitsOnItsOwn when the dump would commit part of itself
        first. Only where restores_in_one_transaction."""
        raise NotImplementedError(f"a {self.name} restore is not one transaction")

    def restore_target_exists(self) -> bool | None:
        """Whether the restore target exists, when known without asking (None: not known)."""
        return None

    @abc.abstractmethod
    def restore_target_tables(self, timeout: float) -> TargetTables:
        """Counts the restore target's user tables read-only, within `timeout` seconds (what a
        drill is about to drop); raises OperationFailed when it cannot tell."""

    @abc.abstractmethod
    def restored_figures(self, method: FigureMethod) -> DatabaseFigures:
        """The manifest figures of the restore target, computed exactly as at backup time."""

    def figure_method(self) -> FigureMethod:
        return "checksum" if self.settings.kamal_backup_manifest_checksums else "count"

    @abc.abstractmethod
    def client_versions(self) -> dict[str, str | None]:
        """Versions of the client programs this adapter uses (None where absent)."""

    @abc.abstractmethod
    def probe(self) -> str:
        """Reaches the source with a read-only query; returns what it found, raises if it cannot."""


def dump_path(snapshot: Snapshot) -> str:
    """The path of the dump file inside a database snapshot."""
    if len(snapshot.paths) != 1:
        raise OperationFailed(f"snapshot {snapshot.short} is not a single-file database snapshot")
    return snapshot.paths[0]


class CommitsOnItsOwn(OperationFailed):
    """restore_if refused a dump that commits part of itself (PostgreSQL large objects): the
    target is as it was; a restore that waits for its listing restores it as usual."""


class ServerAdapter(DatabaseAdapter):
    """A database server reached through DATABASE_URL and restored into RESTORE_DATABASE_URL."""

    default_port: ClassVar[int]

    @property
    def source(self) -> DatabaseUrl:
        raw = secret(self.database.url)
        if raw is None:
            raise ConfigError(self.database.source_setting, f"is required for adapter {self.name}")
        return parse_database_url(self.database.source_setting, raw)

    @property
    def target(self) -> DatabaseUrl | None:
        raw = secret(self.database.restore_url)
        return parse_database_url(self.restore_setting, raw) if raw else None

    def require_target(self) -> DatabaseUrl:
        target = self.target
        if target is None:
            raise ConfigError(
                self.restore_setting,
                f"is required for restore-db of database {self.describe_database()}",
            )
        return target

    def source_password(self) -> str | None:
        # As with libpq, a password written in the URL wins over the environment variable.
        source_secret = self.secret_variables[0]
        return self.source.password or self.settings.secret_variable(source_secret)

    def target_password(self, target: DatabaseUrl) -> str | None:
        restore_secret = self.secret_variables[1]
        return (
            target.password
            or self.settings.secret_variable(restore_secret)
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
