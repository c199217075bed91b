"""Timing shared by the benchmarks: functions timed in turn, and ratios taken per repeat.

Within each repeat every function runs once (``inner`` calls), one after the other, so that load
from other processes hits all of them alike; a ratio is the median over repeats of the
per-repeat ratios, which that load largely cancels.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, *, inner: int = 1,
                sync: Callable[[], object] | None = None) -> dict[str, list[float]]:
    """Seconds per call of each fn, one value per repeat, after one warm-up call of each.

    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before and after each timing, so that a
    device's queued work is counted where it was issued.
    """
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if sync is not None:
                sync()
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            if sync is not None:
                sync()
            times[name].append((time.perf_counter() - start) / inner)
    return times


def median_ratio(times: dict[str, list[float]], a: str, b: str, scale: float = 1.0) -> float:
    """Median over repeats of times[a] / times[b], times ``scale`` (units of b / units of a)."""
    return statistics.median(x / y * scale for x, y in zip(times[a], times[b]))
