"""The kamal-backup terminal UI (Textual); the headless package never imports it."""

from __future__ import annotations

from tui.app import KamalBackupApp, make_app

__all__ = ["KamalBackupApp", "make_app"]
