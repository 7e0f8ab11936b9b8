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


def _modules_loaded_by(*args: str) -> set[str]:
    """The modules `kamal-backup ARGS` imports, as `python -X importtime` reports them."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kamal_backup", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("kamal-backup ") or "Usage: kamal-backup" in result.stdout
    return {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_version_and_help_start_without_settings_models_or_textual() -> None:
    # Issue 14: start-up is what an operator waits for on every command; pydantic-settings
    # (the settings model) and Textual are imported only by the commands that use them.
    for args in (["version"], ["--version"], ["--help"]):
        loaded = _modules_loaded_by(*args)
        assert "kamal_backup.entry" in loaded, args  # the report is real, not empty
        if args != ["--help"]:
            # The version answers before the CLI module (Typer, logging, processes) is imported.
            assert not {"kamal_backup.cli", "typer", "logging"} & loaded, (args, sorted(loaded))
        heavy = {
            m
            for m in loaded
            if m.split(".")[0] in {"pydantic_settings", "textual", "yaml"}
            or m in {"kamal_backup.settings", "kamal_backup.models", "rich.console"}
        }
        assert heavy == set(), (args, sorted(heavy))
