"""What restic runs with and where the state directory is, from environment variables alone.

Kept apart from the settings model so that `prestart` can use it before pydantic is imported;
the settings use the same functions, so both arrive at the same environment for the same
variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

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
# restic's own variables that are settings too: the model's (normalised) values replace them.
MODEL_RESTIC_NAMES = (
    "RESTIC_REPOSITORY",
    "RESTIC_PASSWORD",
    "RESTIC_PASSWORD_FILE",
    "RESTIC_PASSWORD_COMMAND",
    "RESTIC_REPOSITORY_FILE",
    "RESTIC_HOST",
)


def restic_passthrough(environ: Mapping[str, str]) -> dict[str, str]:
    """restic's and its backends' variables of `environ`, without MODEL_RESTIC_NAMES."""
    env = {
        name: value
        for name, value in environ.items()
        if name in PASSTHROUGH_NAMES or name.startswith(PASSTHROUGH_PREFIXES)
    }
    env.setdefault("PATH", os.defpath)
    for name in MODEL_RESTIC_NAMES:
        env.pop(name, None)
    return env


def default_state_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_STATE_HOME") or str(
        Path(environ.get("HOME", "~")).expanduser() / ".local/state"
    )
    return Path(base) / "kamal-backup"


# The state directory's files that a guess made before the settings exist reads (state.py
# writes them).
LAST_SUCCESS = "last_success.json"


def last_restore_file(kind: str) -> str:
    return f"last_restore_{kind}.json"
