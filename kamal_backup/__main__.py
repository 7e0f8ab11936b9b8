"""Allows `python -m kamal_backup`."""

from kamal_backup.entry import main

main()
