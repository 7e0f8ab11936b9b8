"""The YAML config file: precedence, {env: NAME}, several databases, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kamal_backup.errors import ConfigError, ExitCode
from kamal_backup.settings import load_settings

BASE_YAML = """\
app_name: from-yaml
backup_paths:
  - {root}/storage
restic_repository: {root}/repo
restic_password: {{env: TEST_RESTIC_PASSWORD}}
restic_keep_last: 3
restic_keep_daily: 4
databases:
  primary:
    adapter: sqlite3
    path: {root}/storage/production.sqlite3
    restore_path: /restore/db/production.sqlite3
  cache:
    adapter: sqlite
    path: {root}/storage/production_cache.sqlite3
"""


def write(tmp_path: Path, text: str, name: str = "kamal-backup.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(tmp_path), "TEST_RESTIC_PASSWORD": "pw-from-env-123", **extra}


def test_yaml_defines_the_app_and_its_databases(tmp_path: Path) -> None:
    config = write(tmp_path, BASE_YAML.format(root=tmp_path))
    settings = load_settings(environ=base_env(tmp_path), config=config)
    assert settings.app_name == "from-yaml"
    assert settings.backup_paths == (tmp_path / "storage",)
    assert [(d.name, d.adapter, d.path) for d in settings.database_list] == [
        ("primary", "sqlite", tmp_path / "storage/production.sqlite3"),
        ("cache", "sqlite", tmp_path / "storage/production_cache.sqlite3"),
    ]
    assert settings.database("primary").restore_path == Path("/restore/db/production.sqlite3")
    # {env: NAME}: the secret lives in the environment, not in the committed file
    assert settings.restic_password is not None
    assert settings.restic_password.get_secret_value() == "pw-from-env-123"


def test_precedence_environment_over_env_file_over_yaml_over_defaults(tmp_path: Path) -> None:
    config = write(tmp_path, BASE_YAML.format(root=tmp_path))
    env_file = tmp_path / "backup.env"
    env_file.write_text("APP_NAME=from-env-file\nRESTIC_KEEP_LAST=5\nRESTIC_KEEP_DAILY=6\n")
    environ = base_env(tmp_path, RESTIC_KEEP_LAST="9", KAMAL_BACKUP_CONFIG=str(config))
    settings = load_settings(env_file, environ=environ)
    assert settings.restic_keep_last == 9  # environment > env file > YAML
    assert settings.restic_keep_daily == 6  # env file > YAML
    assert settings.app_name == "from-env-file"  # env file > YAML
    assert settings.restic_keep_weekly == 4  # the default: nobody set it
    # YAML > defaults
    assert load_settings(environ=base_env(tmp_path), config=config).restic_keep_daily == 4


def test_an_unset_env_reference_leaves_the_setting_unset(tmp_path: Path) -> None:
    config = write(tmp_path, BASE_YAML.format(root=tmp_path))
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"HOME": str(tmp_path)}, config=config)
    assert caught.value.setting == "RESTIC_PASSWORD"


def test_databases_as_json_in_the_environment_add_to_the_primary(tmp_path: Path) -> None:
    databases = {"cache": {"adapter": "sqlite", "path": str(tmp_path / "cache.sqlite3")}}
    settings = load_settings(
        environ={
            "HOME": str(tmp_path),
            "APP_NAME": "shop",
            "DATABASE_ADAPTER": "postgres",
            "DATABASE_URL": "postgres://app@db/shop",
            "DATABASES": json.dumps(databases),
            "BACKUP_PATHS": "",
            "RESTIC_REPOSITORY": str(tmp_path / "repo"),
            "RESTIC_PASSWORD": "pw-123456",
        }
    )
    assert [(d.name, d.adapter) for d in settings.database_list] == [
        ("primary", "postgres"),
        ("cache", "sqlite"),
    ]
    assert settings.backup_paths == ()


BAD_FILES = [
    ("app_name: shop\nrestic_host: a: b\nrestic_keep_last: 3\n", 2, "not allowed"),
    ("app_name: shop\nrestic_keep_last: 3\nrestic_keep_last: 4\n", 3, "given twice"),
    ("app_name: shop\nbackup_pathz: /data\n", 2, "unknown key 'backup_pathz'"),
    ("app_name: shop\nAPP_NAME: x\n", 2, "lower-case"),
    (
        "app_name: shop\ndatabases:\n  main:\n    adapter: sqlite\n    path: /a.sqlite3\n"
        "  main:\n    adapter: sqlite\n    path: /b.sqlite3\n",
        6,
        "given twice",
    ),
    (
        "app_name: shop\ndatabases:\n  cache:\n    adapter: sqlite\n    path: /a.sqlite3\n"
        "    url: postgres://a@b/c\n",
        5,
        "either a url or a path",
    ),
    (
        "app_name: shop\ndatabases:\n  cache:\n    adapter: sqlite\n    path: /a.sqlite3\n"
        "    colour: blue\n",
        6,
        "databases.cache.colour",
    ),
    (
        "app_name: shop\ndatabases:\n  cache:\n    adapter: oracle\n    path: /a.sqlite3\n",
        4,
        "databases.cache.adapter",
    ),
    (
        "app_name: shop\ndatabase_adapter: sqlite\nsqlite_database_path: /p.sqlite3\n"
        "databases:\n  primary:\n    adapter: sqlite\n    path: /a.sqlite3\n",
        5,
        "duplicate database name",
    ),
    ("app_name: shop\nrestic_keep_last: many\n", 2, "restic_keep_last"),
    ("- a\n- b\n", 1, "must be a mapping"),
    (
        'app_name: shop\ndatabases:\n  cache:\n    adapter: sqlite\n    path: "/a\\nb.sqlite3"\n',
        5,
        "control character",
    ),
]


@pytest.mark.parametrize(("text", "line", "words"), BAD_FILES)
def test_a_bad_file_is_one_line_naming_the_file_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    config = write(tmp_path, text)
    environ = {
        "HOME": str(tmp_path),
        "RESTIC_REPOSITORY": str(tmp_path / "repo"),
        "RESTIC_PASSWORD": "pw-123456",
        "BACKUP_PATHS": str(tmp_path),
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ, config=config)
    message = str(caught.value)
    assert caught.value.exit_code == ExitCode.CONFIG
    assert message.startswith(f"{config} line {line}: "), message
    assert words in message
    assert "\n" not in message


def test_the_cli_reports_a_broken_file_in_one_line_with_exit_2(tmp_path: Path) -> None:
    config = write(
        tmp_path, "app_name: shop\ndatabases:\n  a: {adapter: sqlite, path: /x, url: y}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "kamal_backup", "--config", str(config), "list"],
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "RESTIC_PASSWORD": "x"},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"kamal-backup: error: {config} line 3: databases.a.path: {lines[0].split(': ')[-1]}"
    ]
    assert "either a url or a path" in lines[0]


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config"):
        load_settings(environ={"HOME": str(tmp_path)}, config=tmp_path / "nope.yml")


def test_a_url_in_the_file_is_redacted_from_errors(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "app_name: shop\nbackup_paths: [/data]\ndatabases:\n"
        "  main: {adapter: postgres, url: 'mysql://u:hunter2-pw@db/x'}\n",
    )
    environ = {"HOME": str(tmp_path), "RESTIC_REPOSITORY": "/r", "RESTIC_PASSWORD": "pw-123456"}
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ, config=config)
    assert "hunter2-pw" not in str(caught.value)
    assert "databases.main.url" in str(caught.value)


def test_a_password_written_in_the_file_is_redacted(tmp_path: Path) -> None:
    from kamal_backup import redact

    config = write(
        tmp_path,
        "app_name: shop\nbackup_paths: [/data]\ndatabase_adapter: none\n"
        "restic_repository: /r\nrestic_password: inline-pw-98765\n"
        "databases:\n  main: {adapter: postgres, url: 'postgres://u:url-pw-4321@db/x'}\n",
    )
    load_settings(environ={"HOME": str(tmp_path)}, config=config)
    text = redact.redact("inline-pw-98765 and url-pw-4321")
    assert "inline-pw-98765" not in text and "url-pw-4321" not in text


def test_a_one_off_restore_target_replaces_only_that_database(tmp_path: Path) -> None:
    config = write(tmp_path, BASE_YAML.format(root=tmp_path))
    settings = load_settings(environ=base_env(tmp_path), config=config)
    scratch = settings.with_restore_target("cache", str(tmp_path / "scratch.sqlite3"), "--target")
    assert scratch.database("cache").restore_path == tmp_path / "scratch.sqlite3"
    assert scratch.database("primary") == settings.database("primary")
    assert settings.database("cache").restore_path is None  # the original is untouched
    with pytest.raises(ConfigError, match="--target"):
        settings.with_restore_target("cache", "relative.sqlite3", "--target")


def test_databases_json_naming_a_database_twice_is_one_line_with_exit_2(tmp_path: Path) -> None:
    environ = {
        "HOME": str(tmp_path),
        "RESTIC_REPOSITORY": str(tmp_path / "repo"),
        "RESTIC_PASSWORD": "pw-123456",
        "BACKUP_PATHS": str(tmp_path),
        "DATABASE_ADAPTER": "none",
        "DATABASES": '{"cache": {"adapter": "sqlite", "path": "/a.sqlite3"},'
        ' "cache": {"adapter": "sqlite", "path": "/b.sqlite3"}}',
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    assert caught.value.exit_code == ExitCode.CONFIG
    assert str(caught.value) == "DATABASES: names the database 'cache' twice"
