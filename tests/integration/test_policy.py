"""kamal-backup decides restic's keep policy itself (services/policy.py), so that a backup's
retention is one `restic forget --prune ID...`. Held here to restic's own decision: the same
snapshots, the same policies, `restic forget --dry-run --json --group-by host` against ours."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from kamal_backup.models import Snapshot
from kamal_backup.services.policy import apply_by_host
from tests.conftest import RESTIC_PASSWORD

pytestmark = pytest.mark.integration

POLICIES = [
    {"keep_last": 7, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6, "keep_yearly": 2},
    {"keep_last": 1},
    {"keep_daily": 3},
    {"keep_weekly": 5, "keep_yearly": 1},
    {"keep_monthly": 30},  # more periods than the history has: the oldest is kept too
    {"keep_last": 2, "keep_hourly": 10, "keep_daily": 0},
]
KEEP_TAGS = ["pinned", "run:special,type:database"]


def test_our_policy_is_restics_on_a_random_history(
    tmp_path: Path, template_repository: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(template_repository, repo)
    env = {
        **os.environ,
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_PASSWORD": RESTIC_PASSWORD,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        # Snapshots taken in a zone far from UTC: a day, week or month is the zone's own.
        "TZ": "Pacific/Auckland",
    }
    chance = random.Random(14)
    start = datetime(2024, 11, 1, 12, 0)
    moments = sorted(
        start + timedelta(minutes=chance.randrange(0, 800 * 24 * 60)) for _ in range(40)
    )
    # Days with several runs, and runs a minute either side of midnight.
    moments += [datetime(2026, 3, 3, 23, 59), datetime(2026, 3, 4, 0, 1)]
    moments += [datetime(2026, 5, 9, h, 30) for h in (1, 2, 2, 9)]

    def make(index: int) -> None:
        moment = moments[index]
        tags = ["type:database"]
        if index % 11 == 0:
            tags.append("pinned")
        if index % 13 == 0:
            tags.append("run:special")
        subprocess.run(
            [
                "restic",
                "backup",
                "-q",
                "--stdin",
                "--stdin-filename",
                f"dump-{index}.sql",
                "--time",
                moment.strftime("%Y-%m-%d %H:%M:%S"),
                "--host",
                "app-1" if index % 4 else "app-2",
                "--tag",
                ",".join(tags),
            ],
            input=f"dump {index}\n".encode(),
            env=env,
            check=True,
            capture_output=True,
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(make, range(len(moments))))
    listed = subprocess.run(
        ["restic", "snapshots", "--json", "--no-lock"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    snapshots = [Snapshot.model_validate(s) for s in json.loads(listed.stdout)]
    assert len(snapshots) == len(moments)
    assert {s.time.utcoffset() for s in snapshots} != {timedelta(0)}

    for policy in POLICIES:
        args = ["restic", "forget", "--dry-run", "--json", "--group-by", "host"]
        for name, value in policy.items():
            args.append(f"--{name.replace('_', '-')}={value}")
        for tag in KEEP_TAGS:
            args += ["--keep-tag", tag]
        result = subprocess.run(args, env=env, check=True, capture_output=True, text=True)
        groups = json.loads(result.stdout)
        restic_keeps = {s["id"] for g in groups for s in g.get("keep") or []}
        restic_removes = {s["id"] for g in groups for s in g.get("remove") or []}
        ours = apply_by_host(snapshots, policy, KEEP_TAGS)
        assert {s.id for s in ours.keep} == restic_keeps, policy
        assert {s.id for s in ours.remove} == restic_removes, policy
        assert restic_removes, f"{policy} removes nothing: the comparison proves little"
