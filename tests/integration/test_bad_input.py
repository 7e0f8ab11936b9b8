"""Malformed configuration and arguments: exit 2 or 3, one line naming the setting, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import App

pytestmark = pytest.mark.integration

ALLOW = {"KAMAL_BACKUP_ALLOW_RESTORE": "true"}
TARGET = {**ALLOW, "RESTORE_SQLITE_DATABASE_PATH": "/tmp/kamal-backup-never-written.sqlite3"}
UNSET = "<unset>"

# (command, environment changes, exit code, what the line must name)
CASES: list[tuple[list[str], dict[str, str], int, str]] = [
    (["backup"], {"APP_NAME": UNSET}, 2, "APP_NAME"),
    (["tui"], {}, 2, "needs an interactive terminal"),
    (["tui"], {"APP_NAME": UNSET}, 2, "APP_NAME"),
    (["health"], {"BACKUP_SCHEDULE_SECONDS": "0"}, 2, "BACKUP_SCHEDULE_SECONDS"),
    (["backup"], {"APP_NAME": "two words"}, 2, "APP_NAME"),
    (["backup"], {"APP_NAME": "app,other"}, 2, "APP_NAME"),
    (["list"], {"APP_NAME": "x" * 80}, 2, "APP_NAME"),
    (["backup"], {"DATABASE_ADAPTER": UNSET}, 2, "DATABASE_ADAPTER"),
    (["backup"], {"DATABASE_ADAPTER": "mongodb"}, 2, "DATABASE_ADAPTER"),
    (["backup"], {"DATABASE_ADAPTER": "postgres"}, 2, "DATABASE_URL"),
    (
        ["backup"],
        {"DATABASE_ADAPTER": "postgres", "DATABASE_URL": "mysql2://a@b/c"},
        2,
        "DATABASE_URL",
    ),
    (
        ["backup"],
        {"DATABASE_ADAPTER": "mysql", "DATABASE_URL": "postgresql://a@b/c"},
        2,
        "DATABASE_URL",
    ),
    (
        ["backup"],
        {"DATABASE_ADAPTER": "mysql", "DATABASE_URL": "mysql://a@b:notaport/c"},
        2,
        "DATABASE_URL",
    ),
    (
        ["backup"],
        {"DATABASE_ADAPTER": "postgres", "DATABASE_URL": "postgres://a@b/"},
        2,
        "DATABASE_URL",
    ),
    (
        ["backup"],
        {"DATABASE_ADAPTER": "postgres", "DATABASE_URL": "just-a-name"},
        2,
        "DATABASE_URL",
    ),
    (["backup"], {"SQLITE_DATABASE_PATH": UNSET}, 2, "SQLITE_DATABASE_PATH"),
    (["backup"], {"SQLITE_DATABASE_PATH": "relative.sqlite3"}, 2, "SQLITE_DATABASE_PATH"),
    (["backup"], {"SQLITE_DATABASE_PATH": "/nonexistent/app.sqlite3"}, 2, "SQLITE_DATABASE_PATH"),
    (["backup"], {"RESTIC_REPOSITORY": UNSET}, 2, "RESTIC_REPOSITORY"),
    (["backup"], {"RESTIC_PASSWORD": UNSET}, 2, "RESTIC_PASSWORD"),
    (["backup"], {"KAMAL_BACKUP_CONFIG": "/nonexistent/kamal-backup.yml"}, 2, "--config"),
    (["list"], {"DATABASES": "{not json"}, 2, "DATABASES"),
    (
        ["backup"],
        {"DATABASES": '{"primary": {"adapter": "sqlite", "path": "/x.sqlite3"}}'},
        2,
        "duplicate database name",
    ),
    (
        ["list"],
        {"DATABASES": '{"cache": {"adapter": "sqlite", "path": "/x", "url": "postgres://a@b/c"}}'},
        2,
        "DATABASES",
    ),
    (["restore-db", "--database", "nope"], ALLOW, 2, "--database"),
    # Neither a database nor files: nothing to back up (BACKUP_PATHS alone may be empty).
    (["backup"], {"BACKUP_PATHS": UNSET, "DATABASE_ADAPTER": "none"}, 2, "BACKUP_PATHS"),
    (["backup"], {"BACKUP_PATHS": "storage/relative"}, 2, "BACKUP_PATHS"),
    (["backup"], {"BACKUP_PATHS": "/definitely/missing/path"}, 2, "BACKUP_PATHS"),
    (["backup"], {"BACKUP_PATHS": "/"}, 2, "BACKUP_PATHS"),
    (["backup"], {"BACKUP_PATHS": "//etc"}, 2, "BACKUP_PATHS"),
    (["backup"], {"BACKUP_PATHS": "/var/lib/../../root"}, 2, "BACKUP_PATHS"),
    (["backup"], {"BACKUP_PATHS": "/usr/./"}, 2, "BACKUP_PATHS"),
    (["backup"], {"BACKUP_PATHS": "LINK_TO_ETC"}, 2, "BACKUP_PATHS"),
    (["backup"], {"BACKUP_SCHEDULE_SECONDS": "1d"}, 2, "BACKUP_SCHEDULE_SECONDS"),
    (["backup"], {"BACKUP_SCHEDULE_SECONDS": "-60"}, 2, "BACKUP_SCHEDULE_SECONDS"),
    (["backup"], {"BACKUP_START_DELAY_SECONDS": "-1"}, 2, "BACKUP_START_DELAY_SECONDS"),
    (["backup"], {"BACKUP_START_DELAY_SECONDS": "1.5"}, 2, "BACKUP_START_DELAY_SECONDS"),
    (["backup"], {"RESTIC_KEEP_LAST": "many"}, 2, "RESTIC_KEEP_LAST"),
    (["backup"], {"RESTIC_KEEP_WEEKLY": "-4"}, 2, "RESTIC_KEEP_WEEKLY"),
    (["backup"], {"RESTIC_KEEP_YEARLY": "2.5"}, 2, "RESTIC_KEEP_YEARLY"),
    (["check"], {"RESTIC_CHECK_READ_DATA_SUBSET": "101%"}, 2, "RESTIC_CHECK_READ_DATA_SUBSET"),
    (["check"], {"RESTIC_CHECK_READ_DATA_SUBSET": "-5%"}, 2, "RESTIC_CHECK_READ_DATA_SUBSET"),
    (["check"], {"RESTIC_CHECK_READ_DATA_SUBSET": "0/10"}, 2, "RESTIC_CHECK_READ_DATA_SUBSET"),
    # A size needs its unit: restic refused a bare 5, after which check reported a damaged
    # repository (evidence: last check failed) for a typo.
    (["check"], {"RESTIC_CHECK_READ_DATA_SUBSET": "5"}, 2, "RESTIC_CHECK_READ_DATA_SUBSET"),
    (["backup"], {"RESTIC_FORGET_AFTER_BACKUP": "sometimes"}, 2, "RESTIC_FORGET_AFTER_BACKUP"),
    (["backup"], {"RESTIC_INIT_IF_MISSING": "y e s"}, 2, "RESTIC_INIT_IF_MISSING"),
    (["backup"], {"KAMAL_BACKUP_STATE_DIR": "state"}, 2, "KAMAL_BACKUP_STATE_DIR"),
    (["backup"], {"KAMAL_BACKUP_RETRY_LOCK": "soon"}, 2, "KAMAL_BACKUP_RETRY_LOCK"),
    (["backup"], {"RESTIC_REPOSITORY": "/repo\nrm -rf /"}, 2, "RESTIC_REPOSITORY"),
    (["backup"], {"APP_NAME": "shop\tx"}, 2, "APP_NAME"),
    (["backup"], {"RESTIC_HOST": "bad host"}, 2, "RESTIC_HOST"),
    (["restore-db", "--", "--help"], TARGET, 2, "SNAPSHOT"),
    (["restore-db", "--", "-o"], TARGET, 2, "SNAPSHOT"),
    (["restore-db", "--", "--target=/"], TARGET, 2, "SNAPSHOT"),
    (["restore-db", "latest;id"], TARGET, 2, "SNAPSHOT"),
    (["restore-db", "deadbeef"], TARGET, 2, "SNAPSHOT"),
    (["restore-db"], ALLOW, 2, "RESTORE_SQLITE_DATABASE_PATH"),
    (["restore-db"], {}, 3, "KAMAL_BACKUP_ALLOW_RESTORE"),
    (["restore-files"], {}, 3, "KAMAL_BACKUP_ALLOW_RESTORE"),
    (["restore-files", "latest", "/"], ALLOW, 3, "system directory"),
    (["restore-files", "latest", "//"], ALLOW, 3, "system directory"),
    (["restore-files", "latest", "/etc"], ALLOW, 3, "system directory"),
    (["restore-files", "latest", ""], ALLOW, 3, "absolute path"),
    (["restore-files", "latest", "relative/target"], ALLOW, 3, "absolute path"),
    (
        ["restore-files", "latest", "STORAGE/inside"],
        ALLOW,
        3,
        "KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE",
    ),
    (["restore-files", "latest", "STORAGE"], ALLOW, 3, "KAMAL_BACKUP_ALLOW_IN_PLACE_FILE_RESTORE"),
    (
        ["restore-files", "latest", "/srv/prod/files"],
        ALLOW,
        3,
        "KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE",
    ),
    (["list", "--type", "logs"], {}, 2, "--type"),
    # A dictionary-word password does not garble the message that names it wrong.
    (["list"], {"RESTIC_PASSWORD": "password"}, 1, "wrong restic repository password (check"),
    # restic could not obtain the password: the setting, not restic's JSON (real restic).
    (
        ["list"],
        {"RESTIC_PASSWORD": UNSET, "RESTIC_PASSWORD_FILE": "/nonexistent/pw"},
        2,
        "error: RESTIC_PASSWORD_FILE: /nonexistent/pw does not exist",
    ),
    (
        ["list"],
        {"RESTIC_PASSWORD": UNSET, "RESTIC_PASSWORD_COMMAND": "false"},
        2,
        "error: RESTIC_PASSWORD_COMMAND: the command failed (exit status 1)",
    ),
    (
        ["backup"],
        {"RESTIC_PASSWORD": UNSET, "RESTIC_PASSWORD_FILE": "/"},
        2,
        "error: RESTIC_PASSWORD_FILE: /: is a directory",
    ),
    (["--env-file", "/nonexistent.env", "list"], {}, 2, "--env-file"),
    (["backup", "--no-such-flag"], {}, 2, "--no-such-flag"),
]


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(
    ("args", "changes", "code", "named"),
    CASES,
    ids=[f"{i}-{c[0][0]}-{next(iter(c[1]), c[3])}" for i, c in enumerate(CASES)],
)
def test_bad_input(
    app: App, tmp_path: Path, args: list[str], changes: dict[str, str], code: int, named: str
) -> None:
    link = tmp_path / "link-to-etc"
    link.symlink_to("/etc")
    storage = str(app.files)
    env = dict(app.env)
    for key, value in changes.items():
        if value == UNSET:
            env.pop(key, None)
        else:
            env[key] = value.replace("LINK_TO_ETC", str(link))
    args = [a.replace("STORAGE", storage) for a in args]
    result = app.cli(*args, extra=None) if env == app.env else _run(app, env, args)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert named in result.stderr, result.stderr
    if "Usage:" not in result.stderr:  # Typer's own usage errors keep their help box
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert app.snapshot_ids() == []
    assert not Path(TARGET["RESTORE_SQLITE_DATABASE_PATH"]).exists()


def _run(app: App, env: dict[str, str], args: list[str]):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "kamal_backup", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=app.root,
    )
