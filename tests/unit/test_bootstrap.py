"""bin/bootstrap, sourced into an operator's shell, changes only PATH there (no network: the
checkout's .tools and .venv already exist, so it installs nothing)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bash(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_sourcing_leaves_the_callers_shell_options_alone() -> None:
    result = _bash(
        "source bin/bootstrap; echo sourced=$?; set -o | grep -E '^(errexit|nounset|pipefail) '; "
        "false; echo alive; command -v kamal-backup restic"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "sourced=0" in out
    assert "alive" in out
    for option in ("errexit", "nounset", "pipefail"):
        line = next(line for line in out.splitlines() if line.startswith(option))
        assert line.split()[-1] == "off", line
    assert f"{ROOT}/.venv/bin/kamal-backup" in out
    assert "installing" not in result.stderr


def test_a_strict_caller_stays_strict() -> None:
    # bin/test and bin/demo set -euo pipefail themselves before sourcing: that must survive.
    result = _bash(
        "set -euo pipefail; source bin/bootstrap; set -o | grep -E '^errexit '; false; echo alive"
    )
    assert "alive" not in result.stdout
    assert result.stdout.split()[-1] == "on"
    assert result.returncode == 1


def test_a_failing_bootstrap_returns_instead_of_closing_the_shell(tmp_path: Path) -> None:
    # A copy of the script whose checkout lacks its tools and cannot create them (.tools is a file).
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "bootstrap").write_text((ROOT / "bin" / "bootstrap").read_text())
    (tmp_path / ".tools").write_text("not a directory")
    result = subprocess.run(
        ["bash", "-c", "PATH=/usr/bin:/bin; source bin/bootstrap; echo status=$?; echo alive"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "status=1" in result.stdout, result.stderr
    assert "alive" in result.stdout
    assert "bootstrap: failed" in result.stderr
    executed = subprocess.run(
        ["bash", "bin/bootstrap"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert executed.returncode == 1
