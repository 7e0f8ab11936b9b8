"""The adapter registry: every engine module's adapter class, found by the name it declares."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from kamal_backup import databases
from kamal_backup.databases.base import DatabaseAdapter


@cache
def adapters() -> tuple[type[DatabaseAdapter], ...]:
    """Every concrete adapter class in kamal_backup.databases, in module order.

    A new engine is one module here whose class sets `name` (and the other declarations).
    """
    found: list[type[DatabaseAdapter]] = []
    for module in pkgutil.iter_modules(databases.__path__):
        loaded = importlib.import_module(f"{databases.__name__}.{module.name}")
        for value in vars(loaded).values():
            if (
                isinstance(value, type)
                and issubclass(value, DatabaseAdapter)
                and "name" in vars(value)
                and value.__module__ == loaded.__name__
                and value not in found
            ):
                found.append(value)
    return tuple(found)


def lookup(raw: str) -> type[DatabaseAdapter] | None:
    """The adapter a name or one of its aliases means, case-insensitively."""
    wanted = raw.strip().lower()
    for cls in adapters():
        if wanted == cls.name or wanted in cls.aliases:
            return cls
    return None


def describe_names() -> str:
    """'postgres, mysql or sqlite (aliases: ...)' for error messages and docs."""
    names = [cls.name for cls in adapters()]
    aliases = [alias for cls in adapters() for alias in cls.aliases]
    listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
    return f"{listed} (aliases: {', '.join(aliases)})" if aliases else listed


def client_tools() -> tuple[str, ...]:
    """Every database client program some adapter declares, in registry order."""
    return tuple(dict.fromkeys(tool for cls in adapters() for tool in cls.tools))
