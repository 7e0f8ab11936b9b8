"""Each package the Dockerfile installs really ships the program the code runs, where it looks.

No Docker engine runs here, so the packages themselves are fetched from Debian trixie (the
image's base) and unpacked: restic in /usr/bin, pg_dump under the adapter's CLIENT_ROOT, etc.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kamal_backup.databases.postgres import CLIENT_ROOT
from kamal_backup.tools import EXTERNAL_TOOLS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TRIXIE_PG_MAJOR = 17  # trixie's own client; the PostgreSQL project's repository has the same layout


@pytest.fixture(scope="session")
def debs() -> Path:
    packages = sorted({p.format(major=TRIXIE_PG_MAJOR) for p in EXTERNAL_TOOLS.values()})
    work = ROOT / ".tools" / "image-packages"
    stamp = work / "packages.txt"
    if not stamp.exists() or stamp.read_text() != "\n".join(packages):
        subprocess.run(["rm", "-rf", str(work)], check=True)
        result = subprocess.run(
            [str(ROOT / "bin" / "fetch-debs"), "trixie", str(work), *packages],
            capture_output=True,
            text=True,
            env={**os.environ, "FETCH_DEBS_KEEP": "1"},
        )
        if result.returncode != 0:
            pytest.fail(f"cannot fetch {packages} from Debian trixie:\n{result.stderr}")
        stamp.write_text("\n".join(packages))
    return work / "debs"


@pytest.mark.parametrize("program", sorted(EXTERNAL_TOOLS))
def test_the_package_ships_the_program(debs: Path, program: str) -> None:
    package = EXTERNAL_TOOLS[program].format(major=TRIXIE_PG_MAJOR)
    debs = list(debs.glob(f"{package}_*.deb"))
    assert len(debs) == 1, f"{package} was not fetched: {sorted(p.name for p in debs.iterdir())}"
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(debs[0])], capture_output=True, text=True, check=True
    ).stdout
    shipped = {line.split(" -> ")[0].split()[-1].removeprefix(".") for line in listing.splitlines()}
    if "{major}" in EXTERNAL_TOOLS[program]:
        path = f"{CLIENT_ROOT}/{TRIXIE_PG_MAJOR}/bin/{program}"
    else:
        path = f"/usr/bin/{program}"
    assert path in shipped, f"{package} does not ship {path}"
