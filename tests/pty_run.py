"""Running a program on a pseudo-terminal, as an operator's shell would."""

from __future__ import annotations

import os
import pty
import select
import signal
import time
from collections.abc import Mapping, Sequence


def run_on_a_pty(
    argv: Sequence[str], env: Mapping[str, str], timeout: float = 300
) -> tuple[int, str]:
    """Runs argv in a session whose controlling terminal is a new pty; (exit code, everything it
    wrote there). Past `timeout` it is killed (exit -9), and it is always reaped."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(argv[0], list(argv), dict(env))
        finally:
            os._exit(127)  # never a second pytest in the fork
    output, status = b"", None
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO once the child has closed its side
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(fd)
        # Its side of the pty closes as it exits, a moment before it can be reaped.
        reap_by = time.monotonic() + 10
        done, status = os.waitpid(pid, os.WNOHANG)
        while done == 0 and time.monotonic() < reap_by:
            time.sleep(0.02)
            done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode("utf-8", "replace")
