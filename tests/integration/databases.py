"""Helpers for the real PostgreSQL and MariaDB servers the integration tests use."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_ADMIN = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres"}
MY_ADMIN = [
    "--protocol=TCP",
    "--host=127.0.0.1",
    "--port=3306",
    "--user=root",
    "--default-character-set=utf8mb4",
]


def psql(sql: str, database: str = "postgres", **env: str) -> str:
    result = subprocess.run(
        ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
        env={**os.environ, **PG_ADMIN, **env},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise AssertionError(f"psql failed: {result.stderr}")
    return result.stdout


def mariadb(sql: str, database: str | None = None) -> str:
    argv = ["mariadb", *MY_ADMIN, "--batch", "--raw", "--skip-column-names"]
    if database:
        argv.append(database)
    result = subprocess.run(argv, input=sql, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"mariadb failed: {result.stderr}")
    return result.stdout


def require_postgres() -> None:
    try:
        psql("SELECT 1")
    except (AssertionError, FileNotFoundError) as exc:
        pytest.fail(
            f"PostgreSQL on 127.0.0.1:5432 is required (bin/start-services starts it): {exc}"
        )


def require_mariadb() -> None:
    try:
        mariadb("SELECT 1")
    except (AssertionError, FileNotFoundError) as exc:
        pytest.fail(f"MariaDB on 127.0.0.1:3306 is required (bin/start-services starts it): {exc}")


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@contextmanager
def pg_databases(*prefixes: str) -> Iterator[list[str]]:
    require_postgres()
    names = [unique(p) for p in prefixes]
    try:
        yield names
    finally:
        for name in names:
            psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def my_databases(*prefixes: str) -> Iterator[list[str]]:
    require_mariadb()
    names = [unique(p) for p in prefixes]
    try:
        yield names
    finally:
        for name in names:
            mariadb(f"DROP DATABASE IF EXISTS `{name}`")
