"""MySQL/MariaDB restore: a big table's rows go to two more import sessions at once.

One client session runs a dump statement after statement, and the server inserts each
statement's rows on one core: on the bench's 400,000-row table (two cores) the import took
3.2 s in one session and 1.9 s in two (docs/benchmarks.md).

The main session (the pipeline's importer) runs the whole dump in order. The rows of an InnoDB
table with a primary key come in pieces of about a megabyte; when a second piece of the same
table follows the first, the main session is first asked to catch up (it prints a token once
everything sent before has run, the table's CREATE TABLE included), and then both pieces and
the rest of the table's rows go to ROW_SESSIONS more sessions, each taking the next piece when
it is free. Before the main session is sent anything after those rows (ENABLE KEYS, the
table's triggers, the next table), every row session prints a token once it has run its rows,
and then, when all of them have, commits and prints another. So no statement of the dump runs
before the rows it follows are in, and a row session that fails leaves the others' rows of
that table uncommitted. Each row session first runs every session setting the dump made so
far (SET NAMES, TIME_ZONE, SQL_MODE, FOREIGN_KEY_CHECKS), then checks unique keys again
(MariaDB's bulk-insert mode for an empty table would lock it against the other session).

A table without a primary key, or not InnoDB, keeps its rows in one session: it keeps them in
the order they were inserted, which two sessions would shuffle.

The row sessions start once the main session has connected (so that under a connection limit
they never take its place), on the operation's thread: a child gets the parent-death signal
when the thread that started it ends. One that cannot connect (e.g. the server's connection
limit) is left out, and its rows go to the others or the main session.

The row sessions' last rows are committed only when the whole dump was read (`finish(True)`),
as the main session's COMMIT is: a dump cut off mid-table leaves that table's rows uncommitted.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import IO

from kamal_backup import process
from kamal_backup.databases.mysql import (
    ROWS,
    SETTING,
    TAIL,
    UNIQUE_CHECKS_ON,
    import_prelude,
    restore_pieces,
)
from kamal_backup.databases.pipeline import error_line
from kamal_backup.errors import Interrupted, OperationFailed
from kamal_backup.redact import redact

log = logging.getLogger(__name__)

ROW_SESSIONS = 2
_POLL = 0.05  # seconds between looks at the sessions while waiting on one


_TOKEN = re.compile(rb"kb-sync-[0-9a-f]{12}-[0-9]+")
_ADMIT_SECONDS = 30.0  # for a row session to connect and run its prelude


class _Session:
    """One client process: its output is read on a thread for the tokens it prints (found
    anywhere in a line, whatever output format the client's option files ask for)."""

    def __init__(self, child: subprocess.Popen[bytes], label: str, read_stderr: bool) -> None:
        self.child = child
        self.label = label
        self.tokens: queue.Queue[bytes] = queue.Queue()
        self.broken = False
        # The main session's stderr is the pipeline's to read.
        self.stderr = process.StderrTail(child.stderr) if read_stderr else None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream = self.child.stdout
        if stream is None:
            return
        for line in iter(stream.readline, b""):
            found = _TOKEN.search(line)
            if found is not None:
                self.tokens.put(found.group(0))

    @property
    def gone(self) -> bool:
        return self.broken or self.child.poll() is not None

    def write(self, data: bytes) -> None:
        if self.broken or self.child.stdin is None:
            return
        try:
            self.child.stdin.write(data)
            self.child.stdin.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError):
            self.broken = True

    def close_input(self) -> None:
        if self.child.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                self.child.stdin.close()

    def said(self) -> str:
        return redact(error_line(self.stderr.text())) if self.stderr is not None else ""

    def failure(self) -> OperationFailed:
        return OperationFailed(f"{self.label} failed: {self.said() or f'exit {self.child.poll()}'}")


class RowSessions:
    """The row sessions of one restore, started beside the main session.

    Use as a context manager around the pipeline (its end kills what is still running), with
    `started` as the importer's start hook, `transform` as its transform and `finish` as its
    finish hook.
    """

    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str], label: str, sessions: int = ROW_SESSIONS
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.label = label
        self.size = sessions
        self.main: _Session | None = None
        self.rows: list[_Session] = []  # the row sessions that connected: they take rows
        self.tables_spread = 0
        self._started: list[_Session] = []
        self._admitted = False
        self._startup = b""  # the token each row session prints once connected
        self._token = f"kb-sync-{secrets.token_hex(6)}"
        self._count = 0
        self._settings: list[bytes] = []
        self._seen: dict[int, int] = {}  # row session -> how many settings it has run
        self._work: queue.Queue[bytes | None] = queue.Queue(maxsize=sessions)
        self._pending = 0
        self._done = threading.Condition()
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> RowSessions:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()  # reaps or kills each row session's client
        # Then each writer thread, its client gone, takes one None and ends.
        with contextlib.suppress(queue.Empty):
            while True:
                self._work.get_nowait()
        for _ in self.rows:
            self._work.put(None)

    # The pipeline's hooks ----------------------------------------------------------------

    def started(self, child: subprocess.Popen[bytes]) -> None:
        """The main session's client has started (its stdout is a pipe this reads): the row
        sessions start now too, on the operation's thread, and connect meanwhile."""
        self.main = _Session(child, self.label, read_stderr=False)
        # The main session connects first: under a connection limit (MAX_USER_CONNECTIONS) a
        # row session must not take its place. A literal SELECT, before the pump sends the
        # prelude; restic opens the repository meanwhile.
        statement, connected = self._sync(commit=False)
        self.main.write(statement)
        deadline = time.monotonic() + _ADMIT_SECONDS
        while not self._printed(self.main, connected):
            if self.main.gone or time.monotonic() > deadline or process.cancelled():
                return  # no row sessions: the pipeline names the main session's error
        statement, self._startup = self._sync(commit=False)
        for number in range(1, self.size + 1):
            row_child = self._stack.enter_context(
                process.spawn(self.argv, env=self.env, stdin=subprocess.PIPE)
            )
            session = _Session(row_child, f"{self.label} (rows session {number})", True)
            session.write(import_prelude([]) + statement)
            self._started.append(session)

    def transform(self, stream: IO[bytes]) -> Iterator[bytes]:
        """What the main session reads: the dump rewritten, less the rows given to row sessions."""
        run = b""  # the table of the rows just seen, while nothing else came between
        held: bytes | None = None  # a keyed table's first piece, until the next piece says
        spread = False  # whether the table's rows go to the row sessions
        for piece in restore_pieces(stream):
            if piece.kind == ROWS and piece.table == run:
                if held is not None:
                    statement, token = self._sync(commit=False)
                    yield statement
                    if self.main is not None:
                        self._await(self.main, token)
                    spread = self._start_run(piece.table)
                    if not spread:
                        yield held  # no row session could connect: the main session goes on
                    else:
                        self._give(held)
                    held = None
                if spread:
                    self._give(piece.data)
                else:
                    yield piece.data
                continue
            if held is not None:
                yield held
                held = None
            if spread:
                self._drain()
                # A cut-off last line must not commit the rows before it: finish() decides.
                self._sync_rows(commit=False)
                if piece.kind != TAIL:
                    self._sync_rows(commit=True)
                spread = False
            run = piece.table if piece.kind == ROWS else b""
            if piece.kind == ROWS and piece.keyed and self._may_spread:
                held = piece.data
                continue
            if piece.kind == SETTING:
                self._settings.append(piece.data)
            yield piece.data
        if held is not None:
            yield held
        if spread:
            self._drain()
            self._sync_rows(commit=False)

    def finish(self, ok: bool) -> None:
        """Commits the row sessions' open rows when the whole dump was read (ok), and ends them;
        otherwise ends them without a commit, which the server rolls back."""
        if ok and self.tables_spread:
            try:
                self._sync_rows(commit=True)
            except BrokenPipeError:
                ok = False  # the main session failed: the pipeline names its error
        for session in self._started:
            session.close_input()
        failed = None
        for session in self._started:
            code = session.child.wait()
            if ok and session in self.rows and code != 0 and failed is None:
                failed = session.failure()
        if failed is not None:
            raise failed

    # Inside ---------------------------------------------------------------------------------

    def _sync(self, commit: bool) -> tuple[bytes, bytes]:
        """A statement that prints a new token once everything before it has run (and been
        committed), and that token."""
        self._count += 1
        token = f"{self._token}-{self._count}"
        statement = f"{'COMMIT;' if commit else ''}SELECT '{token}' AS kb_sync;\n"
        return statement.encode(), token.encode()

    def _await(self, session: _Session, token: bytes) -> None:
        """Waits for the session to print the token, watching every session meanwhile."""
        main = session is self.main
        while True:
            self._check(also_main=not main)
            try:
                if session.tokens.get(timeout=_POLL) == token:
                    return
            except queue.Empty:
                if main and session.gone and session.tokens.empty():
                    raise BrokenPipeError("the main import session ended") from None

    def _start_run(self, table: bytes) -> bool:
        """The row sessions are brought up to the dump's settings so far; False when none
        could connect."""
        self._admit()
        if not self.rows:
            return False
        self.tables_spread += 1
        log.debug(
            "the rows of %s go to %d sessions", table.decode("utf-8", "replace"), len(self.rows)
        )
        # The row sessions are idle between runs: their inputs are written here directly.
        for index, session in enumerate(self.rows):
            seen = self._seen.get(index, 0)
            session.write(b"".join(self._settings[seen:]) + UNIQUE_CHECKS_ON)
            self._seen[index] = len(self._settings)
        return True

    @property
    def _may_spread(self) -> bool:
        return bool(self.rows) if self._admitted else bool(self._started)

    def _admit(self) -> None:
        """Once: the row sessions that connected take rows (a writer thread each); the others
        are left out, said in a warning."""
        if self._admitted:
            return
        self._admitted = True
        for session in self._started:
            deadline = time.monotonic() + _ADMIT_SECONDS
            while not self._printed(session, self._startup):
                if process.cancelled():
                    raise Interrupted()
                if session.gone or time.monotonic() > deadline:
                    log.warning(
                        "%s could not start (%s): the others import the rows",
                        session.label,
                        session.said() or "no answer",
                    )
                    session.close_input()
                    break
            else:
                self.rows.append(session)
                threading.Thread(target=self._feed, args=(session,), daemon=True).start()

    @staticmethod
    def _printed(session: _Session, token: bytes) -> bool:
        try:
            return session.tokens.get(timeout=_POLL) == token
        except queue.Empty:
            return False

    def _feed(self, session: _Session) -> None:
        """A row session's writer: takes the next piece when its client has read the last."""
        while True:
            data = self._work.get()
            if data is None:
                return
            session.write(data)
            with self._done:
                self._pending -= 1
                self._done.notify_all()

    def _give(self, data: bytes) -> None:
        with self._done:
            self._pending += 1
        while True:
            self._check(also_main=True)
            try:
                self._work.put(data, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _drain(self) -> None:
        """Waits until the row sessions' clients have read every piece given to them."""
        with self._done:
            while self._pending:
                self._done.wait(timeout=_POLL)
                self._check(also_main=True)

    def _sync_rows(self, commit: bool) -> None:
        statement, token = self._sync(commit)
        for session in self.rows:
            session.write(statement)
        for session in self.rows:
            self._await(session, token)

    def _check(self, also_main: bool) -> None:
        if process.cancelled():
            raise Interrupted()
        for session in self.rows:
            if session.gone:
                raise session.failure()
        if also_main and self.main is not None and self.main.gone:
            # The pipeline names the main session's own error.
            raise BrokenPipeError("the main import session ended")
