"""A JSON POST per event, optionally signed with HMAC-SHA256, readable by Slack and Mattermost."""

from __future__ import annotations

import hashlib
import hmac
import json

from kamal_backup.notify.events import Event, HttpRequest

NAME = "webhook"
SIGNATURE_HEADER = "X-Kamal-Backup-Signature"


def signature(secret: str, body: bytes) -> str:
    """The header value a receiver recomputes over the exact body bytes to verify them."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body(event: Event) -> bytes:
    document = event.model_dump(mode="json")
    document["text"] = event.headline  # what Slack and Mattermost incoming webhooks show
    return json.dumps(document, sort_keys=True).encode()


class Webhook:
    name = NAME

    def __init__(self, url: str, secret: str | None) -> None:
        self.url = url
        self.secret = secret

    def request(self, event: Event) -> HttpRequest:
        data = body(event)
        headers = {"Content-Type": "application/json"}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, data)
        return HttpRequest(self.url, body=data, headers=headers)
