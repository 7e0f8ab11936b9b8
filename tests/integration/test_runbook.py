"""The disaster-recovery runbook in docs/restore.md, run block by block as written.

Each `sh` block of the runbook's four cases is parsed from the page and executed in order:
`export` lines set the environment, `kamal-backup ...` lines run the real CLI. Only the example
paths are mapped onto the test app (/rails/storage -> its backup path, /restore/files -> scratch).
"""

from __future__ import annotations

import json
import shlex
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import ROOT, App, sqlite_rows
from tests.integration.test_in_place_restore import assert_same_tree

pytestmark = pytest.mark.integration

CASES = {
    "database": "### The database is gone (or wrong)",
    "uploads": "### Uploads are gone",
    "one file": "### One file is gone",
    "host": "### The whole host is gone",
}


def runbook() -> str:
    text = (ROOT / "docs" / "restore.md").read_text()
    return text.split("## Disaster recovery runbook", 1)[1].split("\n## ", 1)[0]


def commands(case: str) -> list[str]:
    """The lines of the `sh` code blocks of one case, as the page shows them."""
    section = runbook().split(CASES[case], 1)[1].split("\n### ", 1)[0]
    lines: list[str] = []
    for block in section.split("```sh\n")[1:]:
        lines += [line for line in block.split("```", 1)[0].splitlines() if line.strip()]
    return lines


def run_case(app: App, case: str, scratch: Path) -> list[str]:
    """Runs a case's commands like a shell would; returns each command's stdout."""
    env: dict[str, str] = {}
    outputs = []
    for line in commands(case):
        line = line.replace("/rails/storage", str(app.files)).replace(
            "/restore/files", str(scratch)
        )
        words = shlex.split(line)
        if words[0] == "export":
            env.update(word.split("=", 1) for word in words[1:])  # type: ignore[arg-type]
            continue
        assert words[0] == "kamal-backup", f"the runbook may only run kamal-backup: {line}"
        outputs.append(app.cli(*words[1:], extra=env, check=True).stdout)
    return outputs


def test_the_runbook_has_its_four_cases_and_every_command_is_kamal_backup_or_export() -> None:
    for case in CASES:
        lines = commands(case)
        assert lines, case
        for line in lines:
            assert line.split()[0] in ("kamal-backup", "export"), line


def test_runbook_the_database_is_gone(app: App, tmp_path: Path) -> None:
    app.cli("backup", check=True)
    rows = sqlite_rows(app.db)
    with sqlite3.connect(app.db) as db:
        db.execute("DELETE FROM notes")
    db.close()
    outputs = run_case(app, "database", tmp_path / "scratch")
    assert sqlite_rows(app.db) == rows
    assert "safety snapshot" in outputs[1]
    evidence = json.loads(outputs[2])
    assert "pre-restore" in evidence["last_restores"]["database"]["safety_snapshot"]["tags"]


def test_runbook_uploads_are_gone(app: App, tmp_path: Path) -> None:
    app.cli("backup", check=True)
    tree = tmp_path / "as-backed-up"
    shutil.copytree(app.files, tree, symlinks=True)
    shutil.rmtree(app.files / "uploads")
    outputs = run_case(app, "uploads", tmp_path / "scratch")
    assert_same_tree(tree, app.files)
    kept = Path(outputs[-1].split("previous content kept at ", 1)[1].strip())
    assert not (kept / "uploads").exists()  # the damaged tree, as it was


def test_runbook_one_file_is_gone(app: App, tmp_path: Path) -> None:
    photo = app.files / "uploads" / "ab" / "cd" / "photo.png"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"\x89PNG fake")
    app.cli("backup", check=True)
    photo.unlink()
    (app.files / "uploads" / "a.txt").write_text("changed since, must stay")
    scratch = tmp_path / "scratch"
    run_case(app, "one file", scratch)
    assert (scratch / str(photo).lstrip("/")).read_bytes() == b"\x89PNG fake"
    assert photo.read_bytes() == b"\x89PNG fake"
    assert (app.files / "uploads" / "a.txt").read_text() == "changed since, must stay"


def test_runbook_the_whole_host_is_gone(app: App, tmp_path: Path) -> None:
    app.cli("backup", check=True)
    rows = sqlite_rows(app.db)
    tree = tmp_path / "as-backed-up"
    shutil.copytree(app.files, tree, symlinks=True)
    # The new host: same settings and repository, no database file, no files, no state.
    app.db.unlink()
    shutil.rmtree(app.files)
    app.files.mkdir()
    shutil.rmtree(Path(app.env["KAMAL_BACKUP_STATE_DIR"]))
    outputs = run_case(app, "host", tmp_path / "scratch")
    assert sqlite_rows(app.db) == rows
    assert_same_tree(tree, app.files)
    assert outputs[-1].startswith("healthy")
