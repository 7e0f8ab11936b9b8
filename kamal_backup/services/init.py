"""`init`: a commented YAML config for one app, and the Kamal accessory block that goes with it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kamal_backup import __version__, state
from kamal_backup.errors import ConfigError
from kamal_backup.settings import APP_NAME_PATTERN, NO_DATABASE, PRIMARY, adapter_class

DEFAULT_CONFIG = Path("config/kamal-backup.yml")
REMOTE_CONFIG = "/rails/config/kamal-backup.yml"
IMAGE = "ghcr.io/kamal-backup/kamal-backup:" + ".".join(__version__.split(".")[:2])
# Rails 8's production databases in storage/ (config/database.yml of a new app).
RAILS_SQLITE = {
    PRIMARY: "production.sqlite3",
    "cache": "production_cache.sqlite3",
    "queue": "production_queue.sqlite3",
    "cable": "production_cable.sqlite3",
}
ALIASES = {
    "backup": 'accessory exec backup "kamal-backup backup"',
    "backup-validate": 'accessory exec backup "kamal-backup validate"',
    "backup-list": 'accessory exec backup "kamal-backup list"',
    "backup-check": 'accessory exec backup "kamal-backup check"',
    "backup-evidence": 'accessory exec backup "kamal-backup evidence"',
    "backup-logs": "accessory logs backup -f",
    "backup-tui": 'accessory exec -i backup "kamal-backup tui"',
}


@dataclass
class AppDescription:
    """What `init` is told about the app."""

    app: str
    adapter: str  # a registered adapter, or none
    paths: list[str] = field(default_factory=lambda: ["/rails/storage"])

    def __post_init__(self) -> None:
        if not APP_NAME_PATTERN.match(self.app):
            raise ConfigError("--app", "must be letters, digits, '.', '_' or '-'")
        if self.adapter.strip().lower() == NO_DATABASE:
            self.adapter = NO_DATABASE
        else:
            found = adapter_class(self.adapter)
            if found is None:
                raise ConfigError("--adapter", f"unknown adapter {self.adapter!r}")
            self.adapter = found.name
        for path in self.paths:
            if not path.startswith("/"):
                raise ConfigError("--path", f"{path} is not an absolute path")
        if self.adapter == NO_DATABASE and not self.paths:
            raise ConfigError("--path", "a files-only app (--adapter none) needs a path")
        if self.adapter == "sqlite" and not self.paths:
            raise ConfigError("--path", "SQLite databases live in a path (e.g. /rails/storage)")

    @property
    def secrets(self) -> list[str]:
        url = [] if self.adapter in (NO_DATABASE, "sqlite") else ["DATABASE_URL"]
        return ["RESTIC_PASSWORD", *url, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]


def _q(value: str) -> str:
    """A YAML scalar, quoted as YAML would (paths and names are data)."""
    dumped: str = yaml.safe_dump(value, default_style=None)
    return dumped.removesuffix("\n...\n").strip()


def render_config(app: AppDescription) -> str:
    """The commented config file."""
    lines = [
        f"# kamal-backup configuration for {app.app} (written by `kamal-backup init`).",
        "# Keys are the lower-case setting names (docs/configuration.md); the environment and",
        "# --env-file win over this file. It holds no secret: {env: NAME} reads a variable, and",
        "# RESTIC_PASSWORD, AWS_* and database passwords come from Kamal secrets.",
        f"app_name: {_q(app.app)}",
        "",
        "# Directories to back up (none: a database-only app). Configured SQLite databases in them",
        "# are left out of the file snapshot: they are copied consistently on their own.",
    ]
    if app.paths:
        lines += ["backup_paths:", *(f"  - {_q(path)}" for path in app.paths)]
    else:
        lines.append("backup_paths: []")
    lines += [
        "",
        "# Set RESTIC_REPOSITORY in the accessory's env (or here), e.g.",
        "# restic_repository: s3:https://s3.eu-central-1.amazonaws.com/acme-backups/" + app.app,
        "restic_init_if_missing: true",
        "",
        "# Retention per database and for the files (0 turns a rule off).",
        "restic_keep_daily: 7",
        "restic_keep_weekly: 4",
        "restic_keep_monthly: 6",
        "",
    ]
    if app.adapter == NO_DATABASE:
        lines += ["# No database: a files-only app.", "database_adapter: none"]
    elif app.adapter == "sqlite":
        storage = app.paths[0].rstrip("/")
        lines += [
            "# Rails 8 keeps four SQLite databases in storage/; each is its own snapshot.",
            "# restore-db restores every one into its restore_path (or one: --database NAME).",
            "# cache, queue and cable empty themselves (expired entries, finished jobs), so a",
            "# shrink there is normal: max_shrink 100% leaves them out of the comparison with",
            "# the last good run. The primary database keeps KAMAL_BACKUP_MAX_SHRINK (50%).",
            "databases:",
        ]
        for name, filename in RAILS_SQLITE.items():
            restore = f"/restore/db/{filename.replace('production', 'restored')}"
            lines += [
                f"  {name}:",
                "    adapter: sqlite",
                f"    path: {_q(f'{storage}/{filename}')}",
                f"    restore_path: {_q(restore)}",
            ]
            if name != PRIMARY:
                lines.append("    max_shrink: 100%")
    else:
        lines += [
            "# The primary database; more can follow under their own names.",
            "databases:",
            f"  {PRIMARY}:",
            f"    adapter: {app.adapter}",
            "    url: {env: DATABASE_URL}",
            "    # A scratch database for restore drills (never the source):",
            "    # restore_url: {env: RESTORE_DATABASE_URL}",
        ]
    return "\n".join(lines) + "\n"


def render_accessory(app: AppDescription, config: Path) -> str:
    """The Kamal accessory block and aliases, as YAML for config/deploy.yml."""
    volumes = [
        # SQLite in WAL mode needs its directory writable (for -shm); other files are read-only.
        f"{app.app}_storage:{path}" + ("" if app.adapter == "sqlite" else ":ro")
        for path in app.paths
    ]
    volumes += ["kamal_backup_state:/var/lib/kamal-backup", "kamal_backup_cache:/var/cache/restic"]
    block: dict[str, Any] = {
        "accessories": {
            "backup": {
                "image": IMAGE,
                "host": "192.0.2.10",
                "files": [f"{config}:{REMOTE_CONFIG}"],
                "env": {
                    "clear": {
                        "KAMAL_BACKUP_CONFIG": REMOTE_CONFIG,
                        "RESTIC_REPOSITORY": "s3:https://s3.eu-central-1.amazonaws.com/"
                        f"acme-backups/{app.app}",
                        "AWS_DEFAULT_REGION": "eu-central-1",
                    },
                    "secret": app.secrets,
                },
                "volumes": volumes,
            }
        },
        "aliases": dict(ALIASES),
    }
    header = (
        "# Add to config/deploy.yml (set host and the repository), put the secrets in\n"
        "# .kamal/secrets, then: kamal accessory boot backup && kamal backup-validate\n"
    )
    dumped: str = yaml.safe_dump(block, sort_keys=False, default_flow_style=False)
    return header + dumped


def write_config(path: Path, text: str, *, force: bool) -> None:
    """Writes the config file; an existing one is kept unless `force`."""
    if path.exists() and not force:
        raise ConfigError("--config", f"{path} already exists; pass --force to overwrite it")
    if path.is_dir():
        raise ConfigError("--config", f"{path} is a directory")
    try:
        state.write_text_atomic(path, text)
        os.chmod(path, 0o644)
    except OSError as exc:
        raise ConfigError("--config", f"cannot write {path}: {exc.strerror}") from None
