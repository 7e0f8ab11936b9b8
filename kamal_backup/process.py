"""Argv-only subprocesses with an explicit environment, killed with their children on cancel."""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from kamal_backup.errors import Interrupted, ToolMissing

_STDERR_KEEP = 64 * 1024
log = logging.getLogger(__name__)


class CancelScope:
    """One operation's cancellation: a flag and exactly the child processes it started.

    Every operation opens its own scope (a CLI command, one scheduled run, one TUI operation or
    read) and makes it current with `entered()`. The current scope travels in a ContextVar, so
    service code keeps calling `raise_if_cancelled()` and `spawn()` without passing it down:
    whatever runs inside the `with` block, in that thread, belongs to that operation. A thread an
    operation starts does not inherit the ContextVar: it must run in a copy of the starting
    thread's context (`contextvars.copy_context().run`) to spawn children or check cancellation.

    `cancel()` sets this scope's flag and kills this scope's children only: cancelling a TUI
    backup leaves a snapshot listing that runs beside it alive, and nothing needs resetting
    afterwards because the next operation opens a new scope. Children also carry the kernel's
    parent-death signal, so killing kamal-backup itself leaves no orphan whatever the scope.
    """

    def __init__(self, name: str = "operation", parent: CancelScope | None = None) -> None:
        self.name = name
        # A part of an operation (one concurrent half of a backup) has its own scope under the
        # operation's: cancelling the part stops only its children; cancelling the operation
        # stops every part, because a part's children are the operation's children too.
        self.parent = parent
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._children: set[subprocess.Popen[Any]] = set()

    def __repr__(self) -> str:
        return f"CancelScope({self.name!r}, cancelled={self.cancelled})"

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set() or (self.parent is not None and self.parent.cancelled)

    def part(self, name: str) -> CancelScope:
        """A scope for one part of this operation (e.g. a half run on another thread)."""
        return CancelScope(f"{self.name}/{name}", parent=self)

    @property
    def children(self) -> list[subprocess.Popen[Any]]:
        """The child processes of this operation that are still tracked (running or reaping)."""
        with self._lock:
            return list(self._children)

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise Interrupted()

    @contextlib.contextmanager
    def entered(self) -> Iterator[CancelScope]:
        """Makes this the current scope of the running thread (and context) for the block."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    def cancel(self, grace_seconds: float = 5.0) -> None:
        """Marks the operation cancelled and kills its children's process groups."""
        self._cancelled.set()
        children = self.children
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

    def _adopt(self, child: subprocess.Popen[Any]) -> None:
        with self._lock:
            self._children.add(child)
        if self.parent is not None:
            self.parent._adopt(child)

    def _release(self, child: subprocess.Popen[Any]) -> None:
        with self._lock:
            self._children.discard(child)
        if self.parent is not None:
            self.parent._release(child)


@contextlib.contextmanager
def owned(child: subprocess.Popen[Any]) -> Iterator[None]:
    """Makes a child started elsewhere (ahead of time, in the operation's scope) the current
    scope's too for the block: cancelling the part that uses it kills it."""
    scope = _current.get()
    scope._adopt(child)
    try:
        yield
    finally:
        scope._release(child)


# Work that runs outside any operation (a test calling a service, a one-off probe) belongs to a
# scope nobody cancels; its children are still reaped or killed when their `spawn` block ends.
_UNSCOPED = CancelScope("unscoped")
_current: contextvars.ContextVar[CancelScope] = contextvars.ContextVar(
    "kamal_backup_cancel_scope", default=_UNSCOPED
)


def current_scope() -> CancelScope:
    return _current.get()


@contextlib.contextmanager
def cancel_scope(name: str = "operation") -> Iterator[CancelScope]:
    """Opens a new scope for one operation and makes it current for the block."""
    with CancelScope(name).entered() as scope:
        yield scope


def cancelled() -> bool:
    """Whether the current operation was cancelled."""
    return _current.get().cancelled


def raise_if_cancelled() -> None:
    _current.get().raise_if_cancelled()


T = TypeVar("T")


@dataclass
class PartsOutcome(Generic[T]):
    """What `run_parts` saw: each part's result, or its failure (in the order they happened),
    and the parts it stopped because another failed."""

    results: dict[str, T] = field(default_factory=dict)
    failures: dict[str, BaseException] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)

    def first_failure(self) -> tuple[str, BaseException] | None:
        return next(iter(self.failures.items()), None)


def run_parts(
    parts: Mapping[str, Callable[[], T]],
    *,
    let_finish: Callable[[BaseException], bool] = lambda exc: False,
    on_failure: Callable[[str, BaseException, list[str], bool], None] | None = None,
) -> PartsOutcome[T]:
    """Runs the parts of the current operation at the same time, one thread each.

    Each part runs in a copy of the caller's context, inside its own part scope of the current
    operation: cancelling the operation kills every part's children; when a part fails, the
    parts still running are stopped (their scopes cancelled), unless `let_finish(failure)` says
    the others should finish. A stopped part's own ending (Interrupted, a killed child) is not
    a failure of its own. `on_failure(part, failure, running, stopping)` hears of each failure
    when it happens (not for a cancelled operation), with the parts still running and whether
    they are being stopped. Never raises
    for a part: the caller reads the outcome.
    """
    operation = current_scope()
    scopes = {label: operation.part(label) for label in parts}
    outcome: PartsOutcome[T] = PartsOutcome()
    lock = threading.Lock()

    def run_one(label: str, work: Callable[[], T]) -> None:
        scope = scopes[label]
        try:
            with scope.entered():
                value = work()
        except BaseException as exc:
            with lock:
                if label in outcome.stopped:
                    return
                outcome.failures[label] = exc
                running = [
                    other
                    for other in scopes
                    if other != label
                    and other not in outcome.results
                    and other not in outcome.failures
                    and other not in outcome.stopped
                ]
                stop = not operation.cancelled and not let_finish(exc)
                stopping = running if stop else []
                outcome.stopped += stopping
            if on_failure is not None and not operation.cancelled:
                on_failure(label, exc, running, stop)
            for other in stopping:
                scopes[other].cancel()
        else:
            with lock:
                outcome.results[label] = value
                if label in outcome.stopped:  # it finished before the stop reached it
                    outcome.stopped.remove(label)

    if not parts:
        return outcome
    if len(parts) == 1:
        label, work = next(iter(parts.items()))
        run_one(label, work)
        return outcome
    with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="part") as pool:
        futures = [
            pool.submit(contextvars.copy_context().run, run_one, label, work)
            for label, work in parts.items()
        ]
        for future in futures:
            future.result()
    return outcome


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
def _grouping() -> dict[str, Any]:
    """Popen's arguments that give a child a process group of its own: for the scope to signal
    it with whatever it started (killpg), and for the terminal's Ctrl-C to reach kamal-backup
    alone, which then stops its children in order.

    Without a controlling terminal (the scheduler, `kamal accessory exec` without -i, cron), the
    group is in kamal-backup's session, as the steps of a shell's pipeline are: with the
    kernel's scheduling autogroups (sched_autogroup_enabled; in the root CPU cgroup only, not
    in a container's own) each session gets a CPU share of its own, as large as the database
    server's whole share, so children in sessions of their own took CPU from the server doing
    the work (a PostgreSQL restore took 1.14-1.19 of the same pipeline by hand, 1.00-1.09 in
    one session) and a listing's nice value meant nothing against them. With one, each child
    gets a session of its own, without that terminal: a psql or ssh asking for a password
    would otherwise open the terminal from a background group and stop there, and the TUI's
    terminal is nobody else's.
    """
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK))
    except OSError:
        return {"process_group": 0}
    return {"start_new_session": True}


@functools.cache
def _death_signal_prefix() -> tuple[str, ...]:
    """`setpriv --pdeathsig KILL --` where util-linux has it (Linux), else nothing.

    Children run in process groups of their own (see _grouping), which also means they would
    outlive a SIGKILLed kamal-backup and finish a snapshot of a run that never completed. The
    kernel's parent-death signal closes that gap. setpriv sets it and execs the tool; doing it
    in a preexec_fn instead can deadlock the forked child while other threads run.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return ()
    probe = subprocess.run([setpriv, "--pdeathsig", "KILL", "--", "true"], capture_output=True)
    return (setpriv, "--pdeathsig", "KILL", "--") if probe.returncode == 0 else ()


def stop(
    child: subprocess.Popen[Any], grace: float = 5, unblock_after: float | None = None
) -> None:
    """Ends a child started by `spawn` and its process group: SIGTERM (restic then removes its
    lock), SIGKILL after `grace` seconds. A child that has ended is only reaped.

    With `unblock_after`, a child still running that long after SIGTERM has its stdout closed
    under it: a writer blocked on a full pipe (a `restic dump` nobody reads, which stays blocked
    after SIGTERM) then fails its write and ends. Closing first would kill restic by SIGPIPE
    before it removed its lock.
    """
    if child.poll() is not None:
        return
    _signal_group(child, signal.SIGTERM)
    try:
        child.wait(timeout=unblock_after if unblock_after is not None else grace)
        return
    except subprocess.TimeoutExpired:
        if unblock_after is None:
            _signal_group(child, signal.SIGKILL)
            child.wait()
            return
    if child.stdout is not None:
        with contextlib.suppress(OSError):
            child.stdout.close()
    stop(child, grace)


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


# Children started before the code that will use them exists (kamal_backup/prestart.py): a
# `spawn` of exactly the same argv and environment takes one instead of starting its own.
_PrestartKey = tuple[tuple[str, ...], tuple[tuple[str, str], ...]]
_prestarted: dict[_PrestartKey, subprocess.Popen[bytes]] = {}
_prestarted_lock = threading.Lock()


def _prestart_key(argv: Sequence[str], env: Mapping[str, str]) -> _PrestartKey:
    return tuple(argv), tuple(sorted(env.items()))


def prestart(argv: Sequence[str], env: Mapping[str, str], niceness: int = 0) -> bool:
    """Starts argv now (stdin from /dev/null, stdout and stderr piped, the parent-death signal
    set, `niceness` added to its nice value) for a later `spawn` of exactly argv and env to
    take; True when it started.

    Until taken, the child belongs to no operation's scope: `stop_prestarted` ends the ones
    nobody took. A missing program starts nothing (the later spawn says it is missing).
    """
    if find_tool(argv[0], env) is None:
        return False
    try:
        child = subprocess.Popen(
            [*_death_signal_prefix(), *argv],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **_grouping(),
            close_fds=True,
            # Safe here, unlike in spawn: prestart runs before Python has started a thread.
            preexec_fn=(lambda: os.nice(niceness)) if niceness else None,
        )
    except OSError:
        return False
    with _prestarted_lock:
        replaced = _prestarted.pop(_prestart_key(argv, env), None)
        _prestarted[_prestart_key(argv, env)] = child
    if replaced is not None:
        _end_prestarted(replaced)
    return True


def _take_prestarted(
    argv: Sequence[str],
    env: Mapping[str, str],
    streams: tuple[object, object, object],
    pass_fds: Sequence[int],
) -> subprocess.Popen[bytes] | None:
    """The prestarted child for argv and env, if there is one and it can stand for a new one:
    the same pipes, and still running or ended well (one that failed is run again)."""
    if not _prestarted:
        return None
    if streams != (subprocess.DEVNULL, subprocess.PIPE, subprocess.PIPE) or pass_fds:
        return None
    with _prestarted_lock:
        child = _prestarted.pop(_prestart_key(argv, env), None)
    if child is None:
        return None
    if child.poll() not in (None, 0):
        _end_prestarted(child)
        return None
    log.debug("%s: taking the process started ahead", _described(argv))
    return child


def _described(argv: Sequence[str]) -> str:
    """The program and its command for a log line: `restic dump 2284c349` (a snapshot id
    shortened), `restic snapshots`."""
    words = [Path(argv[0]).name, *argv[1:2]]
    if len(argv) > 2 and len(argv[2]) == 64 and not argv[2].strip("0123456789abcdef"):
        words.append(argv[2][:8])
    return " ".join(words)


def has_prestarted() -> bool:
    """Whether a prestarted child is still waiting to be taken."""
    return bool(_prestarted)


def stop_prestarted() -> None:
    """Ends every prestarted child nobody took: SIGTERM first (restic removes its lock), then
    its pipe is closed under it (a `restic dump` blocked on a full pipe), then SIGKILL."""
    with _prestarted_lock:
        waiting = list(_prestarted.items())
        _prestarted.clear()
    for (argv, _), child in waiting:
        log.debug("%s: stopping the process started ahead that nothing took", _described(argv))
        _end_prestarted(child)


def _end_prestarted(child: subprocess.Popen[bytes]) -> None:
    stop(child, unblock_after=1)
    for stream in (child.stdout, child.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


@contextlib.contextmanager
def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = subprocess.PIPE,
    stderr: int | IO[Any] | None = subprocess.PIPE,
    pass_fds: Sequence[int] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """Starts argv in its own process group; on exit (also by exception) it is reaped or killed.

    `pass_fds` stay open in the child under the same numbers (e.g. for a /dev/fd/N argument).
    """
    scope = _current.get()
    scope.raise_if_cancelled()
    if not argv or isinstance(argv, str):
        raise TypeError("argv must be a non-empty sequence")
    child = _take_prestarted(argv, env, (stdin, stdout, stderr), pass_fds)
    if child is None:
        child = _start(argv, env, stdin, stdout, stderr, pass_fds)
    scope._adopt(child)
    try:
        # A cancel that came while the child was starting listed the scope's children before
        # this one was adopted: it must not run on (the cancel sets its flag first, so one of
        # the two always sees the other).
        scope.raise_if_cancelled()
        yield child
    finally:
        stop(child)
        for stream in (child.stdin, child.stdout, child.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        scope._release(child)


def _start(
    argv: Sequence[str],
    env: Mapping[str, str],
    stdin: int | IO[Any] | None,
    stdout: int | IO[Any] | None,
    stderr: int | IO[Any] | None,
    pass_fds: Sequence[int],
) -> subprocess.Popen[bytes]:
    program = argv[0]
    found = os.access(program, os.X_OK) if "/" in program else find_tool(program, env) is not None
    if not found:
        raise ToolMissing(f"{program} is not installed or not on PATH")
    try:
        return subprocess.Popen(
            [*_death_signal_prefix(), *argv],
            env=dict(env),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            **_grouping(),
            close_fds=True,
            pass_fds=tuple(pass_fds),
        )
    except FileNotFoundError:
        raise ToolMissing(f"{argv[0]} is not installed or not on PATH") from None


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
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace")
                if self._on_line is not None:
                    self._on_line(line.rstrip("\n"))
                self._chunks.append(line)
                self._size += len(line)
                while self._size > _STDERR_KEEP and len(self._chunks) > 1:
                    self._size -= len(self._chunks.popleft())
        except (ValueError, OSError):
            # Its owner closed the stream under this thread (the child is done with): what was
            # read is kept; Python's closed-file errors are no failure of the child's.
            return

    def text(self) -> str:
        self._thread.join(timeout=10)
        return "".join(self._chunks)


class GaveUp(Exception):
    """`give_up` recognised a line of the child's stderr as hopeless; the child was killed."""

    def __init__(self, reason: str, stderr: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stderr = stderr


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
    give_up: Callable[[str], str | None] | None = None,
) -> Completed:
    """Runs argv to completion; stdout is collected (or handed line by line to on_stdout_line).

    With a timeout, the child's whole process group is killed when it runs longer, and
    TimedOut is raised carrying what it had written to stderr. `give_up` reads each stderr line
    while the child runs; when it returns a reason, the child's group is killed at once and
    GaveUp is raised (a tool retrying what cannot succeed need not use up the timeout).
    """
    with spawn(argv, env=env, stdin=stdin) as child:
        expired = threading.Event()
        reasons: list[str] = []
        timer = None
        if timeout is not None:

            def expire() -> None:
                expired.set()
                _signal_group(child, signal.SIGKILL)

            timer = threading.Timer(timeout, expire)
            timer.daemon = True
            timer.start()

        def judge(line: str) -> None:
            reason = give_up(line) if give_up is not None and not reasons else None
            if reason:
                reasons.append(reason)
                _signal_group(child, signal.SIGKILL)

        tail = StderrTail(child.stderr, judge if give_up is not None else None)
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
    if _current.get().cancelled:
        raise Interrupted()
    if reasons:
        raise GaveUp(reasons[0], stderr)
    if expired.is_set():
        raise TimedOut(timeout or 0, stderr)
    return Completed(tuple(argv), returncode, "".join(lines), stderr)


def last_line(text: str) -> str:
    """The last non-empty line of a tool's error output: usually the one that says why."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
