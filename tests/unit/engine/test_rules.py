"""The flat-line rule's resting value: runs of it are a meter at rest, not a stuck one."""

from __future__ import annotations

import numpy as np

from shared.engine.rules import flatline_rule


def _idle_series(share: float, seed: int = 3, n: int = 1000) -> np.ndarray:
    """Positive noise that rests at exactly 0 for ``share`` of its readings, in runs of 20."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(1.0, 2.0, n)
    for start in range(0, int(share * n) * 5, 100):
        x[start : start + 20] = 0.0
    return x


def test_a_frequent_floor_is_the_resting_value() -> None:
    x = _idle_series(0.15)
    rule = flatline_rule(x, np.zeros(x.size, dtype=bool), 95)
    assert rule.resting == 0.0
    assert rule.severity(0.0, 200) == 0.0


def test_a_rare_floor_is_not_resting_and_its_long_run_is_a_flat_line() -> None:
    x = _idle_series(0.05)
    rule = flatline_rule(x, np.zeros(x.size, dtype=bool), 95)
    assert rule.resting is None
    assert rule.severity(0.0, 200) > 0.0


def test_the_resting_share_counts_readings_not_gaps() -> None:
    # 40 % of the readings rest at 5, but the gaps make them under 30 % of the points; 5 is
    # not the floor, so only the share of the readings can make it resting.
    rng = np.random.default_rng(5)
    x = rng.uniform(1.0, 9.0, 3000)
    x[rng.random(3000) < 0.4] = 5.0
    missing = np.zeros(3000, dtype=bool)
    missing[1000:] = True
    x[1000:] = 5.0  # filled gaps
    rule = flatline_rule(x, missing, 95)
    assert rule.resting == 5.0
