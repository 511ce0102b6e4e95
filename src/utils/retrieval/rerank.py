"""Geometric re-ranking: match local features, verify with RANSAC, score landmarks.

For a query and a candidate gallery image:

1. `match_descriptors`: nearest neighbours by descriptor dot product (descriptors are unit
   length), kept when they pass Lowe's ratio test ``d1 < ratio * d2`` and, optionally, are
   mutual nearest neighbours;
2. `verify`: OpenCV's RANSAC fits a geometric model to the matched points (``affine``:
   ``cv2.estimateAffine2D``; ``homography``: ``cv2.findHomography`` with MAGSAC++;
   ``fundamental``: ``cv2.findFundamentalMat`` with MAGSAC++). Points are first divided by the
   longer image side, so ``threshold`` is a fraction of the image size (0.02 ~ 20 px at 1000);
3. the inliers are the evidence.

`landmark_evidence` turns per-image inliers into per-landmark evidence: the inliers above a
noise floor, summed over the landmark's gallery photos,
``E(L) = sum_{j in L} max(0, inliers_j - floor)``; with global similarities it adds the fused
per-image score of GLR 2019 solutions, ``cos_j + min(inliers_j, c) / c``, of the best photo.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from utils.retrieval.local_features import LocalFeatures

# fewest tentative matches worth verifying (a model fits any smaller set exactly)
MIN_POINTS = {"affine": 4, "homography": 6, "fundamental": 12}


@dataclass(frozen=True)
class MatchSettings:
    """Matching and verification parameters (see the module docstring)."""

    ratio: float = 0.8
    mutual: bool = True
    method: str = "affine"
    threshold: float = 0.02
    iterations: int = 2000

    def __post_init__(self):
        if self.method not in MIN_POINTS:
            raise ValueError(f"method must be one of {sorted(MIN_POINTS)}, not {self.method!r}")


@dataclass(frozen=True)
class PairMatch:
    """Verified matches of a query and one gallery image: inlier count and point pairs.

    ``pairs`` is ``(K, 4)``: query x, y, gallery x, y of each inlier (image pixels).
    """

    inliers: int
    tentative: int
    pairs: np.ndarray = field(repr=False)


def match_descriptors(
    a: np.ndarray, b: np.ndarray, ratio: float = 0.8, mutual: bool = True
) -> np.ndarray:
    """Index pairs ``(M, 2)`` of ratio-test (and mutual) nearest neighbours from ``a`` to ``b``."""
    if len(a) < 1 or len(b) < 2:
        return np.zeros((0, 2), np.int64)
    sim = a @ b.T  # unit vectors: squared distance = 2 - 2 sim
    rows = np.arange(len(a))
    column_best = np.argmax(sim, axis=0) if mutual else None
    best = np.argmax(sim, axis=1)
    s1 = sim[rows, best].copy()
    sim[rows, best] = -np.inf
    s2 = sim.max(axis=1)
    d1 = np.sqrt(np.maximum(0.0, 2 - 2 * s1))
    d2 = np.sqrt(np.maximum(0.0, 2 - 2 * s2))
    keep = d1 < ratio * d2
    if mutual:
        keep &= column_best[best] == rows
    return np.stack([rows[keep], best[keep]], axis=1)


def verify(
    points_a: np.ndarray,
    points_b: np.ndarray,
    size_a: tuple[int, int],
    size_b: tuple[int, int],
    settings: MatchSettings,
) -> np.ndarray:
    """Boolean inlier mask of matched points under the RANSAC model of ``settings``."""
    n = len(points_a)
    if n < MIN_POINTS[settings.method]:
        return np.zeros(n, bool)
    pa = (points_a / max(size_a)).astype(np.float32)
    pb = (points_b / max(size_b)).astype(np.float32)
    t, it = settings.threshold, settings.iterations
    try:
        if settings.method == "affine":
            _, mask = cv2.estimateAffine2D(
                pa, pb, method=cv2.RANSAC, ransacReprojThreshold=t, maxIters=it, confidence=0.999
            )
        elif settings.method == "homography":
            _, mask = cv2.findHomography(pa, pb, cv2.USAC_MAGSAC, t, maxIters=it, confidence=0.999)
        else:
            _, mask = cv2.findFundamentalMat(pa, pb, cv2.USAC_MAGSAC, t, 0.999, it)
    except cv2.error:  # degenerate point sets (all collinear, duplicates): no model
        return np.zeros(n, bool)
    return np.zeros(n, bool) if mask is None else mask.ravel().astype(bool)


def match_pair(
    query: LocalFeatures, gallery: LocalFeatures, settings: MatchSettings | None = None
) -> PairMatch:
    """Match, verify and count inliers between two images' features."""
    settings = settings or MatchSettings()
    pairs = match_descriptors(
        query.descriptors, gallery.descriptors, settings.ratio, settings.mutual
    )
    pa, pb = query.keypoints[pairs[:, 0]], gallery.keypoints[pairs[:, 1]]
    mask = verify(pa, pb, query.size, gallery.size, settings)
    points = np.concatenate([pa[mask], pb[mask]], axis=1) if mask.any() else np.zeros((0, 4))
    return PairMatch(int(mask.sum()), len(pairs), points.astype(np.float32))


def fused_score(cosine, inliers, cap: int = 20) -> np.ndarray:
    """GLR 2019's fused per-image score ``cos + min(inliers, c) / c``, shape of the inputs.

    ``cosine`` and ``inliers`` are ``(N,)`` (or broadcastable); ``c = cap`` bounds what
    geometry adds (at most 1, as much as a perfect global match).
    """
    inliers = np.asarray(inliers, np.float64)
    return np.asarray(cosine, np.float64) + np.minimum(inliers, cap) / cap


def landmark_evidence(
    labels: Sequence[Hashable],
    inliers: np.ndarray,
    floor: float = 0.0,
    cosine: np.ndarray | None = None,
    cap: int = 20,
) -> dict:
    """Evidence per landmark from per-gallery-image inliers (see the module docstring).

    Args:
        labels: landmark of each gallery image, ``(G,)``.
        inliers: inliers of the query with each gallery image, ``(G,)``.
        floor: inliers expected between unrelated images (subtracted before summing).
        cosine: global cosine similarity with each gallery image, ``(G,)``, or None.
        cap: ``c`` in ``cos + min(inliers, c) / c``.
    """
    labels = list(labels)
    excess = np.maximum(0.0, np.asarray(inliers, np.float64) - floor)
    evidence: dict = {}
    for label, value in zip(labels, excess, strict=True):
        evidence[label] = evidence.get(label, 0.0) + float(value)
    if cosine is not None:
        fused = fused_score(cosine, inliers, cap)
        for label in evidence:
            best = max(f for f, lab in zip(fused, labels, strict=True) if lab == label)
            evidence[label] += float(best)
    return evidence


def rerank_shortlist(
    query: LocalFeatures,
    candidates: Sequence[LocalFeatures],
    cosine: np.ndarray,
    cap: int = 20,
    settings: MatchSettings | None = None,
) -> tuple[int, float, list]:
    """Re-rank a retrieval shortlist: the candidate of highest ``cos + min(inliers, c) / c``.

    Returns its position in the shortlist, that fused score (the confidence) and the
    `PairMatch` of every candidate, in the shortlist's order.
    """
    matches = [match_pair(query, c, settings) for c in candidates]
    fused = fused_score(cosine, [m.inliers for m in matches], cap)
    best = int(np.argmax(fused))
    return best, float(fused[best]), matches
