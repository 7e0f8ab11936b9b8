"""A PostgreSQL restore starts before its listing answers and commits only what the listing
confirms (services/restore.py, _restore_ahead): real restic, real PostgreSQL 15."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kamal_backup import process
from kamal_backup.databases import adapter_for, postgres
from kamal_backup.errors import ConfigError, OperationFailed
from kamal_backup.models import Snapshot
from kamal_backup.services import restic_for
from kamal_backup.services import restore as restore_service
from kamal_backup.settings import load_settings
from tests.conftest import App
from tests.integration.databases import pg_databases, psql

pytestmark = pytest.mark.integration

AHEAD = "committed once the listing confirms it"


@pytest.fixture
def pg(app: App) -> Iterator[tuple[App, str, str]]:
    with pg_databases("kb_ahead_src", "kb_ahead_dst") as (source, target):
        psql(f'CREATE DATABASE "{source}"')
        psql("CREATE TABLE public.items (n int); INSERT INTO public.items VALUES (1)", source)
        app.env.update(
            {
                "DATABASE_ADAPTER": "postgresql",
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{source}",
                "KAMAL_BACKUP_ALLOW_RESTORE": "true",
                "RESTORE_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{target}",
            }
        )
        yield app, source, target


def items(database: str) -> str:
    return psql("SELECT string_agg(n::text, ',' ORDER BY n) FROM public.items", database).strip()


def backed_up(app: App, **extra: str) -> dict[str, Any]:
    run: dict[str, Any] = json.loads(app.cli("backup", "--json", extra=extra, check=True).stdout)
    return run


def precious_target(target: str) -> None:
    psql(f'CREATE DATABASE "{target}"')
    psql(
        "CREATE TABLE public.precious (x text); INSERT INTO public.precious VALUES ('keep')", target
    )


def test_the_expected_snapshot_is_restored_ahead_and_recorded_as_the_listing_has_it(
    pg: tuple[App, str, str],
) -> None:
    app, source, target = pg
    run = backed_up(app)
    precious_target(target)
    result = app.cli("restore-db", "--json", check=True)
    assert AHEAD in result.stderr
    restored = json.loads(result.stdout)
    assert restored["snapshot"]["id"] == run["database_snapshot"]["id"]
    # The record comes from the listing, as on the usual path: the dump's size, its tags.
    assert restored["bytes_restored"] == run["database_snapshot"]["total_bytes_processed"]
    assert restored["snapshot"]["tags"] == run["database_snapshot"]["tags"]
    assert items(target) == items(source) == "1"


def test_a_newer_backup_from_another_machine_is_what_latest_restores(
    pg: tuple[App, str, str], tmp_path: Path
) -> None:
    """This machine's state expects its own last backup; another machine (its own state
    directory) backed up since: the listing chooses that one, and only that one is kept."""
    app, source, target = pg
    ours = backed_up(app)
    psql("INSERT INTO public.items VALUES (2)", source)
    theirs = backed_up(app, KAMAL_BACKUP_STATE_DIR=str(tmp_path / "another-machine"))
    assert theirs["database_snapshot"]["id"] != ours["database_snapshot"]["id"]
    precious_target(target)

    result = app.cli("restore-db", "--json", check=True)
    assert f"the listing did not choose snapshot {ours['database_snapshot']['short_id']}" in (
        result.stderr
    )
    assert json.loads(result.stdout)["snapshot"]["id"] == theirs["database_snapshot"]["id"]
    assert items(target) == "1,2"

    # Naming our snapshot by id: the guess is right, and that snapshot is what is restored.
    result = app.cli("restore-db", ours["database_snapshot"]["id"][:10], "--json", check=True)
    assert AHEAD in result.stderr and "chose another" not in result.stderr
    assert json.loads(result.stdout)["snapshot"]["id"] == ours["database_snapshot"]["id"]
    assert items(target) == "1"


def _importing_into(target: str) -> bool:
    """Whether a session is in a transaction on `target` (the restore's psql, mid-import)."""
    return (
        psql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = "
            f"'{target}' AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"
        ).strip()
        != "0"
    )


def test_a_listing_that_fails_mid_import_rolls_the_restore_back(
    pg: tuple[App, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, source, target = pg
    psql("INSERT INTO public.items SELECT g FROM generate_series(2, 200000) g", source)
    backed_up(app)
    precious_target(target)
    seen_importing: list[bool] = []

    def failing_listing(*_: object, **__: object) -> list[Snapshot]:
        """The listing answers only once the import is underway, and fails."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _importing_into(target):
            time.sleep(0.02)
        seen_importing.append(_importing_into(target))
        raise OperationFailed("the repository went away")

    monkeypatch.setattr(restore_service, "list_snapshots", failing_listing)
    settings = load_settings(environ=app.env)
    with process.cancel_scope("test"), pytest.raises(OperationFailed, match="went away"):
        restore_service.restore_database(settings)
    assert seen_importing == [True]
    assert psql("SELECT x FROM public.precious", target).strip() == "keep"
    assert psql("SELECT count(*) FROM pg_tables WHERE tablename = 'items'", target).strip() == "0"
    assert not _importing_into(target)


def test_restore_if_rolls_back_when_told_not_to_commit(pg: tuple[App, str, str]) -> None:
    app, source, target = pg
    run = backed_up(app)
    precious_target(target)
    settings = load_settings(environ=app.env)
    adapter = adapter_for(settings, None)
    assert adapter.restores_in_one_transaction
    adapter.warm_restore()  # restore_if restores only into a target known to exist
    snapshot = Snapshot.model_validate(run["database_snapshot"])
    asked: list[bool] = []

    def commit_if() -> bool:
        asked.append(True)
        return False

    with process.cancel_scope("test"), pytest.raises(OperationFailed, match="rolled back"):
        adapter.restore_if(restic_for(settings), snapshot, commit_if)
    assert asked == [True]
    assert psql("SELECT x FROM public.precious", target).strip() == "keep"
    # Told yes, the same restore commits.
    with process.cancel_scope("test"):
        adapter.restore_if(restic_for(settings), snapshot, lambda: True)
    assert items(target) == items(source)


def commit_question(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once the import, its whole dump in, asks whether to commit (pipe_into's commit_if)."""
    real_pipe_into = postgres.pipe_into
    asked = threading.Event()

    def pipe_into(*args: Any, commit_if: Callable[[], bool] | None = None, **kwargs: Any) -> int:
        assert commit_if is not None

        def telling() -> bool:
            asked.set()
            return commit_if()

        return real_pipe_into(*args, commit_if=telling, **kwargs)

    monkeypatch.setattr(postgres, "pipe_into", pipe_into)
    return asked


def test_an_import_gone_in_whole_is_not_committed_when_the_listing_then_says_no(
    pg: tuple[App, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit gate itself: the listing answers only once the whole dump is in and the
    import asks whether to commit; it names no such snapshot; nothing of the import is kept."""
    app, _, target = pg
    run = backed_up(app)
    precious_target(target)
    real_listing = restore_service.list_snapshots
    asked = commit_question(monkeypatch)

    def late_listing(*args: Any, **kwargs: Any) -> list[Snapshot]:
        every = real_listing(*args, **kwargs)
        assert asked.wait(30), "the import never asked whether to commit"
        time.sleep(1)  # a commit that did not wait for this answer would be done by now
        return [s for s in every if s.id != run["database_snapshot"]["id"]]

    monkeypatch.setattr(restore_service, "list_snapshots", late_listing)
    settings = load_settings(environ=app.env)
    with process.cancel_scope("test"), pytest.raises(ConfigError):
        restore_service.restore_database(settings)
    print("PRECIOUS", psql("SELECT count(*) FROM pg_tables WHERE tablename = 'items'", target))
    assert asked.is_set()
    assert psql("SELECT x FROM public.precious", target).strip() == "keep"
    assert psql("SELECT count(*) FROM pg_tables WHERE tablename = 'items'", target).strip() == "0"


def test_large_objects_are_restored_after_the_listing_never_committed_half_way(
    pg: tuple[App, str, str],
) -> None:
    """pg_restore wraps large objects in BEGIN/COMMIT: ahead of the listing, that COMMIT is
    refused (nothing kept) and the restore runs after the listing, as usual."""
    app, source, target = pg
    psql("SELECT lo_from_bytea(0, 'a large object')", source)
    backed_up(app)
    precious_target(target)
    result = app.cli("restore-db", "--json", check=True)
    assert "the dump commits part of itself (large objects)" in result.stderr
    assert "restoring after the listing" in result.stderr
    assert items(target) == "1"
    assert (
        psql("SELECT count(*) FROM pg_tables WHERE tablename = 'precious'", target).strip() == "0"
    )
    assert (
        psql(
            "SELECT convert_from(lo_get(oid), 'UTF8') FROM pg_largeobject_metadata", target
        ).strip()
        == "a large object"
    )


def test_a_target_that_does_not_exist_is_created_only_after_the_listing(
    pg: tuple[App, str, str],
) -> None:
    app, _, target = pg
    backed_up(app)
    result = app.cli("restore-db", "--json", check=True)
    assert AHEAD not in result.stderr
    assert "the restore target does not exist yet: restoring after the listing" in result.stderr
    assert json.loads(result.stdout)["details"]["created_database"] is True
    assert items(target) == "1"


def test_a_restore_target_whose_server_is_down_is_named_and_not_called_missing(
    pg: tuple[App, str, str],
) -> None:
    """Nothing answers at RESTORE_DATABASE_URL: the restore does not go ahead, does not say the
    target is missing, and fails in one line naming the setting (exit 1, no traceback)."""
    app, _, target = pg
    backed_up(app)
    down = f"postgres://postgres@127.0.0.1:1/{target}"
    result = app.cli("restore-db", extra={"RESTORE_DATABASE_URL": down})
    assert result.returncode == 1, result.stderr
    assert AHEAD not in result.stderr and "does not exist yet" not in result.stderr
    assert "the restore target's server could not be asked: restoring after the listing" in (
        result.stderr
    )
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert "cannot connect to PostgreSQL at RESTORE_DATABASE_URL: " in errors[0]
    assert "Traceback" not in result.stderr


def test_an_import_waiting_for_a_slow_listing_outlives_a_short_idle_transaction_timeout(
    pg: tuple[App, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small dump is in before the listing answers and waits in its transaction: a server
    that ends idle transactions after 200 ms must not end this one (the gate's prelude, and
    pg_dump's script header, set idle_in_transaction_session_timeout to 0)."""
    app, source, target = pg
    backed_up(app)
    precious_target(target)
    psql(f"ALTER DATABASE \"{target}\" SET idle_in_transaction_session_timeout = '200ms'")
    real_listing = restore_service.list_snapshots
    asked = commit_question(monkeypatch)

    def slow_listing(*args: Any, **kwargs: Any) -> list[Snapshot]:
        every = real_listing(*args, **kwargs)
        assert asked.wait(30), "the import never asked whether to commit"
        time.sleep(1)  # five times the server's patience with an idle transaction
        return every

    monkeypatch.setattr(restore_service, "list_snapshots", slow_listing)
    settings = load_settings(environ=app.env)
    with process.cancel_scope("test"):
        restore_service.restore_database(settings)
    assert items(target) == items(source)
