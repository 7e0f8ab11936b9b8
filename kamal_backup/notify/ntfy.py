"""ntfy messages: failures and recoveries (and every success with KAMAL_BACKUP_NTFY_ON=all)."""

from __future__ import annotations

from kamal_backup.notify.events import Event, HttpRequest

NAME = "ntfy"

_PRIORITY = {"failure": "high", "recovery": "default", "success": "low", "test": "default"}
_TAGS = {
    "failure": "rotating_light,kamal-backup",
    "recovery": "white_check_mark,kamal-backup",
    "success": "white_check_mark,kamal-backup",
    "test": "bell,kamal-backup",
}
_TITLE = {"failure": "failed", "recovery": "recovered", "success": "succeeded"}


def _header_safe(text: str) -> str:
    """HTTP headers are latin-1: anything else becomes '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")


class Ntfy:
    name = NAME

    def __init__(self, url: str, token: str | None, on: str) -> None:
        self.url = url
        self.token = token
        self.on = on

    def request(self, event: Event) -> HttpRequest | None:
        if event.event == "start" or (event.event == "success" and self.on != "all"):
            return None
        what = (
            "test notification"
            if event.event == "test"
            else f"{event.operation} {_TITLE[event.event]}"
        )
        headers = {
            "Title": _header_safe(f"kamal-backup: {event.app} {what}"),
            "Priority": _PRIORITY[event.event],
            "Tags": _TAGS[event.event],
            "Content-Type": "text/plain; charset=utf-8",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return HttpRequest(self.url, body=event.headline.encode(), headers=headers)
