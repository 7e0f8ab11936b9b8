"""Argv-only subprocesses with an explicit environment, killed with their children on cancel."""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from kamal_backup.errors import Interrupted, ToolMissing

_STDERR_KEEP = 64 * 1024
_lock = threading.Lock()
_children: set[subprocess.Popen[Any]] = set()
_cancelled = threading.Event()


def cancelled() -> bool:
    return _cancelled.is_set()


def raise_if_cancelled() -> None:
    if _cancelled.is_set():
        raise Interrupted()


def cancel_all(grace_seconds: float = 5.0) -> None:
    """Marks the operation cancelled and kills every running child process group."""
    _cancelled.set()
    with _lock:
        children = list(_children)
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        if child.poll() is None:
            _signal_group(child, signal.SIGKILL)
    # Grandchildren (e.g. the dump restic started) may outlive the group leader.
    for child in children:
        _signal_group(child, signal.SIGKILL)


def reset_cancellation() -> None:
    """Allows new work after a cancelled operation (the scheduler and TUI keep running)."""
    _cancelled.clear()


class SignalWatcher:
    """Runs `on_signal` on a thread for SIGINT/SIGTERM; the handler itself only writes a byte.

    A Python signal handler runs in the main thread between two bytecodes, possibly while that
    thread holds a lock inside threading or logging; a handler that logs, sets an Event or starts
    a thread can then deadlock. Writing to a pipe takes no lock.
    """

    def __init__(self, on_signal: Callable[[int], None]) -> None:
        self._on_signal = on_signal
        self._read, self._write = os.pipe()
        self._thread = threading.Thread(target=self._watch, name="signals", daemon=True)
        self._thread.start()
        self._previous = {
            sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)
        }

    def _handle(self, signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            os.write(self._write, bytes([signum]))

    def _watch(self) -> None:
        while data := os.read(self._read, 1):
            self._on_signal(data[0])
        os.close(self._read)

    def close(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        os.close(self._write)

    def __enter__(self) -> SignalWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@functools.cache
def _death_signal_prefix() -> tuple[str, ...]:
    """`setpriv --pdeathsig KILL --` where util-linux has it (Linux), else nothing.

    Children run in their own session (so the operator's Ctrl-C reaches kamal-backup, which then
    stops them in order), which also means they would outlive a SIGKILLed kamal-backup and finish
    a snapshot of a run that never completed. The kernel's parent-death signal closes that gap.
    setpriv sets it and execs the tool; doing it in a preexec_fn instead can deadlock the forked
    child while other threads run.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return ()
    probe = subprocess.run([setpriv, "--pdeathsig", "KILL", "--", "true"], capture_output=True)
    return (setpriv, "--pdeathsig", "KILL", "--") if probe.returncode == 0 else ()


def _signal_group(child: subprocess.Popen[Any], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, sig)


def find_tool(name: str, env: Mapping[str, str] | None = None) -> str | None:
    path = (env or os.environ).get("PATH", os.defpath)
    return shutil.which(name, path=path)


def require_tool(name: str, env: Mapping[str, str] | None = None) -> str:
    found = find_tool(name, env)
    if found is None:
        raise ToolMissing(f"{name} is not installed or not on PATH")
    return found


@contextlib.contextmanager
def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = subprocess.PIPE,
    stderr: int | IO[Any] | None = subprocess.PIPE,
) -> Iterator[subprocess.Popen[bytes]]:
    """Starts argv in its own process group; on exit (also by exception) it is reaped or killed."""
    raise_if_cancelled()
    if not argv or isinstance(argv, str):
        raise TypeError("argv must be a non-empty sequence")
    program = argv[0]
    found = os.access(program, os.X_OK) if "/" in program else find_tool(program, env) is not None
    if not found:
        raise ToolMissing(f"{program} is not installed or not on PATH")
    try:
        child = subprocess.Popen(
            [*_death_signal_prefix(), *argv],
            env=dict(env),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
        )
    except FileNotFoundError:
        raise ToolMissing(f"{argv[0]} is not installed or not on PATH") from None
    with _lock:
        _children.add(child)
    try:
        yield child
    finally:
        if child.poll() is None:
            _signal_group(child, signal.SIGTERM)
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
                child.wait()
        for stream in (child.stdin, child.stdout, child.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with _lock:
            _children.discard(child)


class StderrTail:
    """Collects the last bytes of a child's stderr on a thread, so pipes never fill up."""

    def __init__(
        self, stream: IO[bytes] | None, on_line: Callable[[str], None] | None = None
    ) -> None:
        self._chunks: collections.deque[str] = collections.deque()
        self._size = 0
        self._on_line = on_line
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            if self._on_line is not None:
                self._on_line(line.rstrip("\n"))
            self._chunks.append(line)
            self._size += len(line)
            while self._size > _STDERR_KEEP and len(self._chunks) > 1:
                self._size -= len(self._chunks.popleft())

    def text(self) -> str:
        self._thread.join(timeout=10)
        return "".join(self._chunks)


class TimedOut(Exception):
    """A child ran past its timeout and was killed."""

    def __init__(self, seconds: float, stderr: str) -> None:
        super().__init__(f"timed out after {seconds:g}s")
        self.seconds = seconds
        self.stderr = stderr


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    on_stdout_line: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> Completed:
    """Runs argv to completion; stdout is collected (or handed line by line to on_stdout_line).

    With a timeout, the child's whole process group is killed when it runs longer, and
    TimedOut is raised carrying what it had written to stderr.
    """
    with spawn(argv, env=env, stdin=stdin) as child:
        expired = threading.Event()
        timer = None
        if timeout is not None:

            def expire() -> None:
                expired.set()
                _signal_group(child, signal.SIGKILL)

            timer = threading.Timer(timeout, expire)
            timer.daemon = True
            timer.start()
        tail = StderrTail(child.stderr)
        lines: list[str] = []
        for raw in iter(child.stdout.readline if child.stdout else (lambda: b""), b""):
            line = raw.decode("utf-8", "replace")
            if on_stdout_line is not None:
                on_stdout_line(line.rstrip("\n"))
            else:
                lines.append(line)
        returncode = child.wait()
        if timer is not None:
            timer.cancel()
        stderr = tail.text()
    if _cancelled.is_set():
        raise Interrupted()
    if expired.is_set():
        raise TimedOut(timeout or 0, stderr)
    return Completed(tuple(argv), returncode, "".join(lines), stderr)


def last_line(text: str) -> str:
    """The last non-empty line of a tool's error output: usually the one that says why."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
