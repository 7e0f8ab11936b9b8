"""The built wheel installs into a fresh virtualenv (as pipx / uv tool do) and runs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kamal_backup import __version__

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


def test_built_wheel_installs_and_runs(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT)
    wheels = list(dist.glob("kamal_backup-*.whl"))
    assert [w.name for w in wheels] == [f"kamal_backup-{__version__}-py3-none-any.whl"]
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "tui/app.tcss" in names and "kamal_backup/cli.py" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "docs/"))]
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheels[0]).read(metadata).decode()
    assert "Requires-Python: >=3.11" in text and "textual==" in text

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    pip = venv / "bin" / "pip"
    run(pip, "install", "-q", "--constraint", ROOT / "requirements.lock", wheels[0])
    tool = venv / "bin" / "kamal-backup"
    assert run(tool, "version", cwd=tmp_path).stdout.strip() == f"kamal-backup {__version__}"
    help_text = run(tool, "--help", cwd=tmp_path).stdout
    for command in ("backup", "restore-db", "evidence", "health", "tui"):
        assert command in help_text
    # The TUI's stylesheet and modules came with the wheel, not from this checkout.
    probe = run(
        venv / "bin" / "python",
        "-c",
        "import tui, tui.app, pathlib; print(pathlib.Path(tui.app.__file__).parent)",
        cwd=tmp_path,
    )
    assert Path(probe.stdout.strip()).is_relative_to(venv)
    assert (Path(probe.stdout.strip()) / "app.tcss").is_file()
