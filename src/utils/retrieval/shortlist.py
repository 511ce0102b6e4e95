"""Re-rank the retrieval shortlists of a set of query files (notebook 05, benchmarks).

The I/O around `utils.retrieval.rerank.rerank_shortlist`: images are read here, gallery
features extracted once and cached, and a progress bar shows the queries done.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from utils.data.images import load_image
from utils.retrieval.local_features import LocalFeatures
from utils.retrieval.rerank import MatchSettings, rerank_shortlist


def rerank_retrieval(
    query_paths: Sequence,
    gallery_paths: Sequence,
    gallery_labels: Sequence,
    cosines: np.ndarray,
    indices: np.ndarray,
    extractor,
    top_k: int = 3,
    settings: MatchSettings | None = None,
    progress: bool = True,
    cache: dict[int, LocalFeatures] | None = None,
) -> tuple[np.ndarray, np.ndarray, list]:
    """`rerank_shortlist` over the ``top_k`` retrieved images of every query.

    ``cosines`` and ``indices`` are the kNN result ``(Q, k >= top_k)``. Gallery features are
    extracted once and kept in ``cache`` (gallery index -> features; pass the same dict to
    calls over parts of one query set so that no gallery image is extracted twice). Returns
    predicted landmarks ``(Q,)``, confidences ``(Q,)`` and, per query, the
    ``(gallery index, PairMatch)`` of its best candidate.
    """
    cache = {} if cache is None else cache
    predicted, confidence, best = [], [], []
    for q, path in enumerate(
        tqdm(query_paths, desc=f"re-rank ({extractor.name})", disable=not progress)
    ):
        shortlist = [int(i) for i in indices[q, :top_k]]
        for i in shortlist:
            if i not in cache:
                cache[i] = extractor.extract(load_image(gallery_paths[i]))
        top, score, matches = rerank_shortlist(
            extractor.extract(load_image(path)),
            [cache[i] for i in shortlist],
            cosines[q, :top_k],
            settings=settings,
        )
        predicted.append(gallery_labels[shortlist[top]])
        confidence.append(score)
        best.append((shortlist[top], matches[top]))
    return np.array(predicted), np.array(confidence), best
