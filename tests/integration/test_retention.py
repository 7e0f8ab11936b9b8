"""Retention over a 90-day history built with `restic backup --time`: exactly the policy's snapshots stay."""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kamal_backup.services import restic_for
from kamal_backup.services.retention import apply_retention
from kamal_backup.settings import load_settings
from tests.conftest import RESTIC_PASSWORD

pytestmark = pytest.mark.integration

POLICY = {"last": 7, "daily": 7, "weekly": 4, "monthly": 6, "yearly": 2}


def expected_kept(times: list[datetime], policy: dict[str, int]) -> set[datetime]:
    """restic's policy, written out independently: newest first, one per bucket, per rule.

    Since restic 0.17, when a duration rule (daily ... yearly) cannot be filled, the oldest
    snapshot of the group is kept as well (restic-forget(1)).
    """
    buckets = {
        "last": lambda t: t,
        "daily": lambda t: (t.year, t.month, t.day),
        "weekly": lambda t: t.isocalendar()[:2],
        "monthly": lambda t: (t.year, t.month),
        "yearly": lambda t: t.year,
    }
    kept: set[datetime] = set()
    remaining = dict(policy)
    last_bucket: dict[str, object] = {}
    for moment in sorted(times, reverse=True):
        for rule, bucket_of in buckets.items():
            bucket = bucket_of(moment)
            if remaining[rule] > 0 and last_bucket.get(rule) != bucket:
                kept.add(moment)
                last_bucket[rule] = bucket
                remaining[rule] -= 1
    if any(remaining[rule] > 0 for rule in ("daily", "weekly", "monthly", "yearly")):
        kept.add(min(times))
    return kept


def test_ninety_days_keep_exactly_what_the_policy_names(
    tmp_path: Path, template_repository: Path
) -> None:
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(template_repository, repo)
    env = {
        **os.environ,
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_PASSWORD": RESTIC_PASSWORD,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    (tmp_path / "payload").write_text("x")
    start = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    # Daily database dumps for 90 days (some days twice), weekly file snapshots, and another app's
    # snapshots under the same host that retention must never touch.
    database_times = [start + timedelta(days=d) for d in range(90)]
    database_times += [start + timedelta(days=d, hours=12) for d in (85, 88, 89)]
    files_times = [start + timedelta(days=d) for d in range(0, 90, 7)]
    other_times = [start + timedelta(days=d) for d in range(0, 90, 15)]

    def snapshot(kind: str, app: str, moment: datetime) -> None:
        run = moment.strftime("%Y%m%dT%H%M%SZ")
        subprocess.run(
            [
                "restic",
                "backup",
                "--json",
                "--quiet",
                "--host",
                "shop",
                "--time",
                moment.strftime("%Y-%m-%d %H:%M:%S"),
                "--tag",
                "kamal-backup",
                "--tag",
                f"app:{app}",
                "--tag",
                f"type:{kind}",
                "--tag",
                f"run:{run}",
                "--stdin",
                "--stdin-filename",
                f"databases-{app}-sqlite-{run}.sqlite3",
            ],
            input=run.encode(),
            env=env,
            check=True,
            capture_output=True,
        )

    jobs = [("database", "shop", t) for t in database_times] + [
        ("files", "shop", t) for t in files_times
    ]
    jobs += [("database", "blog", t) for t in other_times]
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda job: snapshot(*job), jobs))

    settings = load_settings(
        environ={
            "APP_NAME": "shop",
            "DATABASE_ADAPTER": "sqlite",
            "SQLITE_DATABASE_PATH": str(tmp_path / "x.sqlite3"),
            "RESTIC_REPOSITORY": str(repo),
            "RESTIC_PASSWORD": RESTIC_PASSWORD,
            "HOME": str(tmp_path),
            "PATH": os.environ["PATH"],
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
        }
    )
    results = apply_retention(settings, restic_for(settings))

    def remaining(app: str, kind: str) -> set[datetime]:
        out = subprocess.run(
            ["restic", "snapshots", "--json", "--tag", f"app:{app},type:{kind}"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return {datetime.fromisoformat(s["time"]).astimezone(UTC) for s in json.loads(out)}

    assert remaining("shop", "database") == expected_kept(database_times, POLICY)
    assert remaining("shop", "files") == expected_kept(files_times, POLICY)
    assert remaining("blog", "database") == set(other_times)
    by_type = {r.type: r for r in results}
    assert by_type["database"].kept == len(expected_kept(database_times, POLICY))
    assert by_type["database"].removed == len(database_times) - by_type["database"].kept
    # The policy really removed something, so this test can fail.
    assert by_type["database"].removed > 50
