"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

from threadpoolctl import threadpool_info


def median_seconds(fns: Sequence[Callable[[], object]], repeats: int) -> list[float]:
    """Median wall time of each fn over `repeats` calls, after a warm-up of a tenth as many.

    The functions are called in turn (fn0, fn1, ..., fn0, fn1, ...) rather than one batch after
    the other, so that load from other processes weighs on every figure alike and the ratios
    stay meaningful on a busy machine.
    """
    for _ in range(max(3, repeats // 10)):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


def blas_line() -> str:
    libs = ", ".join(sorted({f"{i['internal_api']} ({i['num_threads']} thread)" for i in threadpool_info()}))
    return f"BLAS threads pinned with threadpoolctl: {libs or 'no BLAS found'}"
