"""The headless core never imports Textual."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import kamal_backup


def test_headless_modules_do_not_import_textual() -> None:
    modules = sorted(
        m.name
        for m in pkgutil.walk_packages(kamal_backup.__path__, "kamal_backup.")
        if m.name != "kamal_backup.__main__"
    )
    assert "kamal_backup.cli" in modules and "kamal_backup.services.backup" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(leaked))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
