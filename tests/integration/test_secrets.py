"""Planted secrets never reach stdout, stderr, state files or evidence, whatever the command does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import App, add_bulk
from tests.pty_run import run_on_a_pty

pytestmark = pytest.mark.integration

PLANTED = {
    "PGPASSWORD": "planted-pg-Secret-0001",
    "MYSQL_PWD": "planted-my-Secret-0002",
    "AWS_ACCESS_KEY_ID": "AKIAPLANTED00000003",
    "AWS_SECRET_ACCESS_KEY": "planted/aws+Secret-0004",
    "RESTORE_PGPASSWORD": "planted-rpg-Secret-0005",
    "B2_ACCOUNT_KEY": "planted-b2-Secret-0006",
}
URL_PASSWORD = "planted-url-Secret-0007"
WRONG_PASSWORD = "planted-wrong-Secret-0008"


def test_no_command_leaks_a_planted_secret(app: App, tmp_path: Path) -> None:
    app.env.update(PLANTED)
    secrets = [*PLANTED.values(), app.env["RESTIC_PASSWORD"], URL_PASSWORD, WRONG_PASSWORD]
    allow = {
        "KAMAL_BACKUP_ALLOW_RESTORE": "true",
        "RESTORE_SQLITE_DATABASE_PATH": str(tmp_path / "r.sqlite3"),
    }
    unreachable = {
        "RESTIC_REPOSITORY": f"rest:http://backup:{URL_PASSWORD}@127.0.0.1:9/shop",
        "KAMAL_BACKUP_REPOSITORY_TIMEOUT_SECONDS": "3",
    }
    runs = [
        (["backup"], {}),
        (["backup", "--json"], {}),
        (["list"], {}),
        (["list", "--json"], {}),
        (["check"], {}),
        (["check", "--json"], {}),
        (["evidence"], {}),
        (["restore-db"], allow),
        (["restore-files", "latest", str(tmp_path / "files")], allow),
        (["unlock"], {}),
        (["--verbose", "backup"], {}),
        # failing ones
        (["list"], {"RESTIC_PASSWORD": WRONG_PASSWORD}),
        (["backup"], {"RESTIC_PASSWORD": WRONG_PASSWORD}),
        (["evidence"], {"RESTIC_PASSWORD": WRONG_PASSWORD}),
        (["list"], unreachable),
        (["evidence"], unreachable),
        (["backup"], unreachable),
        (["check"], unreachable),
        (["backup"], {"BACKUP_SCHEDULE_SECONDS": URL_PASSWORD}),
        (["backup"], {"RESTIC_KEEP_LAST": PLANTED["PGPASSWORD"]}),
        (["restore-db"], {**allow, "RESTIC_PASSWORD": WRONG_PASSWORD}),
    ]
    seen = []
    for args, extra in runs:
        result = app.cli(*args, extra=extra)
        seen.append((args, extra, result.returncode))
        for secret in secrets:
            assert secret not in result.stdout, (args, extra)
            assert secret not in result.stderr, (args, extra, result.stderr)
        assert "Traceback" not in result.stderr
    codes = [code for _, _, code in seen]
    assert codes.count(0) >= 10 and codes.count(1) >= 6 and 2 in codes  # both kinds really ran

    state_dir = Path(app.env["KAMAL_BACKUP_STATE_DIR"])
    files = [p for p in state_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"last_backup.json", "last_check.json"}
    for path in files:
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, path


def test_progress_bars_on_a_terminal(app: App) -> None:
    """On a TTY, backup draws restic's progress; the log stays one line per step."""
    add_bulk(app.db, 120000)
    code, text = run_on_a_terminal(app, "backup")
    assert code == 0, text
    assert "database" in text and "%" in text and "MB" in text  # the progress bar's columns
    assert "\x1b[" in text  # drawn with terminal control sequences
    assert "backup " in text and "saved" in text

    target = app.root / "restored.sqlite3"
    app.env.update(
        {"KAMAL_BACKUP_ALLOW_RESTORE": "true", "RESTORE_SQLITE_DATABASE_PATH": str(target)}
    )
    code, text = run_on_a_terminal(app, "restore-db")
    assert code == 0, text
    assert "restore" in text and "%" in text and "MB" in text
    assert "restored database snapshot" in text


def run_on_a_terminal(app: App, *args: str) -> tuple[int, str]:
    """Runs the CLI on a pseudo-terminal; (exit code, everything it drew)."""
    return run_on_a_pty(
        [sys.executable, "-m", "kamal_backup", *args],
        {**app.env, "TERM": "xterm", "COLUMNS": "120"},
    )


def test_cli_subprocesses_never_get_a_shell_string() -> None:
    """Every subprocess call in the core passes an argument list (no shell=True anywhere)."""
    root = Path(__file__).resolve().parents[2] / "kamal_backup"
    offenders = [str(p) for p in root.rglob("*.py") if "shell=True" in p.read_text()]
    assert offenders == []
    result = subprocess.run(
        ["grep", "-rn", "os.system\\|os.popen", str(root)], capture_output=True, text=True
    )
    assert result.stdout == ""
