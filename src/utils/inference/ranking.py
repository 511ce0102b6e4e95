"""Non-landmark photos ranked low rather than deleted: the leaderboard's confidence.

GAP sorts every prediction by confidence; a wrong prediction costs only the correct ones ranked
below it. So each test photo keeps its nearest landmark, and its confidence carries the
evidence that it shows no landmark (GLR 2020's first place):

- kNN score ``s``: the ``k`` nearest gallery images by cosine, aggregated per landmark
  (`utils.retrieval.index.aggregate`: ``top1`` the best cosine, ``sum`` the summed cosines of
  the landmark, ``vote`` the most frequent);
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


@dataclass(frozen=True)
class RankSettings:
    """How a prediction and its confidence come from the kNN results (module docstring)."""

    k: int = 1
    aggregation: str = "top1"
    penalty_k: int = 10
    weight: float = 1.0
    gate: bool = False  # blank the photos the detector rejects

    def __post_init__(self):
        if self.k < 1 or self.penalty_k < 0 or self.weight < 0:
            raise ValueError(f"k >= 1, penalty_k >= 0 and weight >= 0 required: {self}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}: {self.aggregation!r}")

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


def rank(
    cosines: np.ndarray,
    indices: np.ndarray,
    labels: np.ndarray,
    penalty: np.ndarray,
    settings: RankSettings,
    accepted: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Landmark and confidence ``(Q,)`` of each query from its kNN results ``(Q, >=k)``.

    ``penalty`` ``(Q,)`` is the query's non-landmark penalty for ``settings.penalty_k``;
    ``accepted`` ``(Q,)`` the detector's verdicts, used when ``settings.gate``.
    """
    k = min(settings.k, cosines.shape[1])
    landmarks, score = aggregate(cosines[:, :k], indices[:, :k], labels, settings.aggregation)
    landmarks = np.asarray(landmarks, np.int64)
    confidence = ranked_confidence(score, penalty, settings.weight)
    if settings.gate and accepted is not None:
        landmarks = np.where(accepted, landmarks, NO_LANDMARK)
        confidence = np.where(accepted, confidence, 0.0)
    return landmarks, confidence
