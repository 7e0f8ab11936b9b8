"""Batching one-row INSERTs back into multi-row statements without touching anything else."""

from __future__ import annotations

import io
import random

from kamal_backup.databases.mysql import (
    BATCH_BYTES,
    batch_inserts,
    batched,
    dump_blocks,
    insert_prefix,
)


def run(text: bytes, max_bytes: int = 1 << 20) -> bytes:
    return b"".join(batch_inserts(text.splitlines(keepends=True), max_bytes))


def test_consecutive_rows_of_one_table_become_one_statement() -> None:
    dump = (
        b"LOCK TABLES `t` WRITE;\n"
        b"INSERT INTO `t` VALUES (1,'a',NULL);\n"
        b"INSERT INTO `t` VALUES (2,'b',0x00FF);\n"
        b"INSERT INTO `u` VALUES (1);\n"
        b"UNLOCK TABLES;\n"
    )
    assert run(dump) == (
        b"LOCK TABLES `t` WRITE;\n"
        b"INSERT INTO `t` VALUES (1,'a',NULL),(2,'b',0x00FF);\n"
        b"INSERT INTO `u` VALUES (1);\n"
        b"UNLOCK TABLES;\n"
    )


def test_values_that_look_like_statement_ends_are_preserved() -> None:
    rows = [
        rb"(1,'it\'s')",
        rb"(2,'a);INSERT INTO `t` VALUES (9);')",
        rb"(3,'back\\slash\\')",
        rb"(4,'line\nbreak')",
        b"(5,NULL)",
        "(6,'😀 ünï')".encode(),
        b"(7,'\\0\\Z\"')",
    ]
    dump = b"".join(b"INSERT INTO `t` VALUES " + row + b";\n" for row in rows)
    out = run(dump)
    assert out == b"INSERT INTO `t` VALUES " + b",".join(rows) + b";\n"


def test_batches_are_split_at_the_size_limit() -> None:
    dump = b"".join(b"INSERT INTO `t` VALUES (%d,'xxxxxxxxxx');\n" % i for i in range(100))
    out = run(dump, max_bytes=200)
    statements = out.splitlines()
    assert len(statements) > 5
    assert all(len(s) < 300 for s in statements)
    assert sum(s.count(b"'xxxxxxxxxx')") for s in statements) == 100


def test_trigger_bodies_between_delimiters_pass_through_unchanged() -> None:
    body = (
        b"DELIMITER ;;\n"
        b"/*!50003 CREATE*/ /*!50003 TRIGGER tr AFTER INSERT ON `t` FOR EACH ROW BEGIN\n"
        b"INSERT INTO `audit` VALUES (NEW.id);\n"
        b"INSERT INTO `audit` VALUES (NEW.id);\n"
        b"END */;;\n"
        b"DELIMITER ;\n"
    )
    dump = (
        b"INSERT INTO `t` VALUES (1);\n"
        + body
        + b"INSERT INTO `t` VALUES (2);\nINSERT INTO `t` VALUES (3);\n"
    )
    assert (
        run(dump) == b"INSERT INTO `t` VALUES (1);\n" + body + b"INSERT INTO `t` VALUES (2),(3);\n"
    )


def test_prefix_parsing() -> None:
    assert insert_prefix(b"INSERT INTO `t` VALUES (1);") == b"INSERT INTO `t` VALUES "
    assert (
        insert_prefix(b"INSERT INTO `we``ird VALUES (` VALUES (1);")
        == b"INSERT INTO `we``ird VALUES (` VALUES "
    )
    assert (
        insert_prefix(b"INSERT INTO `t` (`a`, `b`) VALUES (1,2);")
        == b"INSERT INTO `t` (`a`, `b`) VALUES "
    )
    assert insert_prefix(b"INSERT INTO `t` VALUES (1)") is None  # not a complete statement
    assert insert_prefix(b"REPLACE INTO `t` VALUES (1);") is None
    assert insert_prefix(b"/*!40000 ALTER TABLE `t` DISABLE KEYS */;") is None


def test_column_lists_must_match_to_batch() -> None:
    dump = b"INSERT INTO `t` (`a`) VALUES (1);\nINSERT INTO `t` (`b`) VALUES (2);\n"
    assert run(dump) == dump


def test_dump_blocks_are_whole_lines_of_about_a_megabyte() -> None:
    long_row = b"INSERT INTO `t` VALUES (1,'" + b"x" * (BATCH_BYTES + 10) + b"');\n"
    text = b"-- header\n" + long_row + b"INSERT INTO `t` VALUES (2);\n" * 50_000 + b"-- last"
    blocks = list(dump_blocks(io.BytesIO(text)))
    assert b"".join(blocks) == text
    assert len(blocks) > 2
    assert all(block.endswith(b"\n") for block in blocks[:-1])
    assert blocks[-1] == b"-- last"  # no newline: the restore treats it as perhaps cut off
    assert all(len(block) <= 2 * BATCH_BYTES + 100 for block in blocks)


def line_by_line(lines: list[bytes], max_bytes: int = 1 << 20) -> bytes:
    """The re-batcher as it was (one Python step per line): what the block rewrite must equal."""
    out: list[bytes] = []
    prefix: bytes | None = None
    batch: list[bytes] = []
    delimiter = b";"

    def flush() -> None:
        nonlocal prefix, batch
        if prefix is not None and batch:
            out.append(prefix + b",".join(batch) + b";\n")
        prefix, batch = None, []

    for raw in lines:
        line = raw.rstrip(b"\n")
        if line.startswith(b"DELIMITER "):
            flush()
            delimiter = line[len(b"DELIMITER ") :].strip()
            out.append(line + b"\n")
            continue
        found = insert_prefix(line) if delimiter == b";" else None
        if found is None:
            flush()
            out.append(line + b"\n")
            continue
        if found != prefix:
            flush()
        prefix = found
        batch.append(line[len(found) : -1])
    flush()
    return b"".join(out)


def test_the_block_rewrite_equals_the_line_by_line_batcher_on_a_mixed_dump() -> None:
    rng = random.Random(14)
    tables = [b"`t`", b"`we``ird VALUES (`", b"`u` (`a`, `b`)", b"`t2`"]
    lines: list[bytes] = [b"-- MariaDB dump\n", b"LOCK TABLES `t` WRITE;\n"]
    for n in range(3000):
        table = tables[min(n // 700, 3)] if rng.random() > 0.05 else rng.choice(tables)
        value = rng.choice([b"'a);\\nINSERT INTO `t` VALUES (9);'", b"NULL", b"0x00FF", b"'\\\\'"])
        lines.append(b"INSERT INTO " + table + b" VALUES (%d,%s);\n" % (n, value))
        if n % 997 == 0:
            lines += [
                b"DELIMITER ;;\n",
                b"CREATE TRIGGER tr AFTER INSERT ON `t` FOR EACH ROW BEGIN\n",
                b"INSERT INTO `t` VALUES (NEW.id);\n",
                b"INSERT INTO `t` VALUES (NEW.id);\n",
                b"END ;;\n",
                b"DELIMITER ;\n",
            ]
        if n % 1201 == 0:
            lines.append(b"UNLOCK TABLES;\n")
    assert b"".join(batch_inserts(lines)) == line_by_line(lines)


def test_the_restore_checks_unique_keys_again_after_the_dumps_header() -> None:
    # mariadb-dump turns them off; with them off MariaDB loads an empty table in its slower
    # "bulk insert" mode inside the restore's one transaction (issue 14, docs/benchmarks.md).
    header = b"/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n"
    rows = b"INSERT INTO `t` VALUES (1);\nINSERT INTO `t` VALUES (2);\n"
    footer = b"/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;\n"
    out = b"".join(batched(io.BytesIO(header + rows + footer)))
    assert out == header + b"SET UNIQUE_CHECKS=1;\n" + b"INSERT INTO `t` VALUES (1),(2);\n" + footer


def test_a_block_is_joined_whole_only_when_every_line_is_a_row_of_one_table() -> None:
    from kamal_backup.databases.mysql import _one_table

    rows = (
        b"INSERT INTO `t` VALUES (1);\nINSERT INTO `t` VALUES (2);\nINSERT INTO `t` VALUES (3);\n"
    )
    assert _one_table(rows) == b"INSERT INTO `t` VALUES (1),(2),(3);\n"
    for other in (
        b"INSERT INTO `t` VALUES (1);\nINSERT INTO `u` VALUES (2);\n",  # another table
        b"INSERT INTO `t` VALUES (1);\nUNLOCK TABLES;\n",  # another statement
        b"INSERT INTO `t` VALUES (1)\nINSERT INTO `t` VALUES (2);\n",  # a line not ending ");"
        b"INSERT INTO `t` VALUES (1);\nINSERT INTO `t` VALUES (2)\n",  # the last one neither
        b"INSERT INTO `t` VALUES (1);\n\nINSERT INTO `t` VALUES (2);\n",  # an empty line
    ):
        assert _one_table(other) is None, other


def test_the_restore_pieces_name_rows_settings_and_keyed_tables() -> None:
    from kamal_backup.databases.mysql import OTHER, ROWS, SETTING, TAIL, restore_pieces

    dump = (
        b"/*!40101 SET NAMES utf8mb4 */;\n"
        b"/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n"
        b"CREATE TABLE `k``eyed` (\n"
        b"  `id` int(11) NOT NULL,\n"
        b"  PRIMARY KEY (`id`)\n"
        b") ENGINE=InnoDB;\n"
        b"CREATE TABLE `heap` (\n"
        b"  `n` int(11) DEFAULT NULL,\n"
        b"  KEY `n` (`n`)\n"
        b") ENGINE=InnoDB;\n"
        b"CREATE TABLE `my` (\n"
        b"  `id` int(11) NOT NULL,\n"
        b"  PRIMARY KEY (`id`)\n"
        b") ENGINE=MyISAM;\n"
        b"LOCK TABLES `k``eyed` WRITE;\n"
        b"INSERT INTO `k``eyed` VALUES (1);\n"
        b"INSERT INTO `k``eyed` VALUES (2);\n"
        b"UNLOCK TABLES;\n"
        b"INSERT INTO `heap` VALUES (3);\n"
        b"INSERT INTO `my` VALUES (7);\n"
        b"/*M!100616 SET @OLD_NOTE_VERBOSITY=@@NOTE_VERBOSITY, NOTE_VERBOSITY=0 */;\n"
        b"/*!50003 SET sql_mode = 'NO_AUTO_VALUE_ON_ZERO' */ ;\n"
        b"SET GLOBAL max_connections = 1;\n"
        b"SET @a = 1; DROP TABLE `heap`;\n"
        b"DELIMITER ;;\n"
        b"/*!50003 CREATE TRIGGER t AFTER INSERT ON `heap` FOR EACH ROW SET @x = 1 */;;\n"
        b"INSERT INTO `heap` VALUES (4);\n"
        b"DELIMITER ;\n"
        b"INSERT INTO `heap` VALUES (5"
    )
    pieces = list(restore_pieces(io.BytesIO(dump)))
    kinds = [(p.kind, p.table, p.keyed) for p in pieces if p.kind != OTHER]
    assert kinds == [
        (SETTING, b"", False),
        (SETTING, b"", False),
        (SETTING, b"", False),  # UNIQUE_CHECKS=1, added
        (ROWS, b"`k``eyed`", True),
        (ROWS, b"`heap`", False),  # no primary key
        (ROWS, b"`my`", False),  # MyISAM keeps rows in insertion order too
        (SETTING, b"", False),  # MariaDB's /*M! form
        (SETTING, b"", False),  # sql_mode; not SET GLOBAL, not two statements on a line
        (TAIL, b"", False),
    ]
    rows = [p.data for p in pieces if p.kind == ROWS]
    assert rows == [
        b"INSERT INTO `k``eyed` VALUES (1),(2);\n",
        b"INSERT INTO `heap` VALUES (3);\n",
        b"INSERT INTO `my` VALUES (7);\n",
    ]
    text = b"".join(p.data for p in pieces)
    assert b"LOCK TABLES" not in text  # a table's rows may come from more than one session
    # Everything else passes through, the trigger body's INSERT untouched.
    assert b"SET GLOBAL max_connections = 1;\n" in text
    assert b"INSERT INTO `heap` VALUES (4);\nDELIMITER ;\n" in text
    assert pieces[-1].data == b"INSERT INTO `heap` VALUES (5\n"
