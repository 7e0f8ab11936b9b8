"""Repository growth per day with dedup-friendly dumps versus the tools' defaults, and overhead.

Seven daily backups of one table with 1% localized churn a day (a contiguous 1% of rows deleted,
as many new rows appended). For each day the restic repository's growth is printed as MB and as
a percentage of the dump's size, side by side for:

  PostgreSQL  pg_dump -Fc -Z0 (kamal-backup)          vs  pg_dump -Fc (default compression)
  MariaDB     one row per INSERT (kamal-backup)        vs  extended INSERTs (default)

It also prints MariaDB restore times (extended dump, one-row dump imported as is, and
kamal-backup restore-db with batching) and the backup overhead: `kamal-backup backup` wall time
divided by the same pg_dump | restic pipeline run by hand.

    .venv/bin/python bench/dedup.py                 # about 270 MB tables, as in the docs
    .venv/bin/python bench/dedup.py --megabytes 50  # quicker
Needs the local PostgreSQL (127.0.0.1:5432, trust) and MariaDB (127.0.0.1:3306, root).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PASSWORD = "bench-password"
DAYS = 7
ROW_BYTES = 270
PG = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres"}
MY = ["--protocol=TCP", "--host=127.0.0.1", "--port=3306", "--user=root"]


def repo_bytes(repo: Path) -> int:
    return sum(f.stat().st_size for f in repo.rglob("*") if f.is_file())


def sh(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, check=True, capture_output=True, **kwargs)  # type: ignore[call-overload]


def restic_env(repo: Path) -> dict[str, str]:
    return {**os.environ, "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD": PASSWORD}


def pipe_into_restic(dump_argv: list[str], repo: Path, env: dict[str, str]) -> tuple[float, int]:
    """dump | restic backup --stdin, by hand; (seconds, dump bytes)."""
    started = time.monotonic()
    dump = subprocess.Popen(dump_argv, env=env, stdout=subprocess.PIPE)
    restic = subprocess.Popen(
        ["restic", "backup", "--quiet", "--stdin", "--stdin-filename", "dump", "--host", "bench"],
        stdin=subprocess.PIPE,
        env={**env, **restic_env(repo)},
    )
    assert dump.stdout is not None and restic.stdin is not None
    total = 0
    for chunk in iter(lambda: dump.stdout.read(1 << 20), b""):  # type: ignore[union-attr]
        total += len(chunk)
        restic.stdin.write(chunk)
    restic.stdin.close()
    if dump.wait() or restic.wait():
        raise SystemExit(
            f"pipeline failed: {dump_argv[0]} {dump.returncode}, restic {restic.returncode}"
        )
    return time.monotonic() - started, total


def kamal_backup(env: dict[str, str]) -> tuple[float, int]:
    """`kamal-backup backup`: (seconds, bytes of the database dump)."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "kamal_backup", "backup", "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise SystemExit(f"kamal-backup backup failed: {result.stderr}")
    run = json.loads(result.stdout)
    return time.monotonic() - started, int(run["database_snapshot"]["total_bytes_processed"])


def report(title: str, rows: list[tuple[int, int, int, int]], labels: tuple[str, str]) -> None:
    print(f"\n{title}")
    print(
        f"{'day':>4} {'dump MB':>8} {labels[0] + ' +MB':>22} {'%':>6} {labels[1] + ' +MB':>22} {'%':>6}"
    )
    growth_a, growth_b = [], []
    for day, dump, grow_a, grow_b in rows:
        pa, pb = 100 * grow_a / dump, 100 * grow_b / dump
        if day > 0:
            growth_a.append(pa)
            growth_b.append(pb)
        print(
            f"{day:>4} {dump / 1e6:>8.1f} {grow_a / 1e6:>22.1f} {pa:>6.1f} {grow_b / 1e6:>22.1f} {pb:>6.1f}"
        )
    print(
        f"mean daily growth, days 1-{DAYS - 1}: {labels[0]} {statistics.mean(growth_a):.2f}% of the dump, "
        f"{labels[1]} {statistics.mean(growth_b):.2f}%"
    )


def init(repo: Path) -> None:
    sh(["restic", "init"], env=restic_env(repo))


def bench_postgres(work: Path, rows: int, rng: random.Random) -> None:
    db = "kb_bench_dedup"
    env = {**os.environ, **PG}
    sh(
        ["psql", "-Xq", "-c", f"DROP DATABASE IF EXISTS {db}", "-c", f"CREATE DATABASE {db}"],
        env=env,
    )
    sh(
        [
            "psql",
            "-Xq",
            "-d",
            db,
            "-c",
            "CREATE TABLE items (id bigint PRIMARY KEY, payload text); INSERT INTO items "
            f"SELECT g, repeat(md5(g::text), 8) || md5(random()::text) FROM generate_series(1, {rows}) g",
        ],
        env=env,
    )
    chosen, default, by_hand = work / "pg-chosen", work / "pg-default", work / "pg-hand"
    for repo in (chosen, default, by_hand):
        init(repo)
    (work / "files").mkdir(exist_ok=True)
    kb_env = {
        **env,
        "APP_NAME": "bench",
        "DATABASE_ADAPTER": "postgres",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1/{db}",
        "BACKUP_PATHS": str(work / "files"),
        "RESTIC_REPOSITORY": str(chosen),
        "RESTIC_PASSWORD": PASSWORD,
        "RESTIC_FORGET_AFTER_BACKUP": "false",
        "KAMAL_BACKUP_STATE_DIR": str(work / "state"),
    }
    table, ratios = [], []
    next_id = rows + 1
    for day in range(DAYS):
        if day:
            start = rng.randrange(1, next_id - rows // 100)
            count = rows // 100
            sh(
                [
                    "psql",
                    "-Xq",
                    "-d",
                    db,
                    "-c",
                    f"DELETE FROM items WHERE id >= {start} AND id < {start + count}; INSERT INTO items "
                    f"SELECT g, repeat(md5(g::text), 8) || md5(random()::text) FROM generate_series({next_id}, "
                    f"{next_id + count - 1}) g",
                ],
                env=env,
            )
            next_id += count
        before = repo_bytes(chosen), repo_bytes(default)
        seconds_kb, size = kamal_backup(kb_env)
        seconds_hand, _ = pipe_into_restic(
            ["pg_dump", "-Fc", "-Z0", "--no-owner", "--no-privileges", db], by_hand, env
        )
        pipe_into_restic(["pg_dump", "-Fc", "--no-owner", "--no-privileges", db], default, env)
        table.append((day, size, repo_bytes(chosen) - before[0], repo_bytes(default) - before[1]))
        if day:
            ratios.append(seconds_kb / seconds_hand)
    report(f"PostgreSQL, {rows} rows", table, ("-Fc -Z0 (kamal-backup)", "-Fc (compressed)"))
    print(
        f"backup overhead: kamal-backup backup / (pg_dump | restic by hand) = {statistics.mean(ratios):.2f} "
        f"(mean of days 1-{DAYS - 1}; includes the file snapshot, version check and verification)"
    )
    sh(["psql", "-Xq", "-c", f"DROP DATABASE {db}"], env=env)


def bench_mariadb(work: Path, rows: int, rng: random.Random) -> None:
    db = "kb_bench_dedup"
    mysql = ["mariadb", *MY]
    sh([*mysql, "-e", f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"])
    sh(
        [
            *mysql,
            db,
            "-e",
            "CREATE TABLE items (id BIGINT PRIMARY KEY, payload VARCHAR(400)); "
            f"INSERT INTO items SELECT seq, CONCAT(REPEAT(MD5(seq), 8), MD5(RAND())) FROM seq_1_to_{rows}",
        ]
    )
    chosen, extended = work / "my-chosen", work / "my-extended"
    for repo in (chosen, extended):
        init(repo)
    (work / "files").mkdir(exist_ok=True)
    kb_env = {
        **os.environ,
        "APP_NAME": "benchmy",
        "DATABASE_ADAPTER": "mysql",
        "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{db}",
        "BACKUP_PATHS": str(work / "files"),
        "RESTIC_REPOSITORY": str(chosen),
        "RESTIC_PASSWORD": PASSWORD,
        "RESTIC_FORGET_AFTER_BACKUP": "false",
        "KAMAL_BACKUP_STATE_DIR": str(work / "state"),
    }
    common = ["mariadb-dump", *MY, "--single-transaction", "--quick", "--skip-dump-date"]
    table = []
    next_id = rows + 1
    for day in range(DAYS):
        if day:
            count = rows // 100
            start = rng.randrange(1, next_id - count)
            sh(
                [
                    *mysql,
                    db,
                    "-e",
                    f"DELETE FROM items WHERE id >= {start} AND id < {start + count}; "
                    f"INSERT INTO items SELECT seq, CONCAT(REPEAT(MD5(seq), 8), MD5(RAND())) "
                    f"FROM seq_{next_id}_to_{next_id + count - 1}",
                ]
            )
            next_id += count
        before = repo_bytes(chosen), repo_bytes(extended)
        _, size = kamal_backup(kb_env)
        pipe_into_restic([*common, db], extended, os.environ)
        table.append((day, size, repo_bytes(chosen) - before[0], repo_bytes(extended) - before[1]))
    report(f"MariaDB, {rows} rows", table, ("one row per INSERT", "extended INSERTs"))

    target = "kb_bench_restore"
    timings = {}
    for label, dump_args in (
        ("extended-insert dump, mariadb < dump", [*common, db]),
        ("one-row dump, mariadb < dump (no batching)", [*common, "--skip-extended-insert", db]),
    ):
        dump_file = work / "dump.sql"
        with dump_file.open("wb") as out:
            subprocess.run(dump_args, stdout=out, check=True)
        sh([*mysql, "-e", f"DROP DATABASE IF EXISTS {target}; CREATE DATABASE {target}"])
        started = time.monotonic()
        with dump_file.open("rb") as source:
            subprocess.run([*mysql, target], stdin=source, check=True)
        timings[label] = time.monotonic() - started
    sh([*mysql, "-e", f"DROP DATABASE IF EXISTS {target}"])
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "kamal_backup", "restore-db"],
        capture_output=True,
        text=True,
        env={
            **kb_env,
            "KAMAL_BACKUP_ALLOW_RESTORE": "true",
            "RESTORE_DATABASE_URL": f"mysql://root@127.0.0.1:3306/{target}",
        },
    )
    if result.returncode:
        raise SystemExit(result.stderr)
    timings["kamal-backup restore-db (batched, includes restic dump)"] = time.monotonic() - started
    same = sh([*mysql, "-N", "-e", f"CHECKSUM TABLE {db}.items, {target}.items"]).stdout.split()
    print("\nMariaDB restore times")
    for label, seconds in timings.items():
        print(f"  {seconds:>7.1f} s  {label}")
    print(f"  restored rows identical: {same[1] == same[3]}")
    sh([*mysql, "-e", f"DROP DATABASE IF EXISTS {target}; DROP DATABASE IF EXISTS {db}"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megabytes", type=int, default=270, help="table size (default 270)")
    parser.add_argument("--only", choices=("postgres", "mariadb"))
    args = parser.parse_args()
    rows = args.megabytes * 1_000_000 // ROW_BYTES
    work = Path(tempfile.mkdtemp(prefix="kb-bench-dedup-"))
    rng = random.Random(42)
    try:
        if args.only in (None, "postgres"):
            bench_postgres(work, rows, rng)
        if args.only in (None, "mariadb"):
            bench_mariadb(work, rows, rng)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
