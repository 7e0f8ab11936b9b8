"""The image installs every program the code runs, and the Dockerfile passes hadolint."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import kamal_backup
from kamal_backup.services.evidence import OTHER_CLIENTS
from kamal_backup.tools import EXTERNAL_TOOLS, FALLBACK_TOOLS

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
# Debian marks these Essential: every Debian image has them.
ESSENTIAL = {"coreutils", "util-linux"}
FINDERS = {"find_tool", "require_tool", "tool_version", "which", "tool", "find_client"}
PROGRAM = re.compile(r"^[a-z][a-z0-9_.-]*$")


def programs_the_code_runs() -> set[str]:
    """String literals handed to the functions that find or run a program, across the package."""
    found: set[str] = set()
    for source in Path(kamal_backup.__file__).parent.rglob("*.py"):
        tree = ast.parse(source.read_text(), str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                if name in FINDERS:
                    found |= {
                        arg.value
                        for arg in node.args
                        if isinstance(arg, ast.Constant)
                        and isinstance(arg.value, str)
                        and PROGRAM.match(arg.value)
                    }
    found |= set(OTHER_CLIENTS)
    found.add("restic")  # Restic(binary="restic")
    return found


def installed_packages() -> set[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    packages: set[str] = set()
    for command in re.findall(r"apt-get install ([^&]+)", text):
        packages |= {word for word in command.split() if not word.startswith(("-", "$"))}
    majors = re.search(r'ARG PG_MAJORS="([0-9 ]+)"', text)
    assert majors, "the Dockerfile names the PostgreSQL client majors in ARG PG_MAJORS"
    assert "postgresql-client-${major}" in text
    packages |= {f"postgresql-client-{major}" for major in majors.group(1).split()}
    return packages


def test_every_program_the_code_runs_is_declared() -> None:
    found = programs_the_code_runs()
    assert {"pg_dump", "psql", "mariadb-dump", "cat", "setpriv"} <= found  # the scan works
    undeclared = found - set(EXTERNAL_TOOLS) - set(FALLBACK_TOOLS)
    assert not undeclared, f"add these to kamal_backup.tools.EXTERNAL_TOOLS: {undeclared}"


def test_the_dockerfile_installs_every_declared_program() -> None:
    packages = installed_packages()
    majors = sorted(
        int(p.rsplit("-", 1)[1]) for p in packages if p.startswith("postgresql-client-")
    )
    assert len(majors) >= 4 and majors[-1] >= 17, majors
    for program, package in EXTERNAL_TOOLS.items():
        if package in ESSENTIAL:
            continue
        wanted = [package.format(major=m) for m in majors] if "{major}" in package else [package]
        missing = [p for p in wanted if p not in packages]
        assert not missing, f"{program}: the Dockerfile does not install {missing}"


def test_the_image_runs_the_scheduler_under_tini_with_a_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["tini", "--"]' in text
    assert 'CMD ["kamal-backup", "schedule"]' in text
    assert 'CMD ["kamal-backup", "health"]' in text
    assert "KAMAL_BACKUP_STATE_DIR=/var/lib/kamal-backup" in text
    assert "COLORTERM=truecolor" in text
    assert re.search(r"FROM python:\$\{PYTHON_VERSION\}-slim-trixie AS build", text)
    assert "COPY --from=build" in text


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is not installed: run bin/test (it comes from requirements.lock)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_documented_restore_targets_exist_and_belong_to_uid_1000() -> None:
    """`restore-files latest /restore/files` (the default) and /restore/db need writable dirs."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    user = re.search(r"useradd [^&]*--uid (\d+)[^&]* (\S+)\s*&&", text)
    assert user and user.group(1) == "1000", "the image's user is uid 1000"
    name = user.group(2)
    made: set[str] = set()
    for options, paths in re.findall(r"install -d ((?:-[ogm] \S+ )+)((?:/\S+ ?)+)", text):
        if f"-o {name}" in options and f"-g {name}" in options:
            made |= set(paths.split())
    assert {"/restore", "/restore/files", "/restore/db"} <= made, made
    # The directories are made before USER switches to uid 1000 (root can chown).
    assert text.index("/restore/files") < text.index("USER 1000:1000")
