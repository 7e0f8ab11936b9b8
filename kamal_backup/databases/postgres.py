"""PostgreSQL: uncompressed custom-format dumps and transactional restores with matching clients."""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kamal_backup import process
from kamal_backup.databases.base import ByteCounter, DumpCommand, ServerAdapter
from kamal_backup.databases.pipeline import Importer, Step, error_line, stream_into
from kamal_backup.databases.urls import DatabaseUrl
from kamal_backup.errors import ConfigError, OperationFailed, ToolMissing
from kamal_backup.models import Snapshot
from kamal_backup.redact import redact
from kamal_backup.restic import Restic
from kamal_backup.settings import Database, Settings

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
        major = client_major(pg_dump, env)
        if major is not None:
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


class PostgresAdapter(ServerAdapter):
    name = "postgres"
    aliases = ("postgresql",)
    url_schemes = ("postgres", "postgresql")
    secret_variables = ("PGPASSWORD", "RESTORE_PGPASSWORD")
    tools = ("pg_dump", "pg_restore", "psql")
    extension = "pgdump"
    default_port = DEFAULT_PORT

    def __init__(self, settings: Settings, database: Database) -> None:
        super().__init__(settings, database)
        self._clients: list[PgClient] | None = None

    # URLs and passwords -----------------------------------------------------------------

    # Clients ----------------------------------------------------------------------------

    def clients(self) -> list[PgClient]:
        if self._clients is None:
            self._clients = installed_clients(self.settings.environ)
        return self._clients

    def server_major(self, env: Mapping[str, str]) -> int:
        clients = self.clients()
        if not clients:
            raise ToolMissing("no PostgreSQL client (psql, pg_dump) is installed")
        result = process.run(
            [clients[-1].tool("psql"), "-XAtq", "-c", "SHOW server_version_num"], env=env
        )
        if result.returncode != 0:
            said = redact(error_line(result.stderr)) or f"psql exited {result.returncode}"
            raise OperationFailed(f"cannot connect to PostgreSQL: {said}")
        try:
            return int(result.stdout.strip()) // 10000
        except ValueError:
            raise OperationFailed("could not read the PostgreSQL server version") from None

    def client_for(self, env: Mapping[str, str]) -> PgClient:
        server = self.server_major(env)
        client = choose_client(server, self.clients())
        log.debug("PostgreSQL server %d: using clients in %s", server, client.bindir)
        return client

    # Backup -----------------------------------------------------------------------------

    @contextmanager
    def dump_command(self) -> Iterator[DumpCommand]:
        env = client_env(self.source, self.source_password(), self.settings.environ)
        client = self.client_for(env)
        # Uncompressed custom format: restic compresses and, unlike pg_dump's compression,
        # keeps unchanged rows byte-identical across days so they deduplicate.
        argv = (
            client.tool("pg_dump"),
            "--format=custom",
            "--compress=0",
            "--no-owner",
            "--no-privileges",
        )
        yield DumpCommand(argv=argv, env=env)

    # Restore ----------------------------------------------------------------------------

    def ensure_database(
        self, client: PgClient, target: DatabaseUrl, env: Mapping[str, str]
    ) -> bool:
        """Creates the target database when it does not exist; True when it was created."""
        psql = client.tool("psql")
        query = (
            f"SELECT 1 FROM pg_catalog.pg_database WHERE datname = {quote_literal(target.database)}"
        )
        found = process.run([psql, "-XAtq", "-c", query], env=env)
        if found.returncode != 0:
            raise OperationFailed(
                f"cannot connect to the restore server: {redact(error_line(found.stderr))}"
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
        return True

    def restore(
        self, restic: Restic, snapshot: Snapshot, on_bytes: ByteCounter | None = None
    ) -> dict[str, Any]:
        target = self.require_target()
        password = self.target_password(target)
        # The server is asked on its maintenance database: the target may not exist yet.
        admin_env = client_env(target, password, self.settings.environ, database="postgres")
        env = client_env(target, password, self.settings.environ)
        client = self.client_for(admin_env)
        created = self.ensure_database(client, target, admin_env)

        # pg_restore turns the archive into SQL; psql runs the cleanup and that SQL in ONE
        # transaction that is committed only when restic and pg_restore both succeeded, so a
        # failure at any point leaves the target database as it was.
        restored = stream_into(
            restic,
            snapshot,
            on_bytes=on_bytes,
            converter=Step(
                argv=[client.tool("pg_restore"), "--no-owner", "--no-privileges", "-f", "-"],
                env=env,
                label="pg_restore",
            ),
            importer=Importer(
                argv=[client.tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                env=env,
                label="psql",
                prelude=CLEAN_TARGET,
                epilogue=b"\nCOMMIT;\n",
            ),
        )
        return {
            "bytes": restored,
            "database": target.database,
            "created_database": created,
            "client_major": client.major,
        }

    def probe(self) -> str:
        env = client_env(self.source, self.source_password(), self.settings.environ)
        server = self.server_major(env)  # SHOW server_version_num: reads nothing of the app's
        client = choose_client(server, self.clients())
        return f"PostgreSQL {server} reachable; pg_dump {client.major} ({client.bindir}) matches"

    def client_versions(self) -> dict[str, str | None]:
        try:
            env = client_env(self.source, self.source_password(), self.settings.environ)
            client = self.client_for(env)
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
