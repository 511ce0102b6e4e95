"""08's settings chosen on one part of a scored test set, reported on the other.

The embedded dataset ships ``test_solution.csv``; Kaggle's does not. Where there is a solution,
each test id falls in the ``tune`` part or the ``check`` part (`utils.submission.tune_part`, a
hash of the id fixed in code; notebook 07 uses the same parts).
`choose` tries every `RankSettings` of a grid on the tune part (highest GAP, ties to the
earlier, i.e. simpler, setting) and `scores` reports the chosen one on the check part and on the
whole, never on the part it was chosen on alone.

Reported per part: GAP (percentile bootstrap interval over queries), accuracy over the photos
whose landmark is in the gallery (Wilson interval), rows predicted, and ``confident
non-landmarks``: non-landmark photos ranked among the first ``M`` predictions, ``M`` the number
of landmark photos of the part (the predictions that GAP's ranking counts as confident).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from utils.inference.ranking import RankSettings
from utils.metrics import NO_LANDMARK, gap
from utils.retrieval.realphotos import bootstrap_interval, wilson


def settings_grid(
    ks: Iterable[int] = (1, 3, 5, 10),
    aggregations: Iterable[str] = ("top1", "sum"),
    penalty_ks: Iterable[int] = (0, 1, 5, 10, 20),
    weights: Iterable[float] = (0.5, 1.0, 2.0, 4.0),
    gates: Iterable[bool] = (False, True),
    whitens: Iterable[bool] = (False,),
    confidences: Iterable[str] = ("score", "nearest"),
) -> list[RankSettings]:
    """Every combination, simplest first; ``top1`` needs no ``k`` above 1, weight none at 0.

    ``nearest`` is the same confidence as ``score`` for an unwhitened ``top1`` (not repeated).
    """
    grid = []
    for gate, whiten, confidence in itertools.product(gates, whitens, confidences):
        for aggregation in aggregations:
            if aggregation == "top1" and confidence != "score" and not whiten:
                continue
            for k in ks if aggregation != "top1" else (1,):
                for penalty_k in penalty_ks:
                    for weight in weights if penalty_k else (0.0,):
                        grid.append(
                            RankSettings(
                                k, aggregation, penalty_k, weight, gate, whiten, confidence
                            )
                        )
    return list(dict.fromkeys(grid))


def scores(
    landmarks: np.ndarray,
    confidence: np.ndarray,
    truth: np.ndarray,
    known: np.ndarray,
    intervals: bool = True,
) -> dict:
    """The module docstring's figures for one part (arrays ``(Q,)``; ``known``: in gallery)."""
    landmarks, truth = np.asarray(landmarks), np.asarray(truth)
    known = np.asarray(known, bool)
    is_landmark = truth != NO_LANDMARK
    predicted = landmarks != NO_LANDMARK
    correct = predicted & (landmarks == truth)
    m = int(is_landmark.sum())
    order = np.argsort(-np.where(predicted, confidence, -np.inf), kind="stable")[:m]
    out = {
        "queries": len(truth),
        "landmark_photos": m,
        "known_landmark_photos": int(known.sum()),
        "predicted": int(predicted.sum()),
        "gap": gap(landmarks, confidence, truth),
        "accuracy_known": float(correct[known].mean()) if known.any() else float("nan"),
        "correct_known": int(correct[known].sum()),
        "confident_non_landmarks": int((predicted[order] & ~is_landmark[order]).sum()),
        "non_landmark_photos": int((~is_landmark).sum()),
    }
    if intervals:
        out["gap_interval"] = bootstrap_interval(
            lambda i: gap(landmarks[i], confidence[i], truth[i]), is_landmark
        )
        out["accuracy_known_interval"] = wilson(out["correct_known"], out["known_landmark_photos"])
    return out


def part_scores(
    landmarks: np.ndarray,
    confidence: np.ndarray,
    truth: np.ndarray,
    known: np.ndarray,
    tune: np.ndarray,
) -> dict[str, dict]:
    """`scores` of the tune part, the check part and the whole.

    ``tune``: `utils.submission.tune_part` of the ids.
    """
    return {
        name: scores(landmarks[m], confidence[m], truth[m], known[m]) for name, m in _parts(tune)
    }


def _parts(tune: np.ndarray) -> tuple[tuple[str, np.ndarray], ...]:
    """``(name, mask)`` of the tune part, the check part and the whole (``tune``: bool ``(Q,)``)."""
    return (("tune", tune), ("check", ~tune), ("whole", np.ones_like(tune)))


def paired_differences(
    ours: tuple[np.ndarray, np.ndarray],
    other: tuple[np.ndarray, np.ndarray],
    truth: np.ndarray,
    tune: np.ndarray,
) -> dict[str, dict]:
    """GAP of ``ours`` minus GAP of ``other`` on each part, with a paired bootstrap interval.

    ``ours`` and ``other``: ``(landmarks (Q,), confidence (Q,))`` for the same queries. Each
    bootstrap draw resamples the part's ids once (as `scores` does) and scores both on it, so the
    interval is that of the difference itself; one that excludes 0 is a difference the part can
    tell. Returns ``{part: {"gap": d, "interval": (low, high)}}``.
    """
    truth, tune = np.asarray(truth), np.asarray(tune, bool)
    (a, a_conf), (b, b_conf) = (tuple(map(np.asarray, pair)) for pair in (ours, other))
    out = {}
    for name, mask in _parts(tune):
        rows = np.flatnonzero(mask)

        def difference(i, rows=rows):
            i = rows[i]
            return gap(a[i], a_conf[i], truth[i]) - gap(b[i], b_conf[i], truth[i])

        everything = np.arange(len(rows))
        out[name] = {
            "gap": float(difference(everything)),
            "interval": bootstrap_interval(difference, truth[rows] != NO_LANDMARK),
        }
    return out


def choose(
    grid: Sequence[RankSettings],
    predict: Callable[[RankSettings], tuple[np.ndarray, np.ndarray]],
    truth: np.ndarray,
    tune: np.ndarray,
) -> tuple[RankSettings, list[tuple[RankSettings, float]]]:
    """The setting of highest tune-part GAP, and every setting's tune GAP (in grid order).

    ``predict(settings)`` gives ``(landmarks, confidence)`` for all queries; only the tune rows
    are looked at.
    """
    if not len(grid):
        raise ValueError("an empty settings grid")
    tune = np.asarray(tune, bool)
    table = []
    for settings in grid:
        landmarks, confidence = predict(settings)
        table.append((settings, gap(landmarks[tune], confidence[tune], truth[tune])))
    best = max(range(len(table)), key=lambda i: (np.nan_to_num(table[i][1], nan=-1.0), -i))
    return table[best][0], table
