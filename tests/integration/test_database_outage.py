"""A database server that stops and comes back: the tick fails with the cause, the next succeeds."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import App
from tests.integration.servers import free_port

pytestmark = pytest.mark.integration

BIN = Path("/usr/lib/postgresql/15/bin")


class Cluster:
    """A private PostgreSQL cluster (the shared server must keep running for the other tests)."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port

    def ctl(self, *args: str, check: bool = True) -> None:
        result = subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(BIN / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-l",
                str(self.root / "log"),
                "-w",
                # A loaded CI machine can take longer than pg_ctl's default 60 s to start a cluster.
                "-t",
                "180",
                *args,
            ],
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            log = self.root / "log"
            server_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise AssertionError(
                f"pg_ctl {' '.join(args)} failed: {result.stdout}{result.stderr}\n{server_log}"
            )

    def start(self) -> None:
        self.ctl("-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        self.ctl("-m", "immediate", "stop")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if not (BIN / "initdb").exists() or shutil.which("runuser") is None:
        pytest.fail("PostgreSQL 15 server binaries and runuser are needed for this test")
    root = Path(tempfile.mkdtemp(prefix="kb-pg-"))
    shutil.chown(root, "postgres", "postgres")
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(BIN / "initdb"),
            "-D",
            str(root / "data"),
            "--auth=trust",
            "-U",
            "postgres",
        ],
        check=True,
        capture_output=True,
    )
    server = Cluster(root, free_port())
    server.start()
    subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            "postgres",
            "-Xqc",
            "CREATE DATABASE shop; ",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield server
    finally:
        server.ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_scheduler_recovers_when_the_database_comes_back(app: App, cluster: Cluster) -> None:
    env = {
        **app.env,
        "DATABASE_ADAPTER": "postgres",
        "BACKUP_SCHEDULE_SECONDS": "3",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{cluster.port}/shop",
    }
    cluster.stop()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kamal_backup", "schedule"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if "scheduled backup failed" in line:
                cluster.start()  # the fault is cleared
            if "scheduled backup" in line and "succeeded" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
    log = "".join(lines) + rest
    failed = [line for line in lines if "scheduled backup failed" in line]
    assert failed and "cannot connect to PostgreSQL" in failed[0], log
    assert any("succeeded" in line for line in lines), log
    assert proc.returncode == 0
    assert "Traceback" not in log
    assert len(app.snapshot_ids("type:database")) == 1  # only the run after recovery saved one
