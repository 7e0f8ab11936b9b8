"""The restic client: builds argv, passes the environment, parses --json, maps exit codes."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from pydantic import TypeAdapter, ValidationError

from kamal_backup import process
from kamal_backup.errors import (
    ConfigError,
    Interrupted,
    OperationFailed,
    RepositoryLocked,
    RepositoryMissing,
    RepositoryUnreachable,
    ResticError,
    SnapshotIncomplete,
    WrongPassword,
)
from kamal_backup.models import BackupSummary, FileEntry, ResticStatus, Snapshot
from kamal_backup.redact import redact

log = logging.getLogger(__name__)

MINIMUM_VERSION = (0, 17, 0)
_VERSION = re.compile(r"restic\s+(\d+)\.(\d+)\.(\d+)")
_SNAPSHOTS = TypeAdapter(list[Snapshot])

StatusCallback = Callable[[ResticStatus], None]


# Commands that take no lock or a shared one: they may run beside a waiting early dump.
_SHARED_LOCK = frozenset(
    {"backup", "cat", "dump", "ls", "restore", "snapshots", "stats", "version"}
)


def _stop_early(child: subprocess.Popen[bytes]) -> None:
    """Stops an early `restic dump` nobody read: its lock goes on SIGTERM, then its pipe."""
    process.stop(child, unblock_after=1)


def parse_version(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.search(text)
    if not match:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def escape_pattern(path: str) -> str:
    """Escapes glob characters so restic's --exclude matches this exact path."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", path)


def anchored_patterns(patterns: Sequence[str], roots: Sequence[Path]) -> list[str]:
    """restic --exclude patterns that only match inside `roots`.

    restic matches a relative pattern against any part of a path, the backup path's own parents
    included: `tmp` would exclude everything under /tmp/app. So `tmp/` or `*.tmp` becomes
    `<root>/**/tmp`, `<root>/**/*.tmp` for each root; an absolute pattern is kept as it is.
    """
    anchored: list[str] = []
    for raw in patterns:
        pattern = raw.strip().rstrip("/")
        if not pattern:
            continue
        if pattern.startswith("/"):
            anchored.append(pattern)
            continue
        anchored += [f"{escape_pattern(str(root).rstrip('/'))}/**/{pattern}" for root in roots]
    return anchored


# What restic's retry lines say when opening the repository cannot succeed by waiting: the
# backend refused the connection, its host does not resolve, or TLS cannot be agreed. A slow
# backend prints none of these and keeps the configured timeout.
_HOPELESS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"connection refused", re.IGNORECASE), "connection refused"),
    (re.compile(r"no such host", re.IGNORECASE), "unknown host"),
    (re.compile(r"server misbehaving", re.IGNORECASE), "unknown host"),
    (re.compile(r"network is unreachable", re.IGNORECASE), "network is unreachable"),
    (re.compile(r"no route to host", re.IGNORECASE), "no route to host"),
    (
        re.compile(r"server gave HTTP response to HTTPS client"),
        "TLS error: the server speaks plain HTTP",
    ),
    (re.compile(r"\b(?:x509|tls): (?P<detail>[^\"\n]+)"), "TLS error"),
    # A local repository path that is a file, or under one: restic retries it for minutes.
    (re.compile(r"(?:stat|open) (?P<detail>.+?): not a directory"), "not a directory"),
)


def unreachable_cause(line: str) -> str | None:
    """The cause, when one of restic's retry (or fatal) lines says the repository cannot be
    reached at all; None for anything else (including a slow answer)."""
    if "retrying after" not in line and not line.startswith("Fatal:"):
        return None
    for pattern, cause in _HOPELESS:
        match = pattern.search(line)
        if match is None:
            continue
        detail = match.groupdict().get("detail")
        return f"{cause}: {detail.strip()}" if detail else cause
    return None


def _fatal_text(stderr: str) -> str:
    """restic's last error line, unwrapped from its --json `exit_error` message when it is one,
    without restic's `Fatal: ` prefixes."""
    line = process.last_line(stderr)
    message = _message(line)
    if message.get("message_type") == "exit_error" and isinstance(message.get("message"), str):
        line = message["message"].strip()
    return re.sub(r"(?i)(^|: )fatal: ", r"\1", line)


_UNRESOLVED = "Resolving password failed: "
_EMPTY = "an empty password is not allowed"


def password_error(text: str, environment: Mapping[str, str] | None) -> ConfigError | None:
    """A ConfigError naming the password setting when restic could not obtain the repository
    password (unreadable RESTIC_PASSWORD_FILE, failing RESTIC_PASSWORD_COMMAND, empty password);
    None for any other error. The command itself is never shown (it may carry a secret)."""
    env = environment or {}
    if text.startswith(_UNRESOLVED):
        why = text.removeprefix(_UNRESOLVED).strip()
        command = env.get("RESTIC_PASSWORD_COMMAND") or (
            "RESTIC_PASSWORD_FILE" not in env and re.match(r"exec: |exit status ", why)
        )
        if command:
            return ConfigError("RESTIC_PASSWORD_COMMAND", redact(f"the command failed ({why})"))
        why = why.removeprefix("Readfile: ").removeprefix("read ")
        return ConfigError("RESTIC_PASSWORD_FILE", redact(why))
    if text.startswith(_EMPTY):
        for name in ("RESTIC_PASSWORD_COMMAND", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD"):
            if env.get(name):
                return ConfigError(name, "gives an empty password")
        return ConfigError("RESTIC_PASSWORD", "gives an empty password")
    return None


def error_for(
    returncode: int, stderr: str, action: str, environment: Mapping[str, str] | None = None
) -> ResticError | Interrupted | ConfigError:
    """Maps restic's exit code and error output to a typed error with a hint. `environment`
    (restic's) lets a password that could not be obtained name the setting that gives it."""
    if returncode < 0 and returncode not in (-2, -15):
        return ResticError(
            f"{action}: restic was killed by signal {-returncode}", returncode=returncode
        )
    text = _fatal_text(stderr)
    if returncode == 1 and (config := password_error(text, environment)) is not None:
        return config
    detail = redact(text) or f"restic exited with {returncode}"
    if returncode == 10:
        return RepositoryMissing(
            f"{action}: the restic repository does not exist",
            returncode=returncode,
            hint="check RESTIC_REPOSITORY; `backup` creates it when RESTIC_INIT_IF_MISSING=true",
        )
    if returncode == 11:
        return RepositoryLocked(
            f"{action}: the restic repository is locked by another process",
            returncode=returncode,
            hint="if no other backup, check or prune is running, run `kamal-backup unlock`",
        )
    if returncode == 12:
        return WrongPassword(
            f"{action}: wrong restic repository password",
            returncode=returncode,
            hint="check RESTIC_PASSWORD / RESTIC_PASSWORD_FILE / RESTIC_PASSWORD_COMMAND",
        )
    if returncode == 3:
        return SnapshotIncomplete(
            f"{action}: some files could not be read; the snapshot is incomplete: {detail}",
            returncode=returncode,
        )
    if returncode in (130, -2, -15):
        return Interrupted(f"{action}: interrupted")
    return ResticError(f"{action}: {detail}", returncode=returncode)


class Restic:
    """Runs restic for one Settings' repository. Every method maps failures to ResticError."""

    def __init__(
        self,
        environment: Mapping[str, str],
        host: str,
        binary: str = "restic",
        metadata_timeout: float | None = None,
        retry_lock: str | None = None,
        location: str = "",
    ) -> None:
        self.environment = dict(environment)
        # The repository as errors show it (already redacted: RESTIC_REPOSITORY without secrets).
        self.location = location
        self.host = host
        self.binary = binary
        # Bounds the quick, read-mostly commands (open, snapshots, unlock): restic retries an
        # unreachable backend for many minutes, and an operator needs an answer instead.
        self.metadata_timeout = metadata_timeout
        # forget/prune and check need an exclusive lock: wait a while for a running backup.
        self.retry_lock = retry_lock
        self._version: tuple[int, int, int] | None = None
        # `restic dump` processes started ahead of need (early_dump): path -> (snapshot id, process).
        self._early_dumps: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
        self._early_lock = threading.Lock()  # any part's thread may stop them (_exec)

    # Plumbing ---------------------------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        return [self.binary, *args]

    def _run(
        self,
        args: Sequence[str],
        action: str,
        *,
        ok: Sequence[int] = (0,),
        on_stdout_line: Callable[[str], None] | None = None,
        metadata: bool = False,
    ) -> process.Completed:
        result = self._exec(args, action, on_stdout_line=on_stdout_line, metadata=metadata)
        if result.returncode not in ok:
            raise error_for(result.returncode, result.stderr, action, self.environment)
        return result

    def _exec(
        self,
        args: Sequence[str],
        action: str,
        *,
        metadata: bool = False,
        opening: bool = False,
        on_stdout_line: Callable[[str], None] | None = None,
        env: Mapping[str, str] | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
    ) -> process.Completed:
        """Runs restic; metadata commands are bounded by metadata_timeout.

        They also read restic's retry lines while it runs: a refused connection, an unknown
        host or a TLS error ends restic at once with RepositoryUnreachable instead of waiting
        out the timeout. So does an `opening` command (a backup), which is not bounded in time:
        a backend that does not answer at all is found by a probe beside it (see
        services/backup.py).
        """
        log.debug("running restic %s", args[0])
        if args[0] not in _SHARED_LOCK:
            self._stop_early_dumps()  # a waiting `restic dump` holds a lock in the way
        bounded = metadata or opening
        try:
            return process.run(
                self.argv(*args),
                env=env or self.environment,
                stdin=stdin,
                on_stdout_line=on_stdout_line,
                timeout=self.metadata_timeout if metadata else None,
                give_up=unreachable_cause if bounded else None,
            )
        except process.GaveUp as exc:
            raise self._unreachable(exc.reason) from None
        except process.TimedOut as exc:
            raise self._unreachable(
                f"did not answer within {exc.seconds:g}s",
                hint="KAMAL_BACKUP_REPOSITORY_TIMEOUT_SECONDS sets this limit",
            ) from None

    def _unreachable(self, cause: str, hint: str | None = None) -> RepositoryUnreachable:
        where = f" ({self.location})" if self.location else ""
        return RepositoryUnreachable(
            redact(f"repository unreachable: {cause}{where}"), returncode=-1, hint=hint
        )

    def _retry_lock(self) -> list[str]:
        return ["--retry-lock", self.retry_lock] if self.retry_lock else []

    def _exclusive(
        self, args: Sequence[str], action: str, *, unlock: bool = True
    ) -> process.Completed:
        """Runs a command that takes restic's exclusive lock (forget, tag).

        A lock left by a killed restic would block it for good, so a lock failure is answered
        with `restic unlock` (which removes only stale locks: a dead process on this host, or
        one not refreshed for 30 minutes; live ones are refreshed every 5) and one more try that
        waits up to KAMAL_BACKUP_RETRY_LOCK for a live holder. Unlocking only when a lock was in
        the way saves a restic process (a key derivation) on every uncontended run. Without
        `unlock` (a dry run changes nothing, stale locks included), it only waits.
        """
        command, rest = args[0], list(args[1:])
        first = [command, *rest] if unlock else [command, *self._retry_lock(), *rest]
        result = self._exec(first, action)
        if unlock and result.returncode == 11:
            self.unlock()
            result = self._exec([command, *self._retry_lock(), *rest], action)
        if result.returncode != 0:
            raise error_for(result.returncode, result.stderr, action, self.environment)
        return result

    def _json(self, args: Sequence[str], action: str) -> Any:
        result = self._run([*args, "--json"], action, metadata=True)
        try:
            return json.loads(result.stdout or "null")
        except json.JSONDecodeError:
            raise ResticError(
                f"{action}: restic printed output that is not JSON", returncode=0
            ) from None

    # Version and repository -------------------------------------------------------------

    def version(self) -> tuple[int, int, int]:
        if self._version is None:
            process.require_tool(self.binary, self.environment)
            result = process.run(self.argv("version"), env=self.environment)
            parsed = parse_version(result.stdout)
            if result.returncode != 0 or parsed is None:
                raise OperationFailed(
                    f"could not read the restic version from `{self.binary} version`"
                )
            self._version = parsed
        return self._version

    def require_supported_version(self) -> None:
        found = self.version()
        if found < MINIMUM_VERSION:
            needed = ".".join(str(p) for p in MINIMUM_VERSION)
            raise OperationFailed(
                f"restic {'.'.join(map(str, found))} is too old: kamal-backup needs restic >= {needed} "
                "(for --stdin-from-command)"
            )

    def repository_exists(self) -> bool:
        result = self._exec(["cat", "config"], "opening the repository", metadata=True)
        if result.returncode == 0:
            return True
        if result.returncode == 10:
            return False
        raise error_for(
            result.returncode, result.stderr, "opening the repository", self.environment
        )

    def init(self) -> None:
        self._run(["init"], "initialising the repository")

    def ensure_repository(self, init_if_missing: bool) -> bool:
        """True when the repository was created now."""
        self.require_supported_version()
        if self.repository_exists():
            return False
        if not init_if_missing:
            raise error_for(10, "", "opening the repository")
        log.info("restic repository does not exist; initialising it (RESTIC_INIT_IF_MISSING=true)")
        self.init()
        return True

    # Backup -----------------------------------------------------------------------------

    def _backup(
        self,
        args: Sequence[str],
        action: str,
        on_status: StatusCallback | None,
        extra_env: Mapping[str, str] | None,
        host: str | None = None,
        on_open: Callable[[], None] | None = None,
        command_stderr: Callable[[], str] = lambda: "",
    ) -> BackupSummary:
        summary: dict[str, Any] = {}
        errors: list[str] = []
        opened: list[bool] = []

        def handle(line: str) -> None:
            if on_open is not None and not opened:
                opened.append(True)  # restic prints nothing before the repository is open
                on_open()
            message = _message(line)
            kind = message.get("message_type")
            if kind == "status" and on_status is not None:
                on_status(ResticStatus.model_validate(message))
            elif kind == "summary":
                summary.update(message)
            elif kind == "error":
                item = message.get("item", "")
                text = (message.get("error") or {}).get("message", "")
                errors.append(redact(f"{item}: {text}" if item else text))

        tagged = ["backup", "--json", "--host", host or self.host, *args]
        env = {**self.environment, **(extra_env or {})}
        result = self._exec(tagged, action, on_stdout_line=handle, env=env, opening=True)
        if result.returncode not in (0, 3):
            error = error_for(result.returncode, result.stderr, action, env)
            cause = _command_error(result.stderr, command_stderr())
            if cause and isinstance(error, ResticError) and type(error) is ResticError:
                raise ResticError(f"{action}: {cause}", returncode=result.returncode)
            raise error
        if result.returncode == 3:
            raise SnapshotIncomplete(
                f"{action}: some files could not be read; the snapshot is incomplete"
                + (f": {errors[0]}" if errors else ""),
                returncode=3,
            )
        if "snapshot_id" not in summary:
            raise ResticError(
                f"{action}: restic reported no snapshot", returncode=result.returncode
            )
        return BackupSummary.model_validate(summary)

    def backup_command(
        self,
        command: Sequence[str],
        *,
        filename: str,
        tags: Sequence[str],
        extra_env: Mapping[str, str] | None = None,
        on_status: StatusCallback | None = None,
        host: str | None = None,
        action: str = "database backup",
        on_open: Callable[[], None] | None = None,
    ) -> BackupSummary:
        """Streams a command's stdout into a snapshot; a failing command leaves no snapshot.
        `action` names it in errors (which database, when there are several); `on_open` runs
        once restic has opened the repository.

        The command's stderr goes to a file this reads, not through restic: restic relays it
        on a thread and, when the command fails, may exit before it relayed the last lines
        (about 1 in 20 failures under load), which are the ones saying why."""
        # Without a writable temporary directory or a /bin/sh, restic relays it, as it can.
        holder = _stderr_directory()
        said = holder / "stderr" if holder is not None else None

        def command_stderr() -> str:
            return _tail(said) if said is not None else ""

        args = [
            *_tag_args(tags),
            "--stdin-filename",
            filename,
            "--stdin-from-command",
            "--",
            *(_stderr_into(said, command) if said is not None else command),
        ]
        try:
            return self._backup(
                args, action, on_status, extra_env, host, on_open, command_stderr=command_stderr
            )
        finally:
            if holder is not None:
                _LIVE_STDERR.discard(holder)
                shutil.rmtree(holder, ignore_errors=True)

    def backup_paths(
        self,
        paths: Sequence[Path],
        *,
        tags: Sequence[str],
        excludes: Sequence[str] = (),
        exclude_patterns: Sequence[str] = (),
        on_status: StatusCallback | None = None,
        on_open: Callable[[], None] | None = None,
    ) -> BackupSummary:
        """Backs up paths; `excludes` are exact paths, `exclude_patterns` restic globs;
        `on_open` runs once restic has opened the repository."""
        # Nothing reads restic's totals without a progress display: --no-scan spares restic a
        # second walk of the paths (a stat and the exclusion patterns per file) to count them.
        # The summary's figures (files, bytes) come from the backup itself and stay.
        args = [*_tag_args(tags), *(["--no-scan"] if on_status is None else [])]
        for pattern in excludes:
            args += ["--exclude", escape_pattern(pattern)]
        for pattern in anchored_patterns(exclude_patterns, paths):
            args += ["--exclude", pattern]
        args += ["--", *(str(path) for path in paths)]
        return self._backup(args, "file backup", on_status, None, on_open=on_open)

    def backup_bytes(self, data: bytes, *, filename: str, tags: Sequence[str]) -> BackupSummary:
        """Stores a small document (a manifest, a drill record) as a one-file snapshot."""
        with tempfile.TemporaryFile() as handle:
            handle.write(data)
            handle.flush()
            handle.seek(0)
            summary: dict[str, Any] = {}

            def handle_line(line: str) -> None:
                message = _message(line)
                if message.get("message_type") == "summary":
                    summary.update(message)

            args = [
                "backup",
                "--json",
                "--host",
                self.host,
                *_tag_args(tags),
                "--stdin",
                "--stdin-filename",
                filename,
            ]
            result = self._exec(
                args, f"saving {filename}", stdin=handle, on_stdout_line=handle_line, opening=True
            )
        if result.returncode != 0:
            raise error_for(
                result.returncode, result.stderr, f"saving {filename}", self.environment
            )
        if "snapshot_id" not in summary:
            raise ResticError(f"saving {filename}: restic reported no snapshot", returncode=0)
        return BackupSummary.model_validate(summary)

    # Reading ----------------------------------------------------------------------------

    def read_file(self, snapshot_id: str, path: str) -> bytes:
        """The content of one small file of a snapshot (one `restic dump`)."""
        with self.dump(snapshot_id, path) as child:
            tail = process.StderrTail(child.stderr)
            data = child.stdout.read() if child.stdout is not None else b""
            returncode = child.wait()
        if process.cancelled():
            raise Interrupted()
        if returncode != 0:
            raise error_for(returncode, tail.text(), f"reading {path}", self.environment)
        return data

    def snapshots(self, tags: Sequence[str], snapshot_ids: Sequence[str] = ()) -> list[Snapshot]:
        """Snapshots carrying every one of `tags` (restic ANDs a comma-separated tag list)."""
        # Read-only: --no-lock lets a listing run while another process prunes (which holds an
        # exclusive lock), instead of failing with "repository is locked".
        args = ["snapshots", "--no-lock", "--tag", ",".join(tags), *snapshot_ids]
        data = self._json(args, "listing snapshots")
        try:
            return _SNAPSHOTS.validate_python(data or [])
        except ValidationError:
            raise ResticError(
                "listing snapshots: unexpected JSON from restic", returncode=0
            ) from None

    def ls(self, snapshot_id: str, directory: str) -> list[FileEntry]:
        """The direct children of `directory` in a snapshot (one level: trees load lazily)."""
        result = self._run(
            ["ls", "--no-lock", "--json", snapshot_id, directory], "listing files", metadata=True
        )
        entries: list[FileEntry] = []
        for line in result.stdout.splitlines():
            message = _message(line)
            if message.get("struct_type") != "node" or message.get("path") == directory:
                continue
            try:
                entries.append(FileEntry.model_validate(message))
            except ValidationError:
                continue
        return sorted(entries, key=lambda entry: (not entry.is_dir, entry.name))

    def exists(self, snapshot_id: str, path: str) -> bool:
        """True when `path` (a file or a directory) is in the snapshot."""
        result = self._run(
            ["ls", "--no-lock", "--json", snapshot_id, path], "listing files", metadata=True
        )
        return any(
            _message(line).get("struct_type") == "node" and _message(line).get("path") == path
            for line in result.stdout.splitlines()
        )

    # Maintenance ------------------------------------------------------------------------

    def forget_ids(
        self, snapshot_ids: Sequence[str], *, prune: bool = True, dry_run: bool = False
    ) -> None:
        """Forgets the named snapshots (and prunes their data unless told not to)."""
        if not snapshot_ids:
            return
        args = ["forget"]
        if dry_run:
            args.append("--dry-run")
        if prune:
            args.append("--prune")
        self._exclusive([*args, "--", *snapshot_ids], "forgetting snapshots", unlock=not dry_run)

    def add_tags(self, snapshot_ids: Sequence[str], tags: Sequence[str]) -> None:
        """Adds tags to snapshots (restic rewrites each one under a new id, keeping its time)."""
        if not snapshot_ids:
            return
        self._exclusive(["tag", "--add", ",".join(tags), *snapshot_ids], "tagging snapshots")

    def change_tags(
        self, snapshot_ids: Sequence[str], *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> dict[str, str]:
        """Adds and removes tags in one `restic tag`; each changed snapshot's old id -> new id
        (restic rewrites a snapshot whose tags change)."""
        if not snapshot_ids or not (add or remove):
            return {}
        args = ["tag", *self._retry_lock(), "--json"]
        if add:
            args += ["--add", ",".join(add)]
        if remove:
            args += ["--remove", ",".join(remove)]
        result = self._run([*args, "--", *snapshot_ids], "tagging snapshots")
        changed: dict[str, str] = {}
        for line in result.stdout.splitlines():
            message = _message(line)
            old, new = message.get("old_snapshot_id"), message.get("new_snapshot_id")
            if message.get("message_type") == "changed" and isinstance(old, str) and new:
                changed[old] = str(new)
        return changed

    def rewrite_host(self, snapshot_ids: Sequence[str], host: str) -> None:
        """Rewrites the snapshots under `host` and removes the originals (`rewrite --new-host
        --forget`: same data, time and tags)."""
        if not snapshot_ids:
            return
        self._run(
            ["rewrite", *self._retry_lock(), "--new-host", host, "--forget", "--", *snapshot_ids],
            "rewriting snapshots",
        )

    def check(self, read_data_subset: str | None) -> process.Completed:
        """Runs restic check; the caller judges the exit code (a failed check is a result)."""
        if not self.repository_exists():
            raise error_for(10, "", "checking the repository")
        args = ["check", *self._retry_lock()]
        if read_data_subset:
            args.append(f"--read-data-subset={read_data_subset}")
        return self._exec(args, "checking the repository")

    def unlock(self) -> None:
        self._run(["unlock"], "removing stale locks", metadata=True)

    # Restore ----------------------------------------------------------------------------

    @contextmanager
    def dump(
        self, snapshot_id: str, path: str, stdout: int | IO[Any] = subprocess.PIPE
    ) -> Iterator[subprocess.Popen[bytes]]:
        """Streams one file of a snapshot to stdout; the caller reads, waits and checks.

        Inside `early_dump(id, path)`, this takes the process it started when the path is the
        same and one id starts with the other (a short id), if that process is still running or
        finished well (a dump smaller than a pipe buffer may be done).
        """
        with self._early_lock:
            guessed, early = self._early_dumps.pop(path, ("", None))
        if early is not None:
            if (
                stdout == subprocess.PIPE
                and (snapshot_id.startswith(guessed) or guessed.startswith(snapshot_id))
                and early.poll() in (None, 0)
            ):
                log.debug("restic dump %s: taking the process started early", snapshot_id[:8])
                # Started in the operation's scope: the part reading it owns it now too, so
                # stopping that part (a restore the listing withdrew) stops the dump with it.
                with process.owned(early):
                    yield early
                return
            _stop_early(early)
        with process.spawn(
            self.argv("dump", snapshot_id, path), env=self.environment, stdout=stdout
        ) as child:
            yield child

    def _stop_early_dumps(self) -> None:
        """Stops every early dump nobody took (restic removes its lock on SIGTERM)."""
        with self._early_lock:
            waiting = [child for _, child in self._early_dumps.values()]
            self._early_dumps.clear()
        for child in waiting:
            _stop_early(child)
        process.stop_prestarted()  # the same, started before the settings (prestart.py)

    @contextmanager
    def early_dump(self, snapshot_id: str | None, path: str | None) -> Iterator[None]:
        """Starts `restic dump` of a snapshot the caller expects to read soon, so that restic
        opens the repository (its key derivation; a remote backend's round trips) while the
        caller lists snapshots to decide what to read.

        The guess only saves time: a `dump` of that snapshot and path inside this block takes
        the process; any other dump starts its own. Nothing reads the guessed process's output
        unless the caller chose that very snapshot, and it is stopped when the block ends (it
        waits on a full pipe meanwhile). With no id or path, nothing is started. A dump started
        before the settings were read (prestart.py) with the same command and environment is
        taken instead of starting one; the prestarted processes nobody took stop with the block.
        """
        try:
            if not snapshot_id or not path:
                yield
                return
            argv = self.argv("dump", snapshot_id, path)
            with process.spawn(argv, env=self.environment) as child:
                with self._early_lock:
                    self._early_dumps[path] = (snapshot_id, child)
                try:
                    yield
                finally:
                    with self._early_lock:
                        unclaimed = self._early_dumps.get(path, ("", None))[1] is child
                        if unclaimed:
                            del self._early_dumps[path]
                    if unclaimed:
                        _stop_early(child)
        finally:
            # Whatever was started before the settings (prestart.py) and is not taken by now
            # will not be: the block held the listing and the restore.
            process.stop_prestarted()

    def restore(
        self,
        snapshot_id: str,
        target: Path,
        on_status: StatusCallback | None = None,
        includes: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Restores a snapshot under `target`; `includes` limits it to those exact paths."""
        summary: dict[str, Any] = {}

        def handle(line: str) -> None:
            message = _message(line)
            if message.get("message_type") == "status" and on_status is not None:
                on_status(ResticStatus.model_validate(message))
            elif message.get("message_type") == "summary":
                summary.update(message)

        selection: list[str] = []
        for path in includes:
            selection += ["--include", escape_pattern(path)]
        self._run(
            ["restore", "--json", *selection, snapshot_id, "--target", str(target)],
            "file restore",
            on_stdout_line=handle,
        )
        return summary


def is_local_repository(repository: str) -> bool:
    """True for a repository in a local directory (a path or `local:`), which cannot stop
    answering the way a network backend can."""
    return repository.startswith("local:") or not re.match(r"^[a-z0-9]+:", repository)


# The dump command runs as `/bin/sh -c SCRIPT FILE COMMAND...`: a constant script, the file and
# the command its positional parameters, so no data is ever parsed as shell. `command exec`
# points stderr at the file (or, should that fail, leaves it to restic), then the command
# replaces the shell: same process, signals and exit status as when restic starts it.
_STDERR_INTO = 'command exec 2>>"$0"; exec "$@"'
_SHELL = "/bin/sh"
_STDERR_KEEP = 64 * 1024
_STDERR_PREFIX = "kamal-backup-dump-"
_STDERR_DIRECTORY = re.compile(re.escape(_STDERR_PREFIX) + r"([0-9]{1,7})-\w+$")
_LIVE_STDERR: set[Path] = set()  # this process's: a killed one's may have had the same pid


def _stderr_directory() -> Path | None:
    """A new 0700 directory in the temporary directory for a dump command's stderr, after
    removing those a killed kamal-backup left (its pid is in the name); None without /bin/sh
    or a writable temporary directory."""
    if not os.access(_SHELL, os.X_OK):
        return None
    try:
        for path in Path(tempfile.gettempdir()).glob(f"{_STDERR_PREFIX}*"):
            found = _STDERR_DIRECTORY.match(path.name)
            if found is not None and path not in _LIVE_STDERR and _gone(int(found.group(1))):
                shutil.rmtree(path, ignore_errors=True)
        made = Path(tempfile.mkdtemp(prefix=f"{_STDERR_PREFIX}{os.getpid()}-"))
    except OSError:
        return None
    _LIVE_STDERR.add(made)
    return made


def _gone(pid: int) -> bool:
    """No process with this id runs any more (ours counts as gone: its live directories are
    in _LIVE_STDERR)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):
        return False  # another user's process: it runs
    return False


def _tail(path: Path) -> str:
    """The last _STDERR_KEEP bytes of a file, or nothing."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - _STDERR_KEEP))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _stderr_into(path: Path, command: Sequence[str]) -> list[str]:
    return [_SHELL, "-c", _STDERR_INTO, str(path), *command]


def _command_error(stderr: str, command_stderr: str = "") -> str:
    """What the --stdin-from-command program itself said (`command_stderr`, or the lines restic
    relayed), with restic's reason (its exit status) after it."""
    own = ("error: failed to save", "Fatal:", "fatal:", "{")
    relayed = command_stderr or stderr
    lines = [
        line.strip() for line in relayed.splitlines() if line.strip() and not line.startswith(own)
    ]
    wrapped = [line for line in stderr.splitlines() if "command failed:" in line]
    why = wrapped[-1].split("command failed:", 1)[1].strip() if wrapped else ""
    why = why.split('"', 1)[0]  # restic's --json error line: the status, not the JSON after it
    said = "; ".join(lines[-3:])
    if said and why:
        return redact(f"{said} ({why})")
    return redact(said or (f"dump command failed: {why}" if why else ""))


def _message(line: str) -> dict[str, Any]:
    """One line of restic's --json output as a dict ({} for anything else restic prints)."""
    try:
        message = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return message if isinstance(message, dict) else {}


def _tag_args(tags: Sequence[str]) -> list[str]:
    args: list[str] = []
    for tag in tags:
        args += ["--tag", tag]
    return args
