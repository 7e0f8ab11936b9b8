"""Notifications over real HTTP on 127.0.0.1: healthchecks pings, ntfy, signed webhooks, metrics."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kamal_backup import notify
from kamal_backup.notify import metrics
from kamal_backup.notify.webhook import SIGNATURE_HEADER
from kamal_backup.settings import load_settings
from tests.conftest import App, make_sqlite
from tests.integration.servers import (
    Received,
    Recorder,
    closed_port,
    recording_server,
    silent_server,
)

pytestmark = pytest.mark.integration

CHECK_UUID = "5f1c0a9e-7d2b-4c3e-9a61-check-uuid-0042"
NTFY_TOPIC = "acme-backups-topic-9931"
NTFY_TOKEN = "tk_planted-ntfy-Token-0043"
WEBHOOK_SECRET = "planted-webhook-Secret-0044"
DB_PASSWORD = "planted-pg-Secret-0045"
WEBHOOK_FIELDS = {
    "event",
    "operation",
    "status",
    "app",
    "run",
    "snapshot_ids",
    "duration_seconds",
    "error",
    "timestamp",
    "version",
    "text",
}


def channels(server: Recorder, metrics_file: Path | None = None, **extra: str) -> dict[str, str]:
    env = {
        "KAMAL_BACKUP_HEALTHCHECK_URL": server.url(f"/ping/{CHECK_UUID}"),
        "KAMAL_BACKUP_NTFY_URL": server.url(f"/{NTFY_TOPIC}"),
        "KAMAL_BACKUP_NTFY_TOKEN": NTFY_TOKEN,
        "KAMAL_BACKUP_WEBHOOK_URL": server.url("/hooks/kamal"),
        "KAMAL_BACKUP_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PGPASSWORD": DB_PASSWORD,
        **extra,
    }
    if metrics_file is not None:
        env["KAMAL_BACKUP_METRICS_FILE"] = str(metrics_file)
    return env


def webhook_events(server: Recorder) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in server.to("/hooks/kamal")]


def assert_no_secret(requests: list[Received], app: App) -> None:
    """Bodies and headers carry no password, token or secret (the token only to ntfy, as auth)."""
    secrets = [app.env["RESTIC_PASSWORD"], DB_PASSWORD, WEBHOOK_SECRET, CHECK_UUID, NTFY_TOKEN]
    for request in requests:
        headers = dict(request.headers)
        if request.path == f"/{NTFY_TOPIC}":
            assert headers.pop("Authorization") == f"Bearer {NTFY_TOKEN}"
        seen = request.body.decode("utf-8", "replace") + json.dumps(headers)
        for secret in secrets:
            assert secret not in seen, (request.path, secret)


def test_backup_success_failure_and_recovery_reach_every_channel(app: App, tmp_path: Path) -> None:
    metrics_file = tmp_path / "textfile" / "kamal_backup.prom"
    metrics_file.parent.mkdir()
    with recording_server() as server:
        env = channels(server, metrics_file)

        # 1. success: /start, then the success ping; webhook start + success; ntfy quiet.
        ok = app.cli("backup", "--json", extra=env, check=True)
        run = json.loads(ok.stdout)
        pings = server.to("/ping/")
        assert [(r.method, r.path) for r in pings] == [
            ("GET", f"/ping/{CHECK_UUID}/start"),
            ("GET", f"/ping/{CHECK_UUID}"),
        ]
        events = webhook_events(server)
        assert [e["event"] for e in events] == ["start", "success"]
        success = events[1]
        assert set(success) == WEBHOOK_FIELDS
        assert success["operation"] == "backup" and success["status"] == "success"
        assert success["app"] == "shop" and success["run"] == run["run"]
        assert sorted(success["snapshot_ids"]) == sorted(  # type: ignore[type-var]
            [run["database_snapshot"]["id"], run["files_snapshot"]["id"]]
        )
        assert isinstance(success["duration_seconds"], float) and success["error"] is None
        assert "shop backup succeeded" in str(success["text"])
        assert server.to(f"/{NTFY_TOPIC}") == []

        # The metrics file has this run's values, in a format Prometheus' own parser reads.
        families = {f.name: f for f in text_string_to_metric_families(metrics_file.read_text())}
        assert stat.S_IMODE(metrics_file.stat().st_mode) == 0o644

        def value(name: str, **labels: str) -> float:
            (sample,) = [s for s in families[name].samples if s.labels == {"app": "shop", **labels}]
            return float(sample.value)

        for kind in ("database", "files"):
            snapshot = run[f"{kind}_snapshot"]
            assert value("kamal_backup_last_success_timestamp_seconds", type=kind) == pytest.approx(
                __import__("datetime").datetime.fromisoformat(snapshot["time"]).timestamp()
            )
            assert value("kamal_backup_last_added_bytes", type=kind) == snapshot["data_added"]
            assert value("kamal_backup_snapshots", type=kind) == 1
        assert value("kamal_backup_last_run_success", type="backup") == 1
        assert value("kamal_backup_last_duration_seconds", type="backup") > 0
        printed = app.cli("metrics", extra=env, check=True).stdout
        assert printed == metrics_file.read_text()

        # 2. failure: the database file is gone. /fail names the error; ntfy is high priority.
        server.requests.clear()
        app.db.rename(app.db.with_suffix(".moved"))
        failed = app.cli("backup", extra=env)
        assert failed.returncode == 2, failed.stderr  # a configured source that is gone
        pings = server.to("/ping/")
        assert [(r.method, r.path) for r in pings] == [
            ("GET", f"/ping/{CHECK_UUID}/start"),
            ("POST", f"/ping/{CHECK_UUID}/fail"),
        ]
        body = pings[1].body.decode()
        assert "SQLITE_DATABASE_PATH" in body and "does not exist" in body
        assert len(pings[1].body) <= 10 * 1024
        (message,) = server.to(f"/{NTFY_TOPIC}")
        assert message.headers["Title"] == "kamal-backup: shop backup failed"
        assert message.headers["Priority"] == "high"
        assert "rotating_light" in message.headers["Tags"]
        assert message.headers["Authorization"] == f"Bearer {NTFY_TOKEN}"
        assert b"does not exist" in message.body
        failure = webhook_events(server)[-1]
        assert failure["event"] == "failure" and failure["status"] == "failed"
        assert "does not exist" in str(failure["error"])
        families = {f.name: f for f in text_string_to_metric_families(metrics_file.read_text())}
        assert value("kamal_backup_last_run_success", type="backup") == 0
        failed_requests = list(server.requests)

        # 3. the next success is a recovery: the success ping, a recovery message and event.
        server.requests.clear()
        app.db.with_suffix(".moved").rename(app.db)
        app.cli("backup", extra=env, check=True)
        assert [r.path for r in server.to("/ping/")][-1] == f"/ping/{CHECK_UUID}"
        (message,) = server.to(f"/{NTFY_TOPIC}")
        assert message.headers["Title"] == "kamal-backup: shop backup recovered"
        assert message.headers["Priority"] == "default"
        assert [e["event"] for e in webhook_events(server)] == ["start", "recovery"]

        # 4. the one after that is a plain success again.
        server.requests.clear()
        app.cli("backup", extra=env, check=True)
        assert [e["event"] for e in webhook_events(server)] == ["start", "success"]
        assert server.to(f"/{NTFY_TOPIC}") == []

        assert_no_secret(failed_requests + server.requests, app)

    # Evidence and `notify` list the channels by host only, with their last delivery.
    evidence = app.cli("evidence", extra=env, check=True)
    document = json.loads(evidence.stdout)
    listed = {entry["channel"]: entry for entry in document["notifications"]}
    assert set(listed) == {"healthchecks", "ntfy", "webhook", "prometheus"}
    assert listed["webhook"]["destination"] == f"127.0.0.1:{server.port}"
    assert listed["webhook"]["last_delivery"]["event"] == "success"
    assert listed["webhook"]["last_delivery"]["ok"] is True
    assert listed["ntfy"]["last_delivery"]["event"] == "recovery"
    state_text = "".join(
        p.read_text() for p in Path(app.env["KAMAL_BACKUP_STATE_DIR"]).rglob("*.json")
    )
    for leak in (CHECK_UUID, NTFY_TOPIC, NTFY_TOKEN, WEBHOOK_SECRET, DB_PASSWORD):
        assert leak not in evidence.stdout and leak not in evidence.stderr
        assert leak not in state_text


def test_webhook_signature_verifies_with_the_secret_and_fails_with_another(
    tmp_path: Path,
) -> None:
    with recording_server() as server:
        settings = load_settings(environ=_environ(tmp_path, server))
        (result,) = notify.send_test(settings)
        assert result.ok and result.channel == "webhook"
        (request,) = server.requests
    document = json.loads(request.body)
    assert set(document) == WEBHOOK_FIELDS and document["event"] == "test"
    header = request.headers[SIGNATURE_HEADER]
    assert header.startswith("sha256=")

    def verify(secret: str) -> bool:
        expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(header, f"sha256={expected}")

    assert verify(WEBHOOK_SECRET)
    assert not verify("another-secret")
    assert not verify(WEBHOOK_SECRET + " ")


def _environ(tmp_path: Path, server: Recorder | None = None, **extra: str) -> dict[str, str]:
    env = {
        "APP_NAME": "shop",
        "DATABASE_ADAPTER": "sqlite",
        "SQLITE_DATABASE_PATH": str(tmp_path / "db.sqlite3"),
        "RESTIC_REPOSITORY": str(tmp_path / "repo"),
        "RESTIC_PASSWORD": "correct-horse",
        "KAMAL_BACKUP_STATE_DIR": str(tmp_path / "state"),
        **extra,
    }
    if server is not None:
        env["KAMAL_BACKUP_WEBHOOK_URL"] = server.url("/hooks/kamal")
        env["KAMAL_BACKUP_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    return env


@pytest.mark.parametrize("answer", ["closed", "silent"])
def test_an_operation_waits_at_most_the_timeout_for_a_dead_notifier(
    tmp_path: Path, answer: str
) -> None:
    with silent_server() as silent:
        port = silent if answer == "silent" else closed_port()
        url = f"http://127.0.0.1:{port}"
        settings = load_settings(
            environ=_environ(
                tmp_path,
                KAMAL_BACKUP_HEALTHCHECK_URL=f"{url}/ping/x",
                KAMAL_BACKUP_NTFY_URL=f"{url}/topic",
                KAMAL_BACKUP_WEBHOOK_URL=f"{url}/hook",
                KAMAL_BACKUP_NOTIFY_TIMEOUT_SECONDS="1",
            )
        )
        started = time.monotonic()
        with notify.operation(settings, "backup"):
            time.sleep(0.3)  # the operation's own work
        elapsed = time.monotonic() - started
    assert elapsed < 0.3 + 1 + 0.3, elapsed
    last = {s.channel: s.last_delivery for s in notify.channel_status(settings)}
    assert last["ntfy"] is None  # ntfy hears failures and recoveries only
    for channel in ("healthchecks", "webhook"):
        delivery = last[channel]
        assert delivery is not None and not delivery.ok and delivery.event == "success"
        # Silent: the start ping still hangs, so the success one never left; closed: refused.
        expected = "not delivered within 1s" if answer == "silent" else "connection refused"
        assert delivery.detail == expected


def _timed_backup(app: App, env: dict[str, str], last_line: str) -> tuple[int, float, str]:
    """Runs `backup`; returns its exit code, the seconds from `last_line` to exit, and stderr.

    Timing from the backup's own last step, not from its start, keeps the measure of what the
    notifiers add free of the backup's own (load-dependent) duration.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "kamal_backup", "backup"],
        env={**app.env, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen_at: float | None = None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if last_line in line:
            seen_at = time.monotonic()
    code = proc.wait()
    assert seen_at is not None, "".join(lines)
    return code, time.monotonic() - seen_at, "".join(lines)


def test_a_backup_exits_0_within_the_timeout_when_notifiers_are_down(app: App) -> None:
    timeout = 2
    last_step = "retention for files snapshots"
    with silent_server() as silent:
        for port, answer in ((closed_port(), "closed"), (silent, "silent")):
            url = f"http://127.0.0.1:{port}"
            env = {
                "KAMAL_BACKUP_HEALTHCHECK_URL": f"{url}/ping/{CHECK_UUID}",
                "KAMAL_BACKUP_NTFY_URL": f"{url}/{NTFY_TOPIC}",
                "KAMAL_BACKUP_WEBHOOK_URL": f"{url}/hook",
                "KAMAL_BACKUP_NOTIFY_TIMEOUT_SECONDS": str(timeout),
            }
            code, after, stderr = _timed_backup(app, env, last_step)
            assert code == 0, stderr
            assert after < timeout + 1, (answer, after)
            if answer == "silent":
                assert after > timeout - 0.5, after  # it did wait for the success ping
            # The notifier's failure is a warning in the log, naming the host only.
            assert f"WARNING webhook notification (127.0.0.1:{port}, success) failed" in stderr
            assert CHECK_UUID not in stderr and NTFY_TOPIC not in stderr


def test_notify_test_reports_each_channel_and_fails_when_one_does(app: App, tmp_path: Path) -> None:
    with recording_server() as good, recording_server() as bad:
        bad.status = 500
        env = {
            **channels(good, tmp_path / "kamal_backup.prom"),
            "KAMAL_BACKUP_NTFY_URL": bad.url(f"/{NTFY_TOPIC}"),
        }
        result = app.cli("notify", "--test", "--json", extra=env)
        assert result.returncode == 1, result.stderr
        report = {entry["channel"]: entry for entry in json.loads(result.stdout)}
        assert report["ntfy"]["last_delivery"]["ok"] is False
        assert report["ntfy"]["last_delivery"]["detail"] == "HTTP 500"
        for channel in ("healthchecks", "webhook", "prometheus"):
            assert report[channel]["last_delivery"]["ok"] is True, channel
        # healthchecks' /log endpoint: a test never changes the check's up/down state.
        assert [r.path for r in good.to("/ping/")] == [f"/ping/{CHECK_UUID}/log"]
        (message,) = bad.requests
        assert message.headers["Title"] == "kamal-backup: shop test notification"
        assert message.headers["Authorization"] == f"Bearer {NTFY_TOKEN}"
        assert (tmp_path / "kamal_backup.prom").is_file()
        assert_no_secret(good.requests + bad.requests, app)
        for leak in (CHECK_UUID, NTFY_TOPIC, NTFY_TOKEN, WEBHOOK_SECRET):
            assert leak not in result.stdout and leak not in result.stderr

        good.status = 200
        bad.status = 200
        table = app.cli("notify", "--test", extra=env)
        assert table.returncode == 0, table.stderr
        assert "healthchecks" in table.stdout and f"127.0.0.1:{bad.port}" in table.stdout


def test_notify_without_channels_is_a_config_error(app: App) -> None:
    result = app.cli("notify", "--test")
    assert result.returncode == 2
    assert result.stderr.startswith("kamal-backup: error: KAMAL_BACKUP_HEALTHCHECK_URL: no ")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("KAMAL_BACKUP_WEBHOOK_URL", "ftp://hooks.example.com/planted-path-0046"),
        ("KAMAL_BACKUP_NTFY_URL", "ntfy.sh/planted-path-0046"),
        ("KAMAL_BACKUP_HEALTHCHECK_URL", "http:///planted-path-0046"),
        ("KAMAL_BACKUP_NOTIFY_TIMEOUT_SECONDS", "0"),
        ("KAMAL_BACKUP_METRICS_FILE", "relative/kamal_backup.prom"),
        ("KAMAL_BACKUP_NTFY_ON", "sometimes"),
    ],
)
def test_bad_channel_settings_name_the_setting_and_not_the_value(
    app: App, setting: str, value: str
) -> None:
    result = app.cli("backup", extra={setting: value})
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"kamal-backup: error: {setting}: ")
    assert "planted-path" not in line


def test_the_metrics_file_is_replaced_atomically(tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "kamal_backup.prom"
    target.parent.mkdir()
    settings = load_settings(environ=_environ(tmp_path, KAMAL_BACKUP_METRICS_FILE=str(target)))
    make_sqlite(tmp_path / "db.sqlite3", rows=1)
    with notify.operation(settings, "check"):
        pass
    expected = metrics.render(settings)
    assert "kamal_backup_last_run_success" in expected
    metrics.write_file(settings)
    stop = threading.Event()
    reads: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            with open(target, encoding="utf-8") as handle:
                reads.append(handle.read())

    thread = threading.Thread(target=reader)
    thread.start()
    inodes = set()
    try:
        for _ in range(300):
            metrics.write_file(settings)
            inodes.add(os.stat(target).st_ino)
    finally:
        stop.set()
        thread.join()
    assert len(reads) > 10 and len(inodes) > 1  # a new file renamed in, not rewritten in place
    assert all(text == expected for text in reads)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left
    names = {f.name for f in text_string_to_metric_families(reads[-1])}
    assert "kamal_backup_last_run_success" in names


def test_recovery_is_per_operation_and_a_failed_result_is_a_failure(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from kamal_backup.errors import OperationFailed
    from kamal_backup.models import CheckResult

    def check_result(status: str) -> CheckResult:
        return CheckResult.model_validate(
            {
                "status": status,
                "checked_at": datetime.now(UTC),
                "duration_seconds": 0.1,
                "read_data_subset": None,
                "output": "",
                "exit_code": 0 if status == "success" else 1,
            }
        )

    with recording_server() as server:
        settings = load_settings(environ=_environ(tmp_path, server))
        with pytest.raises(OperationFailed), notify.operation(settings, "backup"):
            raise OperationFailed("restic exited 1: repository locked")
        with notify.operation(settings, "check") as op:
            op.finished(check_result("success"))
        with notify.operation(settings, "backup"):
            pass
        with notify.operation(settings, "check") as op:
            op.finished(check_result("failed"))
        with notify.operation(settings, "check") as op:
            op.finished(check_result("success"))
        ends = [
            (e["operation"], e["event"], e["error"])
            for e in webhook_events(server)
            if e["event"] != "start"
        ]
    assert ends == [
        ("backup", "failure", "restic exited 1: repository locked"),
        ("check", "success", None),  # the backup's failure is not the check's
        ("backup", "recovery", None),
        ("check", "failure", "check failed (exit 1)"),
        ("check", "recovery", None),
    ]


def test_errors_in_events_are_redacted(tmp_path: Path) -> None:
    from kamal_backup.errors import OperationFailed

    with recording_server() as server:
        settings = load_settings(environ=_environ(tmp_path, server, PGPASSWORD=DB_PASSWORD))
        with pytest.raises(OperationFailed), notify.operation(settings, "backup"):
            raise OperationFailed(f"pg_dump: password {DB_PASSWORD} rejected")
        (failure,) = [e for e in webhook_events(server) if e["event"] == "failure"]
    assert DB_PASSWORD not in json.dumps(failure)
    assert "[REDACTED]" in str(failure["error"])


def test_an_unwritable_metrics_file_is_recorded_and_never_fails_the_operation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "missing-dir" / "kamal_backup.prom"
    settings = load_settings(environ=_environ(tmp_path, KAMAL_BACKUP_METRICS_FILE=str(target)))
    with notify.operation(settings, "backup") as op:
        op.finished(None)
    (status,) = notify.channel_status(settings)
    assert status.channel == "prometheus" and status.destination == str(target)
    assert status.last_delivery is not None and not status.last_delivery.ok
    assert "is not a directory" in status.last_delivery.detail
    assert "prometheus notification" in caplog.text and "WARNING" in caplog.text
    assert not target.parent.exists()


def test_a_broken_state_directory_does_not_mute_a_failure(tmp_path: Path) -> None:
    from kamal_backup.errors import OperationFailed

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with recording_server() as server:
        settings = load_settings(
            environ=_environ(tmp_path, server, KAMAL_BACKUP_STATE_DIR=str(blocker))
        )
        with pytest.raises(OperationFailed), notify.operation(settings, "backup"):
            raise OperationFailed("the disk is full")
        events = webhook_events(server)
    assert [(e["event"], e["error"]) for e in events] == [
        ("start", None),
        ("failure", "the disk is full"),
    ]


def test_an_operation_result_with_rto_and_rpo_becomes_metrics(tmp_path: Path) -> None:
    """The seam a drill uses: its result's rto_seconds and rpo_seconds reach the metrics."""
    from pydantic import BaseModel

    class DrillLike(BaseModel):
        status: str
        rto_seconds: float
        rpo_seconds: int

    target = tmp_path / "kamal_backup.prom"
    settings = load_settings(environ=_environ(tmp_path, KAMAL_BACKUP_METRICS_FILE=str(target)))
    with notify.operation(settings, "drill") as op:
        op.finished(DrillLike(status="success", rto_seconds=312.5, rpo_seconds=3600))
    samples = {
        (s.name, s.labels["type"]): s.value
        for family in text_string_to_metric_families(target.read_text())
        for s in family.samples
    }
    assert samples[("kamal_backup_last_drill_rto_seconds", "drill")] == 312.5
    assert samples[("kamal_backup_last_drill_rpo_seconds", "drill")] == 3600
    assert samples[("kamal_backup_last_run_success", "drill")] == 1


def test_prune_is_an_operation_of_its_own(app: App) -> None:
    app.cli("backup", check=True)
    with recording_server() as server:
        env = channels(server)
        app.cli("prune", extra=env, check=True)
        events = webhook_events(server)
        pings = server.to("/ping/")
    assert [(e["operation"], e["event"]) for e in events] == [
        ("prune", "start"),
        ("prune", "success"),
    ]
    assert pings == []  # only backups ping the dead-man's switch


def test_a_real_drill_is_an_operation_with_its_rto_and_rpo_in_the_metrics(
    app: App, tmp_path: Path
) -> None:
    app.cli("backup", check=True)
    target = tmp_path / "kamal_backup.prom"
    with recording_server() as server:
        env = channels(
            server,
            metrics_file=target,
            KAMAL_BACKUP_ALLOW_RESTORE="true",
            RESTORE_SQLITE_DATABASE_PATH=str(tmp_path / "scratch" / "drill.sqlite3"),
            RESTORE_FILES_PATH=str(tmp_path / "scratch" / "files"),
        )
        app.cli("drill", extra=env, check=True)
        events = [(e["operation"], e["event"]) for e in webhook_events(server)]
        requests = list(server.requests)
    assert events[0] == ("drill", "start")
    assert events[-1] == ("drill", "success")
    assert_no_secret(requests, app)
    samples = {
        (s.name, s.labels.get("type")): s.value
        for family in text_string_to_metric_families(target.read_text())
        for s in family.samples
    }
    assert samples[("kamal_backup_last_run_success", "drill")] == 1
    assert samples[("kamal_backup_last_drill_rto_seconds", "drill")] > 0
    assert samples[("kamal_backup_last_drill_rpo_seconds", "drill")] >= 0
