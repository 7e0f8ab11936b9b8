"""What each channel sends for each event, and what is shown of a channel's URL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kamal_backup import __version__, redact
from kamal_backup.notify import destination
from kamal_backup.notify.events import Event, EventKind
from kamal_backup.notify.healthchecks import BODY_LIMIT, Healthchecks, failure_body, ping_url
from kamal_backup.notify.ntfy import Ntfy
from kamal_backup.settings import load_settings


def event(kind: EventKind, operation: str = "backup", **fields: object) -> Event:
    status = {"start": "running", "failure": "failed"}.get(kind, "success")
    return Event.model_validate(
        {
            "event": kind,
            "operation": operation,
            "status": status,
            "app": "shop",
            "timestamp": datetime.now(UTC),
            "version": __version__,
            **fields,
        }
    )


def test_ping_urls_keep_a_query_string_last() -> None:
    assert ping_url("https://hc-ping.com/abc/", "/fail") == "https://hc-ping.com/abc/fail"
    assert (
        ping_url("https://kuma.example.com/api/push/abc?status=up&msg=OK", "/start")
        == "https://kuma.example.com/api/push/abc/start?status=up&msg=OK"
    )


def test_healthchecks_pings_for_backups_only() -> None:
    channel = Healthchecks("https://hc-ping.com/uuid")
    assert channel.request(event("success", "check")) is None
    assert channel.request(event("failure", "restore-db", error="x")) is None
    recovery = channel.request(event("recovery"))
    assert recovery is not None and recovery.url == "https://hc-ping.com/uuid"


def test_the_fail_body_keeps_the_error_and_the_newest_log_lines_within_10_kb() -> None:
    tail = [f"INFO line {i} " + "x" * 200 for i in range(200)]
    body = failure_body(event("failure", error="pg_dump: connection refused", log_tail=tail))
    assert len(body) <= BODY_LIMIT
    text = body.decode()
    assert text.startswith("shop backup FAILED: pg_dump: connection refused\n")
    assert "INFO line 199 " in text and "INFO line 0 " not in text


def test_ntfy_hears_failures_and_recoveries_and_successes_only_when_asked() -> None:
    quiet = Ntfy("https://ntfy.sh/topic", None, "failure")
    assert quiet.request(event("success")) is None
    assert quiet.request(event("start")) is None
    failure = quiet.request(event("failure", error="boom"))
    assert failure is not None and "Authorization" not in failure.headers
    loud = Ntfy("https://ntfy.sh/topic", "tk_x", "all")
    success = loud.request(event("success", duration_seconds=1.5))
    assert success is not None and success.headers["Priority"] == "low"
    assert success.body == b"shop backup succeeded in 1.5s"


def test_urls_are_shown_as_their_host_and_masked_in_every_message(tmp_path: Path) -> None:
    assert destination("https://user:pw@hc-ping.com/uuid?x=1") == "hc-ping.com"
    assert destination("http://127.0.0.1:8080/topic") == "127.0.0.1:8080"
    load_settings(
        environ={
            "APP_NAME": "shop",
            "DATABASE_ADAPTER": "sqlite",
            "SQLITE_DATABASE_PATH": str(tmp_path / "db.sqlite3"),
            "RESTIC_REPOSITORY": str(tmp_path / "repo"),
            "RESTIC_PASSWORD": "correct-horse",
            "KAMAL_BACKUP_HEALTHCHECK_URL": "https://hc-ping.com/0f9e8d7c-uuid",
            "KAMAL_BACKUP_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/secretpart",
        }
    )
    text = redact.redact("GET /0f9e8d7c-uuid/fail and services/T0/B0/secretpart failed")
    assert "0f9e8d7c-uuid" not in text and "secretpart" not in text
