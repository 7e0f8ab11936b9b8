"""The settings model: every environment variable kamal-backup reads, validated in one place."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from kamal_backup import redact
from kamal_backup.errors import ConfigError

Adapter = Literal["postgres", "mysql", "sqlite"]

ADAPTER_ALIASES: dict[str, Adapter] = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "mysql": "mysql",
    "mysql2": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
}
URL_SCHEMES: dict[Adapter, tuple[str, ...]] = {
    "postgres": ("postgres", "postgresql"),
    "mysql": ("mysql", "mysql2", "mariadb"),
    "sqlite": (),
}

# Directories that are never a sensible backup source or restore target on their own.
SYSTEM_ROOTS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/snap",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/usr/bin",
        "/usr/lib",
        "/usr/local",
        "/usr/sbin",
        "/var",
        "/var/lib",
        "/var/log",
        "/var/run",
        "/var/tmp",
    }
)

APP_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")
_FRACTION = re.compile(r"^(\d+)/(\d+)$")
_SIZE = re.compile(r"^\d+[KMGT]?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Environment variables restic and its backends read; they pass through untouched.
PASSTHROUGH_PREFIXES = (
    "RESTIC_",
    "AWS_",
    "B2_",
    "AZURE_",
    "GOOGLE_",
    "GS_",
    "RCLONE_",
    "OS_",
    "ST_",
    "SWIFT_",
)
PASSTHROUGH_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "LC_ALL",
        "TZ",
        "USER",
        "XDG_CACHE_HOME",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSH_AUTH_SOCK",
    }
)


def default_state_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_STATE_HOME") or str(
        Path(environ.get("HOME", "~")).expanduser() / ".local/state"
    )
    return Path(base) / "kamal-backup"


def resolve_path(path: Path) -> Path:
    """The absolute, normalised, symlink-resolved form of a path (it need not exist)."""
    # PurePosixPath keeps a leading "//"; collapse it so "//etc" is seen as "/etc".
    text = re.sub(r"^/+", "/", str(path))
    return Path(os.path.realpath(text))


def is_system_root(path: Path) -> bool:
    return str(resolve_path(path)) in SYSTEM_ROOTS


def split_paths(raw: str) -> list[str]:
    return [part.strip() for part in re.split(r"[:\n]", raw) if part.strip()]


class Settings(BaseSettings):
    """kamal-backup's configuration. Field names are the environment variables, lower-cased."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    app_name: str = Field(
        description="Name of the app; used in tags, file names and the restic host.",
        examples=["shop"],
    )
    database_adapter: Adapter = Field(
        description="postgres, mysql or sqlite (aliases: postgresql, mariadb, mysql2, sqlite3).",
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
    backup_paths: tuple[Path, ...] = Field(
        (),
        description="Mounted directories to back up, colon- or newline-separated.",
        examples=["/data/storage"],
    )
    backup_excludes: tuple[str, ...] = Field(
        (),
        description="Glob patterns left out of the file snapshot (restic --exclude), "
        "colon- or newline-separated; a relative pattern (*.tmp, tmp/) matches at any depth "
        "inside BACKUP_PATHS, never in their parents.",
        examples=["*.tmp:/data/storage/cache"],
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
        "n/t, a size such as 500M, or empty for none.",
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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings() hands over the merged environment explicitly, so --env-file and the
        # tests see exactly one source of truth.
        return (init_settings,)

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
        if isinstance(value, str):
            normalized = ADAPTER_ALIASES.get(value.strip().lower())
            if normalized is None:
                raise ValueError(
                    "must be postgres, mysql or sqlite "
                    "(aliases: postgresql, mariadb, mysql2, sqlite3)"
                )
            return normalized
        return value

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
        return tuple(Path(re.sub(r"^/+", "/", os.path.normpath(p))) for p in value)

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
        raise ValueError("must be a percentage (5%), a fraction (1/10) or a size (500M)")

    # Derived values -----------------------------------------------------------------------

    @property
    def environ(self) -> Mapping[str, str]:
        """The environment the settings were read from (process environment over --env-file)."""
        return self._environ

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
        env = {
            name: value
            for name, value in self._environ.items()
            if name in PASSTHROUGH_NAMES or name.startswith(PASSTHROUGH_PREFIXES)
        }
        env.setdefault("PATH", os.defpath)
        # Values from the model win over stray copies (the model normalised them).
        for name in (
            "RESTIC_REPOSITORY",
            "RESTIC_PASSWORD",
            "RESTIC_PASSWORD_FILE",
            "RESTIC_PASSWORD_COMMAND",
            "RESTIC_REPOSITORY_FILE",
            "RESTIC_HOST",
        ):
            env.pop(name, None)
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


def _validation_message(error: ValidationError) -> ConfigError:
    first = error.errors(include_url=False)[0]
    location = first.get("loc") or ("settings",)
    setting = str(location[0]).upper()
    message = str(first.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ")
    if first.get("type") == "missing":
        message = "is required"
    return ConfigError(setting, message)


def read_environment(
    env_file: Path | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The process environment laid over the --env-file values (real variables win)."""
    merged: dict[str, str] = {}
    if env_file is not None:
        if not env_file.is_file():
            raise ConfigError("--env-file", f"{env_file} does not exist or is not a file")
        try:
            values = dotenv_values(env_file)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                "--env-file", f"cannot read {env_file}: {exc.__class__.__name__}"
            ) from None
        merged.update({k: v for k, v in values.items() if v is not None})
    merged.update(os.environ if base is None else base)
    return merged


def load_settings(
    env_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Builds and cross-checks the settings; raises ConfigError naming the variable at fault."""
    merged = read_environment(env_file, environ)
    redactor = redact.current()
    redactor.add_environment(merged)

    lowered = {name.lower(): value for name, value in merged.items()}
    values = {
        name: lowered[name] for name in Settings.model_fields if lowered.get(name, "").strip() != ""
    }
    try:
        settings = Settings.model_validate(values)
    except ValidationError as error:
        raise _validation_message(error) from None
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
            path = urlsplit(url.get_secret_value()).path.strip("/")
            redactor.add(url.get_secret_value(), path if len(path) >= 8 else None)
    _cross_check(settings)
    return settings


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

    adapter = settings.database_adapter
    if adapter == "sqlite":
        if settings.sqlite_database_path is None:
            raise ConfigError("SQLITE_DATABASE_PATH", "is required when DATABASE_ADAPTER=sqlite")
    else:
        if settings.database_url is None:
            raise ConfigError("DATABASE_URL", f"is required when DATABASE_ADAPTER={adapter}")
        check_url_scheme("DATABASE_URL", secret(settings.database_url) or "", adapter)
        if settings.restore_database_url is not None:
            check_url_scheme(
                "RESTORE_DATABASE_URL", secret(settings.restore_database_url) or "", adapter
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


def check_url_scheme(setting: str, url: str, adapter: Adapter) -> None:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(setting, "is not a valid URL") from None
    scheme = parts.scheme.lower()
    if not scheme or "://" not in url:
        raise ConfigError(
            setting, f"is not a URL; expected {URL_SCHEMES[adapter][0]}://user@host:port/database"
        )
    if scheme not in URL_SCHEMES[adapter]:
        raise ConfigError(
            setting,
            f"scheme {scheme}:// does not match DATABASE_ADAPTER={adapter} "
            f"(expected {' or '.join(s + '://' for s in URL_SCHEMES[adapter])})",
        )
    if not parts.path.strip("/"):
        raise ConfigError(setting, "names no database (expected .../database)")
