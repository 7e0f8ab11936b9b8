"""Allows `python -m kamal_backup`."""

from kamal_backup.cli import main

main()
