"""Peak RSS of the kamal-backup process while it backs up SQLite databases of growing size.

The dump streams (online backup API page by page, then restic reads the copy), so the Python
process's peak RSS must stay flat as the database grows. Prints one row per size.

    .venv/bin/python bench/sqlite_memory.py            # 1024 and 3072 MB
    .venv/bin/python bench/sqlite_memory.py 100 400    # sizes in MB
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from issue14 import app_env


def make_database(path: Path, megabytes: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
        rows = megabytes * 1024 // 4  # 4 KiB rows
        for start in range(0, rows, 50_000):
            db.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?) "
                "INSERT INTO blobs (data) SELECT randomblob(4000) FROM n",
                (min(50_000, rows - start),),
            )
            db.commit()
    db.close()


def peak_rss_of(argv: list[str], env: dict[str, str]) -> tuple[int, float, int]:
    """(exit code, seconds, peak RSS in KiB) of a process, read from /proc while it runs."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.05)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.read().decode() if proc.stderr else "")
    return proc.returncode, time.monotonic() - started, peak


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [1024, 3072]
    work = Path(tempfile.mkdtemp(prefix="kb-bench-memory-"))
    print(f"{'database':>10} {'backup s':>9} {'MB/s':>6} {'peak RSS kamal-backup':>22}")
    try:
        for megabytes in sizes:
            root = work / str(megabytes)
            db = root / "app.sqlite3"
            env = app_env(root, "bench", DATABASE_ADAPTER="sqlite", SQLITE_DATABASE_PATH=str(db))
            make_database(db, megabytes)
            code, seconds, peak = peak_rss_of([sys.executable, "-m", "kamal_backup", "backup"], env)
            size = db.stat().st_size / 1024 / 1024
            result = f"{peak / 1024:.1f} MiB" if code == 0 else f"FAILED (exit {code})"
            print(f"{size:>8.0f}MB {seconds:>9.1f} {size / seconds:>6.1f} {result:>22}", flush=True)
            shutil.rmtree(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
