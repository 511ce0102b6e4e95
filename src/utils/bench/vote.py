"""The voting rule's cost by gallery size: what grows with the gallery in `recognize`.

``bench_vote(sizes)``: galleries of ``size`` random non-negative unit descriptors (as GeM
features are, 1280 dimensions, 5 photos per landmark, each photo its landmark's centre plus
noise); per query, the seconds of the former rule's search (the plain cosine to every photo
and its top ``GLOBAL_TOP_K``: the baseline) and of the voting rule's (`VoteGallery`: whitened
cosine, its top ``GLOBAL_TOP_K``, kNN votes, the plain cosine of the answer's best photo),
their ratio, and the voting rule's one-time costs (whitening and calibration). Local
verification and feature extraction cost the same in both (``GLOBAL_TOP_K`` photos verified)
and are left out: `utils.bench.recognize` measures them.
"""

from __future__ import annotations

import time

import numpy as np

from utils.retrieval.knn import normalize
from utils.retrieval.recognize import GLOBAL_TOP_K
from utils.retrieval.voting import VoteGallery, VoteRule

DIM = 1280  # EfficientNet-Lite2's GeM descriptor


def synthetic_gallery(size: int, dim: int = DIM, per_landmark: int = 5, seed: int = 0):
    """``(size, dim)`` unit rows, ``(size,)`` labels, and a function drawing query rows."""
    rng = np.random.default_rng(seed)
    centres = rng.random((size // per_landmark + 1, dim), np.float32)
    labels = np.arange(size) // per_landmark
    photos = normalize(centres[labels] + 0.6 * rng.random((size, dim), np.float32))

    def queries(n: int) -> np.ndarray:
        picks = rng.integers(0, len(centres) - 1, n)
        return normalize(centres[picks] + 0.6 * rng.random((n, dim), np.float32))

    return photos, labels, queries


def bench_vote(sizes: list[int], queries: int = 100, rule: VoteRule | None = None) -> list[dict]:
    """One row per size: per-query milliseconds of both searches, ratio, one-time seconds."""
    rows = []
    for size in sizes:
        photos, labels, draw = synthetic_gallery(size)
        asked = draw(queries)
        start = time.perf_counter()
        gallery = VoteGallery(photos, labels, rule or VoteRule())
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        gallery.calibrate()
        calibrate_s = time.perf_counter() - start
        spent = {"plain": [], "vote": []}
        for q in asked:  # alternating, so both see the same machine
            start = time.perf_counter()
            np.argsort(-(photos @ q), kind="stable")[:GLOBAL_TOP_K]
            spent["plain"].append(time.perf_counter() - start)
            start = time.perf_counter()
            whitened = gallery.whitened_cosine(q)
            np.argsort(-whitened, kind="stable")[:GLOBAL_TOP_K]
            gallery.answer(q)
            spent["vote"].append(time.perf_counter() - start)
        plain, vote = (1000 * float(np.median(spent[k])) for k in ("plain", "vote"))
        rows.append(
            {
                "gallery": size,
                "queries": queries,
                "plain_ms": round(plain, 2),
                "vote_ms": round(vote, 2),
                "ratio": round(vote / plain, 2),
                "whitening_s": round(fit_s, 2),
                "calibration_s": round(calibrate_s, 2),
                "whitening": gallery.note,
            }
        )
    return rows


def print_vote(rows: list[dict]) -> None:
    """The rows as a table."""
    print("gallery  plain search ms  voting ms  ratio  whitening s  calibration s")
    for r in rows:
        print(
            f"{r['gallery']:>7}  {r['plain_ms']:>15.2f}  {r['vote_ms']:>9.2f}  {r['ratio']:>5.2f}"
            f"  {r['whitening_s']:>11.2f}  {r['calibration_s']:>13.2f}"
        )
