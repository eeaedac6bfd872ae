"""State shards: a device's shard is stable across processes and the fleet spreads evenly."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from shared.univariate.live import shard_of

REPO = Path(__file__).resolve().parents[3]


def test_shard_of_a_device_is_the_same_in_every_process() -> None:
    devices = [f"meter-{i:05d}" for i in range(50)]
    here = [shard_of(d, 64) for d in devices]
    code = (
        "from shared.univariate.live import shard_of\n"
        f"print([shard_of(d, 64) for d in {devices!r}])"
    )
    for seed in ("1", "2"):  # Python's str hash is salted per process; shard_of must not be
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == str(here)


def test_a_fleet_spreads_evenly_over_the_shards() -> None:
    counts = Counter(shard_of(f"meter-{i:05d}", 64) for i in range(12_800))
    assert set(counts) == set(range(64))
    assert max(counts.values()) < 1.3 * 200 and min(counts.values()) > 0.7 * 200
    assert {shard_of("meter-00001", 1)} == {0}
