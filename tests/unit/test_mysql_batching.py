"""Batching one-row INSERTs back into multi-row statements without touching anything else."""

from __future__ import annotations

import io

from kamal_backup.databases.mysql import (
    BATCH_BYTES,
    batch_inserts,
    batched,
    dump_lines,
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


def test_dump_lines_are_the_streams_lines_across_read_blocks() -> None:
    long_row = b"INSERT INTO `t` VALUES (1,'" + b"x" * (BATCH_BYTES + 10) + b"');\n"
    text = b"-- header\n" + long_row + b"INSERT INTO `t` VALUES (2);\n" * 3 + b"-- no newline"
    assert list(dump_lines(io.BytesIO(text))) == text.splitlines(keepends=True)


def test_the_restore_checks_unique_keys_again_after_the_dumps_header() -> None:
    # mariadb-dump turns them off; with them off MariaDB loads an empty table in its slower
    # "bulk insert" mode inside the restore's one transaction (issue 14, docs/benchmarks.md).
    header = b"/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n"
    rows = b"INSERT INTO `t` VALUES (1);\nINSERT INTO `t` VALUES (2);\n"
    footer = b"/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;\n"
    out = b"".join(batched(io.BytesIO(header + rows + footer)))
    assert out == header + b"SET UNIQUE_CHECKS=1;\n" + b"INSERT INTO `t` VALUES (1),(2);\n" + footer
