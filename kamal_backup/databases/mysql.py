"""MySQL/MariaDB: one-row-per-INSERT dumps for deduplication, batched back together on restore."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import IO, Any, NamedTuple

from kamal_backup import process
from kamal_backup.databases.base import ByteCounter, DumpCommand, ServerAdapter, TargetTables
from kamal_backup.databases.pipeline import Importer, error_line, stream_into
from kamal_backup.databases.urls import DatabaseUrl
from kamal_backup.errors import OperationFailed, ToolMissing
from kamal_backup.models import Snapshot
from kamal_backup.redact import redact
from kamal_backup.restic import Restic
from kamal_backup.verification import DatabaseFigures, FigureMethod, TableFigures

log = logging.getLogger(__name__)

DEFAULT_PORT = 3306
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER")
BATCH_BYTES = 1024 * 1024  # like mysqldump's own net_buffer_length-sized extended inserts


def find_client(preferred: str, fallback: str, env: Mapping[str, str]) -> str:
    found = process.find_tool(preferred, env) or process.find_tool(fallback, env)
    if found is None:
        raise ToolMissing(f"neither {preferred} nor {fallback} is installed")
    return found


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def quote_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def insert_prefix(line: bytes) -> bytes | None:
    """`INSERT INTO `t` VALUES (` (or with a column list) when the line is one single-row INSERT.

    mysqldump writes each statement on one line and escapes newlines inside values, so a line
    that starts with the prefix and ends with ");" is exactly one statement.
    """
    found = _PREFIX.match(line)
    return found.group(1) if found is not None and line.endswith(b");") else None


_IDENTIFIER = rb"`(?:[^`\n]|``)*`"
# The statement up to the first row's "(": a back-quoted table, perhaps a --complete-insert
# column list of back-quoted names.
_PREFIX = re.compile(
    rb"(INSERT INTO "
    + _IDENTIFIER
    + rb"(?: \("
    + _IDENTIFIER
    + rb"(?:, ?"
    + _IDENTIFIER
    + rb")*\))? VALUES )\("
)
# mariadb-dump turns unique checks off in its header. MariaDB (10.6+) then loads a table that
# starts empty inside one transaction (the restore's autocommit=0) in its "bulk insert" mode,
# which took 2.4 times the server CPU of ordinary inserts on the bench's tables
# (docs/benchmarks.md). The restore checks unique keys again; a valid dump has no duplicates.
UNIQUE_CHECKS_ON = b"SET UNIQUE_CHECKS=1;\n"


# What a piece of the rewritten dump is, for the restore's import sessions (mysql_sessions.py).
ROWS = "rows"  # one INSERT of rows of one table
SETTING = "setting"  # one SET statement of the session's variables
OTHER = "other"  # anything else: DDL, comments, trigger bodies, several statements
TAIL = "tail"  # the dump's last line had no newline: perhaps cut off mid-statement


class Piece(NamedTuple):
    kind: str
    data: bytes
    table: bytes = b""  # ROWS: the back-quoted table
    keyed: bool = False  # ROWS: the table has a primary key, so the order rows arrive in is moot


_TABLE = re.compile(rb"INSERT INTO (" + _IDENTIFIER + rb")")
_CREATE_TABLE = re.compile(rb"CREATE TABLE (" + _IDENTIFIER + rb") \($")
# One SET statement alone on its line (no other ';' in it), as mysqldump writes them:
# `/*!40101 SET NAMES utf8mb4 */;`, `/*!50003 SET sql_mode = '...' */ ;`, `/*M!100616 SET ...`.
_SETTING = re.compile(rb"(?:/\*M?!\d+ )?SET [^;\n]*;$")
_TABLE_LOCK = re.compile(
    rb"LOCK TABLES " + _IDENTIFIER + rb"(?: AS " + _IDENTIFIER + rb")? WRITE;$"
)


class _Rebatcher:
    """Rewrites a dump block by block (whole lines): consecutive single-row INSERTs into one
    table become one multi-row INSERT, never across blocks, so a statement stays about a
    block's size. Only statements under the default ';' delimiter are touched: trigger and
    routine bodies (between DELIMITER ;; lines) pass through byte for byte.

    For a restore (`restore=True`) it also drops the dump's LOCK TABLES and UNLOCK TABLES
    lines: a table's rows may be inserted by more than one session (mysql_sessions.py), which
    a write lock held by one of them would make wait; and it notes which tables have a
    primary key.
    """

    def __init__(self, recheck_unique: bool, restore: bool = False) -> None:
        self.delimiter = b";"
        self.recheck_unique = recheck_unique
        self.restore = restore
        self.keyed: set[bytes] = set()
        self._creating: bytes | None = None  # the table whose CREATE TABLE is being read
        self._primary = False  # whether it has a primary key

    def block(self, block: bytes) -> bytes:
        return b"".join(piece.data for piece in self.pieces(block))

    def pieces(self, block: bytes) -> Iterator[Piece]:
        if self.delimiter == b";":
            joined = _one_table(block)
            if joined is not None:
                yield self._rows(joined)
                return
        other: list[bytes] = []
        for piece in self._lines(block.split(b"\n")[:-1]):
            if piece.kind == OTHER:
                other.append(piece.data)
                continue
            if other:
                yield Piece(OTHER, b"".join(other))
                other = []
            yield piece
        if other:
            yield Piece(OTHER, b"".join(other))

    def _rows(self, statement: bytes) -> Piece:
        found = _TABLE.match(statement)
        table = found.group(1) if found is not None else b""
        return Piece(ROWS, statement, table, table in self.keyed)

    def _lines(self, lines: list[bytes]) -> Iterator[Piece]:
        """The general case, one line at a time: a block with other statements in it."""
        prefix = b""
        batch: list[bytes] = []
        for line in lines:
            found = insert_prefix(line) if self.delimiter == b";" else None
            if batch and found != prefix:
                yield self._rows(prefix + b",".join(batch) + b";\n")
                batch = []
            if found is not None:
                prefix = found
                batch.append(line[len(found) : -1])  # "(...)" without the final ";"
                continue
            if self.delimiter != b";":
                yield Piece(OTHER, line + b"\n")
                if line.startswith(b"DELIMITER "):
                    self.delimiter = line[len(b"DELIMITER ") :].strip()
                continue
            if self.restore:
                self._note_key(line)
                if line == b"UNLOCK TABLES;" or _TABLE_LOCK.match(line):
                    continue
            if _SETTING.match(line) and b"GLOBAL" not in line.upper():
                yield Piece(SETTING, line + b"\n")
            else:
                yield Piece(OTHER, line + b"\n")
            if line.startswith(b"DELIMITER "):
                self.delimiter = line[len(b"DELIMITER ") :].strip()
            elif (
                self.recheck_unique
                and line.startswith(b"/*!40014 SET ")
                and line.endswith(b"UNIQUE_CHECKS=0 */;")
            ):
                yield Piece(SETTING, UNIQUE_CHECKS_ON)
                self.recheck_unique = False
        if batch:
            yield self._rows(prefix + b",".join(batch) + b";\n")

    def _note_key(self, line: bytes) -> None:
        """Follows mysqldump's CREATE TABLE layout: a `CREATE TABLE `t` (` line, one line per
        column or key, then a line starting with ')' and the table's options. Keyed: an InnoDB
        table with a primary key, which keeps its rows in key order whatever order they
        arrive in (MyISAM and Aria keep them in the order they were inserted)."""
        created = _CREATE_TABLE.match(line)
        if created is not None:
            self._creating = created.group(1)
            self._primary = False
            self.keyed.discard(self._creating)
        elif self._creating is not None:
            if line.startswith(b"  PRIMARY KEY ("):
                self._primary = True
            elif line.startswith(b")"):
                if self._primary and b" ENGINE=InnoDB" in line:
                    self.keyed.add(self._creating)
                self._creating = None


def _one_table(block: bytes) -> bytes | None:
    """A block that is nothing but single-row INSERTs into one table (most blocks of a big
    table's rows) as one multi-row INSERT, joined by the bytes engine; None for any other block.

    No raw newline is inside a row (mysqldump escapes them), so every newline ends a line, and
    the separator `);\\nP(` holds exactly one newline (P, the prefix, has none), so its
    occurrences cannot overlap. The block is all rows of P exactly when it starts with P, ends
    with ");\\n" and, once every separator is replaced, the only newline left is the last one:
    every line but the last then ended with ");" and was followed by P(.
    """
    found = _PREFIX.match(block)
    if found is None or not block.endswith(b");\n"):
        return None
    joined = block.replace(b");\n" + found.group(1) + b"(", b"),(")
    return joined if joined.find(b"\n") == len(joined) - 1 else None


def _line_blocks(lines: Iterable[bytes], max_bytes: int) -> Iterator[bytes]:
    """Whole lines (each ending in a newline) grouped into blocks of at most max_bytes (or one
    longer line)."""
    pending: list[bytes] = []
    size = 0
    for raw in lines:
        line = raw if raw.endswith(b"\n") else raw + b"\n"
        if pending and size + len(line) > max_bytes:
            yield b"".join(pending)
            pending, size = [], 0
        pending.append(line)
        size += len(line)
    if pending:
        yield b"".join(pending)


def batch_inserts(lines: Iterable[bytes], max_bytes: int = BATCH_BYTES) -> Iterator[bytes]:
    """Joins consecutive single-row INSERTs into one table into multi-row INSERTs of at most
    about max_bytes."""
    rebatcher = _Rebatcher(recheck_unique=False)
    for block in _line_blocks(lines, max_bytes):
        yield rebatcher.block(block)


def dump_blocks(stream: IO[bytes]) -> Iterator[bytes]:
    """The stream in blocks of whole lines, about BATCH_BYTES each; a last line that has no
    newline comes last, as it is."""
    rest = b""
    while chunk := stream.read(BATCH_BYTES):
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            yield data[:cut]
        rest = data[cut:]
    if rest:
        yield rest


def restore_pieces(stream: IO[bytes]) -> Iterator[Piece]:
    """The restore's rewrite of a dump, in pieces: rows rebatched in blocks of about a
    megabyte, unique keys checked again after the dump's header, no table locks."""
    rebatcher = _Rebatcher(recheck_unique=True, restore=True)
    for block in dump_blocks(stream):
        if block.endswith(b"\n"):
            yield from rebatcher.pieces(block)
        else:
            yield Piece(TAIL, block + b"\n")


def batched(stream: IO[bytes]) -> Iterator[bytes]:
    """The restore's rewrite as one stream of bytes (what one import session would read)."""
    for piece in restore_pieces(stream):
        yield piece.data


# The import's client parses its input as single bytes (--default-character-set=binary): the
# dump is UTF-8, where no byte of a multi-byte character is ASCII, so statements end where they
# did, and the client's parsing, which runs while the server waits for the next statement,
# costs a third less. The session itself speaks utf8mb4, as the dump's header also says.
IMPORT_CLIENT_CHARSET = "--default-character-set=binary"
SESSION_NAMES = b"SET NAMES utf8mb4;\n"
SESSION_PRELUDE = b"SET autocommit=0;\n"


def import_prelude(drops: list[str]) -> bytes:
    """What the import session runs before the dump: the drops (with foreign key checks off
    meanwhile, so tables drop in any order), then autocommit off."""
    lines = []
    if drops:
        lines.append("SET @kb_fk_checks = @@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS = 0;")
        lines += [f"{drop};" for drop in drops]
        lines.append("SET FOREIGN_KEY_CHECKS = @kb_fk_checks;")
    return SESSION_NAMES + "".join(line + "\n" for line in lines).encode() + SESSION_PRELUDE


MYSQL_CONSISTENCY = (
    "counted in a START TRANSACTION WITH CONSISTENT SNAPSHOT opened just before the dump's "
    "own (InnoDB tables); a write committed between the two shows as a mismatch, never as a "
    "false match; non-transactional tables are counted, not comparable"
)


def figures_script(
    database: str, tables: list[tuple[str, str, list[str]]], method: FigureMethod, *, snapshot: bool
) -> str:
    """One SELECT per table: its row count and the sum of its rows' md5 as 64-bit numbers."""
    lines = []
    if snapshot:
        lines += [
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT;",
        ]
    for name, _engine, columns in tables:
        if method == "checksum" and columns:
            values = ", ".join(
                f"IFNULL(HEX(CAST({quote_ident(column)} AS BINARY)), 'N')" for column in columns
            )
            checksum = (
                "COALESCE(SUM(CAST(CONV(SUBSTRING(MD5(CONCAT_WS(',', "
                + values
                + ")), 1, 16), 16, 10) AS UNSIGNED)), 0)"
            )
        else:
            checksum = "''"
        lines.append(
            f"SELECT COUNT(*), {checksum} FROM {quote_ident(database)}.{quote_ident(name)};"
        )
    if snapshot:
        lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def connection_args(url: DatabaseUrl) -> list[str]:
    args = []
    if url.host:
        args.append(f"--host={url.host}")
        if url.host != "localhost":  # "localhost" means the socket to MySQL clients
            args.append("--protocol=TCP")
    if url.port:
        args.append(f"--port={url.port}")
    if url.user:
        args.append(f"--user={url.user}")
    options = url.options
    if options.get("ssl", "").lower() in ("true", "1", "required"):
        args.append("--ssl")
    for option, flag in (("sslca", "--ssl-ca"), ("sslcert", "--ssl-cert"), ("sslkey", "--ssl-key")):
        if options.get(option):
            args.append(f"{flag}={options[option]}")
    return args


def client_env(password: str | None, environ: Mapping[str, str]) -> dict[str, str]:
    env = {name: environ[name] for name in BASE_ENV if name in environ}
    env.setdefault("PATH", os.defpath)
    if password:
        env["MYSQL_PWD"] = password  # the clients read it from the environment, never from argv
    return env


class MysqlAdapter(ServerAdapter):
    name = "mysql"
    aliases = ("mysql2", "mariadb")
    url_schemes = ("mysql", "mysql2", "mariadb")
    secret_variables = ("MYSQL_PWD", "RESTORE_MYSQL_PWD")
    tools = ("mariadb-dump", "mariadb")
    extension = "sql"
    default_port = DEFAULT_PORT

    def dumper(self) -> str:
        return find_client("mariadb-dump", "mysqldump", self.settings.environ)

    def client(self) -> str:
        return find_client("mariadb", "mysql", self.settings.environ)

    # Backup -----------------------------------------------------------------------------

    @contextmanager
    def dump_command(self, figures: bool = True) -> Iterator[DumpCommand]:
        source = self.source
        argv = (
            self.dumper(),
            *connection_args(source),
            "--single-transaction",
            "--quick",
            "--routines",
            "--triggers",
            "--events",
            # One row per INSERT: an insert or delete then shifts one line, not every ~1 MB
            # statement boundary after it, so the rest of the dump deduplicates.
            "--skip-extended-insert",
            "--hex-blob",
            "--default-character-set=utf8mb4",
            "--no-tablespaces",
            "--skip-dump-date",
            source.database,
        )
        env = client_env(self.source_password(), self.settings.environ)
        if not figures:
            yield DumpCommand(argv=argv, env=env)
            return
        # The figures' consistent snapshot starts just before the dump's own: mariadb-dump's
        # --single-transaction opens its snapshot in its own session, and the server cannot
        # share one between sessions. A write committed in that gap shows as a mismatch.
        method = self.figure_method()
        tables = self._tables(source, env, source.database, self.database.source_setting)
        script = figures_script(source.database, tables, method, snapshot=True)
        with ThreadPoolExecutor(max_workers=1) as pool:
            # In the dump's context: cancelling the operation kills the figures' session too.
            future = pool.submit(
                contextvars.copy_context().run,
                self._run_figures,
                source,
                env,
                script,
                tables,
                method,
            )
            yield DumpCommand(argv=argv, env=env, figures=future.result)

    # Manifest figures ---------------------------------------------------------------------

    def _tables(
        self, url: DatabaseUrl, env: Mapping[str, str], database: str, setting: str
    ) -> list[tuple[str, str, list[str]]]:
        """(table, engine, columns) of every base table, in name order (`setting`: the one
        a failure names)."""
        literal = quote_literal(database)
        engines = dict(
            (row[0], row[1] if len(row) > 1 else "")
            for row in self._sql(
                url,
                env,
                "SELECT TABLE_NAME, IFNULL(ENGINE, '') FROM information_schema.TABLES "
                f"WHERE TABLE_SCHEMA = {literal} AND TABLE_TYPE = 'BASE TABLE'",
                setting=setting,
            )
        )
        columns: dict[str, list[str]] = {name: [] for name in engines}
        for table, column in self._sql(
            url,
            env,
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = {literal} ORDER BY TABLE_NAME, ORDINAL_POSITION",
            setting=setting,
        ):
            if table in columns:
                columns[table].append(column)
        return [(name, engines[name], columns[name]) for name in sorted(engines)]

    def _run_figures(
        self,
        url: DatabaseUrl,
        env: Mapping[str, str],
        script: str,
        tables: list[tuple[str, str, list[str]]],
        method: FigureMethod,
    ) -> DatabaseFigures:
        argv = [
            self.client(),
            *connection_args(url),
            "--batch",
            "--raw",
            "--skip-column-names",
            "--default-character-set=utf8mb4",
        ]
        with process.spawn(argv, env=env, stdin=subprocess.PIPE) as child:
            tail = process.StderrTail(child.stderr)
            if child.stdin is None or child.stdout is None:
                raise OperationFailed("internal error: the MySQL session has no pipes")
            with contextlib.suppress(BrokenPipeError):
                child.stdin.write(script.encode())
            with contextlib.suppress(OSError):
                child.stdin.close()
            output = child.stdout.read().decode("utf-8", "replace")
            code = child.wait()
        process.raise_if_cancelled()  # killed by a cancel: not a failure of the count
        if code != 0:
            raise OperationFailed(
                f"counting the MySQL database failed: {redact(error_line(tail.text()))}"
            )
        lines = [line.split("\t") for line in output.splitlines() if line]
        if len(lines) != len(tables):
            raise OperationFailed("counting the MySQL database: unexpected output")
        found = []
        for (name, engine, _), row in zip(tables, lines, strict=True):
            comparable = engine.lower() == "innodb"
            found.append(
                TableFigures(
                    table=name,
                    rows=int(row[0]),
                    checksum=row[1] if method == "checksum" and len(row) > 1 else None,
                    comparable=comparable,
                    note=None
                    if comparable
                    else f"ENGINE={engine or '?'} is not transactional: counted, not comparable",
                )
            )
        return DatabaseFigures(
            adapter="mysql", method=method, consistency=MYSQL_CONSISTENCY, tables=found
        )

    def restored_figures(self, method: FigureMethod) -> DatabaseFigures:
        target = self.require_target()
        env = client_env(self.target_password(target), self.settings.environ)
        tables = self._tables(target, env, target.database, self.restore_setting)
        script = figures_script(target.database, tables, method, snapshot=False)
        return self._run_figures(target, env, script, tables, method)

    # Restore ----------------------------------------------------------------------------

    def _sql(
        self,
        target: DatabaseUrl,
        env: Mapping[str, str],
        statement: str,
        database: str | None = None,
        *,
        setting: str,
    ) -> list[list[str]]:
        """Runs one statement; a failure names `setting` (DATABASE_URL, RESTORE_DATABASE_URL)."""
        argv = [
            self.client(),
            *connection_args(target),
            "--batch",
            "--raw",
            "--skip-column-names",
            "--default-character-set=utf8mb4",
            "-e",
            statement,
        ]
        if database:
            argv.append(database)
        result = process.run(argv, env=env)
        if result.returncode != 0:
            raise OperationFailed(f"MySQL at {setting}: {redact(error_line(result.stderr))}")
        return [line.split("\t") for line in result.stdout.splitlines() if line]

    def clean_target(self, target: DatabaseUrl, env: Mapping[str, str]) -> tuple[bool, list[str]]:
        """Creates the database if missing; else the statements that drop every object in it.

        (created, drops) from one client call (two when the database is created): the import
        session runs the drops itself, first, so emptying the target costs no client of its own.
        """
        name = target.database
        literal = quote_literal(name)
        found = self._sql(
            target,
            env,
            "SELECT 'schema', '', '' FROM information_schema.SCHEMATA "
            f"WHERE SCHEMA_NAME = {literal} "
            "UNION ALL SELECT 'table', TABLE_TYPE, HEX(TABLE_NAME) FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = {literal} "
            "UNION ALL SELECT 'routine', ROUTINE_TYPE, HEX(ROUTINE_NAME) "
            f"FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {literal} "
            "UNION ALL SELECT 'event', '', HEX(EVENT_NAME) FROM information_schema.EVENTS "
            f"WHERE EVENT_SCHEMA = {literal}",
            setting=self.restore_setting,
        )
        if not any(row[0] == "schema" for row in found):
            try:
                self._sql(
                    target,
                    env,
                    f"CREATE DATABASE {quote_ident(name)} CHARACTER SET utf8mb4",
                    setting=self.restore_setting,
                )
            except OperationFailed as exc:
                raise OperationFailed(
                    f"the restore database {name} does not exist and could not be created: {exc}"
                ) from None
            log.info("created restore database %s", name)
            return True, []
        drops = []
        for row in found:
            if row[0] == "schema" or len(row) != 3:
                continue
            what, kind, hexed = row
            qualified = f"{quote_ident(name)}.{quote_ident(bytes.fromhex(hexed).decode())}"
            if what == "table":
                drops.append(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} IF EXISTS {qualified}")
            elif what == "routine":
                routine = "FUNCTION" if kind == "FUNCTION" else "PROCEDURE"
                drops.append(f"DROP {routine} IF EXISTS {qualified}")
            elif what == "event":
                drops.append(f"DROP EVENT IF EXISTS {qualified}")
        return False, drops

    def restore(
        self, restic: Restic, snapshot: Snapshot, on_bytes: ByteCounter | None = None
    ) -> dict[str, Any]:
        target = self.require_target()
        env = client_env(self.target_password(target), self.settings.environ)
        cleaned: list[tuple[bool, list[str]]] = []
        # No --force: the import stops at the first error. Row-level work runs with autocommit
        # off and is committed once at the end (DDL commits implicitly along the way); a big
        # table's rows go to more sessions at once (mysql_sessions.py).
        argv = [
            self.client(),
            *connection_args(target),
            "--binary-mode",
            IMPORT_CLIENT_CHARSET,
            "--unbuffered",  # prints each sync token as its statement runs (mysql_sessions.py)
            target.database,
        ]
        from kamal_backup.databases.mysql_sessions import RowSessions

        with RowSessions(argv, env, label="mysql import") as sessions:
            importer = Importer(
                argv=argv,
                env=env,
                label="mysql import",
                prelude=import_prelude([]),
                epilogue=b"COMMIT;\n",
                transform=sessions.transform,
                started=sessions.started,
                finish=sessions.finish,
            )

            def prepare() -> None:
                """While restic opens the repository: the target exists, and the import
                session empties it before the dump (a failed drop fails the import, naming it)."""
                created, drops = self.clean_target(target, env)
                cleaned.append((created, drops))
                importer.prelude = import_prelude(drops)

            restored = stream_into(
                restic, snapshot, on_bytes=on_bytes, importer=importer, prepare=prepare
            )
        created, drops = cleaned[0]
        return {
            "bytes": restored,
            "database": target.database,
            "created_database": created,
            "dropped_objects": len(drops),
            "tables_in_parallel_sessions": sessions.tables_spread,
        }

    def restore_target_tables(self, timeout: float) -> TargetTables:
        target = self.require_target()
        literal = quote_literal(target.database)
        query = (
            "SELECT (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = "
            f"{literal}), (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
            f"{literal} AND TABLE_TYPE = 'BASE TABLE')"
        )
        argv = [
            self.client(),
            *connection_args(target),
            f"--connect-timeout={max(2, int(timeout))}",
            "--batch",
            "--raw",
            "--skip-column-names",
            "-e",
            query,
        ]
        env = client_env(self.target_password(target), self.settings.environ)
        result = process.run(argv, env=env, timeout=timeout)
        if result.returncode != 0:
            said = redact(error_line(result.stderr)) or f"mariadb exited {result.returncode}"
            raise OperationFailed(f"MySQL at {self.restore_setting}: {said}")
        exists, tables = result.stdout.split()
        return TargetTables(target.database, int(tables) if exists != "0" else None)

    def probe(self) -> str:
        source = self.source
        argv = [
            self.client(),
            *connection_args(source),
            "--batch",
            "--skip-column-names",
            "-e",
            "SELECT VERSION()",
            source.database,
        ]
        result = process.run(argv, env=client_env(self.source_password(), self.settings.environ))
        if result.returncode != 0:
            said = redact(error_line(result.stderr))
            raise OperationFailed(
                f"cannot connect to MySQL at {self.database.source_setting}: {said}"
            )
        return f"MySQL/MariaDB {result.stdout.strip()} reachable"

    def client_versions(self) -> dict[str, str | None]:
        from kamal_backup.tools import tool_version, version_number

        env = self.settings.environ
        versions: dict[str, str | None] = {}
        for key, preferred, fallback in (
            ("mariadb-dump", "mariadb-dump", "mysqldump"),
            ("mariadb", "mariadb", "mysql"),
        ):
            binary = process.find_tool(preferred, env) or process.find_tool(fallback, env)
            versions[key] = version_number(tool_version(binary, env))
        return versions
