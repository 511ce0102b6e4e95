"""Recognition metrics: accuracy, Kaggle's GAP and the report's GAP@k. Pure and vectorised.

**GAP** (Google Landmark Recognition 2019-2021). Each query has at most one prediction (a
landmark and a confidence). The N predictions are sorted by confidence, highest first, and::

    GAP = 1/M * sum_{i=1..N} P(i) * rel(i)

where ``P(i)`` is the precision of the first ``i`` predictions, ``rel(i)`` is 1 when
prediction ``i`` is correct, and ``M`` is the number of queries whose truth holds a landmark.
A query without a prediction takes no rank; a prediction for a non-landmark query is wrong
(it lowers the precision of everything ranked after it) unless ``ignore_non_landmarks``
drops such predictions. Ties in confidence keep the input order (a stable sort). With
``M == 0`` GAP is undefined and NaN is returned.

**GAP@k** (the report's variant, as in YouTube-8M): each query contributes its ``k`` best
predictions; all are pooled and sorted by confidence, and::

    GAP@k = sum_i P(i) * (R(i) - R(i-1)),   R(i) = (correct among the first i) / M

so ``GAP@1 == GAP``.

CLI: ``python -m utils gap --solution SOLUTION.csv --submission SUBMISSION.csv``.
"""

from __future__ import annotations

import numpy as np

NO_LANDMARK = -1  # integer code for "no prediction" / "not a landmark"


def accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of queries whose prediction equals the truth; NaN for no queries.

    >>> accuracy(np.array([1, 2, 3]), np.array([1, 2, 4]))
    0.6666666666666666
    """
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"shapes differ: predicted {predicted.shape}, truth {truth.shape}")
    return float(np.mean(predicted == truth)) if truth.size else float("nan")


def gap_from_correct(
    correct: np.ndarray,
    confidence: np.ndarray,
    has_prediction: np.ndarray,
    is_landmark: np.ndarray,
    ignore_non_landmarks: bool = False,
) -> float:
    """GAP from per-query flags (all arrays ``(Q,)``); see the module docstring.

    Args:
        correct: the query's prediction is one of its true landmarks.
        confidence: the prediction's confidence (ignored where there is no prediction).
        has_prediction: the query has a prediction.
        is_landmark: the query's truth holds a landmark (these count in M).
        ignore_non_landmarks: drop predictions made for non-landmark queries.
    """
    correct = np.asarray(correct, dtype=bool)
    confidence = np.asarray(confidence, dtype=np.float64)
    keep = np.asarray(has_prediction, dtype=bool)
    is_landmark = np.asarray(is_landmark, dtype=bool)
    if not correct.shape == confidence.shape == keep.shape == is_landmark.shape:
        raise ValueError("correct, confidence, has_prediction and is_landmark differ in shape")
    if ignore_non_landmarks:
        keep = keep & is_landmark
    m = int(is_landmark.sum())
    if m == 0:
        return float("nan")
    order = np.argsort(-confidence[keep], kind="stable")
    rel = correct[keep][order].astype(np.float64)
    precision = np.cumsum(rel) / np.arange(1, rel.size + 1)
    return float(np.dot(precision, rel) / m)


def gap(
    predicted: np.ndarray,
    confidence: np.ndarray,
    truth: np.ndarray,
    ignore_non_landmarks: bool = False,
) -> float:
    """GAP with one true landmark per query; ``NO_LANDMARK`` (-1) marks no prediction/truth.

    >>> gap(np.array([5, 7, -1]), np.array([0.9, 0.8, 0.0]), np.array([5, 6, 7]))
    0.3333333333333333
    """
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    has_prediction = predicted != NO_LANDMARK
    is_landmark = truth != NO_LANDMARK
    correct = has_prediction & is_landmark & (predicted == truth)
    return gap_from_correct(correct, confidence, has_prediction, is_landmark, ignore_non_landmarks)


def gap_at_k(predicted: np.ndarray, confidence: np.ndarray, truth: np.ndarray) -> float:
    """The report's GAP@k for ``(Q, k)`` ranked predictions and ``(Q,)`` truths.

    ``NO_LANDMARK`` in ``predicted`` marks an empty slot; in ``truth`` a non-landmark query.
    A query counts at most once as correct (the first correct of its k predictions).
    """
    predicted = np.asarray(predicted)
    confidence = np.asarray(confidence, dtype=np.float64)
    truth = np.asarray(truth)
    if predicted.ndim != 2 or predicted.shape != confidence.shape:
        raise ValueError(f"predicted and confidence must both be (Q, k), got {predicted.shape}")
    if truth.shape != predicted.shape[:1]:
        raise ValueError(f"truth must be (Q,), got {truth.shape} for {predicted.shape[0]} queries")
    m = int((truth != NO_LANDMARK).sum())
    if m == 0:
        return float("nan")
    hit = (predicted == truth[:, None]) & (truth[:, None] != NO_LANDMARK)
    first_hit = hit & (np.cumsum(hit, axis=1) == 1)
    filled = predicted != NO_LANDMARK
    order = np.argsort(-confidence[filled], kind="stable")
    rel = first_hit[filled][order].astype(np.float64)
    precision = np.cumsum(rel) / np.arange(1, rel.size + 1)
    return float(np.dot(precision, rel) / m)


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the boolean ``positive`` labels.

    The Mann-Whitney form: the probability that a random positive scores higher than a random
    negative, ties counting one half (average ranks). NaN when either class is empty.

    >>> auroc(np.array([0.9, 0.8, 0.1]), np.array([True, False, False]))
    1.0
    """
    from scipy.stats import rankdata

    scores = np.asarray(scores, np.float64)
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
