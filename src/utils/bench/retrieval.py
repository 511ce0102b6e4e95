"""Retrieval benchmark: faiss exact, numpy brute force, an approximate index; re-ranking cost.

Search: a gallery of ``N`` random unit vectors (512-d) and 1,000 queries, each a gallery
vector plus noise (cosine about 0.8 to it), so every query has a true nearest neighbour.
For each method: queries per second, the index's memory, and recall@1 against exact search.

Re-ranking: RootSIFT extraction per image (real photos with ``--photos``, else generated
JPEGs of 800x600 to 1600x1200; pairs are neighbours in file order), the
time of one query-candidate verification (`utils.retrieval.rerank.match_pair`), and the time per
query for a shortlist of 3 and of 10 (one extraction plus k verifications; gallery features
are precomputed).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from utils.retrieval import index as retrieval


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def noisy_queries(gallery: np.ndarray, count: int, noise: float, seed: int) -> np.ndarray:
    """``count`` unit queries near random gallery rows (``noise`` = per-dimension std)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(gallery), count)
    queries = gallery[picks] + rng.normal(0, noise, (count, gallery.shape[1])).astype(np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def brute_force_chunked(gallery: np.ndarray, queries: np.ndarray, k: int, chunk: int = 100):
    """`utils.retrieval.brute_force` in query chunks (bounded memory)."""
    parts = [
        retrieval.brute_force(gallery, queries[i : i + chunk], k)
        for i in range(0, len(queries), chunk)
    ]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def bench_search(
    size: int,
    dim: int = 512,
    queries: int = 1000,
    k: int = 10,
    nlist: int = 1024,
    nprobe: int = 16,
    seed: int = 0,
) -> dict:
    """Exact faiss, numpy brute force and IVF on one gallery size."""
    rng = np.random.default_rng(seed)
    gallery = rng.normal(size=(size, dim)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    query = noisy_queries(gallery, queries, noise=0.75 / np.sqrt(dim), seed=seed + 1)
    exact_index, exact_build = _timed(retrieval.EmbeddingIndex, gallery, "exact")
    (_, exact), exact_time = _timed(exact_index.search, query, k)
    (_, brute), brute_time = _timed(brute_force_chunked, gallery, query, k)
    ivf_index, ivf_build = _timed(retrieval.EmbeddingIndex, gallery, "ivf", nlist, nprobe)
    (_, approx), ivf_time = _timed(ivf_index.search, query, k)
    lists = ivf_index.index.nlist
    return {
        "gallery": size,
        "dim": dim,
        "queries": queries,
        "faiss_exact": {
            "qps": round(queries / exact_time, 1),
            "build_s": round(exact_build, 2),
            "memory_mb": round(size * dim * 4 / 2**20, 1),
            "recall_at_1": 1.0,
        },
        "numpy_brute_force": {
            "qps": round(queries / brute_time, 1),
            "memory_mb": round(size * dim * 4 / 2**20, 1),
            "recall_at_1": retrieval.recall_at_1(brute, exact),
        },
        f"faiss_ivf{lists}_nprobe{ivf_index.index.nprobe}": {
            "qps": round(queries / ivf_time, 1),
            "build_s": round(ivf_build, 2),
            "memory_mb": round((size * (dim * 4 + 8) + lists * dim * 4) / 2**20, 1),
            "recall_at_1": retrieval.recall_at_1(approx, exact),
        },
    }


def bench_rerank(images: list[Path], shortlist: tuple[int, ...] = (3, 10)) -> dict:
    """RootSIFT extraction and verification cost on real-sized photos."""
    from utils.data.images import load_image
    from utils.retrieval.local_features import RootSift
    from utils.retrieval.rerank import match_pair

    extractor = RootSift()
    arrays = [load_image(p) for p in images]
    features, extract_time = _timed(lambda: [extractor.extract(a) for a in arrays])
    pairs = [
        (features[i], features[j])
        for i in range(len(features))
        for j in range(i + 1, min(len(features), i + 4))
    ]
    _, pair_time = _timed(lambda: [match_pair(a, b) for a, b in pairs])
    per_extract = extract_time / len(arrays) * 1000
    per_pair = pair_time / len(pairs) * 1000
    return {
        "images": len(arrays),
        "extract_ms_per_image": round(per_extract, 1),
        "verify_ms_per_pair": round(per_pair, 1),
        **{f"ms_per_query_top{k}": round(per_extract + k * per_pair, 1) for k in shortlist},
    }


def print_retrieval(result: dict) -> None:
    """The search table and the re-ranking costs, as text."""
    for row in result["search"]:
        print(f"gallery {row['gallery']:,} x {row['dim']}-d, {row['queries']} queries:")
        for name, figures in row.items():
            if isinstance(figures, dict):
                print(
                    f"  {name:<28} {figures['qps']:>9.1f} queries/s"
                    f"  {figures['memory_mb']:>8.1f} MB"
                    f"  recall@1 {figures['recall_at_1']:.3f}"
                )
    r = result["rerank"]
    print(
        f"re-ranking (RootSIFT, {r['images']} photos): extraction "
        f"{r['extract_ms_per_image']} ms/image, verification {r['verify_ms_per_pair']} ms/pair, "
        f"{r['ms_per_query_top3']} ms/query at top-3, {r['ms_per_query_top10']} ms/query at top-10"
    )
