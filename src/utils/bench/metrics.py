"""``python -m utils bench metrics``: GAP and GAP@k over a million predictions vs a Python loop."""

from __future__ import annotations

import time

import numpy as np

from utils.metrics import gap, gap_at_k


def bench_metrics(size: int, loop_size: int = 100_000, seed: int = 0) -> dict:
    """Vectorised GAP / GAP@5 on ``size`` predictions vs a Python loop (scaled from loop_size)."""
    rng = np.random.default_rng(seed)
    truth = np.where(rng.random(size) < 0.3, -1, rng.integers(0, 1000, size))
    predicted, confidence = rng.integers(0, 1000, size), rng.random(size)
    start = time.perf_counter()
    gap(predicted, confidence, truth)
    vectorised = time.perf_counter() - start
    top5 = rng.integers(0, 1000, (size, 5))
    start = time.perf_counter()
    gap_at_k(top5, np.sort(rng.random((size, 5)), axis=1)[:, ::-1], truth)
    at_k = time.perf_counter() - start
    start = time.perf_counter()
    order = sorted(range(loop_size), key=lambda i: -confidence[i])
    hits, total = 0, 0.0
    for rank, i in enumerate(order, 1):
        if truth[i] != -1 and predicted[i] == truth[i]:
            hits += 1
            total += hits / rank
    loop = (time.perf_counter() - start) * size / loop_size
    return {
        "predictions": size,
        "gap_s": round(vectorised, 3),
        "gap_at_5_s": round(at_k, 3),
        "python_loop_s_scaled": round(loop, 2),
        "speedup": round(loop / vectorised, 1),
    }


def print_metrics(result: dict) -> None:
    """One line: the seconds of each and the speed-up."""
    print(
        f"{result['predictions']:,} predictions: GAP {result['gap_s']} s, GAP@5 "
        f"{result['gap_at_5_s']} s; a plain Python loop would take about "
        f"{result['python_loop_s_scaled']} s ({result['speedup']}x slower than GAP)"
    )
