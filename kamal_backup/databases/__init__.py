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
    if settings.database_adapter == "postgres":
        from kamal_backup.databases.postgres import PostgresAdapter

        return PostgresAdapter(settings)
    if settings.database_adapter == "mysql":
        from kamal_backup.databases.mysql import MysqlAdapter

        return MysqlAdapter(settings)
    raise ConfigError("DATABASE_ADAPTER", f"unsupported adapter {settings.database_adapter}")
