"""One redactor for every message, log line, state file and evidence document.

Which text a known secret value masks:

- a *strong* value (at least 8 characters and not only letters, e.g. `correct-horse-7731`, or
  at least 16 letters) is masked wherever it appears, even inside other text;
- a *weak* value (shorter than 8 characters, or up to 15 letters, e.g. `hunter`, `password`) is
  masked where it stands as a token of its own (not inside a longer word: a password `pass` leaves
  `password` alone), except where that token is a word of kamal-backup's own messages
  (`MESSAGE_WORDS`: `password`, `wrong`, `repository`, ...). Masking those would garble the
  message (`wrong restic repository [REDACTED]`) and, by its very position, tell the password.

Whatever the value, credential positions are always masked: the password of a URL's user info
(`postgres://app:pw@db`) and `password=` / `token:` style pairs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote

MASK = "[REDACTED]"

# Environment variable names whose values are secrets wherever they appear.
_SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|PWD|PASS$|SECRET|TOKEN|ACCESS_KEY|ACCOUNT_KEY|API_KEY|PRIVATE_KEY"
    r"|CREDENTIALS|SAS|_KEY$|_KEY_ID$)",
    re.IGNORECASE,
)
# Names that match the pattern above but hold no secret.
_NOT_SECRET = {
    "PWD",
    "OLDPWD",
    "RESTIC_PASSWORD_FILE",
    "RESTIC_PASSWORD_COMMAND",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "RESTIC_KEY_HINT",
}

# scheme://user:password@host  (password is everything up to the last @ before the host)
_URL_USERINFO = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s/]*)@"
)
# key=value pairs that carry a secret (URL query strings, libpq conninfo, CLI echoes)
_KEY_VALUE = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|sslpassword|secret|token|access_key|secret_key"
    r"|aws_secret_access_key|aws_session_token)\b\s*[=:]\s*)"
    # MariaDB's "(using password: YES)" says whether one was sent; it is not the password.
    r"(?P<value>(?!(?:YES|NO)\))[^\s&;,'\"]+)",
    re.IGNORECASE,
)
_MIN_SECRET_LENGTH = 4
_STRONG_LENGTH = 8
# Words kamal-backup's own messages (and restic's and the database tools' common errors) use:
# a weak secret equal to one of them is masked in credential positions only.
MESSAGE_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "at",
        "backup",
        "backups",
        "by",
        "can",
        "cannot",
        "check",
        "command",
        "connection",
        "could",
        "database",
        "denied",
        "does",
        "error",
        "exist",
        "exists",
        "failed",
        "fatal",
        "file",
        "files",
        "for",
        "from",
        "host",
        "in",
        "invalid",
        "is",
        "key",
        "latest",
        "list",
        "lock",
        "locked",
        "missing",
        "no",
        "not",
        "of",
        "on",
        "or",
        "pass",
        "password",
        "passwords",
        "refused",
        "repository",
        "restic",
        "restore",
        "run",
        "secret",
        "snapshot",
        "snapshots",
        "the",
        "to",
        "token",
        "user",
        "wrong",
    ]
)
# restic prints every URL's userinfo as `user:***@`, also when the URL has none (`http://:***@`).
_RESTIC_MASK = "***"


def _mask_userinfo(match: re.Match[str]) -> str:
    scheme, user, password = match.group("scheme"), match.group("user"), match.group("pw")
    if not password:
        return match.group(0)
    if password == _RESTIC_MASK and not user:
        return scheme  # restic's placeholder for no credentials at all: invent none
    return f"{scheme}{user}:{MASK}@"


def is_secret_name(name: str) -> bool:
    return name not in _NOT_SECRET and bool(_SECRET_NAME.search(name))


def _is_strong(value: str) -> bool:
    return len(value) >= 2 * _STRONG_LENGTH or (
        len(value) >= _STRONG_LENGTH and not value.isalpha()
    )


def _token_pattern(value: str) -> re.Pattern[str]:
    """`value` as a token of its own: not preceded or followed by a letter, digit, - or _."""
    return re.compile(rf"(?<![\w-]){re.escape(value)}(?![\w-])")


class Redactor:
    """Replaces known secret values and credential-shaped text with a mask (see the module)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *values: str | None) -> None:
        for value in values:
            if not value:
                continue
            for candidate in (value, unquote(value)):
                if len(candidate) >= _MIN_SECRET_LENGTH:
                    self._secrets.add(candidate)
            self._add_url_password(value)

    def add_environment(self, environ: Mapping[str, str]) -> None:
        for name, value in environ.items():
            if is_secret_name(name):
                self.add(value)
            elif "://" in value:
                self._add_url_password(value)

    def _add_url_password(self, value: str) -> None:
        for match in _URL_USERINFO.finditer(value):
            password = match.group("pw")
            for candidate in (password, unquote(password)):
                if len(candidate) >= _MIN_SECRET_LENGTH:
                    self._secrets.add(candidate)

    def __call__(self, text: str) -> str:
        return self.redact(text)

    def redact(self, text: str) -> str:
        if not text:
            return text
        # Longest first, so a secret containing another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret not in text:
                continue
            if _is_strong(secret):
                text = text.replace(secret, MASK)
            elif secret.lower() not in MESSAGE_WORDS:
                text = _token_pattern(secret).sub(MASK, text)
        text = _URL_USERINFO.sub(_mask_userinfo, text)
        return _KEY_VALUE.sub(lambda m: f"{m.group('key')}{MASK}", text)

    def redact_obj(self, value: object) -> object:
        """Redacts every string inside a JSON-like structure."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {k: self.redact_obj(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_obj(v) for v in value]
        return value


_current = Redactor()


def current() -> Redactor:
    """The process-wide redactor, filled in when settings are loaded."""
    return _current


def redact(text: str) -> str:
    return _current.redact(text)


class RedactingFilter(logging.Filter):
    """Masks secrets in every record before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = _current.redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = _current.redact(record.exc_text)
        return True
