"""`prune`: the retention policy on demand, safety snapshots spared, and the append-only set-up."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import App
from tests.integration.servers import rest_server

pytestmark = pytest.mark.integration

KEEP_LAST_2 = {
    "RESTIC_KEEP_LAST": "2",
    "RESTIC_KEEP_DAILY": "0",
    "RESTIC_KEEP_WEEKLY": "0",
    "RESTIC_KEEP_MONTHLY": "0",
    "RESTIC_KEEP_YEARLY": "0",
    "RESTIC_FORGET_AFTER_BACKUP": "false",
    # The policy alone: the last good runs retention always keeps are proven in test_trust.py.
    "KAMAL_BACKUP_KEEP_GOOD": "0",
}


def old_snapshot(app: App, kind: str, moment: datetime, *tags: str, host: str = "shop") -> str:
    """A snapshot as kamal-backup writes it, dated in the past with restic's --time."""
    run = moment.strftime("%Y%m%dT%H%M%SZ")
    result = subprocess.run(
        [
            "restic",
            "backup",
            "--json",
            "--quiet",
            "--host",
            host,
            "--time",
            moment.strftime("%Y-%m-%d %H:%M:%S"),
            "--tag",
            ",".join(["kamal-backup", "app:shop", f"type:{kind}", f"run:{run}", *tags]),
            "--stdin",
            "--stdin-filename",
            f"{kind}-{run}",
        ],
        input=run,
        env={**app.env, "RESTIC_REPOSITORY": str(app.repo)},
        check=True,
        capture_output=True,
        text=True,
    )
    return str(json.loads(result.stdout.splitlines()[-1])["snapshot_id"])


def test_prune_dry_run_removes_nothing_then_prune_applies_the_policy_sparing_safety_snapshots(
    app: App,
) -> None:
    app.env.update(KEEP_LAST_2)
    now = datetime.now(UTC)
    for days in (3, 2, 1):
        for kind in ("database", "files"):
            old_snapshot(app, kind, now - timedelta(days=days))
    young_safety = old_snapshot(
        app, "database", now - timedelta(days=29), "pre-restore", host="shop-pre-restore"
    )
    expired_safety = old_snapshot(
        app, "database", now - timedelta(days=31), "pre-restore", host="shop-pre-restore"
    )
    backup = json.loads(app.cli("backup", "--json", check=True).stdout)
    # A production restore now: its safety snapshot is the newest database snapshot of all.
    restored = app.cli(
        "restore-db",
        "--in-place",
        "--json",
        extra={
            "KAMAL_BACKUP_ALLOW_RESTORE": "true",
            "KAMAL_BACKUP_ALLOW_PRODUCTION_RESTORE": "true",
        },
        check=True,
    )
    new_safety = json.loads(restored.stdout)["safety_snapshot"]["id"]
    before = set(app.snapshot_ids())
    assert len(before) == 11

    plan = json.loads(app.cli("prune", "--dry-run", "--json", check=True).stdout)
    assert plan["dry_run"] is True
    assert set(app.snapshot_ids()) == before  # nothing removed
    planned = {part["type"]: part for part in plan["retention"]}
    assert planned["database"]["removed"] == 3  # 2 old dumps and the expired safety snapshot
    assert expired_safety in planned["database"]["removed_ids"]
    assert planned["files"]["removed"] == 2

    human = app.cli("prune", "--dry-run", check=True).stdout
    assert "database: kept 4, would remove 3" in human

    done = json.loads(app.cli("prune", "--json", check=True).stdout)
    assert done["dry_run"] is False
    after = set(app.snapshot_ids())
    assert before - after == set(planned["database"]["removed_ids"]) | set(
        planned["files"]["removed_ids"]
    )
    # keep-last 2 keeps the two newest backups: the safety snapshots took no place from them.
    assert backup["database_snapshot"]["id"] in after and backup["files_snapshot"]["id"] in after
    assert {young_safety, new_safety} <= after
    assert expired_safety not in after
    regular_db = [
        s
        for s in json.loads(app.cli("list", "--json", "--type", "database", check=True).stdout)
        if "pre-restore" not in s["tags"]
    ]
    assert len(regular_db) == 2


def test_prune_from_a_trusted_server_when_the_app_server_is_append_only(
    app: App, tmp_path: Path
) -> None:
    data = tmp_path / "rest-data"
    data.mkdir()
    app.env.update({**KEEP_LAST_2, "RESTIC_KEEP_LAST": "1", "KAMAL_BACKUP_RETRY_LOCK": ""})
    with rest_server(data, append_only=True) as port:
        app.env.update(
            {
                "RESTIC_REPOSITORY": f"rest:http://127.0.0.1:{port}/",
                "RESTIC_INIT_IF_MISSING": "true",
            }
        )
        app.cli("backup", check=True)
        app.cli("backup", check=True)
        refused = app.cli("prune")
        assert refused.returncode == 1, refused.stderr
        assert "append-only" in refused.stderr and "kamal-backup prune" in refused.stderr
        assert len(json.loads(app.cli("list", "--json", check=True).stdout)) == 4
        latest = json.loads(app.cli("list", "--json", check=True).stdout)[0]["run"]

        # The trusted machine: its own rest-server, without --append-only, on the same data.
        with rest_server(data, append_only=False) as trusted:
            pruned = app.cli(
                "prune", extra={"RESTIC_REPOSITORY": f"rest:http://127.0.0.1:{trusted}/"}
            )
            assert pruned.returncode == 0, pruned.stderr
        listed = json.loads(app.cli("list", "--json", check=True).stdout)
        assert len(listed) == 2
        assert {s["run"] for s in listed} == {latest}
