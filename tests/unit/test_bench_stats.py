"""bench/stats.py: the percentile and the rate at saturation the benchmarks report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

# By its path: bench/ is not a package, and putting it on sys.path would let its module names shadow others.
_spec = importlib.util.spec_from_file_location("bench_stats", Path(__file__).resolve().parents[2] / "bench" / "stats.py")
assert _spec is not None and _spec.loader is not None
stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stats)
p99, window_rate = stats.p99, stats.window_rate


def test_p99_is_the_nearest_rank() -> None:
    assert p99([float(v) for v in range(1, 101)]) == 99.0
    assert p99([float(v) for v in range(1, 1001)]) == 990.0


def test_window_rate_leaves_out_the_ramp_and_the_tail() -> None:
    slow_start = [0.0, 5.0]  # the batch being started
    steady = [10.0 + i / 100 for i in range(100)]  # 100 events/s
    slow_end = [30.0]
    assert window_rate(slow_start + steady + slow_end, low=0.05, high=0.95) == pytest.approx(100.0)


def test_window_rate_refuses_too_few_times() -> None:
    with pytest.raises(ValueError):
        window_rate([1.0, 1.0, 1.0])
