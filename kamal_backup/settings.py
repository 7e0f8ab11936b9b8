"""The settings model: every environment variable kamal-backup reads, validated in one place."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    YamlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

from kamal_backup import redact
from kamal_backup.config_file import ConfigFile, read_config_file
from kamal_backup.environment import default_state_dir, restic_passthrough
from kamal_backup.errors import ConfigError
from kamal_backup.paths import is_system_root, normalise, resolve_path, split_paths

if TYPE_CHECKING:
    from kamal_backup.databases.base import DatabaseAdapter

__all__ = ["Database", "DatabaseConfig", "Settings", "load_settings", "resolve_path", "split_paths"]

PRIMARY = "primary"
NO_DATABASE = "none"

APP_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")
_FRACTION = re.compile(r"^(\d+)/(\d+)$")
# restic needs the unit: a bare number is refused by `restic check` ("invalid value").
_SIZE = re.compile(r"^\d+[KMGTkmgt]$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def adapter_class(raw: str) -> type[DatabaseAdapter] | None:
    """The registered adapter a name or alias means (case-insensitive), or None."""
    from kamal_backup.databases.registry import lookup

    return lookup(raw)


def _registered(name: str, setting: str) -> type[DatabaseAdapter]:
    found = adapter_class(name)
    if found is None:
        raise ConfigError(setting, f"unknown adapter {name!r}")
    return found


def _adapter_name(value: Any) -> Any:
    if isinstance(value, str):
        from kamal_backup.databases.registry import describe_names

        found = adapter_class(value.strip())
        if found is None:
            raise ValueError(f"must be {describe_names()}")
        return found.name
    return value


def parse_shrink(value: Any) -> float:
    """A KAMAL_BACKUP_MAX_SHRINK value as a fraction: `50%` or `0.5`; 100% turns the checks off."""
    text = str(value).strip()
    try:
        fraction = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        fraction = -1.0
    if not 0 <= fraction <= 1 or text.lower() in ("nan", "inf"):
        raise ValueError("must be a percentage from 0% to 100% (such as 50%) or a fraction (0.5)")
    return fraction


def checked_shrink(value: Any) -> Any:
    """A threshold as written (a YAML number becomes its text), once parse_shrink accepts it."""
    if value is None:
        return value
    parse_shrink(value)
    return str(value).strip()


class DatabaseConfig(BaseModel):
    """One named database in the config file or DATABASES: its engine, source and restore target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter: str
    url: SecretStr | None = None
    path: Path | None = None
    restore_url: SecretStr | None = None
    restore_path: Path | None = None
    # This database's KAMAL_BACKUP_MAX_SHRINK (unset: the global one).
    max_shrink: str | None = None

    @field_validator("max_shrink", mode="before")
    @classmethod
    def _shrink(cls, value: Any) -> Any:
        return checked_shrink(value)

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        if isinstance(value, str) and _CONTROL.search(value):
            raise ValueError("contains a control character (newline, tab or NUL)")
        return value

    @field_validator("adapter", mode="before")
    @classmethod
    def _known_adapter(cls, value: Any) -> Any:
        return _adapter_name(value)

    @field_validator("path", "restore_path")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"{value} is not an absolute path")
        return value


@dataclass(frozen=True)
class Database:
    """A configured database, whichever way it was configured; settings name its variables."""

    name: str
    adapter: str
    url: SecretStr | None
    path: Path | None
    restore_url: SecretStr | None
    restore_path: Path | None
    source_setting: str  # what an error about the source names, e.g. DATABASE_URL
    restore_setting: str  # what an error about the restore target names
    max_shrink: float | None = None  # None: KAMAL_BACKUP_MAX_SHRINK

    @property
    def is_primary(self) -> bool:
        return self.name == PRIMARY


@dataclass(frozen=True)
class _Inputs:
    environ: Mapping[str, str]
    env_file: Path | None
    config: ConfigFile | None


_INPUTS: ContextVar[_Inputs | None] = ContextVar("kamal_backup_settings_inputs", default=None)


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._given = dict(environ)
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._given, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


class _YamlFile(YamlConfigSettingsSource):
    """pydantic-settings' YAML source over the already-checked config file."""

    def __init__(self, settings_cls: type[BaseSettings], config: ConfigFile) -> None:
        self._config = config
        super().__init__(settings_cls, yaml_file=config.path)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        return dict(self._config.values)


class Settings(BaseSettings):
    """kamal-backup's configuration. Field names are the environment variables, lower-cased."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, env_ignore_empty=True
    )

    app_name: str = Field(
        description="Name of the app; used in tags, file names and the restic host.",
        examples=["shop"],
    )
    database_adapter: str | None = Field(
        None,
        description="The `primary` database's engine: postgres, mysql or sqlite (aliases: "
        "postgresql, mariadb, mysql2, sqlite3), or none for a files-only app. Required unless "
        "DATABASES or the config file names the databases.",
        examples=["postgres"],
    )
    database_url: SecretStr | None = Field(
        None,
        description="Source database URL (postgres, mysql).",
        examples=["postgres://app@app-db:5432/app_production"],
    )
    sqlite_database_path: Path | None = Field(
        None, description="Source SQLite file (sqlite).", examples=["/data/db/production.sqlite3"]
    )
    backup_paths: Annotated[tuple[Path, ...], NoDecode] = Field(
        (),
        description="Mounted directories to back up, colon- or newline-separated (never "
        "comma); empty for a database-only app.",
        examples=["/data/storage"],
    )
    backup_excludes: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Glob patterns left out of the file snapshot (restic --exclude), "
        "colon- or newline-separated; a relative pattern (*.tmp, tmp/) matches at any depth "
        "inside BACKUP_PATHS, never in their parents.",
        examples=["*.tmp:/data/storage/cache"],
    )
    databases: dict[str, DatabaseConfig] = Field(
        {},
        description="More databases by name, as JSON (or `databases:` in the config file): "
        '`{"cache": {"adapter": "sqlite", "path": "/data/cache.sqlite3"}}`; each has adapter, '
        "url or path, and optionally restore_url or restore_path.",
        examples=['{"cache": {"adapter": "sqlite", "path": "/data/storage/cache.sqlite3"}}'],
    )
    kamal_backup_config: Path | None = Field(
        None,
        description="YAML config file (same as --config); the environment and --env-file win "
        "over it.",
        examples=["/rails/config/kamal-backup.yml"],
    )

    restic_repository: str | None = Field(
        None,
        description="restic repository (or RESTIC_REPOSITORY_FILE).",
        examples=["s3:https://s3.example.com/app-backups"],
    )
    restic_repository_file: Path | None = Field(
        None,
        description="File holding the repository location.",
        examples=["/run/secrets/restic-repository"],
    )
    restic_password: SecretStr | None = Field(
        None,
        description="Repository password (or RESTIC_PASSWORD_FILE / RESTIC_PASSWORD_COMMAND).",
        examples=["(a long random string, as a Kamal secret)"],
    )
    restic_password_file: Path | None = Field(
        None,
        description="File holding the repository password.",
        examples=["/run/secrets/restic-password"],
    )
    restic_password_command: str | None = Field(
        None,
        description="Command that prints the password.",
        examples=["op read op://shop/restic/password"],
    )
    restic_init_if_missing: bool = Field(
        False, description="Initialise the repository when it does not exist.", examples=["true"]
    )
    restic_host: str | None = Field(
        None,
        description="Host recorded on every snapshot; defaults to APP_NAME "
        "so retention groups survive container restarts.",
        examples=["shop"],
    )

    restic_keep_last: int = Field(
        7, ge=0, description="Retention: newest snapshots kept.", examples=["7"]
    )
    restic_keep_daily: int = Field(
        7, ge=0, description="Retention: daily snapshots kept.", examples=["14"]
    )
    restic_keep_weekly: int = Field(
        4, ge=0, description="Retention: weekly snapshots kept.", examples=["8"]
    )
    restic_keep_monthly: int = Field(
        6, ge=0, description="Retention: monthly snapshots kept.", examples=["12"]
    )
    restic_keep_yearly: int = Field(
        2, ge=0, description="Retention: yearly snapshots kept.", examples=["3"]
    )
    restic_forget_after_backup: bool = Field(
        True,
        description="Apply retention (forget --prune) after "
        "each backup; false for append-only repositories.",
        examples=["false"],
    )
    restic_check_after_backup: bool = Field(
        False, description="Run `check` after each backup.", examples=["true"]
    )
    restic_check_read_data_subset: str = Field(
        "5%",
        description="Data read by `check`: a percentage, "
        "n/t, a size with its unit such as 500M, or empty for none.",
        examples=["10%"],
    )

    backup_schedule_seconds: int = Field(
        86400,
        gt=0,
        description="Seconds between scheduled backups, measured from each run's start.",
        examples=["21600"],
    )
    backup_start_delay_seconds: int = Field(
        0, ge=0, description="Seconds `schedule` waits before its first run.", examples=["300"]
    )

    kamal_backup_repository_timeout_seconds: int = Field(
        120,
        gt=0,
        description="How long opening the repository or listing snapshots may take before it "
        "counts as unreachable (restic alone retries for many minutes). A refused connection, "
        "an unknown host or a TLS error fails within seconds, whatever this is.",
        examples=["300"],
    )
    kamal_backup_retry_lock: str = Field(
        "2m",
        description="How long forget/prune and check wait for another process's restic lock "
        "(restic --retry-lock); empty or 0 fails at once.",
        examples=["10m"],
    )
    kamal_backup_state_dir: Path | None = Field(
        None,
        description="Where check and backup results are "
        "recorded; /var/lib/kamal-backup in the image.",
        examples=["/var/lib/kamal-backup"],
    )
    kamal_backup_allow_suspicious_paths: bool = Field(
        False,
        description="Allow system directories such as / or /etc in BACKUP_PATHS.",
        examples=["true"],
    )
    kamal_backup_allow_restore: bool = Field(
        False, description="Required for every restore.", examples=["true"]
    )
    kamal_backup_allow_production_restore: bool = Field(
        False, description="Allow restoring into a production-like target.", examples=["true"]
    )
    kamal_backup_allow_in_place_file_restore: bool = Field(
        False,
        description="Allow restore-files into, above or below a configured backup path.",
        examples=["true"],
    )

    restore_database_url: SecretStr | None = Field(
        None,
        description="Target of restore-db (postgres, mysql).",
        examples=["postgres://app@app-db:5432/app_restore"],
    )
    restore_sqlite_database_path: Path | None = Field(
        None, description="Target of restore-db (sqlite).", examples=["/restore/db/restore.sqlite3"]
    )

    restore_files_path: Path = Field(
        Path("/restore/files"),
        description="Where a drill restores files (restic's layout: <dir>/<original path>).",
        examples=["/restore/files"],
    )

    kamal_backup_manifest_checksums: bool = Field(
        True,
        description="Store a content checksum per table in each run's manifest; false keeps "
        "row counts only (for very large databases).",
        examples=["false"],
    )
    kamal_backup_max_shrink: str = Field(
        "50%",
        description="A run whose rows, dump size, file count or file bytes fall by more than "
        "this against the last good run (or with a table emptied) is suspicious: kept, tagged, "
        "never `latest`, exit 1. Per database: `max_shrink` in its DATABASES entry. 100% turns "
        "the comparison off.",
        examples=["80%"],
    )
    kamal_backup_keep_good: int = Field(
        3,
        ge=0,
        description="Retention never forgets the snapshots of the newest this many good runs "
        "(complete, not suspicious), nor of as many drill-verified ones; 0 turns this off.",
        examples=["5"],
    )
    kamal_backup_drill_schedule_seconds: int = Field(
        0,
        ge=0,
        description="Run a restore drill after a successful scheduled backup once the last "
        "drill is this old; 0 turns scheduled drills off.",
        examples=["604800"],
    )
    kamal_backup_drill_check_command: str | None = Field(
        None,
        description="A command a drill runs after verifying (split like a shell, run without "
        "one); it sees KAMAL_BACKUP_DRILL_DATABASE_TARGET and KAMAL_BACKUP_DRILL_FILES_TARGET.",
        examples=["bin/rails runner 'User.count'"],
    )
    kamal_backup_drill_check_timeout_seconds: int = Field(
        600,
        gt=0,
        description="How long the drill's check command may run before it is killed.",
        examples=["900"],
    )

    pgpassword: SecretStr | None = Field(
        None, description="PostgreSQL password for the source.", examples=["(as a Kamal secret)"]
    )
    mysql_pwd: SecretStr | None = Field(
        None, description="MySQL/MariaDB password for the source.", examples=["(as a Kamal secret)"]
    )
    restore_pgpassword: SecretStr | None = Field(
        None,
        description="PostgreSQL password for the restore target; defaults to PGPASSWORD.",
        examples=["(as a Kamal secret)"],
    )
    restore_mysql_pwd: SecretStr | None = Field(
        None,
        description="MySQL/MariaDB password for the restore target; defaults to MYSQL_PWD.",
        examples=["(as a Kamal secret)"],
    )

    kamal_backup_healthcheck_url: SecretStr | None = Field(
        None,
        description="Healthchecks-style ping URL: /start when a backup starts, the URL on success, "
        "/fail with the error on failure (healthchecks.io, Uptime Kuma, Cronitor).",
        examples=["https://hc-ping.com/your-check-uuid"],
    )
    kamal_backup_ntfy_url: SecretStr | None = Field(
        None,
        description="ntfy topic URL: a message on failure and recovery.",
        examples=["https://ntfy.sh/acme-backups-7f3a"],
    )
    kamal_backup_ntfy_token: SecretStr | None = Field(
        None,
        description="ntfy access token (sent as a Bearer token).",
        examples=["(as a Kamal secret)"],
    )
    kamal_backup_ntfy_on: Literal["failure", "all"] = Field(
        "failure",
        description="ntfy messages on failure and recovery only, or on every success too (all).",
        examples=["all"],
    )
    kamal_backup_webhook_url: SecretStr | None = Field(
        None,
        description="URL receiving a JSON POST per event (start, success, failure, recovery); "
        "Slack and Mattermost incoming webhooks show its text field.",
        examples=["https://hooks.slack.com/services/T000/B000/XXXX"],
    )
    kamal_backup_webhook_secret: SecretStr | None = Field(
        None,
        description="Signs each webhook body: X-Kamal-Backup-Signature: sha256=<HMAC-SHA256 hex>.",
        examples=["(as a Kamal secret)"],
    )
    kamal_backup_notify_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="How long one notification may take; an operation waits at most this long "
        "for its notifications (two retries on connection errors fit inside it).",
        examples=["10"],
    )
    kamal_backup_metrics_file: Path | None = Field(
        None,
        description="Prometheus textfile-collector file, rewritten atomically after every "
        "operation.",
        examples=["/var/lib/node_exporter/textfile_collector/kamal_backup.prom"],
    )

    _environ: dict[str, str] = PrivateAttr(default_factory=dict)
    _databases: tuple[Database, ...] = PrivateAttr(default=())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest first: the process environment, --env-file, the YAML file, then defaults.
        # load_settings() names the environment, env file and config file for this one build.
        inputs = _INPUTS.get()
        if inputs is None:
            return (init_settings,)
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            _Environment(settings_cls, inputs.environ),
        ]
        if inputs.env_file is not None:
            sources.append(DotEnvSettingsSource(settings_cls, env_file=inputs.env_file))
        if inputs.config is not None:
            sources.append(_YamlFile(settings_cls, inputs.config))
        return tuple(sources)

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            allowed = (
                value.replace("\n", "")
                if info.field_name in ("backup_paths", "backup_excludes")
                else value
            )
            if _CONTROL.search(allowed):
                raise ValueError("contains a control character (newline, tab or NUL)")
        return value

    @field_validator("app_name")
    @classmethod
    def _app_name(cls, value: str) -> str:
        if not APP_NAME_PATTERN.match(value):
            raise ValueError(
                "must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("restic_host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not APP_NAME_PATTERN.match(value):
            raise ValueError("must be letters, digits, '.', '_' or '-'")
        return value

    @field_validator("database_adapter", mode="before")
    @classmethod
    def _adapter(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == NO_DATABASE:
            return NO_DATABASE
        try:
            return _adapter_name(value)
        except ValueError as exc:
            raise ValueError(f"{exc}, or none for a files-only app") from None

    @field_validator("backup_paths", "backup_excludes", mode="before")
    @classmethod
    def _split_backup_paths(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(split_paths(value))
        return value

    @field_validator("backup_paths")
    @classmethod
    def _absolute_paths(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        for path in value:
            if not path.is_absolute():
                raise ValueError(f"{path} is not an absolute path")
        return tuple(normalise(p) for p in value)

    @field_validator(
        "sqlite_database_path",
        "restore_sqlite_database_path",
        "restore_files_path",
        "kamal_backup_state_dir",
        "restic_password_file",
        "restic_repository_file",
        "kamal_backup_metrics_file",
    )
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"{value} is not an absolute path")
        return value

    @field_validator(
        "kamal_backup_healthcheck_url", "kamal_backup_ntfy_url", "kamal_backup_webhook_url"
    )
    @classmethod
    def _notification_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                parts = urlsplit(value.get_secret_value().strip())
                host = parts.hostname
            except ValueError:
                raise ValueError("is not a valid URL") from None
            if parts.scheme not in ("http", "https") or not host:
                # The value itself may hold a token: the message never repeats it.
                raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("kamal_backup_retry_lock")
    @classmethod
    def _duration(cls, value: str) -> str:
        value = value.strip()
        if value in ("", "0"):
            return ""
        if not re.fullmatch(r"(\d+h)?(\d+m)?(\d+s)?", value) or not any(c.isdigit() for c in value):
            raise ValueError("must be a duration such as 30s, 2m or 1h")
        return value

    @field_validator("kamal_backup_max_shrink", mode="before")
    @classmethod
    def _max_shrink(cls, value: Any) -> Any:
        return checked_shrink(value)

    @field_validator("restic_check_read_data_subset")
    @classmethod
    def _subset(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        if match := _PERCENT.match(value):
            if not 0 < float(match.group(1)) <= 100:
                raise ValueError("percentage must be above 0% and at most 100%")
            return value
        if match := _FRACTION.match(value):
            n, t = int(match.group(1)), int(match.group(2))
            if not 1 <= n <= t:
                raise ValueError("n/t needs 1 <= n <= t")
            return value
        if _SIZE.match(value):
            return value
        raise ValueError(
            "must be a percentage (5%), a fraction (1/10) or a size with its unit (500M)"
        )

    # Derived values -----------------------------------------------------------------------

    @property
    def environ(self) -> Mapping[str, str]:
        """The environment the settings were read from (process environment over --env-file)."""
        return self._environ

    @property
    def database_list(self) -> tuple[Database, ...]:
        """Every configured database, `primary` (from DATABASE_ADAPTER) first."""
        return self._databases

    def database(self, name: str) -> Database:
        for database in self._databases:
            if database.name == name:
                return database
        names = ", ".join(d.name for d in self._databases) or "none are configured"
        raise ConfigError("--database", f"no database named {name!r} ({names})")

    def with_restore_target(self, name: str, target: str, setting: str) -> Settings:
        """A copy whose database `name` restores into `target` (a URL or an absolute path).

        For one-off targets such as a drill's scratch database; `setting` names the option in
        errors.
        """
        database = self.database(name)
        value = target.strip()
        cls = _registered(database.adapter, setting)
        if cls.url_schemes:
            check_url_scheme(setting, value, cls.name)
            changed = replace(database, restore_url=SecretStr(value), restore_setting=setting)
        else:
            path = Path(value)
            if not path.is_absolute():
                raise ConfigError(setting, f"{value} is not an absolute path")
            changed = replace(database, restore_path=path, restore_setting=setting)
        copy = self.model_copy()
        copy._environ = dict(self._environ)
        copy._databases = tuple(changed if d.name == name else d for d in self._databases)
        return copy

    def max_shrink(self, database: str | None = None) -> float:
        """The fraction a figure may fall by before a run is suspicious (a database's own, else
        KAMAL_BACKUP_MAX_SHRINK)."""
        for found in self._databases:
            if found.name == database and found.max_shrink is not None:
                return found.max_shrink
        return parse_shrink(self.kamal_backup_max_shrink)

    def secret_variable(self, name: str) -> str | None:
        """The value of a secret setting an adapter declares, e.g. PGPASSWORD."""
        value = getattr(self, name.lower(), None)
        return value.get_secret_value() if isinstance(value, SecretStr) else None

    @property
    def host(self) -> str:
        return self.restic_host or self.app_name

    @property
    def state_dir(self) -> Path:
        base = self.kamal_backup_state_dir or default_state_dir(self._environ)
        return base / self.app_name

    @property
    def retention(self) -> dict[str, int]:
        return {
            "keep_last": self.restic_keep_last,
            "keep_daily": self.restic_keep_daily,
            "keep_weekly": self.restic_keep_weekly,
            "keep_monthly": self.restic_keep_monthly,
            "keep_yearly": self.restic_keep_yearly,
        }

    @property
    def repository_display(self) -> str:
        if self.restic_repository:
            return redact.redact(self.restic_repository)
        return f"(from {self.restic_repository_file})"

    def restic_environment(self) -> dict[str, str]:
        """The environment restic runs with: its own and its backends' variables, nothing else."""
        env = restic_passthrough(self._environ)
        # Values from the model win over stray copies (the model normalised them).
        if self.restic_repository:
            env["RESTIC_REPOSITORY"] = self.restic_repository
        if self.restic_repository_file:
            env["RESTIC_REPOSITORY_FILE"] = str(self.restic_repository_file)
        if self.restic_password:
            env["RESTIC_PASSWORD"] = self.restic_password.get_secret_value()
        if self.restic_password_file:
            env["RESTIC_PASSWORD_FILE"] = str(self.restic_password_file)
        if self.restic_password_command:
            env["RESTIC_PASSWORD_COMMAND"] = self.restic_password_command
        return env


def secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def env_names() -> list[str]:
    """Every environment variable the settings model reads, upper-case, in model order."""
    return [name.upper() for name in Settings.model_fields]


def _config_error(
    location: tuple[Any, ...], message: str, environ: Mapping[str, str], config: ConfigFile | None
) -> ConfigError:
    """The error for a value at `location`, naming where that value came from."""
    keys = tuple(str(part) for part in location) or ("settings",)
    variable = keys[0].upper()
    from_environment = variable in {name.upper() for name in environ}
    if config is not None and not from_environment and keys[0] in config.values:
        return config.error(keys, message)
    if len(keys) > 1:
        return ConfigError(variable, f"{'.'.join(keys[1:])}: {message}")
    return ConfigError(variable, message)


def _validation_message(
    error: ValidationError, environ: Mapping[str, str], config: ConfigFile | None
) -> ConfigError:
    first = error.errors(include_url=False)[0]
    message = str(first.get("msg", "is invalid")).removeprefix("Value error, ")
    if first.get("type") == "missing":
        message = "is required"
    elif first.get("type") == "extra_forbidden":
        message = "is not a known key"
    return _config_error(tuple(first.get("loc") or ()), message, environ, config)


def read_environment(
    env_file: Path | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The process environment laid over the --env-file values (real variables win).

    Settings are read by pydantic-settings' sources; this merged view is what restic's own
    variables pass through from, what `{env: NAME}` looks up, and what the redactor learns.
    """
    merged: dict[str, str] = {}
    if env_file is not None:
        if not env_file.is_file():
            raise ConfigError("--env-file", f"{env_file} does not exist or is not a file")
        try:
            from dotenv import dotenv_values  # only when an env file is named

            values = dotenv_values(env_file)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                "--env-file", f"cannot read {env_file}: {exc.__class__.__name__}"
            ) from None
        merged.update({k: v for k, v in values.items() if v is not None})
    merged.update(os.environ if base is None else base)
    return merged


@contextmanager
def _sources(inputs: _Inputs) -> Iterator[None]:
    token = _INPUTS.set(inputs)
    try:
        yield
    finally:
        _INPUTS.reset(token)


def config_path(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """--config, else KAMAL_BACKUP_CONFIG (from the environment or --env-file), else none."""
    if explicit is not None:
        return explicit
    named = environ.get("KAMAL_BACKUP_CONFIG", "").strip()
    return Path(named) if named else None


def load_settings(
    env_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    config: Path | None = None,
) -> Settings:
    """Builds and cross-checks the settings; raises ConfigError naming the variable at fault.

    Precedence, highest first: the process environment (or `environ`), `env_file`, the YAML
    file (`config` or KAMAL_BACKUP_CONFIG), the defaults.
    """
    merged = read_environment(env_file, environ)
    redactor = redact.current()
    redactor.add_environment(merged)
    base = dict(os.environ if environ is None else environ)

    _reject_duplicate_database_names(merged)
    path = config_path(config, merged)
    known = set(Settings.model_fields)
    config_file = read_config_file(path, merged, known) if path is not None else None
    if config_file is not None:
        _learn_secrets(config_file.values)
    try:
        with _sources(_Inputs(environ=base, env_file=env_file, config=config_file)):
            settings = Settings()  # type: ignore[call-arg]  # values come from the sources
    except ValidationError as error:
        raise _validation_message(error, merged, config_file) from None
    except SettingsError as error:
        # The only values pydantic-settings decodes itself are JSON fields, i.e. DATABASES.
        field = "databases" if "databases" in str(error) else "settings"
        raise ConfigError(field.upper(), "is not valid JSON") from None
    settings._environ.update(merged)
    for url in (
        settings.kamal_backup_healthcheck_url,
        settings.kamal_backup_ntfy_url,
        settings.kamal_backup_webhook_url,
    ):
        # The path of a ping, topic or webhook URL is its secret (a check's UUID, a Slack token).
        if url is not None:
            # (Short paths such as /hook are common words, not secrets: masking them would garble
            # every log line that mentions a webhook.)
            url_path = urlsplit(url.get_secret_value()).path.strip("/")
            redactor.add(url.get_secret_value(), url_path if len(url_path) >= 8 else None)
    settings._databases = _resolve_databases(settings, merged, config_file)
    _cross_check(settings)
    return settings


def _reject_duplicate_database_names(environ: Mapping[str, str]) -> None:
    """DATABASES naming a database twice is an error: JSON decoding would keep the last silently."""
    text = next((v for k, v in environ.items() if k.upper() == "DATABASES" and v.strip()), None)
    if text is None:
        return
    try:
        # Every object decodes to its raw pairs; the outermost one holds the database names.
        top = json.loads(text, object_pairs_hook=lambda pairs: pairs)
    except ValueError:
        return  # pydantic-settings reports invalid JSON itself, naming DATABASES
    if not isinstance(top, list):
        return
    names = [name for name, _ in top]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError("DATABASES", f"names the database {name!r} twice")


def _learn_secrets(values: Mapping[str, Any]) -> None:
    """Teaches the redactor the secrets written into the config file, as for the environment."""
    redact.current().add_environment(
        {key.upper(): value for key, value in values.items() if isinstance(value, str)}
    )
    databases = values.get("databases")
    if isinstance(databases, dict):
        for entry in databases.values():
            if isinstance(entry, dict):
                for key in ("url", "restore_url"):
                    if isinstance(entry.get(key), str):
                        redact.current().add_environment({key.upper(): entry[key]})


def _resolve_databases(
    settings: Settings, environ: Mapping[str, str], config: ConfigFile | None
) -> tuple[Database, ...]:
    """The primary database (DATABASE_ADAPTER and friends) and every named one, checked."""
    found: list[Database] = []
    adapter = settings.database_adapter
    if adapter is None and not settings.databases:
        raise ConfigError(
            "DATABASE_ADAPTER",
            "is required (postgres, mysql or sqlite; none for a files-only app)",
        )
    if adapter is not None and adapter != NO_DATABASE:
        found.append(_primary(settings, adapter))
    for name, entry in settings.databases.items():

        def fail(key: str, problem: str, name: str = name) -> ConfigError:
            location = ("databases", name, key) if key else ("databases", name)
            return _config_error(location, problem, environ, config)

        if not APP_NAME_PATTERN.match(name):
            raise fail("", "a database name must be letters, digits, '.', '_' or '-'")
        if any(database.name == name for database in found):
            raise fail("", f"duplicate database name {name!r} (DATABASE_ADAPTER defines primary)")
        cls = _registered(entry.adapter, f"databases.{name}.adapter")
        if entry.url is not None and entry.path is not None:
            raise fail("path", "a database has either a url or a path, not both")
        if entry.restore_url is not None and entry.restore_path is not None:
            raise fail("restore_path", "a database has either a restore_url or a restore_path")
        wants_url = bool(cls.url_schemes)
        source = entry.url if wants_url else entry.path
        if source is None:
            raise fail("url" if wants_url else "path", f"is required for adapter {cls.name}")
        if (entry.path if wants_url else entry.url) is not None:
            raise fail(
                "path" if wants_url else "url",
                f"adapter {cls.name} takes a {'url' if wants_url else 'path'}",
            )
        setting_prefix = f"databases.{name}."
        for key, value in (("url", entry.url), ("restore_url", entry.restore_url)):
            if wants_url and value is not None:
                problem = url_scheme_problem(
                    secret(value) or "", f"adapter {cls.name}", cls.url_schemes
                )
                if problem:
                    raise fail(key, problem)
        found.append(
            Database(
                name=name,
                adapter=cls.name,
                url=entry.url if wants_url else None,
                path=entry.path if not wants_url else None,
                restore_url=entry.restore_url if wants_url else None,
                restore_path=entry.restore_path if not wants_url else None,
                source_setting=setting_prefix + ("url" if wants_url else "path"),
                restore_setting=setting_prefix + ("restore_url" if wants_url else "restore_path"),
                max_shrink=parse_shrink(entry.max_shrink) if entry.max_shrink else None,
            )
        )
    return tuple(found)


def _primary(settings: Settings, adapter: str) -> Database:
    """The seed's single database, named primary, from its original variables."""
    cls = _registered(adapter, "DATABASE_ADAPTER")
    if not cls.url_schemes:
        if settings.sqlite_database_path is None:
            raise ConfigError(
                "SQLITE_DATABASE_PATH", f"is required when DATABASE_ADAPTER={adapter}"
            )
        return Database(
            name=PRIMARY,
            adapter=adapter,
            url=None,
            path=settings.sqlite_database_path,
            restore_url=None,
            restore_path=settings.restore_sqlite_database_path,
            source_setting="SQLITE_DATABASE_PATH",
            restore_setting="RESTORE_SQLITE_DATABASE_PATH",
        )
    if settings.database_url is None:
        raise ConfigError("DATABASE_URL", f"is required when DATABASE_ADAPTER={adapter}")
    for setting, value in (
        ("DATABASE_URL", settings.database_url),
        ("RESTORE_DATABASE_URL", settings.restore_database_url),
    ):
        if value is not None:
            problem = url_scheme_problem(
                secret(value) or "", f"DATABASE_ADAPTER={adapter}", cls.url_schemes
            )
            if problem:
                raise ConfigError(setting, problem)
    return Database(
        name=PRIMARY,
        adapter=adapter,
        url=settings.database_url,
        path=None,
        restore_url=settings.restore_database_url,
        restore_path=None,
        source_setting="DATABASE_URL",
        restore_setting="RESTORE_DATABASE_URL",
    )


def _cross_check(settings: Settings) -> None:
    if not (settings.restic_repository or settings.restic_repository_file):
        raise ConfigError("RESTIC_REPOSITORY", "is required (or RESTIC_REPOSITORY_FILE)")
    if not (
        settings.restic_password
        or settings.restic_password_file
        or settings.restic_password_command
    ):
        raise ConfigError(
            "RESTIC_PASSWORD", "is required (or RESTIC_PASSWORD_FILE / RESTIC_PASSWORD_COMMAND)"
        )
    if not settings.database_list and not settings.backup_paths:
        raise ConfigError(
            "BACKUP_PATHS",
            "is required when there is no database (DATABASE_ADAPTER=none): "
            "a backup needs a database or files",
        )

    if not settings.kamal_backup_allow_suspicious_paths:
        for path in settings.backup_paths:
            if is_system_root(path):
                resolved = resolve_path(path)
                via = "" if str(resolved) == str(path) else f" (resolves to {resolved})"
                raise ConfigError(
                    "BACKUP_PATHS",
                    f"{path}{via} is a system directory",
                    hint="set KAMAL_BACKUP_ALLOW_SUSPICIOUS_PATHS=true if you really mean it",
                )


def url_scheme_problem(url: str, expected: str, schemes: tuple[str, ...]) -> str | None:
    """What is wrong with a database URL for this adapter (a name or DATABASE_ADAPTER=x)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL"
    scheme = parts.scheme.lower()
    if not scheme or "://" not in url:
        return f"is not a URL; expected {schemes[0]}://user@host:port/database"
    if scheme not in schemes:
        return (
            f"scheme {scheme}:// does not match {expected} "
            f"(expected {' or '.join(s + '://' for s in schemes)})"
        )
    if not parts.path.strip("/"):
        return "names no database (expected .../database)"
    return None


def check_url_scheme(setting: str, url: str, adapter: str) -> None:
    """Raises ConfigError naming `setting` when `url` is not a database URL for `adapter`."""
    cls = _registered(adapter, setting)
    problem = url_scheme_problem(url, f"adapter {cls.name}", cls.url_schemes)
    if problem:
        raise ConfigError(setting, problem)
