"""MariaDB 10.11 for real: exact round trips with batched one-row INSERTs, failures leave no snapshot."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from kamal_backup import process
from kamal_backup.databases import adapters_for
from kamal_backup.databases.mysql_sessions import RowSessions
from kamal_backup.errors import Interrupted
from kamal_backup.settings import load_settings
from tests.conftest import App
from tests.integration.databases import MY_ADMIN, mariadb, my_databases

pytestmark = pytest.mark.integration

NASTY = [
    "it's",
    'say "hi"',
    "back\\slash\\",
    "a);INSERT INTO `t` VALUES (9);",
    "line\nbreak\r\n",
    "tab\there",
    "😀 emoji ünïcødé 日本",
    "",
    "\\0 not a nul",
    "--comment",
    "/* c */",
    "\\'",
    "DELIMITER ;;",
]

SCHEMA = """
CREATE TABLE customers (
  id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(190) NOT NULL UNIQUE, name TEXT NULL, avatar BLOB NULL,
  balance DECIMAL(12,2) NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT, action VARCHAR(20)) DEFAULT CHARSET=utf8mb4;
CREATE VIEW rich AS SELECT id, email FROM customers WHERE balance > 100;
CREATE TRIGGER customers_audit AFTER INSERT ON customers FOR EACH ROW
  INSERT INTO audit (customer_id, action) VALUES (NEW.id, 'created');
CREATE PROCEDURE total_balance() SELECT SUM(balance) FROM customers;
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DO DELETE FROM audit WHERE id < 0;
"""


def sql_string(value: str) -> str:
    return (
        "'"
        + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
        + "'"
    )


def rows(database: str, table: str) -> list[str]:
    columns = mariadb(
        f"SELECT GROUP_CONCAT(CONCAT('HEX(`', COLUMN_NAME, '`)') ORDER BY ORDINAL_POSITION) "
        f"FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='{database}' AND TABLE_NAME='{table}'"
    ).strip()
    return mariadb(
        f"SELECT CONCAT_WS('|', {columns}) FROM `{table}` ORDER BY 1", database
    ).splitlines()


def objects(database: str) -> list[str]:
    return mariadb(
        "SELECT CONCAT(TABLE_TYPE, ' ', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        "UNION ALL SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) FROM information_schema.ROUTINES "
        "WHERE ROUTINE_SCHEMA = DATABASE() UNION ALL SELECT CONCAT('TRIGGER ', TRIGGER_NAME) FROM "
        "information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() UNION ALL SELECT CONCAT('EVENT ', EVENT_NAME) "
        "FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE() ORDER BY 1",
        database,
    ).splitlines()


@pytest.fixture
def my_app(app: App) -> Iterator[tuple[App, str, str]]:
    with my_databases("kb_src", "kb_restore") as (source, target):
        mariadb(f"CREATE DATABASE `{source}` CHARACTER SET utf8mb4")
        mariadb(SCHEMA, source)
        rng = random.Random(7)
        values = []
        for i in range(1500):
            name = "NULL" if i % 7 == 0 else sql_string(NASTY[i % len(NASTY)] + f" #{i}")
            blob = (
                "NULL"
                if i % 5 == 0
                else "0x" + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))).hex()
            )
            values.append(f"('user{i}@example.com', {name}, {blob}, {i * 1.25:.2f})")
        mariadb(
            "INSERT INTO customers (email, name, avatar, balance) VALUES " + ",".join(values),
            source,
        )
        app.env.update(
            {
                "DATABASE_ADAPTER": "mariadb",
                "DATABASE_URL": f"mysql2://root@127.0.0.1:3306/{source}?encoding=utf8mb4&pool=5",
            }
        )
        yield app, source, target


def restore_env(target: str) -> dict[str, str]:
    return {
        "KAMAL_BACKUP_ALLOW_RESTORE": "true",
        "RESTORE_DATABASE_URL": f"mysql://root@127.0.0.1:3306/{target}",
    }


def test_round_trip_into_a_stale_target_is_exact(my_app: tuple[App, str, str]) -> None:
    app, source, target = my_app
    run = json.loads(app.cli("backup", "--json", check=True).stdout)
    snapshot = run["database_snapshot"]
    assert snapshot["paths"][0].endswith(".sql") and "adapter:mysql" in snapshot["tags"]

    mariadb(f"CREATE DATABASE `{target}` CHARACTER SET utf8mb4")
    mariadb(
        "CREATE TABLE stale (x INT); CREATE VIEW stale_view AS SELECT 1 AS one; "
        "CREATE PROCEDURE stale_proc() SELECT 1; CREATE EVENT stale_event ON SCHEDULE EVERY 1 DAY DO SELECT 1; "
        "CREATE TABLE customers (id INT); INSERT INTO customers VALUES (424242);",
        target,
    )
    result = app.cli("restore-db", "latest", "--json", extra=restore_env(target), check=True)
    assert json.loads(result.stdout)["details"]["dropped_objects"] == 5

    assert objects(target) == objects(source)
    assert not [o for o in objects(target) if "stale" in o]
    for table in ("customers", "audit"):
        assert rows(target, table) == rows(source, table)
    assert len(rows(target, "customers")) == 1500
    # the restored trigger and procedure work
    mariadb("INSERT INTO customers (email) VALUES ('new@example.com')", target)
    assert mariadb("SELECT action FROM audit ORDER BY id DESC LIMIT 1", target).strip() == "created"


def test_stale_objects_with_odd_names_are_dropped(my_app: tuple[App, str, str]) -> None:
    # Their names come back hex-encoded and are quoted into the import session's own drops,
    # which it runs in utf8mb4 although its client parses bytes.
    app, source, target = my_app
    app.cli("backup", check=True)
    mariadb(f"CREATE DATABASE `{target}` CHARACTER SET utf8mb4")
    mariadb(
        "CREATE TABLE `stäle ``tick``;\tname` (x INT); "
        "CREATE VIEW `vïew -- ;` AS SELECT 1 AS one; "
        "CREATE PROCEDURE `prøc\\` () SELECT 1;",
        target,
    )
    result = app.cli("restore-db", "latest", "--json", extra=restore_env(target), check=True)
    assert json.loads(result.stdout)["details"]["dropped_objects"] == 3
    assert objects(target) == objects(source)
    assert rows(target, "customers") == rows(source, "customers")


def test_the_dump_has_one_row_per_insert_that_batching_joins_again(
    my_app: tuple[App, str, str],
) -> None:
    app, _, _ = my_app
    run = json.loads(app.cli("backup", "--json", check=True).stdout)
    snapshot = run["database_snapshot"]
    dump = subprocess.run(
        ["restic", "dump", snapshot["id"], snapshot["paths"][0]],
        capture_output=True,
        check=True,
        env={
            "PATH": os.environ["PATH"],
            "RESTIC_REPOSITORY": app.env["RESTIC_REPOSITORY"],
            "RESTIC_PASSWORD": app.env["RESTIC_PASSWORD"],
        },
    ).stdout
    inserts = [line for line in dump.splitlines() if line.startswith(b"INSERT INTO `customers`")]
    assert len(inserts) == 1500  # --skip-extended-insert
    assert b"Dump completed on" not in dump  # no date: identical days dump identically

    from kamal_backup.databases.mysql import batch_inserts

    batched = b"".join(batch_inserts(dump.splitlines(keepends=True)))
    assert (
        len([line for line in batched.splitlines() if line.startswith(b"INSERT INTO `customers`")])
        < 10
    )


def test_a_missing_target_database_is_created(my_app: tuple[App, str, str]) -> None:
    app, source, target = my_app
    app.cli("backup", check=True)
    result = app.cli("restore-db", "--json", extra=restore_env(target), check=True)
    assert json.loads(result.stdout)["details"]["created_database"] is True
    assert rows(target, "customers") == rows(source, "customers")


def mariadb_user(name: str, password: str, *grants: str, options: str = "") -> Iterator[str]:
    """A MariaDB user `name` with `grants` (each "GRANT ... ON ..."), dropped afterwards."""
    to = f"'{name}'@'%'"
    mariadb(
        f"DROP USER IF EXISTS {to}; CREATE USER {to} IDENTIFIED BY '{password}' {options}; "
        + "".join(f"{grant} TO {to}; " for grant in grants)
    )
    yield name
    mariadb(f"DROP USER IF EXISTS {to}")


@pytest.fixture
def limited_user(my_app: tuple[App, str, str]) -> Iterator[str]:
    _, source, _ = my_app
    yield from mariadb_user("kb_limited", "right-pw-1", f"GRANT SELECT ON `{source}`.`audit`")


def test_failures_leave_no_snapshot(my_app: tuple[App, str, str], limited_user: str) -> None:
    app, source, _ = my_app
    cases = [
        # The source's server is named by its setting, not called the restore target.
        ({"DATABASE_URL": f"mysql://root@127.0.0.1:1/{source}"}, "MySQL at DATABASE_URL: "),
        (
            {
                "DATABASE_URL": f"mysql://{limited_user}@127.0.0.1/{source}",
                "MYSQL_PWD": "wrong-my-pw-99",
            },
            "Access denied",
        ),
        ({"DATABASE_URL": f"mysql://{limited_user}:right-pw-1@127.0.0.1/{source}"}, "denied"),
    ]
    for extra, expect in cases:
        result = app.cli("backup", extra=extra)
        assert result.returncode == 1, result.stderr
        assert expect in result.stderr, result.stderr
        assert "wrong-my-pw-99" not in result.stderr and "right-pw-1" not in result.stderr
        assert app.snapshot_ids("type:database") == []  # the file half may have finished (issue 14)


def test_wrong_restore_password_fails_cleanly(
    my_app: tuple[App, str, str], limited_user: str
) -> None:
    app, _, target = my_app
    app.cli("backup", check=True)
    result = app.cli(
        "restore-db",
        extra={
            "KAMAL_BACKUP_ALLOW_RESTORE": "true",
            "RESTORE_DATABASE_URL": f"mysql://{limited_user}@127.0.0.1/{target}",
            "RESTORE_MYSQL_PWD": "wrong-restore-pw-5",
        },
    )
    assert result.returncode == 1
    assert "Access denied" in result.stderr and "wrong-restore-pw-5" not in result.stderr
    assert "MySQL at RESTORE_DATABASE_URL: " in result.stderr  # which server refused


def test_a_restore_target_whose_server_is_down_is_named(my_app: tuple[App, str, str]) -> None:
    app, _, target = my_app
    app.cli("backup", check=True)
    down = {**restore_env(target), "RESTORE_DATABASE_URL": f"mysql://root@127.0.0.1:1/{target}"}
    result = app.cli("restore-db", extra=down)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "MySQL at RESTORE_DATABASE_URL: " in errors[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root@127.0.0.1/shop_production",
        "mysql://root@live-db/shop",
        "mysql2://root@127.0.0.1/app.prod",
    ],
)
def test_production_like_restore_urls_are_refused(my_app: tuple[App, str, str], url: str) -> None:
    app, _, _ = my_app
    result = app.cli(
        "restore-db", extra={"KAMAL_BACKUP_ALLOW_RESTORE": "true", "RESTORE_DATABASE_URL": url}
    )
    assert result.returncode == 3
    assert "KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE=true" in result.stderr


def test_evidence_reports_the_mariadb_clients(my_app: tuple[App, str, str]) -> None:
    app, _, _ = my_app
    evidence = json.loads(app.cli("evidence", check=True).stdout)
    server = mariadb("SELECT VERSION()").strip().split("-")[0]
    assert evidence["tool_versions"]["mariadb-dump"] == server
    assert evidence["tool_versions"]["mariadb"] == server
    assert evidence["database_source"] == f"mysql2://root@127.0.0.1:3306/{my_app[1]}"


@pytest.fixture
def no_drop_user(my_app: tuple[App, str, str]) -> Iterator[str]:
    _, _, target = my_app
    yield from mariadb_user(
        "kb_no_drop",
        "no-drop-pw-3",
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, CREATE VIEW, TRIGGER, "
        f"LOCK TABLES ON `{target}`.*",
    )


def test_a_target_that_cannot_be_emptied_fails_the_restore_and_keeps_its_rows(
    my_app: tuple[App, str, str], no_drop_user: str
) -> None:
    # The import session drops the target's objects before the dump: a drop that fails stops
    # the import there, named, before any row of the dump.
    app, _, target = my_app
    app.cli("backup", check=True)
    mariadb(f"CREATE DATABASE `{target}`")
    mariadb("CREATE TABLE customers (id INT); INSERT INTO customers VALUES (424242);", target)
    result = app.cli(
        "restore-db",
        extra={
            "KAMAL_BACKUP_ALLOW_RESTORE": "true",
            "RESTORE_DATABASE_URL": f"mysql://{no_drop_user}@127.0.0.1/{target}",
            "RESTORE_MYSQL_PWD": "no-drop-pw-3",
        },
    )
    assert result.returncode == 1, result.stderr
    assert "mysql import failed" in result.stderr and "DROP command denied" in result.stderr
    assert "no-drop-pw-3" not in result.stderr
    assert mariadb("SELECT id FROM customers", target).split() == ["424242"]


def test_a_dump_that_breaks_midway_is_reported_and_its_rows_are_not_committed(
    my_app: tuple[App, str, str],
) -> None:
    app, source, target = my_app
    # About 15 MB of rows: a dozen restic chunks, so restic has usually streamed most of the
    # table when it reaches the one damaged below.
    mariadb(
        "CREATE TABLE bulk (id INT PRIMARY KEY, payload TEXT) DEFAULT CHARSET=utf8mb4; "
        "INSERT INTO bulk SELECT seq, CONCAT(REPEAT(MD5(seq), 6), MD5(RAND())) "
        "FROM seq_1_to_60000",
        source,
    )
    run = json.loads(app.cli("backup", "--json", check=True).stdout)
    # Damage the dump's last but one chunk where its pack holds it, as a failing disk would.
    # Chunks are at least 512 KiB and the customers table after bulk is smaller, so that chunk
    # holds rows of bulk: the statement that would commit them (UNLOCK TABLES) comes after.
    snapshot = json.loads(app.restic("cat", "snapshot", run["database_snapshot"]["id"]).stdout)
    tree = json.loads(app.restic("cat", "blob", snapshot["tree"]).stdout)
    content = tree["nodes"][0]["content"]
    assert len(content) >= 3
    damaged_blob = content[-2]
    packs = [
        pack
        for index in app.restic("list", "index").stdout.split()
        for pack in json.loads(app.restic("cat", "index", index).stdout)["packs"]
    ]
    pack, blob = next(
        (pack, blob) for pack in packs for blob in pack["blobs"] if blob["id"] == damaged_blob
    )
    damaged = app.repo / "data" / pack["id"][:2] / pack["id"]
    damaged.chmod(0o600)
    with damaged.open("r+b") as handle:
        handle.seek(blob["offset"] + blob["length"] // 2)
        handle.write(b"\0" * 64)
    result = app.cli("restore-db", extra=restore_env(target))
    assert result.returncode != 0, result.stderr
    assert "reading the database dump" in result.stderr, result.stderr
    # Whatever restic streamed before the damage reached the server uncommitted: no row is
    # kept (restic reads ahead, so now and then it fails before the table was even created).
    created = mariadb(
        f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{target}' "
        "AND TABLE_NAME = 'bulk'"
    ).strip()
    if created == "1":
        assert mariadb("SELECT COUNT(*) FROM bulk", target).strip() == "0"


BIG_TABLES = """
SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO';
CREATE TABLE orders (
  id INT AUTO_INCREMENT PRIMARY KEY, placed_at TIMESTAMP NOT NULL, note TEXT
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE order_log (id INT AUTO_INCREMENT PRIMARY KEY, order_id INT, what VARCHAR(20));
CREATE TRIGGER orders_log AFTER INSERT ON orders FOR EACH ROW
  INSERT INTO order_log (order_id, what) VALUES (NEW.id, 'placed');
INSERT INTO orders SELECT CAST(seq AS SIGNED) - 10000, FROM_UNIXTIME(1700000000 + seq * 61),
  CONCAT(REPEAT(MD5(seq), 5), ' ünï') FROM seq_0_to_19999;
CREATE TABLE heap (n INT, payload TEXT) DEFAULT CHARSET=utf8mb4;
INSERT INTO heap SELECT seq, REPEAT(MD5(seq), 5) FROM seq_0_to_19999 ORDER BY MD5(seq);
"""


def test_a_big_tables_rows_go_to_more_sessions_and_arrive_exact(
    my_app: tuple[App, str, str],
) -> None:
    """orders (about 4 MB, a primary key) is restored by two more sessions beside the main one:
    its row 0 in mid-table needs the dump's SQL_MODE there too, and the trigger that filled
    order_log in the source must not fire on the restored rows. heap has no primary key, so
    its rows keep their order in one session."""
    app, source, target = my_app
    mariadb(BIG_TABLES, source)
    app.cli("backup", check=True)
    result = app.cli("restore-db", "--json", extra=restore_env(target), check=True)
    details = json.loads(result.stdout)["details"]
    # orders, and order_log when its rows cross a block's end; never heap (checked below)
    assert details["tables_in_parallel_sessions"] in (1, 2), details
    for table in ("orders", "order_log", "customers", "audit"):
        assert rows(target, table) == rows(source, table), table
    assert mariadb("SELECT COUNT(*) FROM order_log", target).strip() == "20000"
    assert mariadb("SELECT note FROM orders WHERE id = 0", target).strip().endswith("ünï")
    natural = "SELECT n FROM heap"  # no ORDER BY: the order InnoDB keeps them in
    assert mariadb(natural, target) == mariadb(natural, source)
    assert objects(target) == objects(source)


def test_a_failing_row_session_is_named_and_its_table_is_not_committed(
    my_app: tuple[App, str, str],
) -> None:
    """A dump whose rows fail in a row session (a duplicated row deep in a big table)."""
    app, source, target = my_app
    mariadb(BIG_TABLES, source)
    run = json.loads(app.cli("backup", "--json", check=True).stdout)
    snapshot = run["database_snapshot"]
    restic_env = {
        "PATH": os.environ["PATH"],
        "RESTIC_REPOSITORY": app.env["RESTIC_REPOSITORY"],
        "RESTIC_PASSWORD": app.env["RESTIC_PASSWORD"],
    }
    path = snapshot["paths"][0]
    dump = subprocess.run(
        ["restic", "dump", snapshot["id"], path], capture_output=True, check=True, env=restic_env
    ).stdout
    row = next(
        line
        for line in dump.splitlines(keepends=True)
        if line.startswith(b"INSERT INTO `orders` VALUES (5000,")
    )
    damaged = dump.replace(row, row + row, 1)
    tags = [tag for tag in snapshot["tags"] if not tag.startswith("run:")] + [
        "run:20260101T000000Z"
    ]
    backed = subprocess.run(
        [
            "restic",
            "backup",
            "--stdin",
            "--stdin-filename",
            path.lstrip("/"),
            "--json",
            "--host",
            snapshot["hostname"],
            *[arg for tag in tags for arg in ("--tag", tag)],
        ],
        input=damaged,
        capture_output=True,
        check=True,
        env=restic_env,
    ).stdout
    damaged_id = json.loads(backed.splitlines()[-1])["snapshot_id"]
    result = app.cli("restore-db", damaged_id[:8], extra=restore_env(target))
    assert result.returncode != 0
    assert "mysql import (rows session" in result.stderr, result.stderr
    assert "Duplicate entry '5000'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    # The tables before orders were committed as the dump went on; orders' rows were not.
    assert rows(target, "customers") == rows(source, "customers")
    assert mariadb("SELECT COUNT(*) FROM orders", target).strip() == "0"


def test_sigkill_mid_import_leaves_no_client_and_no_committed_rows(
    my_app: tuple[App, str, str],
) -> None:
    """The row sessions' clients die with kamal-backup (the parent-death signal), and what
    they inserted is rolled back with their connections."""
    app, source, target = my_app
    mariadb(BIG_TABLES.replace("seq_0_to_19999", "seq_0_to_99999"), source)
    app.cli("backup", check=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kamal_backup", "restore-db"],
        env={**app.env, **restore_env(target)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    inserting = (
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
        f"WHERE DB = '{target}' AND INFO LIKE 'INSERT INTO `orders`%'"
    )
    deadline = time.monotonic() + 60
    while int(mariadb(inserting).strip() or 0) < 2:  # two row sessions at once
        assert proc.poll() is None and time.monotonic() < deadline, "never saw two sessions"
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=20)
    time.sleep(1.0)  # the kernel delivers the parent-death signal asynchronously
    clients = subprocess.run(["pgrep", "-af", target], capture_output=True, text=True).stdout
    assert clients == ""
    deadline = time.monotonic() + 20  # the server notices the closed connections
    while (
        mariadb(
            f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{target}'"
        ).strip()
        != "0"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert mariadb("SELECT COUNT(*) FROM orders", target).strip() == "0"


def keyed_table_dump(header: bytes = b"") -> bytes:
    """A dump of one InnoDB table with a primary key, 20,000 rows (about 4 MB): it spreads."""
    rows_sql = b"".join(
        b"INSERT INTO `t` VALUES (%d,'%s');\n" % (n, b"x" * 200) for n in range(20000)
    )
    return (
        header
        + b"CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `v` text,\n  PRIMARY KEY (`id`)\n"
        b") ENGINE=InnoDB;\n" + rows_sql
    )


def import_with_row_sessions(
    main_argv: list[str], row_argv: list[str], env: dict[str, str], dump: bytes
) -> RowSessions:
    """What stream_into does with RowSessions, without restic: the main session reads the
    transform's output and commits once the row sessions finished."""
    with (
        process.spawn(main_argv, env=env, stdin=subprocess.PIPE) as main,
        RowSessions(row_argv, env, "mysql import") as sessions,
    ):
        assert main.stdin is not None
        sessions.started(main)
        main.stdin.write(b"SET autocommit=0;\n")
        for data in sessions.transform(io.BytesIO(dump)):
            main.stdin.write(data)
            main.stdin.flush()
        sessions.finish(True)
        main.stdin.write(b"COMMIT;\n")
        main.stdin.close()
        assert main.wait() == 0
    return sessions


@pytest.mark.parametrize("row_sessions_connect", [True, False])
def test_row_sessions_that_cannot_connect_leave_the_rows_to_the_main_session(
    caplog: pytest.LogCaptureFixture, row_sessions_connect: bool
) -> None:
    """E.g. the server's connection limit: the restore goes on in one session, with a warning.
    (And the same dump does go to the row sessions when they connect.)"""
    dump = keyed_table_dump(
        b"/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n"
    )
    with my_databases("kb_fallback") as (target,):
        mariadb(f"CREATE DATABASE `{target}`")
        good = ["mariadb", *MY_ADMIN, "--unbuffered", target]
        refused = ["mariadb", *MY_ADMIN, "--port=1", target]  # nothing listens there
        env = {"PATH": os.environ["PATH"]}
        sessions = import_with_row_sessions(
            good, good if row_sessions_connect else refused, env, dump
        )
        assert sessions.tables_spread == (1 if row_sessions_connect else 0)
        assert mariadb("SELECT COUNT(*), SUM(id) FROM t", target).split() == [
            "20000",
            str(sum(range(20000))),
        ]
    said = [r.getMessage() for r in caplog.records if "could not start" in r.getMessage()]
    if row_sessions_connect:
        assert said == []
    else:
        assert len(said) == 2 and "rows session 1" in said[0], said


@pytest.fixture
def one_connection_user(my_app: tuple[App, str, str]) -> Iterator[str]:
    _, _, target = my_app
    yield from mariadb_user(
        "kb_oneconn",
        "one-conn-pw-5",
        f"GRANT ALL ON `{target}`.*",
        "GRANT SET USER ON *.*",  # the dump's DEFINERs
        options="WITH MAX_USER_CONNECTIONS 1",
    )


def test_row_sessions_connect_only_after_the_main_session(
    my_app: tuple[App, str, str], one_connection_user: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Under a one-connection limit the main session must get it, however slowly it starts (here
    half a second late): the row sessions are left out with a warning, the rows all arrive."""
    _, _, target = my_app
    mariadb(f"CREATE DATABASE `{target}`")
    client = ["mariadb", "--host=127.0.0.1", "--port=3306", f"--user={one_connection_user}"]
    argv = [*client, "--unbuffered", target]
    env = {"PATH": os.environ["PATH"], "MYSQL_PWD": "one-conn-pw-5"}
    slow_main = ["sh", "-c", 'sleep 0.5; exec "$@"', "sh", *argv]
    sessions = import_with_row_sessions(slow_main, argv, env, keyed_table_dump())
    assert sessions.tables_spread == 0
    assert mariadb("SELECT COUNT(*) FROM t", target).strip() == "20000"
    said = [r.getMessage() for r in caplog.records if "could not start" in r.getMessage()]
    assert len(said) == 2 and "max_user_connections" in said[0], said


def test_cancelling_a_dump_stops_its_figures_session(my_app: tuple[App, str, str]) -> None:
    """The figures' session (its own thread) belongs to the operation: a cancel kills it at
    once instead of waiting for its queries to end."""
    app, source, _ = my_app
    [adapter] = adapters_for(load_settings(environ=app.env))
    locker = subprocess.Popen(
        ["mariadb", *MY_ADMIN, source], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert locker.stdin is not None

    def unlock() -> None:
        for session in mariadb(
            "SELECT id FROM information_schema.processlist WHERE info = 'SELECT SLEEP(60)'"
        ).split():
            mariadb(f"KILL {session}")
        locker.kill()
        locker.wait()

    # Its table locked for writing elsewhere, the figures' SELECT waits for the lock.
    locker.stdin.write("LOCK TABLES customers WRITE; SELECT SLEEP(60);\n")
    locker.stdin.flush()
    deadline = time.monotonic() + 10
    while "SLEEP(60)" not in mariadb("SHOW PROCESSLIST"):
        assert time.monotonic() < deadline, "the lock was not taken"
        time.sleep(0.05)
    with process.cancel_scope("backup") as scope:
        with adapter.dump_command() as command:
            try:
                deadline = time.monotonic() + 10
                while not scope.children:
                    assert time.monotonic() < deadline, "the figures' session is not the backup's"
                    time.sleep(0.05)
                [session] = scope.children
                assert session.poll() is None
                started = time.monotonic()
                scope.cancel()
                assert session.poll() is not None
                assert time.monotonic() - started < 10
            finally:
                unlock()  # before the block waits for the figures
        with pytest.raises(Interrupted):
            command.figures()
