"""Non-landmark photos ranked low rather than deleted: the leaderboard's confidence.

GAP sorts every prediction by confidence; a wrong prediction costs only the correct ones ranked
below it. So each test photo keeps its nearest landmark, and its confidence carries the
evidence that it shows no landmark (GLR 2020's first place):

- kNN score ``s``: the ``k`` nearest gallery images by cosine, aggregated per landmark
  (`utils.retrieval.index.aggregate`: ``top1`` the best cosine, ``sum`` the summed cosines of
  the landmark, ``vote`` the most frequent); with ``whiten`` the search ran on descriptors
  PCA-whitened on the gallery (`utils.retrieval.knn.fit_whitening`), which sharpens *which*
  landmark; with local verification, each landmark's score also gets ``verify * V(L)``,
  ``V(L) = max_j min(max(n_j - floor, 0), cap) / cap`` over its shortlisted photos ``j`` with
  ``n_j`` RootSIFT + RANSAC inliers (`local_votes`; 0 to 1), and the answer is the landmark of
  the highest score;
- ``confidence="score"`` ranks by that score; ``"nearest"`` by the plain (unwhitened) cosine of
  the answer's most similar shortlisted photo plus ``verify * V(L) / 2``, which on real photos
  orders right answers above the rest better (docs/retrieval.md; `recognize`'s rule);
- non-landmark penalty ``p``: with ``N`` the embeddings of known non-landmark photos,
  ``p = mean of the penalty_k largest cos(q, N_j)`` (`non_landmark_penalty`; 0 when
  ``penalty_k = 0``); without such photos, ``p = 1 - P(landmark)`` of a detector
  (`utils.ood.imagenet`: the ImageNet network's landmark-like mass) stands in;
- confidence ``c = s - w * p`` (`ranked_confidence`), ``w`` the penalty weight.

A hard gate (blank every photo a detector rejects) stays an option, chosen only where it gains
on the tune part (`utils.inference.tuning`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from utils.metrics import NO_LANDMARK
from utils.retrieval.index import aggregate

AGGREGATIONS = ("top1", "sum", "vote")
CONFIDENCES = ("score", "nearest")


@dataclass(frozen=True)
class RankSettings:
    """How a prediction and its confidence come from the kNN results (module docstring)."""

    k: int = 1
    aggregation: str = "top1"
    penalty_k: int = 10
    weight: float = 1.0
    gate: bool = False  # blank the photos the detector rejects
    whiten: bool = False  # search the gallery-whitened descriptors
    confidence: str = "score"  # score | nearest (module docstring)
    verify: float = 0.0  # weight of the local votes V(L); 0: no local verification

    def __post_init__(self):
        if self.k < 1 or self.penalty_k < 0 or self.weight < 0 or self.verify < 0:
            raise ValueError(f"k >= 1, penalty_k, weight, verify >= 0 required: {self}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}: {self.aggregation!r}")
        if self.confidence not in CONFIDENCES:
            raise ValueError(f"confidence must be one of {CONFIDENCES}: {self.confidence!r}")

    def as_dict(self) -> dict:
        """Plain values (for a report)."""
        return asdict(self)


def non_landmark_penalty(
    queries: np.ndarray, non_landmarks: np.ndarray, penalty_k: int
) -> np.ndarray:
    """``(Q,)`` mean of the ``penalty_k`` largest cosines of each query to ``(N, D)`` photos.

    Unit rows in, 0 for ``penalty_k = 0`` or no photos; ``penalty_k`` above ``N`` takes all.
    """
    queries = np.asarray(queries, np.float32)
    if penalty_k <= 0 or not len(non_landmarks) or not len(queries):
        return np.zeros(len(queries), np.float64)
    cos = queries @ np.asarray(non_landmarks, np.float32).T
    k = min(penalty_k, cos.shape[1])
    return (-np.partition(-cos, k - 1, axis=1)[:, :k]).mean(axis=1).astype(np.float64)


def sorted_penalties(queries: np.ndarray, non_landmarks: np.ndarray, most: int) -> np.ndarray:
    """``(Q, min(most, N))`` each query's largest cosines to the photos, best first.

    ``cumsum / arange`` of it gives `non_landmark_penalty` for every ``penalty_k <= most`` at
    once (the tuning grid).
    """
    queries = np.asarray(queries, np.float32)
    if not len(non_landmarks) or most <= 0:
        return np.zeros((len(queries), 0), np.float64)
    cos = queries @ np.asarray(non_landmarks, np.float32).T
    k = min(most, cos.shape[1])
    top = -np.partition(-cos, k - 1, axis=1)[:, :k]
    return -np.sort(-top, axis=1).astype(np.float64)


def ranked_confidence(score: np.ndarray, penalty: np.ndarray, weight: float) -> np.ndarray:
    """``c = s - w * p`` elementwise."""
    return np.asarray(score, np.float64) - float(weight) * np.asarray(penalty, np.float64)


def local_votes(inliers: np.ndarray, floor: float, cap: int = 20) -> np.ndarray:
    """``min(max(n - floor, 0), cap) / cap`` elementwise: inliers above chance, 0 to 1."""
    return np.clip(np.asarray(inliers, np.float64) - floor, 0.0, cap) / cap


def _with_local_votes(cosines, indices, labels, plain, verified, settings):
    """`rank`'s landmark and score before the penalty, with the local votes (``vote`` sums)."""
    k = 1 if settings.aggregation == "top1" else min(settings.k, cosines.shape[1])
    neighbour_labels = np.asarray(labels)[indices]
    landmarks = np.empty(len(cosines), np.int64)
    confidence = np.empty(len(cosines), np.float64)
    for q in range(len(cosines)):
        scores: dict = {}  # in neighbour order: ties go to the landmark seen first
        for j in range(k):
            label = neighbour_labels[q, j]
            scores[label] = scores.get(label, 0.0) + float(cosines[q, j])
        votes: dict = {}
        for j in range(verified.shape[1]):
            label = neighbour_labels[q, j]
            votes[label] = max(votes.get(label, 0.0), float(verified[q, j]))
        for label, value in votes.items():
            scores[label] = scores.get(label, 0.0) + settings.verify * value
        best = max(scores, key=scores.__getitem__)
        landmarks[q] = best
        if settings.confidence == "score":
            confidence[q] = scores[best]
        else:
            nearest = plain[q][neighbour_labels[q] == best].max()
            confidence[q] = nearest + settings.verify * votes.get(best, 0.0) / 2
    return landmarks, confidence


def rank(
    cosines: np.ndarray,
    indices: np.ndarray,
    labels: np.ndarray,
    penalty: np.ndarray,
    settings: RankSettings,
    accepted: np.ndarray | None = None,
    plain: np.ndarray | None = None,
    verified: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Landmark and confidence ``(Q,)`` of each query from its kNN results ``(Q, >=k)``.

    ``penalty`` ``(Q,)`` is the query's non-landmark penalty for ``settings.penalty_k``;
    ``accepted`` ``(Q,)`` the detector's verdicts, used when ``settings.gate``. ``plain``
    ``(Q, n)``: the unwhitened cosines of the same neighbours (None: ``cosines``), for
    ``confidence="nearest"``; ``verified`` ``(Q, m)``: `local_votes` of the first ``m``
    neighbours, used when ``settings.verify``.
    """
    plain = cosines if plain is None else plain
    if settings.verify and verified is not None:
        landmarks, score = _with_local_votes(cosines, indices, labels, plain, verified, settings)
    else:
        k = min(settings.k, cosines.shape[1])
        landmarks, score = aggregate(cosines[:, :k], indices[:, :k], labels, settings.aggregation)
        landmarks = np.asarray(landmarks, np.int64)
        if settings.confidence == "nearest":
            mine = np.asarray(labels)[indices] == landmarks[:, None]
            score = np.where(mine, plain, -np.inf).max(axis=1)
    confidence = ranked_confidence(score, penalty, settings.weight)
    if settings.gate and accepted is not None:
        landmarks = np.where(accepted, landmarks, NO_LANDMARK)
        confidence = np.where(accepted, confidence, 0.0)
    return landmarks, confidence
