"""`init`: a config file that loads, an accessory block that parses, no overwrite without --force."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kamal_backup.settings import load_settings

SECRETS = {
    "RESTIC_REPOSITORY": "/tmp/repo",
    "RESTIC_PASSWORD": "pw-123456",
    "DATABASE_URL": "postgres://shop:pw@shop-db:5432/shop_production",
}


def init(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kamal_backup", "init", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize(
    ("args", "databases"),
    [
        (["--adapter", "postgres"], ["primary"]),
        (["--adapter", "mysql2", "--no-paths"], ["primary"]),
        (["--adapter", "sqlite3"], ["primary", "cache", "queue", "cable"]),
        (["--adapter", "none", "--path", "/data/uploads"], []),
    ],
)
def test_init_writes_a_config_that_loads_and_prints_yaml_that_parses(
    tmp_path: Path, args: list[str], databases: list[str]
) -> None:
    result = init(tmp_path, "--app", "shop", *args)
    assert result.returncode == 0, result.stderr
    config = tmp_path / "config" / "kamal-backup.yml"
    assert "wrote config/kamal-backup.yml" in result.stderr
    block = yaml.safe_load(result.stdout)
    backup = block["accessories"]["backup"]
    assert backup["env"]["clear"]["KAMAL_BACKUP_CONFIG"] == "/rails/config/kamal-backup.yml"
    assert backup["files"] == ["config/kamal-backup.yml:/rails/config/kamal-backup.yml"]
    assert "RESTIC_PASSWORD" in backup["env"]["secret"]
    assert block["aliases"]["backup-validate"] == 'accessory exec backup "kamal-backup validate"'
    environ = {"HOME": str(tmp_path), **SECRETS}
    if "mysql2" in args:
        environ["DATABASE_URL"] = "mysql2://shop:pw@shop-db:3306/shop_production"
    settings = load_settings(environ=environ, config=config)
    assert settings.app_name == "shop"
    assert [d.name for d in settings.database_list] == databases
    assert "pw" not in config.read_text().replace("password", "")  # no secret in the file


def test_a_second_init_refuses_without_force(tmp_path: Path) -> None:
    assert init(tmp_path, "--app", "shop", "--adapter", "postgres").returncode == 0
    config = tmp_path / "config" / "kamal-backup.yml"
    config.write_text("app_name: mine\n")
    again = init(tmp_path, "--app", "shop", "--adapter", "sqlite")
    assert again.returncode == 2
    assert again.stderr.strip() == (
        "kamal-backup: error: --config: config/kamal-backup.yml already exists; "
        "pass --force to overwrite it"
    )
    assert config.read_text() == "app_name: mine\n"
    forced = init(tmp_path, "--app", "shop", "--adapter", "sqlite", "--force")
    assert forced.returncode == 0 and "production_queue.sqlite3" in config.read_text()


def test_init_writes_where_it_is_told(tmp_path: Path) -> None:
    result = init(tmp_path, "--app", "blog", "--adapter", "postgres", "--config", "backup.yml")
    assert result.returncode == 0
    assert (tmp_path / "backup.yml").is_file()
    assert "backup.yml:/rails/config/kamal-backup.yml" in result.stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--app", "two words", "--adapter", "postgres"], "--app"),
        (["--app", "shop", "--adapter", "oracle"], "--adapter"),
        (["--app", "shop", "--adapter", "postgres", "--path", "relative"], "--path"),
        (["--app", "shop", "--adapter", "none", "--no-paths"], "--path"),
    ],
)
def test_bad_init_arguments_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], option: str
) -> None:
    result = init(tmp_path, *args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"kamal-backup: error: {option}: ")
    assert not (tmp_path / "config").exists()


def test_the_rails_8_example_is_what_init_writes() -> None:
    from kamal_backup.services.init import AppDescription, render_config

    example = Path(__file__).resolve().parents[2] / "examples" / "rails8-sqlite.yml"
    written = render_config(AppDescription(app="shop", adapter="sqlite"))
    assert example.read_text().split("\n", 1)[1] == written.split("\n", 1)[1]
