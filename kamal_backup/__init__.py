"""kamal-backup: encrypted, restic-backed backups for apps deployed with Kamal."""

import os

__version__ = "0.1.0"

# kamal-backup uses no pydantic plugins; looking for them scans every installed distribution's
# entry points on the first model built, tens of milliseconds of each command's start-up.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
