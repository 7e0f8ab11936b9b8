"""PostgreSQL: uncompressed custom-format dumps and transactional restores with matching clients."""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kamal_backup import process
from kamal_backup.databases.base import (
    ByteCounter,
    CommitsOnItsOwn,
    DumpCommand,
    ServerAdapter,
    TargetTables,
)
from kamal_backup.databases.pipeline import Step, error_line, pipe_into
from kamal_backup.databases.urls import DatabaseUrl
from kamal_backup.errors import ConfigError, OperationFailed, ToolMissing
from kamal_backup.models import Snapshot
from kamal_backup.redact import redact
from kamal_backup.restic import Restic
from kamal_backup.settings import Database, Settings
from kamal_backup.verification import DatabaseFigures, FigureMethod, TableFigures

log = logging.getLogger(__name__)

DEFAULT_PORT = 5432
CLIENT_ROOT = "/usr/lib/postgresql"
# URL query options that libpq also reads from the environment.
OPTION_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "sslcompression": "PGSSLCOMPRESSION",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "channel_binding": "PGCHANNELBINDING",
    "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME",
    "requiressl": "PGREQUIRESSL",
    "sslnegotiation": "PGSSLNEGOTIATION",
}
# Connection identity comes from the URL only: a stray PGDATABASE must never redirect a restore.
IDENTITY_ENV = {
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGPASSFILE",
}
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER")
_MAJOR = re.compile(r"\(PostgreSQL\)\s+(\d+)")

# Every non-system schema goes, with what is in it (tables, views, functions, sequences,
# extensions): the restored database then holds exactly what the dump holds.
CLEAN_TARGET = b"""\
BEGIN;
SET client_min_messages = warning;
DO $kamal_backup$
DECLARE s record;
BEGIN
  FOR s IN SELECT nspname FROM pg_catalog.pg_namespace
           WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
  LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s.nspname);
  END LOOP;
  PERFORM pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata;
END
$kamal_backup$;
CREATE SCHEMA public;
"""

# A restore that commits only when told (restore_if) arms a deferred check that fails any COMMIT
# but its own: pg_restore's script wraps large objects in BEGIN/COMMIT, which would otherwise
# commit the target, half restored, before the restore was told to keep it.
GATE_REFUSAL = "kamal-backup: the dump commits part of itself"
ARM_GATE = f"""\
CREATE FUNCTION pg_temp.kamal_backup_gate() RETURNS trigger LANGUAGE plpgsql AS $kamal_backup$
BEGIN
  IF pg_catalog.current_setting('kamal_backup.commit', true) IS DISTINCT FROM 'yes' THEN
    RAISE EXCEPTION '{GATE_REFUSAL}';
  END IF;
  RETURN NULL;
END
$kamal_backup$;
-- A small dump is in before the listing answers, and waits for it in this transaction (the
-- dump's own script sets this too, in its header; this does not rely on it).
SET LOCAL idle_in_transaction_session_timeout = 0;
CREATE TEMPORARY TABLE kamal_backup_gate (armed boolean) ON COMMIT DROP;
CREATE CONSTRAINT TRIGGER kamal_backup_gate AFTER INSERT ON pg_temp.kamal_backup_gate
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pg_temp.kamal_backup_gate();
INSERT INTO pg_temp.kamal_backup_gate VALUES (true);
""".encode()
PASS_GATE = b"\nSET LOCAL kamal_backup.commit = 'yes';\n"


@dataclass(frozen=True)
class PgClient:
    """One installed set of PostgreSQL client programs of one major version."""

    major: int
    bindir: Path

    def tool(self, name: str) -> str:
        return str(self.bindir / name)


def client_major(pg_dump: str, env: Mapping[str, str]) -> int | None:
    try:
        result = process.run([pg_dump, "--version"], env=env)
    except ToolMissing:
        return None
    match = _MAJOR.search(result.stdout)
    return int(match.group(1)) if match and result.returncode == 0 else None


def installed_clients(env: Mapping[str, str]) -> list[PgClient]:
    """Debian's side-by-side clients (/usr/lib/postgresql/<major>/bin), then a pg_dump on PATH."""
    found: dict[int, PgClient] = {}
    for pg_dump in sorted(glob.glob(f"{CLIENT_ROOT}/*/bin/pg_dump")):
        # Debian names the directory after the major: no `pg_dump --version` per installed
        # major (five of them in the image, each a process, on every backup and restore).
        directory = Path(pg_dump).parent.parent.name
        major = int(directory) if directory.isdigit() else client_major(pg_dump, env)
        if major is not None and os.access(pg_dump, os.X_OK):
            found.setdefault(major, PgClient(major, Path(pg_dump).parent))
    on_path = process.find_tool("pg_dump", env)
    # Debian's /usr/bin/pg_dump is a wrapper that picks a version itself; the real ones are above.
    if on_path and "pg_wrapper" not in os.path.realpath(on_path):
        major = client_major(on_path, env)
        if major is not None:
            found.setdefault(major, PgClient(major, Path(os.path.realpath(on_path)).parent))
    return sorted(found.values(), key=lambda client: client.major)


def choose_client(server_major: int, clients: list[PgClient]) -> PgClient:
    """The client of the server's major version, else the oldest newer one; never an older one.

    pg_dump refuses to dump a newer server, and a newer pg_dump can write archives an older
    pg_restore cannot read, so an exact match is preferred.
    """
    if not clients:
        raise ToolMissing("no PostgreSQL client (pg_dump) is installed")
    for client in clients:
        if client.major == server_major:
            return client
    newer = [client for client in clients if client.major > server_major]
    if newer:
        return newer[0]
    have = ", ".join(str(client.major) for client in clients)
    raise OperationFailed(
        f"the PostgreSQL server is version {server_major} but the newest installed client is {have.split(', ')[-1]} "
        f"(installed: {have}); install postgresql-client-{server_major}"
    )


def client_env(
    url: DatabaseUrl, password: str | None, environ: Mapping[str, str], database: str | None = None
) -> dict[str, str]:
    env = {name: environ[name] for name in BASE_ENV if name in environ}
    env.update({k: v for k, v in environ.items() if k.startswith("PG") and k not in IDENTITY_ENV})
    if url.host:
        env["PGHOST"] = url.host
    if url.port:
        env["PGPORT"] = str(url.port)
    if url.user:
        env["PGUSER"] = url.user
    env["PGDATABASE"] = database or url.database
    if password:
        env["PGPASSWORD"] = password
    for option, value in url.options.items():
        if option in OPTION_ENV:
            env[OPTION_ENV[option]] = value
    env.setdefault("PGCONNECT_TIMEOUT", "15")
    env.setdefault("PATH", os.defpath)
    return env


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# Row text depends on these settings; both sides set them so a restored row prints the same.
STABLE_OUTPUT = (
    "SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres'; "
    "SET extra_float_digits = 3; SET bytea_output = 'hex'; SET client_min_messages = warning;"
)
FIGURES_END = "kamal-backup-figures-end"
CONSISTENCY = (
    "counted in the session that exported the snapshot pg_dump dumped (pg_export_snapshot): "
    "the same view as the dump"
)


def figures_sql(method: FigureMethod) -> str:
    """One query: every user table's row count and an order-independent checksum of its rows.

    The checksum is the sum of hash_record_extended over the rows (PostgreSQL 14+, every column
    of a type with a default hash operator class: the same hash functions hash partitioning
    relies on, so stable across upgrades), prefixed "h:"; otherwise the sum of the first 64 bits
    of md5(row::text), prefixed "m:" (about three times slower). Sums are numeric: they cannot
    overflow. query_to_xml runs each table's query inside this one statement, so it works in a
    read-only transaction and needs no function to be created.
    """
    if method == "checksum":
        hashed = "'h:' || coalesce(sum(hash_record_extended(t, 0)), 0)::text"
        text = (
            "'m:' || coalesce(sum(('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint), 0)::text"
        )
    else:
        hashed = text = "NULL"
    by_hash = quote_literal(f"SELECT count(*) AS n, {hashed} AS s FROM ONLY %I.%I t")
    by_text = quote_literal(f"SELECT count(*) AS n, {text} AS s FROM ONLY %I.%I t")
    return f"""{STABLE_OUTPUT}
SELECT coalesce(jsonb_agg(jsonb_build_object(
  'table', name,
  'rows', (xpath('/row/n/text()', x))[1]::text::bigint,
  'checksum', (xpath('/row/s/text()', x))[1]::text) ORDER BY name), '[]'::jsonb)::text
FROM (
  SELECT n.nspname || '.' || c.relname AS name,
         query_to_xml(format(CASE WHEN {HASHABLE} THEN {by_hash} ELSE {by_text} END,
                             n.nspname, c.relname), true, true, '') AS x
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                      AND d.deptype = 'e')
) tables;"""


# True when hash_record_extended can hash every column of table c (its type, or a domain's base
# type, has a default hash operator class, directly or by binary coercion).
HASHABLE = """(current_setting('server_version_num')::int >= 140000 AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_opclass o JOIN pg_catalog.pg_am m ON m.oid = o.opcmethod
        WHERE m.amname = 'hash' AND o.opcdefault
          AND (o.opcintype = CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END
               OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast k
                          WHERE k.castsource = CASE WHEN ty.typtype = 'd'
                                                    THEN ty.typbasetype ELSE ty.oid END
                            AND k.casttarget = o.opcintype AND k.castmethod = 'b')))))"""


def parse_figures(output: str, method: FigureMethod) -> DatabaseFigures:
    line = next((line for line in output.splitlines() if line.startswith("[")), None)
    if line is None:
        raise OperationFailed("counting the database: psql printed no figures")
    tables = [
        TableFigures(
            table=item["table"],
            rows=int(item["rows"]),
            checksum=item.get("checksum") if method == "checksum" else None,
        )
        for item in json.loads(line)
    ]
    return DatabaseFigures(
        adapter="postgres", method=method, consistency=CONSISTENCY, tables=tables
    )


@contextmanager
def snapshot_session(
    client: PgClient, env: Mapping[str, str], method: FigureMethod
) -> Iterator[tuple[str, Callable[[], DatabaseFigures]]]:
    """A psql session that exports its snapshot, then counts from it while pg_dump dumps it.

    The session stays open (and so the snapshot importable) until the dump has ended.
    """
    argv = [client.tool("psql"), "-XAtq", "-v", "ON_ERROR_STOP=1"]
    with process.spawn(argv, env=env, stdin=subprocess.PIPE) as session:
        tail = process.StderrTail(session.stderr)
        stdin, stdout = session.stdin, session.stdout
        if stdin is None or stdout is None:
            raise OperationFailed("internal error: the psql session has no pipes")
        try:
            stdin.write(
                f"{STABLE_OUTPUT}\nBEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"
                "SELECT pg_catalog.pg_export_snapshot();\n".encode()
            )
            stdin.flush()
        except BrokenPipeError:
            pass
        snapshot = stdout.readline().decode().strip()
        if not re.fullmatch(r"[0-9A-F-]+", snapshot):
            session.wait()
            said = redact(error_line(tail.text())) or "psql ended"
            raise OperationFailed(f"cannot open a snapshot session on PostgreSQL: {said}")
        result: list[str] = []

        def count() -> None:
            for raw in iter(stdout.readline, b""):
                line = raw.decode()
                if line.startswith(FIGURES_END):
                    return
                if line.startswith("["):
                    result.append(line)

        counter = threading.Thread(target=count, daemon=True)
        # From here an error must not end the session: pg_dump may not have imported the
        # snapshot yet (a table the figures cannot read is one pg_dump cannot dump either, and
        # pg_dump's own error is the one to report). The savepoint keeps the transaction, and so
        # the exported snapshot, alive after a failed query.
        script = (
            "\\set ON_ERROR_STOP 0\nSAVEPOINT kamal_backup_figures;\n"
            f"{figures_sql(method)}\nROLLBACK TO SAVEPOINT kamal_backup_figures;\n"
            f"SELECT '{FIGURES_END}';\n"
        )
        try:
            stdin.write(script.encode())
            stdin.flush()
        except BrokenPipeError:
            pass
        counter.start()

        def pending() -> DatabaseFigures:
            counter.join()
            if not result or not result[0].strip():
                said = redact(error_line(tail.text())) or "psql ended"
                raise OperationFailed(f"counting the database for the manifest failed: {said}")
            return parse_figures(result[0], method)

        yield snapshot, pending
        with contextlib.suppress(OSError):
            stdin.write(b"COMMIT;\n")
            stdin.close()
        session.wait()


class PostgresAdapter(ServerAdapter):
    name = "postgres"
    aliases = ("postgresql",)
    url_schemes = ("postgres", "postgresql")
    secret_variables = ("PGPASSWORD", "RESTORE_PGPASSWORD")
    tools = ("pg_dump", "pg_restore", "psql")
    extension = "pgdump"
    default_port = DEFAULT_PORT
    restores_in_one_transaction = True  # CLEAN_TARGET ... COMMIT: see restore()

    def __init__(self, settings: Settings, database: Database) -> None:
        super().__init__(settings, database)
        self._clients: list[PgClient] | None = None
        # The client chosen for a server (by its connection environment), asked once.
        self._chosen: dict[tuple[tuple[str, str], ...], PgClient] = {}
        # Whether each restore target database exists, as warm_restore found it (ensure_database
        # then need not ask again: a database dropped in between fails the restore, which
        # changes nothing; one missing is created then, and a restore ahead waits for that).
        self._exists: dict[str, bool] = {}

    # URLs and passwords -----------------------------------------------------------------

    # Clients ----------------------------------------------------------------------------

    def clients(self) -> list[PgClient]:
        if self._clients is None:
            self._clients = installed_clients(self.settings.environ)
        return self._clients

    def server_major(
        self, env: Mapping[str, str], setting: str, database_exists: str | None = None
    ) -> int:
        """The server's major version; with `database_exists`, whether that database exists
        is asked in the same query and remembered for ensure_database. `setting` (e.g.
        RESTORE_DATABASE_URL) is the one a connection failure names."""
        clients = self.clients()
        if not clients:
            raise ToolMissing("no PostgreSQL client (psql, pg_dump) is installed")
        query = "SELECT current_setting('server_version_num')"
        if database_exists is not None:
            query += (
                ", EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = "
                f"{quote_literal(database_exists)})"
            )
        result = process.run([clients[-1].tool("psql"), "-XAtq", "-c", query], env=env)
        if result.returncode != 0:
            said = redact(error_line(result.stderr)) or f"psql exited {result.returncode}"
            raise OperationFailed(f"cannot connect to PostgreSQL at {setting}: {said}")
        version, _, exists = result.stdout.strip().partition("|")
        if database_exists is not None:
            self._exists[database_exists] = exists == "t"
        try:
            return int(version) // 10000
        except ValueError:
            raise OperationFailed("could not read the PostgreSQL server version") from None

    def client_for(
        self, env: Mapping[str, str], setting: str, database_exists: str | None = None
    ) -> PgClient:
        key = tuple(sorted(env.items()))
        if key not in self._chosen:
            server = self.server_major(env, setting, database_exists)
            client = choose_client(server, self.clients())
            log.debug("PostgreSQL server %d: using clients in %s", server, client.bindir)
            self._chosen[key] = client
        return self._chosen[key]

    def warm_restore(self) -> None:
        target = self.require_target()
        admin_env = client_env(
            target, self.target_password(target), self.settings.environ, database="postgres"
        )
        self.client_for(admin_env, self.restore_setting, database_exists=target.database)

    # Backup -----------------------------------------------------------------------------

    @contextmanager
    def dump_command(self, figures: bool = True) -> Iterator[DumpCommand]:
        env = client_env(self.source, self.source_password(), self.settings.environ)
        client = self.client_for(env, self.database.source_setting)
        # Uncompressed custom format: restic compresses and, unlike pg_dump's compression,
        # keeps unchanged rows byte-identical across days so they deduplicate.
        argv = (
            client.tool("pg_dump"),
            "--format=custom",
            "--compress=0",
            "--no-owner",
            "--no-privileges",
        )
        if not figures:
            yield DumpCommand(argv=argv, env=env)
            return
        with snapshot_session(client, env, self.figure_method()) as (snapshot, pending):
            yield DumpCommand(argv=(*argv, f"--snapshot={snapshot}"), env=env, figures=pending)

    def restored_figures(self, method: FigureMethod) -> DatabaseFigures:
        target = self.require_target()
        env = client_env(target, self.target_password(target), self.settings.environ)
        client = self.client_for(env, self.restore_setting)
        result = process.run(
            [client.tool("psql"), "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", figures_sql(method)],
            env=env,
        )
        if result.returncode != 0:
            said = redact(error_line(result.stderr)) or f"psql exited {result.returncode}"
            raise OperationFailed(f"counting the restored database failed: {said}")
        return parse_figures(result.stdout, method)

    # Restore ----------------------------------------------------------------------------

    def restore_target_tables(self, timeout: float) -> TargetTables:
        target = self.require_target()
        clients = self.clients()
        if not clients:
            raise ToolMissing("no PostgreSQL client (psql) is installed")
        env = client_env(target, self.target_password(target), self.settings.environ)
        env["PGCONNECT_TIMEOUT"] = str(max(2, int(timeout)))
        # The tables CLEAN_TARGET drops with their schemas (partitions count with their parent).
        query = (
            "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"
        )
        result = process.run(
            [clients[-1].tool("psql"), "-XAtq", "-c", query], env=env, timeout=timeout
        )
        if result.returncode == 0:
            return TargetTables(target.database, int(result.stdout.strip()))
        if f'database "{target.database}" does not exist' in result.stderr:
            return TargetTables(target.database, None)  # the restore creates it
        said = redact(error_line(result.stderr)) or f"psql exited {result.returncode}"
        raise OperationFailed(f"PostgreSQL at {self.restore_setting}: {said}")

    def ensure_database(
        self, client: PgClient, target: DatabaseUrl, env: Mapping[str, str]
    ) -> bool:
        """Creates the target database when it does not exist; True when it was created."""
        if self._exists.get(target.database):
            return False  # warm_restore asked, in the query that read the server's version
        psql = client.tool("psql")
        query = (
            f"SELECT 1 FROM pg_catalog.pg_database WHERE datname = {quote_literal(target.database)}"
        )
        found = process.run([psql, "-XAtq", "-c", query], env=env)
        if found.returncode != 0:
            raise OperationFailed(
                f"cannot connect to PostgreSQL at {self.restore_setting}: "
                f"{redact(error_line(found.stderr))}"
            )
        if found.stdout.strip() == "1":
            return False
        created = process.run(
            [psql, "-Xq", "-c", f"CREATE DATABASE {quote_ident(target.database)}"], env=env
        )
        if created.returncode != 0:
            raise OperationFailed(
                f"the restore database {target.database} does not exist and could not be created: "
                f"{redact(error_line(created.stderr))}"
            )
        log.info("created restore database %s", target.database)
        self._exists[target.database] = True
        return True

    def restore(
        self, restic: Restic, snapshot: Snapshot, on_bytes: ByteCounter | None = None
    ) -> dict[str, Any]:
        return self._restore(restic, snapshot, on_bytes, commit_if=None)

    def restore_if(
        self,
        restic: Restic,
        snapshot: Snapshot,
        commit_if: Callable[[], bool],
        on_bytes: ByteCounter | None = None,
    ) -> dict[str, Any]:
        if not self.restore_target_exists():
            raise OperationFailed(
                f"the restore database {self.require_target().database} is not known to exist"
            )
        try:
            return self._restore(restic, snapshot, on_bytes, commit_if=commit_if)
        except OperationFailed as exc:
            if GATE_REFUSAL in str(exc):
                raise CommitsOnItsOwn(
                    "the dump commits part of itself (large objects): nothing was kept"
                ) from exc
            raise

    def restore_target_exists(self) -> bool | None:
        """Known once warm_restore has asked (it asks whether the target exists); None when it
        has not, or could not."""
        target = self.target
        return None if target is None else self._exists.get(target.database)

    def _restore(
        self,
        restic: Restic,
        snapshot: Snapshot,
        on_bytes: ByteCounter | None,
        commit_if: Callable[[], bool] | None,
    ) -> dict[str, Any]:
        target = self.require_target()
        password = self.target_password(target)
        # The server is asked on its maintenance database: the target may not exist yet.
        admin_env = client_env(target, password, self.settings.environ, database="postgres")
        env = client_env(target, password, self.settings.environ)
        client = self.client_for(admin_env, self.restore_setting)
        created: list[bool] = []

        # pg_restore turns the archive into SQL; psql runs the cleanup and that SQL in ONE
        # transaction that is committed only when restic and pg_restore both succeeded, so a
        # failure at any point leaves the target database as it was. The dump goes from restic
        # to pg_restore to psql over OS pipes: no byte of it passes through Python.
        # Without --single-transaction, pg_restore's script wraps large objects in a BEGIN and
        # COMMIT of their own, which would commit the target half restored (tables and data,
        # no indexes or constraints yet). With it, its script's one COMMIT is its last line,
        # written only once it has read the whole archive. restore_if keeps the commit for
        # itself instead: its gate refuses any COMMIT but its own (see ARM_GATE).
        whole = ["--single-transaction"] if commit_if is None else []
        psql = [client.tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        restored = pipe_into(
            restic,
            snapshot,
            on_bytes=on_bytes,
            converter=Step(
                argv=[
                    client.tool("pg_restore"),
                    "--no-owner",
                    "--no-privileges",
                    *whole,
                    "-f",
                    "-",
                ],
                env=env,
                label="pg_restore",
            ),
            importer=Step(argv=psql, env=env, label="psql"),
            importer_argv=lambda prelude, epilogue: [
                *psql,
                "-f",
                prelude,
                "-f",
                "-",
                "-f",
                epilogue,
            ],
            prelude=CLEAN_TARGET if commit_if is None else CLEAN_TARGET + ARM_GATE,
            epilogue=b"\nCOMMIT;\n" if commit_if is None else PASS_GATE + b"COMMIT;\n",
            abandon=b"\nROLLBACK;\n",
            # While restic opens the repository.
            prepare=lambda: created.append(self.ensure_database(client, target, admin_env)),
            commit_if=commit_if,
        )
        return {
            "bytes": restored,
            "database": target.database,
            "created_database": created[0],
            "client_major": client.major,
        }

    def probe(self) -> str:
        env = client_env(self.source, self.source_password(), self.settings.environ)
        # The server_version_num setting: reads nothing of the app's.
        server = self.server_major(env, self.database.source_setting)
        client = choose_client(server, self.clients())
        return f"PostgreSQL {server} reachable; pg_dump {client.major} ({client.bindir}) matches"

    def client_versions(self) -> dict[str, str | None]:
        try:
            env = client_env(self.source, self.source_password(), self.settings.environ)
            client = self.client_for(env, self.database.source_setting)
        except (OperationFailed, ConfigError):
            clients = self.clients()
            if not clients:
                return {"pg_dump": None, "pg_restore": None, "psql": None}
            client = clients[-1]
        from kamal_backup.tools import tool_version, version_number

        return {
            name: version_number(tool_version(client.tool(name), self.settings.environ))
            for name in ("pg_dump", "pg_restore", "psql")
        }
