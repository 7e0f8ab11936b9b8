"""Backup wall time, side by side in one run: this code, another checkout, and a hand pipeline.

Prints medians of --rounds interleaved runs (each round runs every contender once, so machine
load from other work hits them alike):

  demo-sized app (SQLite, a few KB), whole `kamal-backup backup` with retention:
      this checkout ÷ the baseline checkout (--baseline, e.g. a worktree of 736e946)
  PostgreSQL (--megabytes) + files (--files-megabytes), `backup` with retention ÷ the same work
      by hand, one command after another: pg_dump -Fc -Z0 | restic backup --stdin,
      restic backup PATHS, restic forget --prune per type
  restic processes started by one `backup` run (this checkout and the baseline)

    mkdir /tmp/kb-baseline && git archive 736e946 kamal_backup | tar -x -C /tmp/kb-baseline
    .venv/bin/python bench/backup_speed.py --baseline /tmp/kb-baseline
    .venv/bin/python bench/backup_speed.py --baseline /tmp/kb-baseline --megabytes 0  # demo only

Each `backup` runs as `python -m kamal_backup` in a subprocess with PYTHONPATH naming the source
tree, so start-up is part of the figure, as it is for an operator; each tree is byte-compiled
first, as the image's installed wheel is. The functions are importable
(bench/issue14.py or others can call demo_app, pg_app, time_backup, hand_pipeline, count_restic).
Needs the local PostgreSQL (127.0.0.1:5432, trust) unless --megabytes 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
PG = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres"}
PASSWORD = "bench-backup-speed"
KEEP = {
    "RESTIC_KEEP_LAST": "7",
    "RESTIC_KEEP_DAILY": "7",
    "RESTIC_KEEP_WEEKLY": "4",
    "RESTIC_KEEP_MONTHLY": "6",
    "RESTIC_KEEP_YEARLY": "2",
}


def restic_binary() -> str:
    found = shutil.which("restic")
    if found is None:
        raise SystemExit("restic is not on PATH: source bin/bootstrap first")
    return found


def _env(root: Path, name: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(root / "home"),
        "APP_NAME": name,
        "RESTIC_REPOSITORY": str(root / "repo"),
        "RESTIC_PASSWORD": PASSWORD,
        "KAMAL_BACKUP_STATE_DIR": str(root / "state"),
        "XDG_CACHE_HOME": str(root / "cache"),
        **KEEP,
    }


def compile_tree(source: Path) -> None:
    """Byte-compiles kamal_backup (and tui) in `source`, as pip does when the image installs the
    wheel: the benches then time what an operator runs, not the compiling of ~50 modules on
    each start (PYTHONDONTWRITEBYTECODE, set on this machine and in the image, stops Python
    from keeping what it compiled)."""
    for package in ("kamal_backup", "tui"):
        if (source / package).is_dir():
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", str(source / package)], check=True
            )


def init_repository(env: Mapping[str, str]) -> None:
    subprocess.run([restic_binary(), "init", "-q"], env=dict(env), check=True)


def demo_app(root: Path) -> dict[str, str]:
    """bin/demo's app: a 500-row SQLite database and two small uploads, and its repository."""
    storage = root / "app" / "storage" / "uploads"
    storage.mkdir(parents=True)
    db = root / "app" / "db" / "production.sqlite3"
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total INTEGER)")
        con.executemany(
            "INSERT INTO orders (customer, total) VALUES (?, ?)",
            [(f"customer {i}", i * 137 % 10000) for i in range(500)],
        )
    con.close()
    (storage / "invoice-0001.txt").write_text("Invoice 0001: 42.00 EUR\n")
    (storage / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>\n")
    env = {
        **_env(root, "demo"),
        "DATABASE_ADAPTER": "sqlite",
        "SQLITE_DATABASE_PATH": str(db),
        "BACKUP_PATHS": str(root / "app" / "storage"),
    }
    init_repository(env)
    return env


def psql(sql: str, database: str = "postgres") -> None:
    subprocess.run(
        ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
        env={**os.environ, **PG},
        check=True,
        capture_output=True,
    )


def pg_app(root: Path, database: str, megabytes: int, files_megabytes: int) -> dict[str, str]:
    """A PostgreSQL table of about `megabytes` MB and `files_megabytes` MB of files."""
    rows = megabytes * 1024 * 1024 // 270
    psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{database}"')
    psql(
        "CREATE TABLE events (id bigint PRIMARY KEY, kind text, body text);"
        "INSERT INTO events SELECT g, 'kind' || (g % 17), repeat(md5(g::text), 7)"
        f" FROM generate_series(1, {rows}) g;",
        database,
    )
    storage = root / "app" / "storage"
    storage.mkdir(parents=True)
    for i in range(max(1, files_megabytes)):
        (storage / f"upload-{i:04d}.bin").write_bytes(os.urandom(1024 * 1024))
    env = {
        **_env(root, "bench"),
        "DATABASE_ADAPTER": "postgresql",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}?sslmode=disable",
        "BACKUP_PATHS": str(storage),
    }
    init_repository(env)
    return env


def time_backup(source: Path, env: Mapping[str, str], cwd: Path) -> float:
    """Wall seconds of one `python -m kamal_backup backup` from the source tree `source`."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "kamal_backup", "backup"],
        env={**env, "PYTHONPATH": str(source)},
        cwd=cwd,  # not a source tree: `-m` puts the working directory first on sys.path
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def hand_pipeline(env: Mapping[str, str]) -> float:
    """The same work as a shell script would do it, one command after another; wall seconds."""
    restic = restic_binary()
    environ = dict(env)
    keep = [
        arg
        for name in KEEP
        for arg in (f"--keep-{name.removeprefix('RESTIC_KEEP_').lower()}", env[name])
    ]
    started = time.monotonic()
    dump = subprocess.Popen(
        ["pg_dump", "-Fc", "-Z0", "-d", env["DATABASE_URL"]],
        stdout=subprocess.PIPE,
        env={**os.environ, **PG},
    )
    subprocess.run(
        [
            restic,
            "backup",
            "-q",
            "--tag",
            "hand,type:database",
            "--stdin",
            "--stdin-filename",
            "db.pgdump",
        ],
        stdin=dump.stdout,
        env=environ,
        check=True,
    )
    assert dump.stdout is not None
    dump.stdout.close()
    if dump.wait() != 0:
        raise SystemExit("pg_dump failed")
    subprocess.run(
        [restic, "backup", "-q", "--tag", "hand,type:files", env["BACKUP_PATHS"]],
        env=environ,
        check=True,
    )
    for kind in ("database", "files"):
        subprocess.run(
            [
                restic,
                "forget",
                "-q",
                "--tag",
                f"hand,type:{kind}",
                "--group-by",
                "host",
                *keep,
                "--prune",
            ],
            env=environ,
            check=True,
            capture_output=True,
        )
    return time.monotonic() - started


def count_restic(source: Path, env: Mapping[str, str], cwd: Path) -> list[str]:
    """The restic commands one `backup` starts (a counting `restic` first on PATH)."""
    bin_dir = Path(tempfile.mkdtemp(prefix="kb-count-"))
    log = bin_dir / "calls"
    (bin_dir / "restic").write_text(
        f'#!/bin/sh\necho "$1" >> "{log}"\nexec "{restic_binary()}" "$@"\n'
    )
    (bin_dir / "restic").chmod(0o755)
    try:
        time_backup(source, {**env, "PATH": f"{bin_dir}:{env['PATH']}"}, cwd)
        return log.read_text().split()
    finally:
        shutil.rmtree(bin_dir)


def medians(rounds: int, contenders: Mapping[str, Callable[[], float]]) -> dict[str, float]:
    """Median seconds per contender over `rounds` rounds, each round running all in turn."""
    seen: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            seen[name].append(run())
    return {name: statistics.median(times) for name, times in seen.items()}


def report(
    title: str, rounds: int, runs: Mapping[str, Callable[[], float]], goal: str
) -> dict[str, float]:
    """Prints the medians of `runs` and the first ÷ the second; returns the medians."""
    print(f"{title}, medians of {rounds}:")
    figures = medians(rounds, runs)
    for name, seconds in figures.items():
        print(f"  {name:<9} {seconds:6.2f} s")
    if len(figures) == 2:
        (first, a), (second, b) = figures.items()
        print(f"  {first} ÷ {second}: {a / b:.2f} ({goal})")
    return figures


def compare_checkouts(
    title: str,
    rounds: int,
    contenders: Mapping[str, Path],
    envs: Mapping[str, dict[str, str]],
    cwd: Path,
) -> dict[str, float]:
    """Whole `backup` runs of each source tree, each against its own app and repository."""
    for name, source in contenders.items():
        calls = count_restic(source, envs[name], cwd)
        print(f"  restic processes per run ({name}): {len(calls)}  {' '.join(calls)}")
    runs = {
        name: (lambda s=source, e=envs[name]: time_backup(s, e, cwd))
        for name, source in contenders.items()
    }
    return report(title, rounds, runs, "goal <= 0.5")


def compare_with_hand(title: str, rounds: int, env: dict[str, str], cwd: Path) -> dict[str, float]:
    runs = {"backup": lambda: time_backup(HERE, env, cwd), "by hand": lambda: hand_pipeline(env)}
    return report(title, rounds, runs, "goal <= 1.0, stretch <= 0.8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="source tree of the code to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--megabytes", type=int, default=30, help="PostgreSQL table (0: skip)")
    parser.add_argument("--files-megabytes", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kb-backup-speed-"))
    # RESTIC_KEEP_LAST=1: every run's retention has something to remove (a repository in its
    # steady state, where no forget can be skipped).
    busy = {"RESTIC_KEEP_LAST": "1"}
    try:
        contenders: dict[str, Path] = {"this": HERE}
        if args.baseline:
            contenders["baseline"] = args.baseline.resolve()
        for source in contenders.values():
            compile_tree(source)
        demo = {name: demo_app(work / f"demo-{name}") for name in contenders}
        title = "demo-sized app, whole `backup` with retention"
        compare_checkouts(title, args.rounds, contenders, demo, work)
        busy_demo = {name: {**env, **busy} for name, env in demo.items()}
        title += ", removing a run each time (RESTIC_KEEP_LAST=1)"
        compare_checkouts(title, args.rounds, contenders, busy_demo, work)

        if args.megabytes > 0:
            database = f"kb_backup_speed_{os.getpid()}"
            env = pg_app(work / "pg", database, args.megabytes, args.files_megabytes)
            try:
                time_backup(HERE, env, work)  # warm: both sides then back up unchanged data
                hand_pipeline(env)
                title = f"PostgreSQL {args.megabytes} MB + {args.files_megabytes} MB of files"
                compare_with_hand(title, args.rounds, env, work)
                title += ", removing a run each time (RESTIC_KEEP_LAST=1)"
                compare_with_hand(title, args.rounds, {**env, **busy}, work)
            finally:
                psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
