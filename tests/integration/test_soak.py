"""A shortened soak (bench/soak.py runs 200): memory, descriptors and children stay flat."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def test_scheduler_soak_with_faults_stays_flat(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("soak", BENCH)
    assert spec is not None and spec.loader is not None
    soak = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = soak  # dataclasses look their module up there
    spec.loader.exec_module(soak)
    samples = soak.soak(32, tmp_path)
    assert samples.failures >= 3  # faults really were injected, logged, and the loop went on
    assert samples.successes >= 25
    assert max(samples.rss_kib) - min(samples.rss_kib) < 5 * 1024
    assert max(samples.fds) == min(samples.fds)
    assert max(samples.zombies) == 0
