"""The cancel scope: cancelling one operation stops exactly its own children, nothing else."""

from __future__ import annotations

import contextvars
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kamal_backup import process
from kamal_backup.errors import Interrupted, OperationFailed
from kamal_backup.redact import Redactor
from kamal_backup.restic import unreachable_cause
from tests.pty_run import run_on_a_pty

ENV = {"PATH": os.environ["PATH"]}


def run_in_thread(
    scope: process.CancelScope, argv: list[str]
) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def work() -> None:
        try:
            with scope.entered():
                outcome.append(process.run(argv, env=ENV))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, outcome


def wait_for_children(scope: process.CancelScope) -> None:
    deadline = time.monotonic() + 10
    while not scope.children and time.monotonic() < deadline:
        time.sleep(0.02)
    assert scope.children, f"{scope} never started its child"


def test_cancelling_one_scope_leaves_another_operation_running() -> None:
    backup, listing = process.CancelScope("backup"), process.CancelScope("listing")
    backup_thread, backup_outcome = run_in_thread(backup, ["sleep", "30"])
    listing_thread, listing_outcome = run_in_thread(listing, ["sh", "-c", "sleep 1; echo listed"])
    wait_for_children(backup)
    wait_for_children(listing)

    backup.cancel(grace_seconds=1)
    backup_thread.join(10)
    listing_thread.join(10)

    assert isinstance(backup_outcome[0], Interrupted)
    completed = listing_outcome[0]
    assert isinstance(completed, process.Completed), completed
    assert completed.returncode == 0 and completed.stdout == "listed\n"
    assert not listing.cancelled


def test_a_cancelled_scope_refuses_new_children_and_a_new_scope_needs_no_reset() -> None:
    with process.cancel_scope("first") as first:
        first.cancel()
        with pytest.raises(Interrupted):
            process.run(["true"], env=ENV)
    with process.cancel_scope("second"):
        assert process.run(["true"], env=ENV).returncode == 0
    assert not process.current_scope().cancelled  # the unscoped fallback was never touched


def test_a_thread_sees_its_operations_scope_only_through_a_copied_context() -> None:
    seen: list[str] = []
    with process.cancel_scope("operation"):
        context = contextvars.copy_context()
        plain = threading.Thread(target=lambda: seen.append(process.current_scope().name))
        copied = threading.Thread(
            target=lambda: context.run(lambda: seen.append(process.current_scope().name))
        )
        for thread in (plain, copied):
            thread.start()
            thread.join()
    assert seen == ["unscoped", "operation"]


def test_a_failing_part_stops_the_other_part_but_not_the_operation() -> None:
    heard: list[tuple[str, list[str], bool]] = []

    def failing() -> None:
        process.run(["sleep", "0.3"], env=ENV)
        raise OperationFailed("the dump failed")

    with process.cancel_scope("backup") as operation:
        started = time.monotonic()
        outcome = process.run_parts(
            {"database": failing, "files": lambda: process.run(["sleep", "30"], env=ENV)},
            on_failure=lambda part, exc, running, stopping: heard.append((part, running, stopping)),
        )
        assert not operation.cancelled
        assert process.run(["true"], env=ENV).returncode == 0  # the operation goes on
    assert time.monotonic() - started < 10
    assert list(outcome.failures) == ["database"]  # the stopped half is not a failure
    assert outcome.stopped == ["files"] and outcome.results == {}
    assert heard == [("database", ["files"], True)]


def test_a_part_may_let_the_other_finish() -> None:
    def incomplete() -> str:
        raise OperationFailed("some files could not be read")

    with process.cancel_scope("backup"):
        outcome = process.run_parts(
            {
                "files": incomplete,
                "database": lambda: process.run(["sh", "-c", "sleep 0.5; echo saved"], env=ENV),
            },
            let_finish=lambda exc: True,
        )
    assert list(outcome.failures) == ["files"] and outcome.stopped == []
    saved = outcome.results["database"]
    assert isinstance(saved, process.Completed) and saved.stdout == "saved\n"


def test_cancelling_the_operation_kills_the_children_of_every_part() -> None:
    operation = process.CancelScope("backup")
    outcome: list[process.PartsOutcome[object]] = []

    def run() -> None:
        with operation.entered():
            outcome.append(
                process.run_parts(
                    {
                        "database": lambda: process.run(["sleep", "30"], env=ENV),
                        "files": lambda: process.run(["sleep", "30"], env=ENV),
                    }
                )
            )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while len(operation.children) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    children = operation.children
    assert len(children) == 2  # each part's child is the operation's child too
    operation.cancel(grace_seconds=1)
    thread.join(10)
    assert all(child.poll() is not None for child in children)
    assert all(isinstance(exc, Interrupted) for exc in outcome[0].failures.values())
    assert outcome[0].results == {}


def test_give_up_kills_the_child_at_the_first_hopeless_line() -> None:
    script = "echo 'retrying after 1s: connection refused' >&2; sleep 30"
    started = time.monotonic()
    with pytest.raises(process.GaveUp) as raised:
        process.run(
            ["sh", "-c", script],
            env=ENV,
            timeout=60,
            give_up=lambda line: "refused" if "refused" in line else None,
        )
    assert time.monotonic() - started < 5
    assert raised.value.reason == "refused"


@pytest.mark.parametrize(
    ("line", "cause"),
    [
        (
            'Stat(<config/>) returned error, retrying after 850ms: Head "http://:***@127.0.0.1:9'
            '/x/config": dial tcp 127.0.0.1:9: connect: connection refused',
            "connection refused",
        ),
        (
            'Stat(<config/>) returned error, retrying after 1.3s: Head "http://:***@nope.invalid'
            ':8000/x/config": dial tcp: lookup nope.invalid on 10.0.0.53:53: no such host',
            "unknown host",
        ),
        (
            'Stat(<config/>) returned error, retrying after 1s: Head "https://h/x/config": '
            "tls: failed to verify certificate: x509: certificate signed by unknown authority",
            "TLS error: failed to verify certificate: x509: certificate signed by unknown authority",
        ),
        (
            "Stat(<config/>) returned error, retrying after 1.119452032s: "
            "stat /srv/my backups/shop/config: not a directory",
            "not a directory: /srv/my backups/shop/config",
        ),
        # A slow backend, or a line that is not one of restic's retries, decides nothing.
        ("Load(<lock/1>) returned error, retrying after 2s: context deadline exceeded", None),
        ("dial tcp 127.0.0.1:9: connect: connection refused (in a file name)", None),
    ],
)
def test_unreachable_causes_are_read_from_restics_retry_lines(line: str, cause: str | None) -> None:
    assert unreachable_cause(line) == cause


def test_redaction_invents_no_credential_where_restic_printed_none() -> None:
    redactor = Redactor(["s3cret-pass"])
    assert (
        redactor.redact('Head "http://:***@127.0.0.1:9/x/config"')
        == 'Head "http://127.0.0.1:9/x/config"'
    )
    assert "[REDACTED]" in redactor.redact("http://backup:***@127.0.0.1:9/x")
    assert "s3cret-pass" not in redactor.redact("rest:http://backup:s3cret-pass@host/x")


def test_a_stderr_tail_whose_stream_is_closed_under_it_keeps_what_it_read() -> None:
    """The owner may close a child's stderr while the tail's thread still reads it (Python then
    raises ValueError or OSError in that thread): the tail ends quietly with the lines it has,
    and no exception escapes the thread."""

    class ClosedUnderIt:
        def __init__(self, error: Exception) -> None:
            self.lines = [b"restic: the last word\n"]
            self.error = error

        def readline(self) -> bytes:
            if self.lines:
                return self.lines.pop(0)
            raise self.error

    escaped: list[BaseException | None] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: escaped.append(args.exc_value)
    try:
        for error in (
            ValueError("PyMemoryView_FromBuffer(): info->buf must not be NULL"),
            OSError(),
        ):
            tail = process.StderrTail(ClosedUnderIt(error))  # type: ignore[arg-type]
            assert tail.text() == "restic: the last word\n"
    finally:
        threading.excepthook = previous
    assert escaped == []


def test_counting_a_big_sqlite_table_stops_at_a_cancel_within_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drill's (or backup's) SQLite figures see a cancel within a table, not after it."""
    import hashlib
    import sqlite3
    import types

    from kamal_backup.databases import sqlite as sqlite_adapter

    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
        db.executemany("INSERT INTO notes VALUES (?)", [(f"note {i}",) for i in range(1000)])
    db.close()
    hashed: list[int] = []
    with process.cancel_scope("drill") as scope:

        def blake2b_then_cancel(data: bytes, digest_size: int) -> object:
            hashed.append(1)
            scope.cancel()  # as Ctrl-C would, once the table's rows are being read
            return hashlib.blake2b(data, digest_size=digest_size)

        monkeypatch.setattr(
            sqlite_adapter, "hashlib", types.SimpleNamespace(blake2b=blake2b_then_cancel)
        )
        with pytest.raises(Interrupted):
            sqlite_adapter.sqlite_figures(path, "checksum")
    assert len(hashed) <= sqlite_adapter._CANCEL_EVERY


# Run in a process of its own, with or without a controlling terminal: what the child of a
# spawn (or of a prestart it takes) is grouped with, as JSON.
GROUPING = """
import json, os, sys
from pathlib import Path
from kamal_backup import process

def autogroup(pid):
    try:
        return Path(f"/proc/{pid}/autogroup").read_text().split()[0]
    except OSError:
        return None

env = {"PATH": os.environ["PATH"]}
argv = ["sleep", "30"]
if sys.argv[1] == "prestarted":
    assert process.prestart(argv, env, niceness=5)
with process.cancel_scope("test") as scope, process.spawn(argv, env=env) as child:
    seen = {
        "own group": os.getpgid(child.pid) == child.pid,  # setpriv execs sleep: the same pid
        "same session": os.getsid(child.pid) == os.getsid(0),
        "same autogroup": autogroup(child.pid) == autogroup(os.getpid()),
        "niceness": os.getpriority(os.PRIO_PROCESS, child.pid),
        "own niceness": os.getpriority(os.PRIO_PROCESS, 0),
    }
    scope.cancel(grace_seconds=1)
    seen["stopped"] = child.wait(timeout=5) != 0
process.stop_prestarted()
print("grouping:", json.dumps(seen), flush=True)
"""


def grouped(output: str) -> dict[str, object]:
    """The JSON line GROUPING printed, whatever else (a warning) came before or after it."""
    seen: dict[str, object] = json.loads(output.split("grouping:")[1].splitlines()[0])
    base = seen.pop("own niceness")
    assert isinstance(base, int)
    niceness = seen.pop("niceness")
    assert isinstance(niceness, int)
    seen["niceness added"] = niceness - base
    seen["niceness wanted"] = min(5, 19 - base)  # the kernel stops at 19
    return seen


def grouping_env() -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(__file__).parents[2])}


def grouping_without_a_terminal(how: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", GROUPING, how],
        env=grouping_env(),
        capture_output=True,
        text=True,
        timeout=30,
        start_new_session=True,  # no controlling terminal, whatever runs the tests
    )
    assert done.returncode == 0, done.stderr
    return grouped(done.stdout)


def grouping_on_a_terminal(how: str) -> dict[str, object]:
    code, text = run_on_a_pty([sys.executable, "-c", GROUPING, how], grouping_env(), timeout=30)
    assert code == 0, text
    return grouped(text)


def autogroups() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


@pytest.mark.parametrize("how", ["spawned", "prestarted"])
def test_without_a_terminal_a_child_leads_its_own_group_in_kamal_backups_session(how: str) -> None:
    """As a shell's pipeline: with the kernel's autogroups each session gets a CPU share of its
    own, the database server's whole session too, so restic, pg_restore and psql in sessions
    of their own took CPU from the server doing the import (a PostgreSQL restore took 1.14-1.19
    of the hand pipeline's time) and the listing's nice value meant nothing against them."""
    seen = grouping_without_a_terminal(how)
    assert seen == {
        "own group": True,  # the scope's killpg, and a Ctrl-C for kamal-backup alone
        "same session": True,
        "same autogroup": True,
        "stopped": True,
        # The listing's nice value holds within the one group.
        "niceness added": seen["niceness wanted"] if how == "prestarted" else 0,
        "niceness wanted": seen["niceness wanted"],
    }


@pytest.mark.parametrize("how", ["spawned", "prestarted"])
def test_on_a_terminal_a_child_gets_a_session_of_its_own(how: str) -> None:
    """Without the terminal: a psql or ssh asking for a password would otherwise open it from a
    background group and stop there, and the TUI's terminal is nobody else's."""
    seen = grouping_on_a_terminal(how)
    assert seen["own group"] is True and seen["same session"] is False
    assert seen["stopped"] is True
    if autogroups():
        assert seen["same autogroup"] is False
