"""Streams a dump out of restic into a database client: restic dump -> [converter] -> importer.

Two ways, both deciding at the end whether the importer gets its epilogue (e.g. COMMIT) from
whether everything upstream succeeded:

- `pipe_into`: the processes are connected by OS pipes, so no byte of the dump passes through
  Python; the importer reads its prelude and epilogue from two more pipes it is handed as
  /dev/fd/N files (psql -f). The fast way, for an importer that can read several files.
- `stream_into`: Python pumps the bytes between the processes (fixed-size chunks, so memory
  does not grow with the dump), which lets an adapter transform the stream (the MySQL
  re-batcher) or send a prelude and epilogue on the importer's one input.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, cast

from kamal_backup import process
from kamal_backup.databases.base import dump_path
from kamal_backup.errors import Interrupted, KamalBackupError, OperationFailed
from kamal_backup.models import Snapshot
from kamal_backup.redact import redact
from kamal_backup.restic import Restic, error_for

CHUNK = 1024 * 1024
Transform = Callable[[IO[bytes]], Iterable[bytes]]


def chunks(stream: IO[bytes]) -> Iterator[bytes]:
    return iter(lambda: stream.read(CHUNK), b"")


@dataclass
class Step:
    """One client program in the pipeline."""

    argv: Sequence[str]
    env: Mapping[str, str]
    label: str


@dataclass
class Importer(Step):
    prelude: bytes = b""
    # Sent only when every upstream step succeeded (e.g. COMMIT): a truncated stream must not
    # be committed.
    epilogue: bytes = b""
    transform: Transform = chunks
    statuses: list[str] = field(default_factory=list)
    # Told the importer's process once it runs (its stdout is then a pipe, for the hook to
    # read), and, before the epilogue, whether everything upstream succeeded (it may raise).
    started: Callable[[subprocess.Popen[bytes]], None] | None = None
    finish: Callable[[bool], None] | None = None


def error_line(stderr: str) -> str:
    """The line of a client's error output that says what went wrong."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        upper = line.upper()
        if "ERROR" in upper or "FATAL" in upper or "DENIED" in upper:
            return line
    return lines[-1] if lines else ""


class _Pump(threading.Thread):
    """Copies one stream into another, counting bytes; stops quietly when the reader goes away."""

    def __init__(
        self,
        chunks_in: Iterable[bytes],
        sink: IO[bytes],
        *,
        prelude: bytes = b"",
        on_bytes: Callable[[int], None] | None = None,
        close_sink: bool = False,
    ) -> None:
        super().__init__(daemon=True)
        # The pump runs in the starting thread's context: whatever the transform spawns
        # belongs to the same operation (process.CancelScope).
        self.context = contextvars.copy_context()
        self.chunks_in = chunks_in
        self.sink = sink
        self.prelude = prelude
        self.on_bytes = on_bytes
        self.close_sink = close_sink
        self.broken = False
        self.error: BaseException | None = None

    def run(self) -> None:
        self.context.run(self._pump)

    def _pump(self) -> None:
        try:
            if self.prelude:
                self.sink.write(self.prelude)
            for chunk in self.chunks_in:
                self.sink.write(chunk)
                self.sink.flush()  # a transform may wait for what it wrote to have run
                if self.on_bytes is not None:
                    self.on_bytes(len(chunk))
        except (BrokenPipeError, ConnectionResetError):
            self.broken = True
        except BaseException as exc:  # surfaced by the caller
            self.error = exc
        finally:
            if self.close_sink:  # the next step sees end of input
                _close(self.sink)


def stream_into(
    restic: Restic,
    snapshot: Snapshot,
    importer: Importer,
    converter: Step | None = None,
    on_bytes: Callable[[int], None] | None = None,
    prepare: Callable[[], None] | None = None,
) -> int:
    """Runs the pipeline to the end and returns the dump's size in bytes.

    `prepare` (e.g. emptying the target) runs once restic has started, so restic opens the
    repository meanwhile, and before any client program starts: it may still set the
    importer's prelude.

    Raises OperationFailed (or restic's typed error) naming the step that failed; restic
    failing on its own is named before the importer it left with a cut-off statement.
    """
    total = 0

    def count(n: int) -> None:
        nonlocal total
        total += n
        if on_bytes is not None:
            on_bytes(n)

    with contextlib.ExitStack() as stack:
        dump = stack.enter_context(restic.dump(snapshot.id, dump_path(snapshot)))
        dump_err = process.StderrTail(dump.stderr)
        if prepare is not None:
            prepare()
        conv = conv_err = feed = None
        source = _out(dump)
        if converter is not None:
            conv = stack.enter_context(
                process.spawn(converter.argv, env=converter.env, stdin=subprocess.PIPE)
            )
            conv_err = process.StderrTail(conv.stderr)
            feed = _Pump(chunks(source), _in(conv), on_bytes=count, close_sink=True)
            feed.start()
            source = _out(conv)
        else:
            source = cast(IO[bytes], _Counted(source, count))
        imp = stack.enter_context(
            process.spawn(
                importer.argv,
                env=importer.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL if importer.started is None else subprocess.PIPE,
            )
        )
        imp_err = process.StderrTail(imp.stderr)
        if importer.started is not None:
            importer.started(imp)
        final = _Pump(importer.transform(source), _in(imp), prelude=importer.prelude)
        final.start()
        final.join()
        if final.broken or final.error is not None:
            # The importer stopped early: stop everything upstream so nothing blocks on a pipe.
            for child in (conv, dump):
                if child is not None:
                    child.kill()
        if feed is not None:
            feed.join()

        dump_code = dump.wait()
        conv_code = conv.wait() if conv is not None else 0
        upstream_ok = dump_code == 0 and conv_code == 0 and not final.broken and final.error is None
        finish_error: KamalBackupError | None = None
        if importer.finish is not None:
            try:
                importer.finish(upstream_ok and not process.cancelled())
            except KamalBackupError as exc:
                finish_error = exc
        if upstream_ok and finish_error is None and importer.epilogue:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                _in(imp).write(importer.epilogue)
        _close(imp.stdin)
        imp_code = imp.wait()

        if process.cancelled():
            raise Interrupted()
        for pump in (feed, final):
            if pump is not None and isinstance(pump.error, KamalBackupError):
                raise pump.error  # e.g. a row session of the import that failed, by name
            if pump is not None and pump.error is not None:
                raise OperationFailed(f"restore stream failed: {redact(str(pump.error))}")
        if dump_code > 0:
            # restic failed on its own (killed above, it would have a negative code), perhaps
            # mid-stream: the importer's complaint about the cut-off statement it was sent last
            # is a consequence, not the cause.
            raise error_for(dump_code, dump_err.text(), "reading the database dump")
        if imp_code != 0:
            said = redact(error_line(imp_err.text()))
            raise OperationFailed(f"{importer.label} failed: {said or f'exit {imp_code}'}")
        if dump_code != 0:
            raise error_for(dump_code, dump_err.text(), "reading the database dump")
        if converter is not None and conv_err is not None and conv_code != 0:
            said = redact(error_line(conv_err.text()))
            raise OperationFailed(f"{converter.label} failed: {said or f'exit {conv_code}'}")
        if finish_error is not None:
            raise finish_error
        if not upstream_ok:
            raise OperationFailed(f"{importer.label} stopped reading before the end of the dump")
    return total


class _Counted:
    """A stream that counts the bytes read from it."""

    def __init__(self, stream: IO[bytes], count: Callable[[int], None]) -> None:
        self.stream = stream
        self.count = count

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.count(len(data))
        return data


class ByteProgress(threading.Thread):
    """Reports a growing byte count, measured outside the byte path, to on_bytes as deltas."""

    def __init__(
        self, measure: Callable[[], int | None], on_bytes: Callable[[int], None] | None
    ) -> None:
        super().__init__(daemon=True, name="restore-progress")
        self.measure = measure
        self.on_bytes = on_bytes
        self.done = 0
        self._finished = threading.Event()

    def poll(self) -> None:
        found = self.measure()
        if found is not None and found > self.done:
            if self.on_bytes is not None:
                self.on_bytes(found - self.done)
            self.done = found

    def run(self) -> None:
        while not self._finished.wait(0.25):
            self.poll()

    def __enter__(self) -> ByteProgress:
        self.start()  # also without on_bytes: `done` is the size when restic's summary is absent
        return self

    def __exit__(self, *exc: object) -> None:
        self._finished.set()
        self.join()
        self.poll()  # the last count: a dump shorter than one poll would report none at all


def bytes_read_by(pid: int) -> int | None:
    """How many bytes a process has read so far (Linux /proc/PID/io), or None."""
    try:
        with open(f"/proc/{pid}/io", "rb") as handle:
            for line in handle:
                if line.startswith(b"rchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


ArgvWithFiles = Callable[[str, str], Sequence[str]]


def pipe_into(
    restic: Restic,
    snapshot: Snapshot,
    converter: Step,
    importer: Step,
    importer_argv: ArgvWithFiles,
    *,
    prelude: bytes,
    epilogue: bytes,
    abandon: bytes,
    on_bytes: Callable[[int], None] | None = None,
    prepare: Callable[[], None] | None = None,
    commit_if: Callable[[], bool] | None = None,
) -> int:
    """restic dump | converter | importer over OS pipes; returns the dump's size in bytes.

    `importer_argv(prelude_file, epilogue_file)` is the importer's argv: it must read the
    prelude file, then its stdin, then the epilogue file. The epilogue is written only when
    restic and the converter both succeeded, the operation was not cancelled and `commit_if`
    (asked then, and only then; it may wait) says yes; otherwise the importer reads `abandon`
    (e.g. ROLLBACK) there, so a truncated stream, or one the caller no longer wants, is never
    committed. `prepare` runs as in stream_into. Raises OperationFailed (or restic's typed
    error) naming the step that failed.
    """
    if len(prelude) > 16 * 1024:  # written before the importer starts: must fit a pipe buffer
        raise ValueError("the prelude must fit in a pipe buffer")
    with contextlib.ExitStack() as stack:
        dump = stack.enter_context(restic.dump(snapshot.id, dump_path(snapshot)))
        dump_err = process.StderrTail(dump.stderr)
        if prepare is not None:
            prepare()
        conv = stack.enter_context(
            process.spawn(converter.argv, env=converter.env, stdin=dump.stdout)
        )
        # Only the converter reads restic's output now: if it stops, restic sees a broken pipe.
        _close(dump.stdout)
        conv_err = process.StderrTail(conv.stderr)
        prelude_read, prelude_write = os.pipe()
        epilogue_read, epilogue_write = os.pipe()
        # File objects close once, however the block ends.
        to_importer = stack.enter_context(os.fdopen(epilogue_write, "wb", buffering=0))
        try:
            with os.fdopen(prelude_write, "wb", buffering=0) as pre:
                pre.write(prelude)
            imp = stack.enter_context(
                process.spawn(
                    importer_argv(f"/dev/fd/{prelude_read}", f"/dev/fd/{epilogue_read}"),
                    env=importer.env,
                    stdin=conv.stdout,
                    stdout=subprocess.DEVNULL,
                    pass_fds=(prelude_read, epilogue_read),
                )
            )
        finally:
            os.close(prelude_read)
            os.close(epilogue_read)
        _close(conv.stdout)
        imp_err = process.StderrTail(imp.stderr)
        # Only while the converter runs: once reaped, its pid may be another process's.
        with ByteProgress(
            lambda: bytes_read_by(conv.pid) if conv.returncode is None else None, on_bytes
        ) as progress:
            dump_code = dump.wait()
            conv_code = conv.wait()
        upstream_ok = dump_code == 0 and conv_code == 0 and not process.cancelled()
        wanted = upstream_ok and (commit_if is None or commit_if())
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            to_importer.write(epilogue if wanted and not process.cancelled() else abandon)
        to_importer.close()
        imp_code = imp.wait()

        if process.cancelled():
            raise Interrupted()
        if upstream_ok and not wanted:
            raise OperationFailed(f"{importer.label}: the restore was rolled back, as asked")
        if imp_code != 0:
            said = redact(error_line(imp_err.text()))
            raise OperationFailed(f"{importer.label} failed: {said or f'exit {imp_code}'}")
        if dump_code != 0:
            raise error_for(dump_code, dump_err.text(), "reading the database dump")
        if conv_code != 0:
            said = redact(error_line(conv_err.text()))
            raise OperationFailed(f"{converter.label} failed: {said or f'exit {conv_code}'}")
    summary = snapshot.summary
    return summary.total_bytes_processed if summary else progress.done


def _out(child: subprocess.Popen[bytes]) -> IO[bytes]:
    if child.stdout is None:
        raise OperationFailed("internal error: a pipeline step has no stdout")
    return child.stdout


def _in(child: subprocess.Popen[bytes]) -> IO[bytes]:
    if child.stdin is None:
        raise OperationFailed("internal error: a pipeline step has no stdin")
    return child.stdin


def _close(stream: IO[bytes] | None) -> None:
    if stream is not None:
        with contextlib.suppress(OSError):
            stream.close()
