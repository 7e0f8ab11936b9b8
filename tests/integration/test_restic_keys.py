"""The template repository's cheap key (tests/restic_keys.py) is a real restic key."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import RESTIC_PASSWORD
from tests.restic_keys import CHEAP_N


def restic(repo: Path, password: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["restic", "--repo", str(repo), *args],
        env={**os.environ, "RESTIC_PASSWORD": password},
        capture_output=True,
        text=True,
    )


def test_the_template_key_is_cheap_and_restic_opens_it_only_with_the_password(
    template_repository: Path,
) -> None:
    (keyfile,) = (template_repository / "keys").iterdir()
    assert json.loads(keyfile.read_text())["N"] == CHEAP_N
    assert restic(template_repository, RESTIC_PASSWORD, "check").returncode == 0
    wrong = restic(template_repository, "not-the-password", "cat", "config")
    assert wrong.returncode == 12, wrong.stderr
    assert "wrong password" in wrong.stderr
