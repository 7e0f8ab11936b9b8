"""The settings model: aliases, defaults, and one-line errors naming the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kamal_backup.errors import ConfigError, ExitCode
from kamal_backup.settings import load_settings


def env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    values = {
        "APP_NAME": "shop",
        "DATABASE_ADAPTER": "sqlite",
        "SQLITE_DATABASE_PATH": str(tmp_path / "db.sqlite3"),
        "BACKUP_PATHS": str(tmp_path),
        "RESTIC_REPOSITORY": str(tmp_path / "repo"),
        "RESTIC_PASSWORD": "pw-123456",
        "HOME": str(tmp_path),
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v != "<unset>"}


def test_defaults_match_the_documented_retention_and_schedule(tmp_path: Path) -> None:
    settings = load_settings(environ=env(tmp_path))
    assert settings.retention == {
        "keep_last": 7,
        "keep_daily": 7,
        "keep_weekly": 4,
        "keep_monthly": 6,
        "keep_yearly": 2,
    }
    assert settings.backup_schedule_seconds == 86400
    assert settings.restic_forget_after_backup is True
    assert settings.restic_check_after_backup is False
    assert settings.restic_check_read_data_subset == "5%"
    assert settings.host == "shop"
    assert settings.state_dir == tmp_path / ".local/state/kamal-backup/shop"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgresql", "postgres"),
        ("POSTGRES", "postgres"),
        ("mariadb", "mysql"),
        ("mysql2", "mysql"),
        ("sqlite3", "sqlite"),
    ],
)
def test_adapter_aliases(tmp_path: Path, raw: str, expected: str) -> None:
    url = "postgres://app@db/app" if expected == "postgres" else "mysql2://app@db/app"
    settings = load_settings(environ=env(tmp_path, DATABASE_ADAPTER=raw, DATABASE_URL=url))
    assert settings.database_adapter == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("yes", True), ("false", False), ("0", False), ("no", False)],
)
def test_booleans(tmp_path: Path, raw: str, expected: bool) -> None:
    settings = load_settings(environ=env(tmp_path, RESTIC_INIT_IF_MISSING=raw))
    assert settings.restic_init_if_missing is expected


def test_backup_paths_split_on_colons_and_newlines(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    settings = load_settings(
        environ=env(tmp_path, BACKUP_PATHS=f"{tmp_path}/a:{tmp_path}/b\n{tmp_path}/c/\n")
    )
    assert settings.backup_paths == (tmp_path / "a", tmp_path / "b", tmp_path / "c")


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"APP_NAME": "<unset>"}, "APP_NAME"),
        ({"APP_NAME": "my app"}, "APP_NAME"),
        ({"APP_NAME": "app:x"}, "APP_NAME"),
        ({"DATABASE_ADAPTER": "oracle"}, "DATABASE_ADAPTER"),
        ({"DATABASE_ADAPTER": "<unset>"}, "DATABASE_ADAPTER"),
        ({"SQLITE_DATABASE_PATH": "<unset>"}, "SQLITE_DATABASE_PATH"),
        ({"SQLITE_DATABASE_PATH": "db.sqlite3"}, "SQLITE_DATABASE_PATH"),
        ({"RESTIC_REPOSITORY": "<unset>"}, "RESTIC_REPOSITORY"),
        ({"RESTIC_PASSWORD": "<unset>"}, "RESTIC_PASSWORD"),
        ({"BACKUP_SCHEDULE_SECONDS": "daily"}, "BACKUP_SCHEDULE_SECONDS"),
        ({"BACKUP_SCHEDULE_SECONDS": "0"}, "BACKUP_SCHEDULE_SECONDS"),
        ({"BACKUP_START_DELAY_SECONDS": "-5"}, "BACKUP_START_DELAY_SECONDS"),
        ({"RESTIC_KEEP_DAILY": "-1"}, "RESTIC_KEEP_DAILY"),
        ({"RESTIC_KEEP_LAST": "seven"}, "RESTIC_KEEP_LAST"),
        ({"RESTIC_CHECK_READ_DATA_SUBSET": "150%"}, "RESTIC_CHECK_READ_DATA_SUBSET"),
        ({"RESTIC_CHECK_READ_DATA_SUBSET": "0%"}, "RESTIC_CHECK_READ_DATA_SUBSET"),
        ({"RESTIC_CHECK_READ_DATA_SUBSET": "5/3"}, "RESTIC_CHECK_READ_DATA_SUBSET"),
        ({"RESTIC_CHECK_READ_DATA_SUBSET": "lots"}, "RESTIC_CHECK_READ_DATA_SUBSET"),
        ({"RESTIC_INIT_IF_MISSING": "maybe"}, "RESTIC_INIT_IF_MISSING"),
        ({"BACKUP_PATHS": "relative/storage"}, "BACKUP_PATHS"),
        ({"RESTIC_REPOSITORY": "/repo\nextra"}, "RESTIC_REPOSITORY"),
        ({"KAMAL_BACKUP_STATE_DIR": "state"}, "KAMAL_BACKUP_STATE_DIR"),
        ({"DATABASE_ADAPTER": "postgres"}, "DATABASE_URL"),
        ({"DATABASE_ADAPTER": "postgres", "DATABASE_URL": "mysql://app@db/app"}, "DATABASE_URL"),
        ({"DATABASE_ADAPTER": "mysql", "DATABASE_URL": "postgres://app@db/app"}, "DATABASE_URL"),
        ({"DATABASE_ADAPTER": "postgres", "DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"DATABASE_ADAPTER": "postgres", "DATABASE_URL": "postgres://app@db"}, "DATABASE_URL"),
        (
            {
                "DATABASE_ADAPTER": "postgres",
                "DATABASE_URL": "postgres://app@db/x",
                "RESTORE_DATABASE_URL": "mysql://app@db/x",
            },
            "RESTORE_DATABASE_URL",
        ),
    ],
)
def test_bad_values_name_the_variable(
    tmp_path: Path, overrides: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=env(tmp_path, **overrides))
    assert caught.value.setting == variable
    assert caught.value.exit_code == ExitCode.CONFIG
    assert str(caught.value).startswith(f"{variable}: ")
    assert "\n" not in str(caught.value)


def test_a_bad_secret_value_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=env(tmp_path, RESTIC_KEEP_LAST="hunter2-secret"))
    assert "hunter2-secret" not in str(caught.value)


@pytest.mark.parametrize(
    "disguise",
    ["/", "/etc", "//etc", "/var/../etc", "/etc/", "/usr/./local", "/root", "/var", "/data/../../"],
)
def test_system_directories_are_refused_in_backup_paths(tmp_path: Path, disguise: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=env(tmp_path, BACKUP_PATHS=disguise))
    assert caught.value.setting == "BACKUP_PATHS"
    assert "system directory" in str(caught.value)


def test_a_symlink_to_a_system_directory_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "storage"
    link.symlink_to("/etc")
    with pytest.raises(ConfigError, match="resolves to /etc"):
        load_settings(environ=env(tmp_path, BACKUP_PATHS=str(link)))


def test_suspicious_paths_can_be_allowed_explicitly(tmp_path: Path) -> None:
    settings = load_settings(
        environ=env(tmp_path, BACKUP_PATHS="/etc", KAMAL_BACKUP_ALLOW_SUSPICIOUS_PATHS="true")
    )
    assert settings.backup_paths == (Path("/etc"),)


def test_env_file_is_read_and_real_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / "backup.env"
    env_file.write_text("APP_NAME=from-file\nRESTIC_KEEP_LAST=3\nAWS_ACCESS_KEY_ID=AKIAFROMFILE\n")
    base = env(tmp_path)
    del base["APP_NAME"]
    base["RESTIC_KEEP_LAST"] = "9"
    settings = load_settings(env_file, environ=base)
    assert settings.app_name == "from-file"
    assert settings.restic_keep_last == 9
    assert settings.restic_environment()["AWS_ACCESS_KEY_ID"] == "AKIAFROMFILE"


def test_missing_env_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--env-file"):
        load_settings(tmp_path / "nope.env", environ=env(tmp_path))


def test_restic_environment_passes_provider_variables_and_nothing_else(tmp_path: Path) -> None:
    settings = load_settings(
        environ=env(
            tmp_path,
            AWS_SECRET_ACCESS_KEY="s3cr3t-key",
            B2_ACCOUNT_ID="b2",
            RCLONE_CONFIG_X_TYPE="s3",
            PGPASSWORD="not-for-restic",
            UNRELATED="x",
        )
    )
    restic_env = settings.restic_environment()
    assert restic_env["AWS_SECRET_ACCESS_KEY"] == "s3cr3t-key"
    assert restic_env["B2_ACCOUNT_ID"] == "b2"
    assert restic_env["RCLONE_CONFIG_X_TYPE"] == "s3"
    assert restic_env["RESTIC_PASSWORD"] == "pw-123456"
    assert "PGPASSWORD" not in restic_env
    assert "UNRELATED" not in restic_env


def test_secret_fields_do_not_show_in_repr(tmp_path: Path) -> None:
    settings = load_settings(environ=env(tmp_path, RESTIC_PASSWORD="very-secret-pw"))
    assert "very-secret-pw" not in repr(settings)
    assert os.environ.get("RESTIC_PASSWORD") != "very-secret-pw"
