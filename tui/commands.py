"""The command palette's own commands (Ctrl+O): every action of the app, found by its words."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from tui.app import KamalBackupApp


def app_commands(app: KamalBackupApp) -> list[tuple[str, str, Callable[[], object]]]:
    """(name, help, callback) for each command; the help screen lists the same actions."""
    return [
        ("Back up now", "b: a database and files backup run", app.action_backup),
        ("Check the repository", "c: restic check", app.action_check),
        ("Refresh", "r: read the repository again", app.action_refresh),
        ("Open overview", "o", partial(app.action_show, "overview")),
        ("Open snapshots", "s", partial(app.action_show, "snapshots")),
        ("Open evidence", "e", partial(app.action_show, "evidence")),
        ("Open restore drill", "d", partial(app.action_show, "drill")),
        ("Start a restore drill", "d: choose, confirm with the app name", app.start_drill),
        ("Save evidence to a file", "e then w", app.save_evidence),
        ("Toggle the log", "l: small, large, hidden", app.action_toggle_log),
        ("Cancel the running operation", "x", app.action_cancel_operation),
        ("Help: every key", "?", app.action_help),
    ]


class AppCommands(Provider):
    """kamal-backup's commands in the palette, beside Textual's own."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        return app_commands(cast("KamalBackupApp", self.app))

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
