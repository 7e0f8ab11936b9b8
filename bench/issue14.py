"""Every figure of issue 14's table from one command, side by side in one run, with medians.

    .venv/bin/python bench/issue14.py                                   # small data, a few minutes
    .venv/bin/python bench/issue14.py --full                            # the issue's sizes
    .venv/bin/python bench/issue14.py --baseline /tmp/kb-baseline       # and the code before
    .venv/bin/python bench/issue14.py --only startup,restore-pg         # some rows

`--baseline` names a source tree of the code to compare with (e.g. `git worktree add
/tmp/kb-baseline 736e946`): each row is then also measured with that code, in the same rounds.
Every kamal-backup command runs as `python -m kamal_backup` in a subprocess with PYTHONPATH
naming the source tree, so start-up is part of each figure, as it is for an operator. Each round
runs every contender once, in turn (every other round in the reverse order), so load from other
work on the machine, and what the contender before left behind, hit them alike.

Rows (sizes: small default / --full):

  backup ÷ hand pipeline, demo app ÷ baseline   the BACKUP HOOK: bench/backup_speed.py, if present
  restore-db ÷ restic dump | pg_restore -d      PostgreSQL table 30 / 300 MB
  MariaDB restore-db ÷ extended-insert import   MariaDB table 30 / 131 MB (400,000 rows)
  file snapshot ÷ restic backup alone           10,000 / 100,000 small files, unchanged (daily)
  version / --help start-up                     median of 7
  peak RSS of `backup` of a SQLite database     200 / 3072 MB

Needs the local PostgreSQL (127.0.0.1:5432, trust) and MariaDB (127.0.0.1:3306, root).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
PASSWORD = "bench-issue14"
PG = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres"}
MY = ["--protocol=TCP", "--host=127.0.0.1", "--port=3306", "--user=root"]
ROWS = ("backup", "restore-pg", "restore-mariadb", "files", "startup", "memory")


@dataclass
class Scale:
    full: bool
    rounds: int
    work: Path
    pg_megabytes: int
    files_megabytes: int
    mariadb_megabytes: int
    small_files: int
    sqlite_megabytes: int
    # "this" is this checkout; "baseline" the --baseline tree, when given.
    sources: dict[str, Path] = field(default_factory=dict)


@dataclass
class Row:
    """One line of the table: the median of each contender and the ratio the issue asks about."""

    measure: str
    goal: str
    unit: str = "s"
    # contender -> values, e.g. {"this": [...], "baseline": [...], "reference": [...]}
    values: dict[str, list[float]] = field(default_factory=dict)
    reference: str | None = None  # the contender the ratio divides by (None: no ratio)
    note: str = ""

    def median(self, name: str) -> float | None:
        values = self.values.get(name)
        return statistics.median(values) if values else None

    def ratio(self, name: str) -> float | None:
        mine, theirs = self.median(name), self.median(self.reference or "")
        return mine / theirs if mine is not None and theirs else None


# Running things -------------------------------------------------------------------------------


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    done: subprocess.CompletedProcess[bytes] = subprocess.run(
        argv,
        check=True,
        capture_output=True,
        **kwargs,  # type: ignore[call-overload]
    )
    return done


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def kamal_backup(
    source: Path, args: list[str], env: Mapping[str, str], cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    """`python -m kamal_backup ARGS` from the source tree `source` (cwd: not a source tree)."""
    return run(
        [sys.executable, "-m", "kamal_backup", *args],
        env={**env, "PYTHONPATH": str(source)},
        cwd=cwd,
    )


def opening_seconds(env: Mapping[str, str]) -> float:
    """Median of 3 `restic cat config`: what any restic command pays to open the repository (its
    key derivation, calibrated by `restic init` to about half a second of CPU), before it reads
    anything. A restore through restic cannot start its stream sooner."""
    return statistics.median(
        timed(lambda: run(["restic", "cat", "config", "--no-lock"], env=dict(env)))
        for _ in range(3)
    )


def restore_db(tree: Path, snapshot: str, env: Mapping[str, str], cwd: Path) -> Callable[[], float]:
    """One timed `restore-db SNAPSHOT` with the code of `tree`."""
    return lambda: timed(lambda: kamal_backup(tree, ["restore-db", snapshot[:8]], env, cwd))


def rounds_of(rounds: int, contenders: Mapping[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each round runs every contender once, in turn: in the order given, then the reverse order
    every other round, so no contender always runs right after the same one (a PostgreSQL
    restore that always followed the reference into the same target took 1.18-1.21 of it; the
    same code in alternating rounds, 1.06)."""
    seen: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_number in range(rounds):
        for name in names if round_number % 2 == 0 else reversed(names):
            seen[name].append(contenders[name]())
    return seen


def app_env(root: Path, name: str, **extra: str) -> dict[str, str]:
    (root / "files").mkdir(parents=True, exist_ok=True)
    (root / "files" / "readme.txt").write_text("a file, so the app has a file snapshot\n")
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(root),
        "APP_NAME": name,
        "BACKUP_PATHS": str(root / "files"),
        "RESTIC_REPOSITORY": str(root / "repo"),
        "RESTIC_PASSWORD": PASSWORD,
        "RESTIC_INIT_IF_MISSING": "true",
        "RESTIC_FORGET_AFTER_BACKUP": "false",
        "KAMAL_BACKUP_STATE_DIR": str(root / "state"),
        "KAMAL_BACKUP_ALLOW_RESTORE": "true",
        "XDG_CACHE_HOME": str(root / "cache"),
        "TMPDIR": str(root),
        **extra,
    }


def latest_database_snapshot(env: Mapping[str, str]) -> tuple[str, str]:
    listed = run(["restic", "snapshots", "--json", "--tag", "type:database"], env=dict(env))
    snapshot = json.loads(listed.stdout)[-1]
    return snapshot["id"], snapshot["paths"][0]


# Rows -----------------------------------------------------------------------------------------


def backup_rows(scale: Scale) -> list[Row]:
    """BACKUP HOOK: the backup rows come from bench/backup_speed.py (issue 14's backup half).

    Uses its demo_app, pg_app, time_backup and hand_pipeline when it has them; otherwise the
    rows say why they were not measured.
    """
    backup = Row("`backup` (retention on) ÷ the hand pipeline", "<= 1.0 (stretch 0.8)")
    demo = Row("demo-sized app, whole `backup` with retention: this ÷ baseline", "<= 0.5")
    try:
        import backup_speed  # type: ignore[import-not-found]
    except ImportError:
        for row in (backup, demo):
            row.note = "not measured: bench/backup_speed.py is absent"
        return [backup, demo]
    try:
        database = f"kb_issue14_backup_{os.getpid()}"
        env = backup_speed.pg_app(
            scale.work / "backup-pg", database, scale.pg_megabytes, scale.files_megabytes
        )
        try:
            # Warm: both sides then back up unchanged data, as on the days after the first.
            backup_speed.time_backup(HERE, env, scale.work)
            backup_speed.hand_pipeline(env)
            backup.values = rounds_of(
                scale.rounds,
                {
                    "this": lambda: backup_speed.time_backup(HERE, env, scale.work),
                    "reference": lambda: backup_speed.hand_pipeline(env),
                },
            )
            backup.reference = "reference"
        finally:
            backup_speed.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if "baseline" in scale.sources:
            envs = {
                name: backup_speed.demo_app(scale.work / f"backup-demo-{name}")
                for name in scale.sources
            }
            demo.values = rounds_of(
                scale.rounds,
                {
                    name: functools.partial(
                        backup_speed.time_backup, source, envs[name], scale.work
                    )
                    for name, source in scale.sources.items()
                },
            )
            demo.reference = "baseline"
        else:
            demo.note = "not measured: needs --baseline"
    except (AttributeError, TypeError) as exc:
        for row in (backup, demo):
            row.note = f"not measured: bench/backup_speed.py does not fit ({exc})"
    return [backup, demo]


def pg_database(name: str, megabytes: int) -> None:
    def psql(sql: str, database: str = "postgres") -> None:
        run(
            ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
            env={**os.environ, **PG},
        )

    rows = megabytes * 1024 * 1024 // 270
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{name}"')
    psql(
        "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, kind text, body text);"
        "INSERT INTO events SELECT g, '2026-01-01'::timestamptz + g * interval '1 second',"
        f" 'kind' || (g % 17), repeat(md5(g::text), 7) FROM generate_series(1, {rows}) g;"
        "CREATE INDEX ON events (kind);",
        name,
    )


def restore_pg_row(scale: Scale) -> list[Row]:
    source, target, hand = "kb_issue14_pg", "kb_issue14_pg_restore", "kb_issue14_pg_hand"
    pg_env = {**os.environ, **PG}
    pg_database(source, scale.pg_megabytes)
    env = app_env(
        scale.work / "restore-pg",
        "bench14pg",
        DATABASE_ADAPTER="postgres",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{source}",
        RESTORE_DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{target}",
    )
    try:
        kamal_backup(HERE, ["backup"], env, scale.work)
        snapshot, path = latest_database_snapshot(env)

        def by_hand(database: str, *options: str) -> float:
            started = time.perf_counter()
            dump = subprocess.Popen(
                ["restic", "dump", snapshot, path], env=env, stdout=subprocess.PIPE
            )
            run(
                ["pg_restore", *options, "--no-owner", "--no-privileges", "-d", database],
                stdin=dump.stdout,
                env=pg_env,
            )
            assert dump.stdout is not None
            dump.stdout.close()
            if dump.wait() != 0:
                raise SystemExit("restic dump failed")
            return time.perf_counter() - started

        def same_target() -> float:
            """By hand into restore-db's own target, which holds the last restore (restore-db's
            or this one's): pg_restore drops what it restores first (--clean), as restore-db
            empties the target first."""
            return by_hand(target, "--clean", "--if-exists")

        def fresh_database() -> float:
            """By hand into a new, empty database, created before the clock starts."""
            run(["dropdb", "--if-exists", "--force", hand], env=pg_env)
            run(["createdb", hand], env=pg_env)
            return by_hand(hand)

        def settled(contender: Callable[[], float]) -> Callable[[], float]:
            """The contender, started after the server wrote out its dirty pages (CHECKPOINT)
            and the page cache was flushed (sync), untimed: otherwise a restore pays for
            whatever part of the 300 MB the one before it left to write, whichever contender
            that was."""

            def run_settled() -> float:
                run(["psql", "-XAtq", "-d", "postgres", "-c", "CHECKPOINT"], env=pg_env)
                os.sync()
                return contender()

            return run_settled

        # The target holds a restore before the first round, as it does before every later one.
        kamal_backup(HERE, ["restore-db", snapshot[:8]], env, scale.work)
        contenders: dict[str, Callable[[], float]] = {
            "reference": settled(same_target),
            "fresh": settled(fresh_database),
        }
        for name, tree in scale.sources.items():
            contenders[name] = settled(restore_db(tree, snapshot, env, scale.work))
        values = rounds_of(scale.rounds, contenders)
        fresh = statistics.median(values.pop("fresh"))
        row = Row(
            f"`restore-db` ÷ `restic dump | pg_restore --clean -d` into the same target "
            f"({scale.pg_megabytes} MB table)",
            "<= 1.05",
            values=values,
            reference="reference",
        )
        count = "SELECT count(*) FROM events"
        same = {
            run(["psql", "-XAtq", "-d", db, "-c", count], env=pg_env).stdout
            for db in (source, target, hand)
        }
        row.note = "rows identical" if len(same) == 1 else f"ROW COUNTS DIFFER: {same}"
        row.note += f"; by hand into a new empty database made untimed: {fresh:.2f} s" + "".join(
            f", {name} ÷ that {row.median(name) / fresh:.2f}"  # type: ignore[operator]
            for name in scale.sources
        )
        row.note += f"; restic opening the repository alone: {opening_seconds(env):.2f} s"
        return [row]
    finally:
        for name in (source, target, hand):
            run(["dropdb", "--if-exists", "--force", name], env=pg_env)


def mariadb(*args: str, stdin: object = None) -> bytes:
    return run(["mariadb", *MY, *args], stdin=stdin).stdout


def restore_mariadb_row(scale: Scale) -> list[Row]:
    source, target, hand = "kb_issue14_my", "kb_issue14_my_restore", "kb_issue14_my_hand"
    rows = scale.mariadb_megabytes * 1_000_000 // 330  # as bench/dedup.py: 131 MB is 400,000
    mariadb("-e", f"DROP DATABASE IF EXISTS {source}; CREATE DATABASE {source}")
    mariadb(
        source,
        "-e",
        "CREATE TABLE items (id BIGINT PRIMARY KEY, payload VARCHAR(400)); INSERT INTO items "
        f"SELECT seq, CONCAT(REPEAT(MD5(seq), 8), MD5(RAND())) FROM seq_1_to_{rows}",
    )
    root = scale.work / "restore-mariadb"
    env = app_env(
        root,
        "bench14my",
        DATABASE_ADAPTER="mysql",
        DATABASE_URL=f"mysql://root@127.0.0.1:3306/{source}",
        RESTORE_DATABASE_URL=f"mysql://root@127.0.0.1:3306/{target}",
    )
    extended = root / "extended.sql"
    try:
        kamal_backup(HERE, ["backup"], env, scale.work)
        snapshot, _ = latest_database_snapshot(env)
        with extended.open("wb") as out:
            subprocess.run(
                [
                    "mariadb-dump",
                    *MY,
                    "--single-transaction",
                    "--quick",
                    "--skip-dump-date",
                    source,
                ],
                stdout=out,
                check=True,
            )

        def by_hand() -> float:
            mariadb("-e", f"DROP DATABASE IF EXISTS {hand}; CREATE DATABASE {hand}")
            with extended.open("rb") as dump:
                return timed(lambda: mariadb(hand, stdin=dump))

        contenders: dict[str, Callable[[], float]] = {"reference": by_hand}
        for name, tree in scale.sources.items():
            contenders[name] = restore_db(tree, snapshot, env, scale.work)
        row = Row(
            f"MariaDB `restore-db` ÷ importing the extended-insert dump ({rows:,} rows, "
            f"{extended.stat().st_size / 1e6:.0f} MB)",
            "<= 1.2",
            values=rounds_of(scale.rounds, contenders),
            reference="reference",
        )
        sums = mariadb("-N", "-e", f"CHECKSUM TABLE {source}.items, {target}.items, {hand}.items")
        row.note = "rows identical" if len(set(sums.split()[1::2])) == 1 else "CHECKSUMS DIFFER"
        # The reference reads a local file: restic's opening is all cost to this row's ratio.
        row.note += f"; restic opening the repository alone: {opening_seconds(env):.2f} s"
        return [row]
    finally:
        mariadb(
            "-e",
            f"DROP DATABASE IF EXISTS {source}; DROP DATABASE IF EXISTS {target}; "
            f"DROP DATABASE IF EXISTS {hand}",
        )


# The file snapshot as services/backup.py takes it: restic backs the paths up while the
# manifest's hashes are taken beside it on a thread (with the hash cache where the code has it).
FILE_STEP = """
import inspect, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from kamal_backup import verification
from kamal_backup.services import RESTORE_WORK_PATTERNS, app_tags, restic_for
from kamal_backup.settings import load_settings
settings = load_settings()
paths = list(settings.backup_paths)
patterns = [*settings.backup_excludes, *RESTORE_WORK_PATTERNS]
options = {}
if "cache" in inspect.signature(verification.source_files).parameters:
    options["cache"] = settings.state_dir / verification.HASH_CACHE
restic = restic_for(settings)
def hashed():
    begun = time.thread_time()
    verification.source_files(paths, [], patterns, **options)
    return time.thread_time() - begun
started = time.perf_counter()  # the step itself: in a backup, Python is already running
with ThreadPoolExecutor(max_workers=1) as pool:
    hashing = pool.submit(hashed)
    restic.backup_paths(paths, tags=app_tags(settings, "type:files"), exclude_patterns=patterns)
    cpu = hashing.result()
print(cpu, time.perf_counter() - started)  # the hashing thread's CPU seconds, the step's time
"""


def small_files(root: Path, count: int) -> None:
    for number in range(count):
        folder = root / f"{number // 1000:03d}" / f"{number % 1000 // 100}"
        if number % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{number}.txt").write_bytes(os.urandom(256) + b"x" * (number % 2048))


def files_row(scale: Scale) -> list[Row]:
    files = scale.work / "small-files"
    small_files(files, scale.small_files)
    envs: dict[str, dict[str, str]] = {}
    for name in ("reference", *scale.sources):
        envs[name] = app_env(
            scale.work / f"files-{name}",
            "bench14files",
            DATABASE_ADAPTER="none",
            BACKUP_PATHS=str(files),
        )
        run(["restic", "init", "-q"], env=envs[name])

    def restic_alone() -> float:
        return timed(
            lambda: run(
                ["restic", "backup", "-q", "--host", "bench", str(files)], env=envs["reference"]
            )
        )

    hashing: dict[str, list[float]] = {name: [] for name in scale.sources}

    def step(name: str, tree: Path) -> Callable[[], float]:
        def once() -> float:
            done = run(
                [sys.executable, "-c", FILE_STEP],
                env={**envs[name], "PYTHONPATH": str(tree)},
                cwd=scale.work,
            )
            cpu, seconds = map(float, done.stdout.split()[-2:])
            hashing[name].append(cpu)
            return seconds

        return once

    contenders: dict[str, Callable[[], float]] = {"reference": restic_alone}
    contenders.update({name: step(name, tree) for name, tree in scale.sources.items()})
    first = rounds_of(1, contenders)  # the first backup of every file
    time.sleep(2.5)  # past the hash cache's racy window, as a day later
    row = Row(
        f"file snapshot of {scale.small_files:,} small files ÷ `restic backup` alone "
        "(unchanged files, as on a daily run)",
        "<= 1.05",
        values=rounds_of(scale.rounds, contenders),
        reference="reference",
    )
    cpu = ", ".join(f"{n} {statistics.median(v[1:]):.2f} s" for n, v in hashing.items())
    row.note = f"CPU of the hashing thread (median): {cpu}; first backup: " + ", ".join(
        f"{n} {v[0]:.1f} s" for n, v in first.items()
    )
    return [row]


def start_up(tree: Path, args: list[str], cwd: Path) -> Callable[[], float]:
    """One timed start-up in milliseconds."""
    return lambda: 1000 * timed(lambda: kamal_backup(tree, args, os.environ, cwd))


def startup_rows(scale: Scale) -> list[Row]:
    rows = []
    for args, goal in ((["version"], "<= 100 ms"), (["--help"], "<= 150 ms")):
        contenders = {
            name: start_up(tree, args, scale.work) for name, tree in scale.sources.items()
        }
        rows.append(
            Row(
                f"`kamal-backup {args[0]}` start-up",
                goal,
                unit="ms",
                values=rounds_of(7, contenders),
            )
        )
    return rows


def memory_row(scale: Scale) -> list[Row]:
    from sqlite_memory import make_database, peak_rss_of

    root = scale.work / "memory"
    root.mkdir()
    database = root / "app.sqlite3"
    make_database(database, scale.sqlite_megabytes)
    values: dict[str, list[float]] = {}
    for name, tree in scale.sources.items():
        env = app_env(
            root / name, "bench14mem", DATABASE_ADAPTER="sqlite", SQLITE_DATABASE_PATH=str(database)
        )
        code, _, peak = peak_rss_of(
            [sys.executable, "-m", "kamal_backup", "backup"], {**env, "PYTHONPATH": str(tree)}
        )
        if code != 0:
            raise SystemExit(f"the backup of the SQLite database failed ({name})")
        values[name] = [peak / 1024]
    size = database.stat().st_size / 1024 / 1024
    return [
        Row(
            f"peak RSS of `backup` of a {size:,.0f} MB SQLite database",
            "<= 60 MiB",
            unit="MiB",
            values=values,
        )
    ]


# Report ---------------------------------------------------------------------------------------


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return (
        f"{value:.0f} ms"
        if unit == "ms"
        else f"{value:.1f} {unit}"
        if unit != "s"
        else f"{value:.2f} s"
    )


def report(rows: list[Row], scale: Scale) -> None:
    names = list(scale.sources)
    header = ["measure", *names, "reference"]
    if any(r.reference for r in rows):
        header += [f"ratio ({n})" for n in names]
    header += ["goal", "note"]
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [row.measure.replace("|", "\\|")]
        cells += [show(row.median(n), row.unit) for n in names]
        cells.append(
            show(row.median("reference"), row.unit) if row.reference == "reference" else "-"
        )
        if any(r.reference for r in rows):
            for n in names:
                ratio = row.ratio(n) if row.reference and n != row.reference else None
                cells.append(f"**{ratio:.2f}**" if ratio is not None else "-")
        cells += [row.goal, row.note]
        print("| " + " | ".join(cells) + " |")
    print(
        f"\nmedians of {scale.rounds} rounds (start-up: of 7); {time.strftime('%Y-%m-%d %H:%M')}, "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the issue's sizes (slow)")
    parser.add_argument("--baseline", type=Path, help="source tree of the code to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only", default=",".join(ROWS), help=f"comma-separated: {', '.join(ROWS)}"
    )
    parser.add_argument("--pg-megabytes", type=int)
    parser.add_argument("--files-megabytes", type=int)
    parser.add_argument("--mariadb-megabytes", type=int)
    parser.add_argument("--small-files", type=int)
    parser.add_argument("--sqlite-megabytes", type=int)
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(ROWS)
    if unknown:
        parser.error(f"--only: unknown rows {', '.join(sorted(unknown))}")

    def size(given: int | None, small: int, full: int) -> int:
        return given if given is not None else (full if args.full else small)

    work = Path(tempfile.mkdtemp(prefix="kb-issue14-"))
    scale = Scale(
        full=args.full,
        rounds=args.rounds,
        work=work,
        pg_megabytes=size(args.pg_megabytes, 30, 300),
        files_megabytes=size(args.files_megabytes, 10, 50),
        mariadb_megabytes=size(args.mariadb_megabytes, 30, 131),
        small_files=size(args.small_files, 10_000, 100_000),
        sqlite_megabytes=size(args.sqlite_megabytes, 200, 3072),
        sources={"this": HERE},
    )
    if args.baseline:
        scale.sources["baseline"] = args.baseline.resolve()
    from backup_speed import compile_tree  # type: ignore[import-not-found]

    for tree in scale.sources.values():  # as the image's installed wheel is
        compile_tree(tree)
    measures: dict[str, Callable[[Scale], list[Row]]] = {
        "backup": backup_rows,
        "restore-pg": restore_pg_row,
        "restore-mariadb": restore_mariadb_row,
        "files": files_row,
        "startup": startup_rows,
        "memory": memory_row,
    }
    rows: list[Row] = []
    try:
        for name in chosen:
            print(f"measuring {name}…", file=sys.stderr, flush=True)
            rows += measures[name](scale)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if rows:
            report(rows, scale)


if __name__ == "__main__":
    main()
