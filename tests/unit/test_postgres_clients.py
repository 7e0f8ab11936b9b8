"""PostgreSQL client choice and connection environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from kamal_backup.databases.postgres import PgClient, choose_client, client_env
from kamal_backup.databases.urls import parse_database_url
from kamal_backup.errors import ConfigError, OperationFailed


def clients(*majors: int) -> list[PgClient]:
    return [PgClient(m, Path(f"/usr/lib/postgresql/{m}/bin")) for m in majors]


def test_the_matching_major_is_chosen() -> None:
    assert choose_client(15, clients(13, 15, 17)).major == 15


def test_the_oldest_newer_client_is_chosen_when_none_matches() -> None:
    assert choose_client(14, clients(13, 15, 17)).major == 15


def test_only_older_clients_is_a_clear_error() -> None:
    with pytest.raises(
        OperationFailed, match=r"server is version 17 .* install postgresql-client-17"
    ):
        choose_client(17, clients(13, 15))


def test_connection_comes_from_the_url_not_stray_pg_variables() -> None:
    url = parse_database_url(
        "RESTORE_DATABASE_URL",
        "postgresql://app:s3cret%21@db.internal:6543/app_restore?sslmode=require&pool=5",
    )
    env = client_env(
        url,
        url.password,
        {
            "PATH": "/bin",
            "PGDATABASE": "app_production",
            "PGHOST": "prod",
            "PGSSLROOTCERT": "/certs/ca.pem",
        },
    )
    assert env["PGDATABASE"] == "app_restore"
    assert env["PGHOST"] == "db.internal"
    assert env["PGPORT"] == "6543"
    assert env["PGUSER"] == "app"
    assert env["PGPASSWORD"] == "s3cret!"
    assert env["PGSSLMODE"] == "require"
    assert env["PGSSLROOTCERT"] == "/certs/ca.pem"
    assert "pool" not in " ".join(env)


@pytest.mark.parametrize(
    "url",
    [
        "postgres://h:99999/db",
        "postgres://h/db/extra",
        "postgres://h/-db",
        "postgres://-h/db",
        "postgres://h/db?%zz",
    ],
)
def test_malformed_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_database_url("DATABASE_URL", url)
    assert caught.value.setting == "DATABASE_URL"
