"""Database adapters: each answers the same questions for its engine."""

from __future__ import annotations

from kamal_backup.databases.base import DatabaseAdapter, DumpCommand
from kamal_backup.errors import ConfigError
from kamal_backup.settings import Settings

__all__ = ["DatabaseAdapter", "DumpCommand", "adapter_for"]


def adapter_for(settings: Settings) -> DatabaseAdapter:
    """The adapter for DATABASE_ADAPTER."""
    if settings.database_adapter == "sqlite":
        from kamal_backup.databases.sqlite import SqliteAdapter

        return SqliteAdapter(settings)
    raise ConfigError(
        "DATABASE_ADAPTER", f"the {settings.database_adapter} adapter is not available yet"
    )
