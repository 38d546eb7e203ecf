"""Timing helper shared by the benchmark scripts (imported as ``_timing``: the scripts' folder is on
``sys.path`` when they run as ``.venv/bin/python benchmarks/bench_*.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """The fastest wall-clock time (seconds) of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)
