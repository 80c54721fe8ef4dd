"""Shared timing helper of the benchmark scripts."""

import time

import numpy as np


def median_time(fn, repeats: int) -> float:
    """Median wall time in seconds of ``repeats`` calls of ``fn`` (warm it up first)."""
    times = []
    for _ in range(max(1, int(repeats))):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
