"""Parsing DATABASE_URL / RESTORE_DATABASE_URL into the parts a client needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from kamal_backup.errors import ConfigError
from kamal_backup.redact import MASK


@dataclass(frozen=True)
class DatabaseUrl:
    setting: str
    scheme: str
    user: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str
    options: dict[str, str] = field(default_factory=dict)

    def redacted(self) -> str:
        auth = ""
        if self.user:
            auth = self.user + (f":{MASK}" if self.password else "") + "@"
        host = self.host or ""
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{auth}{host}{port}/{self.database}"

    def identity(self, default_port: int) -> tuple[str, int, str]:
        """(host, port, database) with loopback spellings folded, to compare two URLs."""
        host = (self.host or "localhost").lower()
        if host in ("127.0.0.1", "::1", "[::1]"):
            host = "localhost"
        return host, self.port or default_port, self.database


def parse_database_url(setting: str, url: str) -> DatabaseUrl:
    """Splits a database URL; every problem is a ConfigError naming `setting`, never echoing it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(setting, "has an invalid port or host") from None
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ConfigError(setting, "must name exactly one database (…/database)")
    if database.startswith("-"):
        raise ConfigError(setting, "database names may not start with '-'")
    host = unquote(parts.hostname) if parts.hostname else None
    user = unquote(parts.username) if parts.username else None
    for label, value in (("host", host), ("user", user)):
        if value and value.startswith("-"):
            raise ConfigError(setting, f"the {label} may not start with '-'")
    try:
        options = dict(
            parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        )
    except ValueError:
        raise ConfigError(setting, "has a malformed query string") from None
    return DatabaseUrl(
        setting=setting,
        scheme=parts.scheme.lower(),
        user=user,
        password=unquote(parts.password) if parts.password is not None else None,
        host=host,
        port=port,
        database=database,
        options=options,
    )
