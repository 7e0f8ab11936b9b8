"""Sends one notification request with the standard library: a timeout, no redirects, two retries.

urllib.request is enough for a POST with headers and a timeout, and it adds nothing to the image;
an HTTP client library would bring several packages for no feature used here.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from kamal_backup import __version__
from kamal_backup.notify.events import HttpRequest
from kamal_backup.redact import redact

RETRIES = 2
_BACKOFF = (0.1, 0.25)


@dataclass(frozen=True)
class Response:
    ok: bool
    detail: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the Authorization header to another host: report it instead."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _connection_error(exc: BaseException) -> bool:
    """Refused, reset or unresolvable: worth another try. A timeout or an HTTP answer is not."""
    if isinstance(exc, urllib.error.HTTPError):
        return False
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, TimeoutError | socket.timeout):
        return False
    return isinstance(exc, ConnectionError | socket.gaierror)


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    reason: object = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g}s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "host name not resolved"
    # Exception text can quote the URL, whose path is a secret: redact it and keep it short.
    return redact(f"{reason.__class__.__name__}: {reason}")[:200]


def send(request: HttpRequest, timeout: float) -> Response:
    """Sends the request; retries connection errors twice; never raises."""
    headers = {"User-Agent": f"kamal-backup/{__version__}", **request.headers}
    attempt = 0
    while True:
        try:
            prepared = urllib.request.Request(  # noqa: S310 - settings allow http(s) only
                request.url, data=request.body or None, headers=headers, method=request.method
            )
            with _opener.open(prepared, timeout=timeout) as answer:
                answer.read(65536)
                return Response(True, f"HTTP {answer.status}")
        except Exception as exc:
            if attempt < RETRIES and _connection_error(exc):
                time.sleep(_BACKOFF[attempt])
                attempt += 1
                continue
            return Response(False, _describe(exc, timeout))
