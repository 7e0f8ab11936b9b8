"""PostgreSQL 15 for real: exact round trips, failures that leave no snapshot, atomic restores."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import App
from tests.integration.databases import pg_databases, psql

pytestmark = pytest.mark.integration

SOURCE_SCHEMA = """
CREATE EXTENSION citext;
CREATE EXTENSION pgcrypto;
CREATE SCHEMA billing;
CREATE TABLE public.customers (
  id serial PRIMARY KEY, email citext UNIQUE NOT NULL, name text, profile jsonb, avatar bytea,
  created_at timestamptz DEFAULT '2026-01-01 00:00:00+00'
);
CREATE TABLE billing.invoices (
  id bigserial PRIMARY KEY, customer_id int REFERENCES public.customers(id), total numeric(12,2),
  note text, token text
);
CREATE SEQUENCE billing.invoice_numbers START 1000;
CREATE VIEW billing.big_invoices AS SELECT id, total FROM billing.invoices WHERE total > 100;
CREATE FUNCTION billing.stamp_token() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.token := encode(digest(coalesce(NEW.note, '') || NEW.id::text, 'sha256'), 'hex'); RETURN NEW; END $$;
CREATE TRIGGER invoices_token BEFORE INSERT ON billing.invoices FOR EACH ROW EXECUTE FUNCTION billing.stamp_token();
INSERT INTO public.customers (email, name, profile, avatar) VALUES
  ('Ann@Example.com', 'Änne Müller', '{"tier": "gold", "tags": ["a", "b"]}', '\\x00ff0a0d27'),
  ('bob@example.com', NULL, NULL, NULL),
  ('chloé@example.com', '日本語 テキスト 😀', '{"nested": {"quote": "it''s \\\\ back"}}', decode(repeat('ab', 500), 'hex'));
INSERT INTO billing.invoices (customer_id, total, note)
  SELECT 1 + (g % 3), g * 10.5, CASE WHEN g % 4 = 0 THEN NULL ELSE 'note ' || g END FROM generate_series(1, 200) g;
SELECT nextval('billing.invoice_numbers') FROM generate_series(1, 7);
"""

OBJECTS = """
SELECT string_agg(item, E'\\n' ORDER BY item) FROM (
  SELECT 'schema ' || nspname AS item FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
  UNION ALL SELECT 'ext ' || extname FROM pg_extension
  UNION ALL SELECT c.relkind::text || ' ' || n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
  UNION ALL SELECT 'func ' || n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
  UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
) objects
"""

TABLES = ["public.customers", "billing.invoices"]


def table_checksum(database: str, table: str) -> str:
    return psql(
        f"SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t",
        database,
    ).strip()


def sequences(database: str) -> str:
    return psql(
        "SELECT string_agg(s, ',' ORDER BY s) FROM (SELECT 'public.customers_id_seq=' || last_value || is_called s "
        "FROM public.customers_id_seq UNION ALL SELECT 'billing.invoices_id_seq=' || last_value || is_called "
        "FROM billing.invoices_id_seq UNION ALL SELECT 'billing.invoice_numbers=' || last_value || is_called "
        "FROM billing.invoice_numbers) x",
        database,
    ).strip()


@pytest.fixture
def pg_app(app: App) -> Iterator[tuple[App, str, str]]:
    with pg_databases("kb_src", "kb_restore") as (source, target):
        psql(f'CREATE DATABASE "{source}"')
        psql(SOURCE_SCHEMA, source)
        app.env.update(
            {
                "DATABASE_ADAPTER": "postgresql",
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{source}?sslmode=disable",
            }
        )
        yield app, source, target


def restore_env(target: str, **extra: str) -> dict[str, str]:
    return {
        "KAMAL_BACKUP_ALLOW_RESTORE": "true",
        "RESTORE_DATABASE_URL": f"postgresql://postgres@127.0.0.1/{target}",
        **extra,
    }


def test_round_trip_into_a_stale_target_is_exact(pg_app: tuple[App, str, str]) -> None:
    app, source, target = pg_app
    run = json.loads(app.cli("backup", "--json", check=True).stdout)
    assert run["database_snapshot"]["paths"][0].endswith(".pgdump")
    assert "adapter:postgres" in run["database_snapshot"]["tags"]

    psql(f'CREATE DATABASE "{target}"')
    psql(
        "CREATE TABLE public.stale (x int); CREATE SCHEMA old_stuff; CREATE TABLE old_stuff.junk (y text);"
        "CREATE TABLE public.customers (id int); INSERT INTO public.customers VALUES (99);",
        target,
    )
    result = app.cli("restore-db", "latest", "--json", extra=restore_env(target), check=True)
    assert json.loads(result.stdout)["details"]["created_database"] is False

    assert psql(OBJECTS, target) == psql(OBJECTS, source)
    assert "stale" not in psql(OBJECTS, target) and "old_stuff" not in psql(OBJECTS, target)
    for table in TABLES:
        assert table_checksum(target, table) == table_checksum(source, table)
    assert sequences(target) == sequences(source)
    assert "billing.invoice_numbers=1006true" in sequences(target)  # START 1000, 7 nextvals
    # The restored function and trigger work.
    psql("INSERT INTO billing.invoices (customer_id, total, note) VALUES (1, 5, 'x')", target)
    assert (
        len(psql("SELECT token FROM billing.invoices ORDER BY id DESC LIMIT 1", target).strip())
        == 64
    )


def test_a_missing_target_database_is_created(pg_app: tuple[App, str, str]) -> None:
    app, source, target = pg_app
    app.cli("backup", check=True)
    result = app.cli("restore-db", "--json", extra=restore_env(target), check=True)
    assert json.loads(result.stdout)["details"]["created_database"] is True
    assert table_checksum(target, "billing.invoices") == table_checksum(source, "billing.invoices")


def test_the_dump_is_uncompressed_custom_format(pg_app: tuple[App, str, str]) -> None:
    app, _, _ = pg_app
    run = json.loads(app.cli("backup", "--json", check=True).stdout)
    dump = subprocess.run(
        ["restic", "dump", run["database_snapshot"]["id"], run["database_snapshot"]["paths"][0]],
        env={
            "PATH": app.env["PATH"],
            "RESTIC_REPOSITORY": app.env["RESTIC_REPOSITORY"],
            "RESTIC_PASSWORD": app.env["RESTIC_PASSWORD"],
        },
        capture_output=True,
        check=True,
    ).stdout
    assert dump.startswith(b"PGDMP")
    listing = subprocess.run(
        ["pg_restore", "-l"], input=dump, capture_output=True, check=True
    ).stdout.decode()
    assert "Compression: none" in listing or "Compression: 0" in listing
    assert (
        "Änne Müller".encode() in dump
    )  # row data stored as plain text, so restic can deduplicate it


@pytest.mark.parametrize(
    ("label", "url_suffix", "extra", "expect"),
    [
        ("server down", "@127.0.0.1:1/{db}", {}, "cannot connect to PostgreSQL at DATABASE_URL: "),
        (
            "wrong password",
            "kamal_backup_pw@127.0.0.1:5432/{db}",
            {"PGPASSWORD": "wrong-pw-424242"},
            "password authentication failed",
        ),
    ],
)
def test_backup_failures_leave_no_snapshot(
    pg_app: tuple[App, str, str], label: str, url_suffix: str, extra: dict[str, str], expect: str
) -> None:
    app, source, _ = pg_app
    psql(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kamal_backup_pw') THEN "
        "CREATE ROLE kamal_backup_pw LOGIN PASSWORD 'right-pw-1'; END IF; END $$"
    )
    url = (
        "postgres://postgres" + url_suffix.format(db=source)
        if url_suffix.startswith("@")
        else "postgres://" + url_suffix.format(db=source)
    )
    result = app.cli("backup", extra={"DATABASE_URL": url, **extra})
    assert result.returncode == 1, result.stderr
    assert expect in result.stderr, result.stderr
    assert "wrong-pw-424242" not in result.stderr
    assert len(result.stderr.strip().splitlines()[-1]) > 0 and "Traceback" not in result.stderr
    assert app.snapshot_ids("type:database") == []  # the file half may have finished (issue 14)


def test_permission_denied_on_a_table_leaves_no_snapshot(pg_app: tuple[App, str, str]) -> None:
    app, source, _ = pg_app
    psql(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kamal_backup_pw') THEN "
        "CREATE ROLE kamal_backup_pw LOGIN PASSWORD 'right-pw-1'; END IF; END $$"
    )
    psql(
        "GRANT USAGE ON SCHEMA billing TO kamal_backup_pw; GRANT SELECT ON public.customers TO kamal_backup_pw",
        source,
    )
    result = app.cli(
        "backup",
        extra={
            "DATABASE_URL": f"postgres://kamal_backup_pw@127.0.0.1/{source}",
            "PGPASSWORD": "right-pw-1",
        },
    )
    assert result.returncode == 1
    assert "permission denied" in result.stderr
    assert app.snapshot_ids("type:database") == []  # the file half may have finished (issue 14)


def test_pg_dump_killed_mid_stream_leaves_no_snapshot(pg_app: tuple[App, str, str]) -> None:
    app, source, _ = pg_app
    psql(
        "CREATE TABLE public.bulk AS SELECT g, md5(g::text) || repeat('x', 400) AS pad "
        "FROM generate_series(1, 400000) g",
        source,
    )
    proc = subprocess.Popen(
        ["python", "-m", "kamal_backup", "backup"], env=app.env, stderr=subprocess.PIPE, text=True
    )

    def killer() -> None:
        # Only this test's pg_dump: the child of the restic this backup started.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = subprocess.run(
                ["pgrep", "-P", str(proc.pid), "-x", "restic"], capture_output=True, text=True
            )
            for restic_pid in found.stdout.split():
                if (
                    subprocess.run(["pkill", "-9", "-P", restic_pid, "-x", "pg_dump"]).returncode
                    == 0
                ):
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    _, stderr = proc.communicate(timeout=120)
    thread.join()
    assert proc.returncode == 1, stderr
    assert "killed" in stderr
    assert app.snapshot_ids("type:database") == []  # the file half may have finished (issue 14)


def back_up_a_bulk_table(app: App, source: str, rows: int) -> None:
    """A table big enough for a restore to take a moment (about 0.5 KB a row), backed up."""
    psql(
        "CREATE TABLE public.bulk AS SELECT g, md5(g::text) || repeat('x', 400) AS pad "
        f"FROM generate_series(1, {rows}) g",
        source,
    )
    app.cli("backup", check=True)


def start_restore(app: App, target: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kamal_backup", "restore-db"],
        env={**app.env, **restore_env(target)},
        stderr=subprocess.PIPE,
        text=True,
    )


def test_restore_killed_mid_stream_leaves_the_target_as_it_was(
    pg_app: tuple[App, str, str],
) -> None:
    app, source, target = pg_app
    back_up_a_bulk_table(app, source, 300000)
    psql(f'CREATE DATABASE "{target}"')
    psql(
        "CREATE TABLE public.precious (x text); INSERT INTO public.precious VALUES ('keep me')",
        target,
    )
    proc = start_restore(app, target)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # Only this test's restic dump (a child of the restore process), once the stream runs:
        # the dump starts before the listing (issue 14), pg_restore once the snapshot is chosen.
        streaming = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "pg_restore"])
        if (
            streaming.returncode == 0
            and subprocess.run(["pkill", "-9", "-P", str(proc.pid), "-f", "restic dump"]).returncode
            == 0
        ):
            break
        time.sleep(0.02)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    assert psql("SELECT x FROM public.precious", target).strip() == "keep me"
    assert psql("SELECT count(*) FROM pg_tables WHERE tablename = 'bulk'", target).strip() == "0"


def _children(pid: int) -> dict[str, int]:
    """The running children of `pid` by program: restic (its dump), pg_restore, psql. Any of
    the process's threads may have started them (the restore runs beside its listing)."""
    found: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            for child in (task / "children").read_text().split():
                try:
                    argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                except FileNotFoundError:
                    continue
                names = [Path(a.decode()).name for a in argv if a]
                if "restic" in names and "dump" in names:
                    found["restic"] = int(child)
                for program in ("pg_restore", "psql"):
                    if program in names:
                        found[program] = int(child)
    return found


def test_the_restore_streams_restic_into_pg_restore_into_psql_with_no_python_between(
    pg_app: tuple[App, str, str],
) -> None:
    # Issue 14: the dump's bytes go from process to process over OS pipes.
    app, source, target = pg_app
    back_up_a_bulk_table(app, source, 200000)
    proc = start_restore(app, target)
    pipes: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and len(pipes) < 4:
        children = _children(proc.pid)
        if {"restic", "pg_restore", "psql"} <= children.keys():
            with contextlib.suppress(FileNotFoundError):
                pipes = {
                    "restic out": os.readlink(f"/proc/{children['restic']}/fd/1"),
                    "pg_restore in": os.readlink(f"/proc/{children['pg_restore']}/fd/0"),
                    "pg_restore out": os.readlink(f"/proc/{children['pg_restore']}/fd/1"),
                    "psql in": os.readlink(f"/proc/{children['psql']}/fd/0"),
                }
        time.sleep(0.01)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert len(pipes) == 4, "the restore ended before its three processes were seen"
    assert pipes["restic out"].startswith("pipe:")
    assert pipes["restic out"] == pipes["pg_restore in"]
    assert pipes["pg_restore out"].startswith("pipe:")
    assert pipes["pg_restore out"] == pipes["psql in"]
    assert psql("SELECT count(*) FROM public.bulk", target).strip() == "200000"


def test_a_dump_pg_restore_cannot_read_fails_naming_pg_restore_and_changes_nothing(
    pg_app: tuple[App, str, str],
) -> None:
    app, _, target = pg_app
    psql(f'CREATE DATABASE "{target}"')
    psql(
        "CREATE TABLE public.precious (x text); INSERT INTO public.precious VALUES ('keep')", target
    )
    run = "20260101T000000Z"
    stored = subprocess.run(
        [
            "restic",
            "backup",
            "--json",
            "--stdin",
            "--host",
            "shop",
            "--stdin-filename",
            f"databases-shop-postgres-{run}.pgdump",
            "--tag",
            f"kamal-backup,app:shop,type:database,adapter:postgres,database:primary,run:{run}",
        ],
        input=b"not a PostgreSQL archive\n" * 100,
        env={
            **os.environ,
            "RESTIC_REPOSITORY": str(app.repo),
            "RESTIC_PASSWORD": app.env["RESTIC_PASSWORD"],
        },
        capture_output=True,
        check=True,
    )
    snapshot = json.loads(stored.stdout.splitlines()[-1])["snapshot_id"]
    result = app.cli("restore-db", snapshot[:8], extra=restore_env(target))
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("kamal-backup: error: pg_restore failed:"), last
    assert psql("SELECT x FROM public.precious", target).strip() == "keep"


def test_wrong_restore_password_fails_cleanly(pg_app: tuple[App, str, str]) -> None:
    app, _, target = pg_app
    psql(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kamal_backup_pw') THEN "
        "CREATE ROLE kamal_backup_pw LOGIN PASSWORD 'right-pw-1'; END IF; END $$"
    )
    app.cli("backup", check=True)
    result = app.cli(
        "restore-db",
        extra={
            "KAMAL_BACKUP_ALLOW_RESTORE": "true",
            "RESTORE_DATABASE_URL": f"postgres://kamal_backup_pw@127.0.0.1/{target}",
            "RESTORE_PGPASSWORD": "wrong-restore-pw-77",
        },
    )
    assert result.returncode == 1
    assert "password authentication failed" in result.stderr
    assert "wrong-restore-pw-77" not in result.stderr
    assert psql(f"SELECT count(*) FROM pg_database WHERE datname = '{target}'").strip() == "0"


@pytest.mark.parametrize(
    "url",
    [
        "postgres://postgres@127.0.0.1/app_production",
        "postgres://postgres@prod-db.internal/app",
        "postgres://postgres@127.0.0.1/shop_live",
        "SOURCE",
    ],
)
def test_production_like_restore_urls_are_refused(pg_app: tuple[App, str, str], url: str) -> None:
    app, source, _ = pg_app
    if url == "SOURCE":
        url = f"postgresql://postgres@localhost:5432/{source}"
    result = app.cli(
        "restore-db", extra={"KAMAL_BACKUP_ALLOW_RESTORE": "true", "RESTORE_DATABASE_URL": url}
    )
    assert result.returncode == 3, result.stderr
    assert "KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE=true" in result.stderr


def test_evidence_reports_the_clients_actually_used(pg_app: tuple[App, str, str]) -> None:
    app, _, _ = pg_app
    evidence = json.loads(app.cli("evidence", check=True).stdout)
    installed = subprocess.run(
        ["/usr/lib/postgresql/15/bin/pg_dump", "--version"], capture_output=True, text=True
    ).stdout.split()[2]
    assert evidence["tool_versions"]["pg_dump"] == installed
    assert evidence["tool_versions"]["pg_restore"] == installed
    assert evidence["database_adapter"] == "postgres"
    assert evidence["database_source"].startswith("postgres://postgres@127.0.0.1:5432/kb_src_")


def test_url_and_adapter_mismatch_is_exit_2(app: App, tmp_path: Path) -> None:
    result = app.cli(
        "backup", extra={"DATABASE_ADAPTER": "postgres", "DATABASE_URL": "mysql2://root@db/app"}
    )
    assert result.returncode == 2
    assert (
        "DATABASE_URL" in result.stderr
        and "does not match DATABASE_ADAPTER=postgres" in result.stderr
    )


def test_url_credentials_never_leak(pg_app: tuple[App, str, str]) -> None:
    app, source, target = pg_app
    # The local server trusts 127.0.0.1, so planted passwords are sent but not needed; failing
    # runs use a port where nothing listens.
    secrets = ["planted-Url-Pw-9931", "planted-Pg-Env-4410", "planted-Restore-Pw-5512"]
    app.env.update(
        {
            "DATABASE_URL": f"postgres://postgres:planted-Url-Pw-9931@127.0.0.1/{source}",
            "PGPASSWORD": "planted-Pg-Env-4410",
        }
    )
    restore = {
        "KAMAL_BACKUP_ALLOW_RESTORE": "true",
        "RESTORE_PGPASSWORD": "planted-Restore-Pw-5512",
        "RESTORE_DATABASE_URL": f"postgres://postgres@127.0.0.1/{target}",
    }
    results = [
        app.cli("backup", "--json", check=True),
        app.cli("list", "--json"),
        app.cli("evidence"),
        app.cli("restore-db", extra=restore, check=True),
        app.cli(
            "restore-db",
            extra={**restore, "RESTORE_DATABASE_URL": f"postgres://postgres@127.0.0.1:1/{target}"},
        ),
        app.cli(
            "backup",
            extra={"DATABASE_URL": f"postgres://postgres:planted-Url-Pw-9931@127.0.0.1:1/{source}"},
        ),
    ]
    assert results[4].returncode == 1 and results[5].returncode == 1
    state = [p.read_text() for p in Path(app.env["KAMAL_BACKUP_STATE_DIR"]).rglob("*.json")]
    for text in [r.stdout + r.stderr for r in results] + state:
        for secret in secrets:
            assert secret not in text
    assert "postgres://postgres:[REDACTED]@127.0.0.1" in results[2].stdout


async def test_tui_drill_restores_postgres_into_a_scratch_database(
    pg_app: tuple[App, str, str],
) -> None:
    from textual.widgets import Input

    from kamal_backup.settings import load_settings
    from tests.tui.screen import wait_for, wait_for_text
    from tui import make_app

    app, source, target = pg_app
    app.cli("backup", check=True)
    tui = make_app(load_settings(environ={**app.env, **restore_env(target)}))
    async with tui.run_test(size=(200, 50)) as pilot:
        await pilot.press("d")
        text = await wait_for_text(pilot, "every gate allows this drill")
        assert f"postgresql://postgres@127.0.0.1/{target}" in text  # shown before anything runs
        await wait_for_text(pilot, "latest: ")
        tui.query_one("#drill-confirm", Input).value = "shop"
        await pilot.pause(0.1)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: tui.operation is None, timeout=120, what="the drill")
        await wait_for_text(pilot, "drill finished in")
    for table in TABLES:
        assert table_checksum(target, table) == table_checksum(source, table)


def test_the_server_version_and_the_target_are_asked_in_one_query(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before a restore streams, one psql asks the server's version and whether the target
    exists (issue 14: each psql was a few tens of milliseconds before the first byte); a target
    that does not exist is still created."""
    from kamal_backup.databases import adapter_for
    from kamal_backup.databases import postgres as pg_module
    from kamal_backup.databases.postgres import client_env
    from kamal_backup.settings import load_settings

    queries: list[str] = []
    real_run = pg_module.process.run

    def counted(argv: list[str], **kwargs: object) -> object:
        if argv[0].endswith("/psql"):
            queries.append(argv[-1])
        return real_run(argv, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pg_module.process, "run", counted)
    with pg_databases("kb_oneq_src", "kb_oneq_target") as [source, target]:
        psql(f'CREATE DATABASE "{target}"')
        for exists in (True, False):
            settings = load_settings(
                environ={
                    **app.env,
                    "DATABASE_ADAPTER": "postgres",
                    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{source}",
                    **restore_env(target),
                }
            )
            adapter = adapter_for(settings)
            assert isinstance(adapter, pg_module.PostgresAdapter)
            url = adapter.require_target()
            admin = client_env(url, None, settings.environ, database="postgres")
            queries.clear()
            adapter.warm_restore()
            created = adapter.ensure_database(
                adapter.client_for(admin, "RESTORE_DATABASE_URL"), url, admin
            )
            assert created is not exists
            if exists:
                assert len(queries) == 1 and "server_version_num" in queries[0], queries
                psql(f'DROP DATABASE "{target}"')
            else:
                assert any(q.startswith("CREATE DATABASE") for q in queries), queries
        assert target in psql("SELECT datname FROM pg_database")


def test_large_objects_commit_with_everything_else_never_half_way(
    pg_app: tuple[App, str, str],
) -> None:
    """pg_restore's script commits large objects on their own unless told --single-transaction:
    that COMMIT would keep the tables and data with no indexes or constraints yet. Watched from
    outside, the large object appears only with the whole restore, and psql killed the moment
    it appears leaves a complete database, never half of one."""
    app, source, target = pg_app
    psql(
        "CREATE TABLE public.bulk AS SELECT g, md5(g::text) || repeat('x', 400) AS pad "
        "FROM generate_series(1, 200000) g; ALTER TABLE public.bulk ADD PRIMARY KEY (g);"
        # Post-data that takes a while to run: the window a half-way COMMIT would leave open.
        "CREATE INDEX ON public.bulk (pad); CREATE INDEX ON public.bulk (md5(pad));"
        "SELECT lo_from_bytea(0, 'a large object');",
        source,
    )
    app.cli("backup", check=True)
    proc = start_restore(app, target)  # into a new database: restored after the listing
    seen = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not seen:
        probe = subprocess.run(
            ["psql", "-XAtq", "-d", target, "-c", "SELECT count(*) FROM pg_largeobject_metadata"],
            env={**os.environ, "PGHOST": "127.0.0.1", "PGUSER": "postgres"},
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "1":
            seen = True
            subprocess.run(["pkill", "-9", "-P", str(proc.pid), "-x", "psql"])
        time.sleep(0.005)
    proc.communicate(timeout=120)
    assert seen or proc.returncode == 0
    assert psql("SELECT count(*) FROM pg_largeobject_metadata", target).strip() == "1"
    # Whatever the moment, the large object never came without the rest: every index too.
    assert psql("SELECT count(*) FROM pg_indexes WHERE tablename = 'bulk'", target).strip() == "3"
    assert psql("SELECT count(*) FROM public.bulk", target).strip() == "200000"
