"""An app-wide lock in the state directory: one backup or restore at a time per app."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from kamal_backup import process
from kamal_backup.errors import OperationFailed
from kamal_backup.state import ensure_dir

log = logging.getLogger(__name__)
LOCK_FILE = "operation.lock"


@contextlib.contextmanager
def operation_lock(state_dir: Path, operation: str, wait_seconds: float = 0.0) -> Iterator[None]:
    """Holds the app's lock while the block runs; waits up to wait_seconds for another holder."""
    ensure_dir(state_dir)
    path = state_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_seconds
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read_holder(fd)
                if time.monotonic() >= deadline:
                    raise OperationFailed(
                        f"another kamal-backup operation is running ({holder}); {operation} did not start"
                    ) from None
                if not announced:
                    log.info("waiting for another kamal-backup operation to finish (%s)", holder)
                    announced = True
                process.raise_if_cancelled()
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{operation} pid {os.getpid()}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown holder"
    except OSError:
        return "unknown holder"
