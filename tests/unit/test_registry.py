"""Adapters declare themselves; the registry is what settings, tools, evidence and validate read."""

from __future__ import annotations

import pytest

from kamal_backup.databases.registry import adapters, client_tools, describe_names, lookup
from kamal_backup.services.evidence import OTHER_CLIENTS
from kamal_backup.tools import EXTERNAL_TOOLS


def test_every_engine_module_is_found_with_its_declarations() -> None:
    found = {cls.name: cls for cls in adapters()}
    assert set(found) == {"postgres", "mysql", "sqlite"}
    assert found["postgres"].url_schemes == ("postgres", "postgresql")
    assert found["mysql"].secret_variables == ("MYSQL_PWD", "RESTORE_MYSQL_PWD")
    assert found["sqlite"].url_schemes == ()  # a file: configured by path
    for cls in found.values():
        assert cls.extension and cls.tools


@pytest.mark.parametrize(
    ("raw", "name"),
    [("PostgreSQL", "postgres"), ("mysql2", "mysql"), ("mariadb", "mysql"), ("sqlite3", "sqlite")],
)
def test_aliases_resolve_case_insensitively(raw: str, name: str) -> None:
    found = lookup(raw)
    assert found is not None and found.name == name


def test_unknown_names_are_none_and_the_error_lists_every_name() -> None:
    assert lookup("oracle") is None
    text = describe_names()
    assert all(cls.name in text for cls in adapters())
    assert "mariadb" in text


def test_tools_and_evidence_read_the_declared_clients() -> None:
    assert set(client_tools()) == {
        "pg_dump",
        "pg_restore",
        "psql",
        "mariadb-dump",
        "mariadb",
        "sqlite3",
    }
    assert client_tools() == OTHER_CLIENTS
    assert set(client_tools()) <= set(EXTERNAL_TOOLS)


def test_every_secret_variable_an_adapter_declares_is_a_setting() -> None:
    from kamal_backup.settings import Settings

    for cls in adapters():
        for variable in cls.secret_variables:
            assert variable.lower() in Settings.model_fields
