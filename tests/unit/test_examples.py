"""The examples load, and every variable they set is one kamal-backup reads (no drift, no typos)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from typer.main import get_command

from kamal_backup.cli import app
from kamal_backup.settings import env_names, load_settings, split_paths

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DOCKERFILE = EXAMPLES.parent / "Dockerfile"
# restic's backend variables the examples use; kamal-backup passes them through to restic.
BACKEND = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}
ALIASES = {
    "backup",
    "backup-validate",
    "backup-list",
    "backup-check",
    "backup-evidence",
    "backup-logs",
    "backup-tui",
}


def unknown(names: set[str]) -> set[str]:
    return names - set(env_names()) - BACKEND


def placeholder_secrets(secrets: list[str]) -> dict[str, str]:
    values = {name: "example-secret" for name in secrets}
    if "DATABASE_URL" in values:
        values["DATABASE_URL"] = "postgres://shop:example-secret@shop-db:5432/shop_production"
    return values


def accessory() -> dict[str, Any]:
    deploy = yaml.safe_load((EXAMPLES / "deploy.yml").read_text())
    return deploy["accessories"]["backup"]  # type: ignore[no-any-return]


def test_deploy_accessory_settings_are_valid() -> None:
    backup = accessory()
    clear = {name: str(value).lower() if isinstance(value, bool) else str(value)
             for name, value in backup["env"]["clear"].items()}  # fmt: skip
    secrets = backup["env"]["secret"]
    assert not unknown(set(clear) | set(secrets))
    settings = load_settings(environ={**clear, **placeholder_secrets(secrets)})
    assert settings.app_name == "shop" and settings.database_adapter == "postgres"


def test_deploy_mounts_backup_paths_read_only_and_the_image_directories() -> None:
    backup = accessory()
    targets = {volume.split(":")[1]: volume for volume in backup["volumes"]}
    for path in str(backup["env"]["clear"]["BACKUP_PATHS"]).split(":"):
        assert targets[path].endswith(":ro"), f"{path} must be mounted read-only"
    image_env = DOCKERFILE.read_text()
    for directory in ("/var/lib/kamal-backup", "/var/cache/restic"):
        assert directory in targets and directory in image_env


def test_deploy_aliases_run_commands_that_exist() -> None:
    deploy = yaml.safe_load((EXAMPLES / "deploy.yml").read_text())
    aliases = deploy["aliases"]
    assert set(aliases) == ALIASES
    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    for alias, line in aliases.items():
        used = re.findall(r'"kamal-backup ([a-z-]+)', line)
        assert all(name in commands for name in used), alias
    assert aliases["backup-tui"] == 'accessory exec -i backup "kamal-backup tui"'


def test_env_example_names_only_real_settings_and_loads() -> None:
    path = EXAMPLES / "env.example"
    names = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", path.read_text(), re.MULTILINE))
    assert {"APP_NAME", "RESTIC_PASSWORD", "KAMAL_BACKUP_ALLOW_RESTORE"} <= names
    assert not unknown(names)
    settings = load_settings(env_file=path, environ={})
    assert settings.retention["keep_daily"] == 7


def test_compose_backup_service_settings_are_valid() -> None:
    compose = yaml.safe_load((EXAMPLES / "compose.yml").read_text())
    env = compose["services"]["backup"]["environment"]
    assert not unknown(set(env))
    settings = load_settings(environ={name: str(value) for name, value in env.items()})
    assert settings.kamal_backup_allow_restore


def test_publish_workflow_builds_multi_arch_on_tags_and_the_wheel() -> None:
    workflow = yaml.safe_load((EXAMPLES.parent / ".github/workflows/publish.yml").read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert triggers["push"]["tags"] == ["v*"]
    jobs = workflow["jobs"]
    build = next(s for s in jobs["image"]["steps"] if "build-push-action" in s.get("uses", ""))
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["push"] is True
    assert jobs["wheel"]["permissions"]["id-token"] == "write"
    assert any("pypi-publish" in s.get("uses", "") for s in jobs["wheel"]["steps"])


def test_env_example_describes_backup_paths_as_the_parser_splits_them() -> None:
    text = (EXAMPLES / "env.example").read_text()
    comment = text[: text.index("\nBACKUP_PATHS=")].rsplit("\n\n", 1)[-1]
    assert "separated by ':' or newlines" in comment and "never ','" in comment
    assert split_paths("/a:/b\n/c") == ["/a", "/b", "/c"]
    assert split_paths("/a,b") == ["/a,b"]  # a comma is part of the name, as the comment says


def test_rails_8_example_config_has_four_sqlite_databases_in_storage() -> None:
    settings = load_settings(
        environ={"RESTIC_REPOSITORY": "/tmp/repo", "RESTIC_PASSWORD": "example-secret"},
        config=EXAMPLES / "rails8-sqlite.yml",
    )
    assert [(d.name, d.adapter, str(d.path)) for d in settings.database_list] == [
        ("primary", "sqlite", "/rails/storage/production.sqlite3"),
        ("cache", "sqlite", "/rails/storage/production_cache.sqlite3"),
        ("queue", "sqlite", "/rails/storage/production_queue.sqlite3"),
        ("cable", "sqlite", "/rails/storage/production_cable.sqlite3"),
    ]
    assert settings.backup_paths == (Path("/rails/storage"),)
    assert all(d.restore_path and str(d.restore_path).startswith("/restore/db/")
               for d in settings.database_list)  # fmt: skip


def test_rails_8_example_compares_the_primary_database_only() -> None:
    settings = load_settings(
        environ={"RESTIC_REPOSITORY": "/tmp/repo", "RESTIC_PASSWORD": "example-secret"},
        config=EXAMPLES / "rails8-sqlite.yml",
    )
    # cache, queue and cable empty themselves; an emptied primary is still suspicious.
    assert settings.max_shrink("primary") == 0.5
    assert [settings.max_shrink(name) for name in ("cache", "queue", "cable")] == [1.0, 1.0, 1.0]
