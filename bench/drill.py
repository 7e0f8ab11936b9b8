"""What verification costs: backups with and without the manifest, drills against plain restores.

Builds a PostgreSQL database of about --megabytes MB (default 300) and a tree of about
--files-megabytes MB of files (default 50), then prints:

  backup wall time with the manifest ÷ without it        (the issue asks for <= 1.25)
  drill wall time ÷ restore-db + restore-files of the run (the issue asks for <= 1.3)

Each figure is the median of --rounds alternating runs (default 2) against a warm repository,
so both sides see the same deduplication and the same page cache.

    .venv/bin/python bench/drill.py                  # about 300 MB + 50 MB, as in the docs
    .venv/bin/python bench/drill.py --megabytes 30   # quicker
Needs the local PostgreSQL (127.0.0.1:5432, trust).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kamal_backup.services.backup import run_backup
from kamal_backup.services.drill import run_drill
from kamal_backup.services.restore import restore_database, restore_files
from kamal_backup.settings import Settings, load_settings

PG = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres"}
ROW_BYTES = 270


def psql(sql: str, database: str = "postgres") -> str:
    return subprocess.run(
        ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
        env={**os.environ, **PG},
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def build_database(name: str, megabytes: int) -> None:
    rows = megabytes * 1024 * 1024 // ROW_BYTES
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{name}"')
    psql(
        "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, kind text, body text);"
        f"INSERT INTO events SELECT g, '2026-01-01'::timestamptz + g * interval '1 second',"
        " 'kind' || (g % 17), repeat(md5(g::text), 7) FROM generate_series(1, "
        f"{rows}) g;"
        "CREATE TABLE users (id serial PRIMARY KEY, email text, profile jsonb);"
        "INSERT INTO users (email, profile) SELECT 'u' || g || '@example.com',"
        " jsonb_build_object('n', g) FROM generate_series(1, 20000) g;",
        name,
    )


def build_files(root: Path, megabytes: int) -> None:
    root.mkdir(parents=True)
    size = 256 * 1024
    for number in range(megabytes * 1024 * 1024 // size):
        folder = root / f"{number % 16:02x}"
        folder.mkdir(exist_ok=True)
        (folder / f"upload-{number}.bin").write_bytes(os.urandom(size))


def timed(call: Callable[[], object]) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=300)
    parser.add_argument("--files-megabytes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="kamal-backup-bench-drill-"))
    source, scratch = "bench_drill_source", "bench_drill_scratch"
    try:
        print(f"building {args.megabytes} MB of PostgreSQL and {args.files_megabytes} MB of files…")
        build_database(source, args.megabytes)
        build_files(base / "storage", args.files_megabytes)
        size = int(psql(f"SELECT pg_database_size('{source}')"))
        environ = {
            "PATH": os.environ["PATH"],
            "HOME": str(base),
            "APP_NAME": "bench",
            "DATABASE_ADAPTER": "postgres",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{source}",
            "RESTORE_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{scratch}",
            "RESTORE_FILES_PATH": str(base / "restore"),
            "BACKUP_PATHS": str(base / "storage"),
            "RESTIC_REPOSITORY": str(base / "repo"),
            "RESTIC_PASSWORD": "bench-password",
            "RESTIC_INIT_IF_MISSING": "true",
            "RESTIC_FORGET_AFTER_BACKUP": "false",
            "KAMAL_BACKUP_STATE_DIR": str(base / "state"),
            "KAMAL_BACKUP_ALLOW_RESTORE": "true",
            "XDG_CACHE_HOME": str(base / "cache"),
        }
        settings: Settings = load_settings(environ=environ)
        print(f"database {size / 1e6:.0f} MB on disk; warming the repository…")
        run_backup(settings)

        with_manifest: list[float] = []
        without: list[float] = []
        for _ in range(args.rounds):
            without.append(timed(lambda: run_backup(settings, manifest=False)))
            with_manifest.append(timed(lambda: run_backup(settings, manifest=True)))
        backup_ratio = statistics.median(with_manifest) / statistics.median(without)

        plain: list[float] = []
        drills: list[float] = []
        rto: list[float] = []
        for _ in range(args.rounds):
            plain.append(
                timed(lambda: restore_database(settings, "latest"))
                + timed(lambda: restore_files(settings, "latest", str(base / "restore")))
            )
            started = time.monotonic()
            record = run_drill(settings, ran_by="bench")
            drills.append(time.monotonic() - started)  # everything, the record's upload included
            if record.status != "passed" or record.verification.status != "verified":
                raise SystemExit(f"the drill did not pass: {record.error or record.verification}")
            rto.append(record.rto_seconds or 0)
        drill_ratio = statistics.median(drills) / statistics.median(plain)

        def seconds(values: list[float]) -> str:
            return ", ".join(f"{v:.1f}" for v in values)

        print(f"backup without manifest   s: {seconds(without)}")
        print(f"backup with manifest      s: {seconds(with_manifest)}")
        print(f"backup ratio (median)      : {backup_ratio:.2f}  (limit 1.25)")
        print(f"restore-db + restore-files s: {seconds(plain)}")
        print(f"drill (restore + verify)  s: {seconds(drills)}  (RTO {seconds(rto)})")
        print(f"drill ratio (median)       : {drill_ratio:.2f}  (limit 1.30)")
    finally:
        for name in (source, scratch):
            psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
