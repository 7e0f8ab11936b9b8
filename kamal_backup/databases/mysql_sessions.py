"""MySQL/MariaDB restore: a big table's rows go to two more import sessions at once.

One client session runs a dump statement after statement, and the server inserts each
statement's rows on one core: on the bench's 400,000-row table (two cores) the import took
3.2 s in one session and 1.9 s in two (docs/benchmarks.md).

The main session (the pipeline's importer) runs the whole dump in order. When a table with a
primary key has more than one piece of rows (a piece is about a megabyte), the main session is
first asked to catch up: it prints a token once everything sent before it has run, the table's
CREATE TABLE included. The table's further pieces then go to ROW_SESSIONS more sessions, each
taking the next piece when it is free. Before the main session is sent anything after those
rows (ENABLE KEYS, the table's triggers, the next table), every row session prints a token once
it has run its rows, and then, when all of them have, commits and prints another: no statement
of the dump runs before the rows it follows are in, and a table's rows are committed in every
row session or in none (a row session that fails ends without a commit). Each row session
first runs every session setting the dump made so far (SET NAMES, TIME_ZONE, SQL_MODE,
FOREIGN_KEY_CHECKS, UNIQUE_CHECKS), in order.

A table without a primary key keeps its rows in one session: InnoDB keeps such rows in the
order they were inserted, which two sessions would shuffle.

The row sessions' last rows are committed only when the whole dump was read (`finish(True)`),
as the main session's COMMIT is: a dump cut off mid-table leaves that table's rows uncommitted.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import secrets
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import IO

from kamal_backup import process
from kamal_backup.databases.mysql import ROWS, SETTING, TAIL, import_prelude, restore_pieces
from kamal_backup.databases.pipeline import error_line
from kamal_backup.errors import Interrupted, OperationFailed
from kamal_backup.redact import redact

log = logging.getLogger(__name__)

ROW_SESSIONS = 2
_POLL = 0.05  # seconds between looks at the sessions while waiting on one


class _Session:
    """One client process: its output is read on a thread for the tokens it prints."""

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
            if line.startswith(b"kb-sync-"):
                self.tokens.put(line.strip())

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

    def failure(self) -> OperationFailed:
        said = redact(error_line(self.stderr.text())) if self.stderr is not None else ""
        code = self.child.poll()
        return OperationFailed(f"{self.label} failed: {said or f'exit {code}'}")


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
        self.rows: list[_Session] = []
        self.main: _Session | None = None
        self.tables_spread = 0
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
        sessions start now too, on the operation's thread. (A child gets the parent-death
        signal when the thread that started it ends, and the transform's thread ends before
        `finish` commits the row sessions.)"""
        self.main = _Session(child, self.label, read_stderr=False)
        for number in range(1, self.size + 1):
            row_child = self._stack.enter_context(
                process.spawn(self.argv, env=self.env, stdin=subprocess.PIPE)
            )
            session = _Session(row_child, f"{self.label} (rows session {number})", True)
            session.write(import_prelude([]))
            self.rows.append(session)
            threading.Thread(target=self._feed, args=(session,), daemon=True).start()

    def transform(self, stream: IO[bytes]) -> Iterator[bytes]:
        """What the main session reads: the dump rewritten, less the rows given to row sessions."""
        run = b""  # the table of the rows just seen, while nothing else came between
        spread = False  # whether that table's further rows go to the row sessions
        for piece in restore_pieces(stream):
            if piece.kind == ROWS and piece.table == run:
                if not spread and piece.keyed and self.main is not None:
                    statement, token = self._sync(commit=False)
                    yield statement
                    self._await(self.main, token)
                    self._start_run(piece.table)
                    spread = True
                if spread:
                    self._give(piece.data)
                    continue
                yield piece.data
                continue
            if spread:
                # A cut-off last line must not commit the rows before it: finish() decides.
                self._drain() if piece.kind == TAIL else self._settle()
                spread = False
            run = piece.table if piece.kind == ROWS else b""
            if piece.kind == SETTING:
                self._settings.append(piece.data)
            yield piece.data
        if spread:
            self._drain()

    def finish(self, ok: bool) -> None:
        """Commits the row sessions' open rows when the whole dump was read (ok), and ends them;
        otherwise ends them without a commit, which the server rolls back."""
        if ok:
            try:
                self._settle()
            except BrokenPipeError:
                ok = False  # the main session failed: the pipeline names its error
        for session in self.rows:
            session.close_input()
        failed = None
        for session in self.rows:
            code = session.child.wait()
            if ok and code != 0 and failed is None:
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

    def _start_run(self, table: bytes) -> None:
        """The row sessions are brought up to the dump's settings so far."""
        self.tables_spread += 1
        log.debug(
            "the rows of %s go to %d sessions", table.decode("utf-8", "replace"), len(self.rows)
        )
        # The row sessions are idle between runs: their inputs are written here directly.
        for index, session in enumerate(self.rows):
            seen = self._seen.get(index, 0)
            session.write(b"".join(self._settings[seen:]))
            self._seen[index] = len(self._settings)

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

    def _settle(self) -> None:
        """Every row session has run what it was given, and then, only when all of them ran it
        without an error, commits it: a table's rows are committed in every session or none."""
        self._drain()
        self._sync_rows(commit=False)
        self._sync_rows(commit=True)

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
