"""Soak the scheduler: a backup every second for N runs, faults injected, resources sampled.

Every seventh run the SQLite file is moved away (the run fails and is logged), then put back.
After each run the scheduler process's RSS, open file descriptors and zombie children are
sampled from /proc; the figures after warm-up are printed.

    .venv/bin/python bench/soak.py            # 200 runs
    .venv/bin/python bench/soak.py --runs 30
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

WARM_UP = 10


@dataclass
class Samples:
    rss_kib: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    zombies: list[int] = field(default_factory=list)
    failures: int = 0
    successes: int = 0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def zombies_of(pid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            count += 1
    return count


def soak(runs: int, root: Path) -> Samples:
    db = root / "app.sqlite3"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (x)")
        con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
    con.close()
    (root / "files").mkdir()
    (root / "files" / "a.txt").write_text("a")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(root),
        "APP_NAME": "soak",
        "DATABASE_ADAPTER": "sqlite",
        "SQLITE_DATABASE_PATH": str(db),
        "BACKUP_PATHS": str(root / "files"),
        "RESTIC_REPOSITORY": str(root / "repo"),
        "RESTIC_PASSWORD": "soak-password",
        "RESTIC_INIT_IF_MISSING": "true",
        "BACKUP_SCHEDULE_SECONDS": "1",
        "RESTIC_FORGET_AFTER_BACKUP": "false",
        "KAMAL_BACKUP_STATE_DIR": str(root / "state"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "kamal_backup", "schedule"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    samples = Samples()
    hidden = root / "hidden.sqlite3"
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "scheduled backup" not in line:
                continue
            if "succeeded" in line:
                samples.successes += 1
            else:
                samples.failures += 1
            done = samples.successes + samples.failures
            if hidden.exists():
                hidden.rename(db)  # clear the fault for the next run
            elif done % 7 == 0:
                db.rename(hidden)  # the next run fails: SQLITE_DATABASE_PATH does not exist
            if done > WARM_UP:
                samples.rss_kib.append(rss_kib(proc.pid))
                samples.fds.append(len(os.listdir(f"/proc/{proc.pid}/fd")))
                samples.zombies.append(zombies_of(proc.pid))
            if done >= runs:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kb-soak-"))
    try:
        s = soak(args.runs, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"runs: {s.successes} succeeded, {s.failures} failed (faults injected)")
    print(
        f"RSS after warm-up: first {s.rss_kib[0] / 1024:.1f} MiB, min {min(s.rss_kib) / 1024:.1f}, "
        f"max {max(s.rss_kib) / 1024:.1f}, growth {(s.rss_kib[-1] - s.rss_kib[0]) / 1024:+.1f} MiB"
    )
    print(f"open file descriptors: min {min(s.fds)}, max {max(s.fds)}, last {s.fds[-1]}")
    print(f"zombie children seen: {max(s.zombies)}")


if __name__ == "__main__":
    main()
