"""kamal-backup: encrypted, restic-backed backups for apps deployed with Kamal."""

__version__ = "0.1.0"
