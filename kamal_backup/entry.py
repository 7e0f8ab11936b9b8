"""The `kamal-backup` command's entry point.

`kamal-backup version` (or `--version`, `-v`) answers here, before the CLI module is imported:
Typer, logging and the process helpers cost several times the answer itself. Every other
command goes to the CLI (kamal_backup.cli.main), which answers `version` the same way.
"""

from __future__ import annotations

import sys

from kamal_backup import __version__

VERSION_ARGUMENTS = (["version"], ["--version"], ["-v"])


def main() -> None:
    if sys.argv[1:] in VERSION_ARGUMENTS:
        sys.stdout.write(f"kamal-backup {__version__}\n")
        return
    from kamal_backup.cli import main as cli_main

    cli_main()
