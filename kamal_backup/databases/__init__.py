"""Database adapters: each answers the same questions for its engine."""

from __future__ import annotations

from kamal_backup.databases.base import DatabaseAdapter, DumpCommand
from kamal_backup.errors import ConfigError
from kamal_backup.settings import PRIMARY, Database, Settings

__all__ = ["DatabaseAdapter", "DumpCommand", "adapter_for", "adapters_for"]


def adapter_of(settings: Settings, database: Database) -> DatabaseAdapter:
    """The adapter for one configured database."""
    from kamal_backup.databases.registry import lookup

    cls = lookup(database.adapter)
    if cls is None:
        raise ConfigError(database.source_setting, f"unsupported adapter {database.adapter}")
    return cls(settings, database)


def adapters_for(settings: Settings) -> list[DatabaseAdapter]:
    """One adapter per configured database, primary first; empty for a files-only app."""
    return [adapter_of(settings, database) for database in settings.database_list]


def adapter_for(settings: Settings, name: str | None = None) -> DatabaseAdapter:
    """The adapter of the database `name`; without a name, primary (else the only database)."""
    if name is not None:
        return adapter_of(settings, settings.database(name))
    databases = settings.database_list
    if not databases:
        raise ConfigError("DATABASE_ADAPTER", "is none: this app has no database")
    chosen = next((d for d in databases if d.name == PRIMARY), databases[0])
    return adapter_of(settings, chosen)
