"""Healthchecks-style pings (healthchecks.io, Uptime Kuma, Cronitor): a dead-man's switch for backups."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from kamal_backup.notify.events import Event, HttpRequest

NAME = "healthchecks"
BODY_LIMIT = 10 * 1024


def ping_url(url: str, suffix: str) -> str:
    """`url` with /start, /fail or /log appended to its path (a query string stays last)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/") + suffix if suffix else parts.path
    return urlunsplit(parts._replace(path=path))


def failure_body(event: Event) -> bytes:
    """The redacted error first, then as much of the log tail as fits in 10 KB."""
    head = f"{event.headline}\n".encode()[: BODY_LIMIT // 2]
    lines: list[bytes] = []
    room = BODY_LIMIT - len(head) - len(b"\nlog tail:\n")
    for line in reversed(event.log_tail):
        encoded = line.encode() + b"\n"
        if len(encoded) > room:
            break
        lines.insert(0, encoded)
        room -= len(encoded)
    tail = b"\nlog tail:\n" + b"".join(lines) if lines else b""
    return head + tail


class Healthchecks:
    """Pings only for backups: a check or restore succeeding must not reset the backup's timer."""

    name = NAME

    def __init__(self, url: str) -> None:
        self.url = url

    def request(self, event: Event) -> HttpRequest | None:
        if event.event == "test":
            # /log records an event without changing the check's up/down state.
            return HttpRequest(ping_url(self.url, "/log"), body=f"{event.headline}\n".encode())
        if event.operation != "backup":
            return None
        if event.event == "start":
            return HttpRequest(ping_url(self.url, "/start"), method="GET")
        if event.event == "failure":
            return HttpRequest(
                ping_url(self.url, "/fail"),
                body=failure_body(event),
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
        return HttpRequest(ping_url(self.url, ""), method="GET")  # success and recovery
