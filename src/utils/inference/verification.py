"""Local verification of notebook 08's shortlists: RootSIFT + RANSAC inliers and their floor.

`shortlist_inliers` counts, for each query, the inliers it shares with each of its first ``top``
retrieved gallery photos (``(Q, top)``; gallery features extracted once and kept in a cache);
`noise_floor` is what unrelated photos share by chance: the `FLOOR_QUANTILE` of the inliers of
up to `FLOOR_RANDOM_PAIRS` random gallery pairs of two landmarks
(`utils.retrieval.calibration.random_pairs`), as `recognize` sets it.
`utils.inference.ranking.local_votes` turns the two into votes ``V`` in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from utils.data.images import ImageLoadError, load_image
from utils.inference.budget import TimeBudget
from utils.retrieval.calibration import FLOOR_QUANTILE, FLOOR_RANDOM_PAIRS, random_pairs
from utils.retrieval.local_features import LocalFeatures
from utils.retrieval.rerank import match_pair


def _features(extractor, path: Path, cache: dict) -> LocalFeatures | None:
    """The features of one file, from ``cache`` or extracted; None where it cannot be read."""
    key = str(path)
    if key not in cache:
        try:
            cache[key] = extractor.extract(load_image(path))
        except ImageLoadError:
            cache[key] = None
    return cache[key]


def shortlist_inliers(
    query_paths: Sequence[Path],
    gallery_paths: Sequence[Path],
    indices: np.ndarray,
    top: int,
    extractor,
    budget: TimeBudget | None = None,
    progress: bool = True,
    cache: dict | None = None,
) -> tuple[np.ndarray, int]:
    """``(Q, top)`` inliers of each query with its first ``top`` neighbours, and queries done.

    ``indices`` ``(Q, >= top)``: the kNN result (gallery rows). Queries the budget leaves out
    (at the end) and pairs with an unreadable file get 0.
    """
    budget = budget or TimeBudget()
    cache = {} if cache is None else cache
    top = min(top, indices.shape[1])
    out = np.zeros((len(query_paths), top), np.int64)
    done = 0
    for q, path in enumerate(tqdm(query_paths, desc="verify (RootSIFT)", disable=not progress)):
        if not budget.allows(q, 1):
            break
        query = _features(extractor, path, {})
        for j in range(top):
            found = _features(extractor, gallery_paths[int(indices[q, j])], cache)
            if query is not None and found is not None:
                out[q, j] = match_pair(query, found).inliers
        done = q + 1
    return out, done


def noise_floor(
    gallery_paths: Sequence[Path],
    labels: np.ndarray,
    extractor,
    cache: dict | None = None,
    pairs: int = FLOOR_RANDOM_PAIRS,
    seed: int = 2,
) -> float:
    """`FLOOR_QUANTILE` of the inliers of random gallery pairs of two landmarks (0: none)."""
    cache = {} if cache is None else cache
    counts = []
    for i, j in random_pairs(labels, pairs, seed):
        a = _features(extractor, gallery_paths[i], cache)
        b = _features(extractor, gallery_paths[j], cache)
        if a is not None and b is not None:
            counts.append(match_pair(a, b).inliers)
    return float(np.quantile(counts, FLOOR_QUANTILE)) if counts else 0.0
