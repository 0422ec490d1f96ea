"""Pure helpers the benchmarks share: percentiles and rates at saturation."""

from __future__ import annotations

import math
from collections.abc import Sequence


def p99(values: Sequence[float]) -> float:
    """The nearest-rank 99th percentile: the value at rank ceil(0.99 n) (of 100 values, the 2nd largest)."""
    return sorted(values)[math.ceil(0.99 * len(values)) - 1]


def window_rate(times: Sequence[float], low: float = 0.2, high: float = 0.9) -> float:
    """Events per second between the `low` and `high` quantiles of their times: the rate at saturation, leaving out
    the ramp while a batch is being started and the tail while its last chains drain.

    The instants of the events ranked floor(low n) and ceil(high n) - 1 bound the window; the events after the
    first of them up to the last are counted.
    """
    ordered = sorted(times)
    first, last = math.floor(low * len(ordered)), math.ceil(high * len(ordered)) - 1
    if last <= first or ordered[last] <= ordered[first]:
        raise ValueError(f"too few distinct times for a rate ({len(ordered)} events)")
    return (last - first) / (ordered[last] - ordered[first])
