"""One evaluation for every detector on the same test split, opened only after thresholds.

`SealedSplits` reads the splits written by `utils.ood.data` and decodes their images; the test
split stays sealed until `SealedSplits.unseal` has checked that every detector's threshold is
frozen (chosen on validation), and every read is logged with the order of the freezes
(``log``), so a run can show that no threshold saw the test split.

`detection_metrics`: landmark is the positive class; accuracy, precision, recall (the report's
Table 4), AUROC and the false-positive rate at 95% true-positive rate (FPR95: the share of
non-landmarks accepted by the threshold that accepts 95% of the landmarks), with the counts;
`evaluate` adds the AUROC's bootstrap interval (`auroc_interval`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from utils.data.images import ImageLoadError, load_image
from utils.metrics import auroc
from utils.ood.data import read_split
from utils.ood.detector import CLOCK, Detector


class SealedSplitError(RuntimeError):
    """The test split was asked for before every threshold was frozen."""


class SealedSplits:
    """The splits of a landmark / non-landmark manifest folder; test sealed (module docstring)."""

    def __init__(self, folder: str | Path, data_root: str | Path, min_side: int | None = None):
        self.folder, self.data_root, self.min_side = Path(folder), Path(data_root), min_side
        self.sealed = True
        self.log: list[dict] = []

    def unseal(self, detectors: Mapping[str, Detector]) -> None:
        """Open the test split; `SealedSplitError` unless every detector is frozen."""
        loose = [name for name, d in detectors.items() if not d.frozen]
        if loose:
            raise SealedSplitError(f"thresholds not chosen yet: {', '.join(loose)}")
        for name, detector in detectors.items():
            self.log.append({"event": "threshold", "detector": name, "order": detector.frozen_at})
        self.sealed = False

    def frame(self, split: str) -> pd.DataFrame:
        """The rows of a split (test: only once unsealed)."""
        if split == "test" and self.sealed:
            raise SealedSplitError("the test split is sealed until every threshold is frozen")
        self.log.append({"event": "read", "split": split, "order": next(CLOCK)})
        return read_split(self.folder, split)

    def images(self, split: str) -> tuple[pd.DataFrame, list[np.ndarray]]:
        """The split's readable rows and their RGB images (unreadable ones dropped, warned)."""
        frame = self.frame(split)
        keep, images = [], []
        for index, path in zip(frame.index, frame["path"], strict=True):
            try:
                images.append(load_image(self.data_root / path, min_side=self.min_side))
                keep.append(index)
            except ImageLoadError as err:
                warnings.warn(f"{err}; left out of the {split} split", stacklevel=2)
        return frame.loc[keep].reset_index(drop=True), images


def fpr_at_tpr(scores: np.ndarray, positive: np.ndarray, tpr: float = 0.95) -> float:
    """Share of negatives scoring at least the threshold that accepts ``tpr`` of positives."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    if not positive.any() or positive.all():
        return float("nan")
    ranked = np.sort(scores[positive])
    threshold = ranked[int(math.floor((1 - tpr) * len(ranked)))]
    return float(np.mean(scores[~positive] >= threshold))


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` at every distinct threshold, from (0, 0) to (1, 1)."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    thresholds = np.unique(scores)[::-1]
    tpr = [np.mean(scores[positive] >= t) for t in thresholds]
    fpr = [np.mean(scores[~positive] >= t) for t in thresholds]
    return np.array([0.0, *fpr]), np.array([0.0, *tpr])


def detection_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Table 4's metrics plus AUROC, FPR95 and counts (module docstring)."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    accepted = scores >= threshold
    tp, fp = int((accepted & positive).sum()), int((accepted & ~positive).sum())
    fn, tn = int((~accepted & positive).sum()), int((~accepted & ~positive).sum())
    n = len(scores)
    return {
        "accuracy": (tp + tn) / n if n else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "auroc": auroc(scores, positive),
        "fpr_at_95_tpr": fpr_at_tpr(scores, positive),
        "threshold": float(threshold),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "landmarks": int(positive.sum()),
        "non_landmarks": int((~positive).sum()),
    }


def auroc_by_landmark_kind(scores: np.ndarray, labels: np.ndarray, known: np.ndarray) -> dict:
    """Per kind of landmark photo (of a known class or not), its AUROC against all non-landmarks.

    ``known``: ``(N,)`` bool, a landmark photo of a class the detector's classifier was trained
    on. A detector built on a classifier (ODIN) can only tell a class it knows from the rest;
    this shows how much of its error comes from landmarks it was never taught. A side with no
    photos gets None.
    """
    labels, known = np.asarray(labels).astype(bool), np.asarray(known).astype(bool)
    out = {}
    for key, side in (("known", labels & known), ("other", labels & ~known)):
        rows = side | ~labels
        usable = side.any() and (~labels).any()
        out[f"auroc_{key}_landmarks"] = auroc(scores[rows], labels[rows]) if usable else None
        out[f"{key}_landmarks"] = int(side.sum())
    return out


def auroc_interval(
    scores: np.ndarray, labels: np.ndarray, draws: int = 2000, seed: int = 0
) -> list[float]:
    """95% percentile bootstrap interval ``[low, high]`` of the AUROC (`utils.metrics.auroc`).

    Landmark and non-landmark photos are resampled with replacement each within its own kind,
    so both keep their counts ``P`` and ``N``. With ``W[i, j] = [s_i > s_j] + [s_i = s_j] / 2``
    over landmark ``i`` and non-landmark ``j``, a draw that takes each photo ``a_i`` and ``b_j``
    times has AUROC ``a^T W b / (P N)``: every draw from one ``(P, N)`` matrix.
    """
    scores, positive = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return [float("nan"), float("nan")]
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    rng = np.random.default_rng(seed)
    a = rng.multinomial(len(pos), np.full(len(pos), 1 / len(pos)), size=draws)
    b = rng.multinomial(len(neg), np.full(len(neg), 1 / len(neg)), size=draws)
    values = ((a @ wins) * b).sum(axis=1) / (len(pos) * len(neg))
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def auroc_by_source(scores: np.ndarray, labels: np.ndarray, sources: np.ndarray) -> dict:
    """``{source: AUROC}``: every landmark photo against the non-landmarks of each source.

    ``sources``: ``(N,)`` each photo's source (a non-landmark dataset, or
    `utils.ood.scored.KINDS`: other places and photos of no landmark are told apart).
    """
    labels, sources = np.asarray(labels).astype(bool), np.asarray(sources)
    if not labels.any():
        return {}
    out = {}
    for source in sorted(set(sources[~labels])):
        rows = labels | (sources == source)
        out[str(source)] = auroc(scores[rows], labels[rows])
    return out


def evaluate(
    detectors: Mapping[str, Detector],
    batches: Mapping[str, object],
    labels: np.ndarray,
    known: np.ndarray | None = None,
    sources: np.ndarray | None = None,
) -> tuple[dict, dict]:
    """Metrics of each detector on the test split, and its scores.

    ``batches[name]``: what detector ``name`` scores (the prepared images, or embeddings), all
    for the same test rows; ``labels``: 1 for a landmark. With ``known`` (see
    `auroc_by_landmark_kind`) each result also has the AUROC per kind of landmark photo, with
    ``sources`` (`auroc_by_source`) per source of non-landmark photo.
    """
    results, scores = {}, {}
    for name, detector in detectors.items():
        scores[name] = detector.score(batches[name])
        results[name] = {
            **detection_metrics(scores[name], labels, detector.threshold),
            "auroc_interval": auroc_interval(scores[name], labels),
            **(auroc_by_landmark_kind(scores[name], labels, known) if known is not None else {}),
            **(
                {"auroc_by_source": auroc_by_source(scores[name], labels, sources)}
                if sources is not None
                else {}
            ),
            **detector.describe(),
        }
    return results, scores


def inputs_for(detectors: Mapping[str, Detector], images: list[np.ndarray]) -> dict:
    """What each detector scores for ``images``: prepared once per input size.

    Embeddings are computed once per network (matching detectors sharing one share them).
    """
    from utils.ood.matching import MatchingDetector

    prepared, embedded, out = {}, {}, {}
    for name, detector in detectors.items():
        key = (detector.image_size, detector.pipeline)
        if key not in prepared:
            prepared[key] = detector.prepare(images)
        if isinstance(detector, MatchingDetector):
            if id(detector.model) not in embedded:
                embedded[id(detector.model)] = detector.embed(prepared[key])
            out[name] = embedded[id(detector.model)]
        else:
            out[name] = prepared[key]
    return out


def fit_thresholds(
    detectors: Mapping[str, Detector], batches: Mapping, labels: np.ndarray, rule: str
) -> dict:
    """Choose and freeze every detector's threshold on the validation inputs; returns them.

    Each detector's ``validation`` gains its AUROC and its accuracy at the chosen threshold.
    """
    thresholds = {}
    for name, detector in detectors.items():
        scores = detector.score(batches[name])
        thresholds[name] = detector.fit_threshold(scores, labels, rule)
        metrics = detection_metrics(scores, labels, thresholds[name])
        detector.validation.update(
            {key: metrics[key] for key in ("auroc", "accuracy", "landmarks", "non_landmarks")}
        )
    return thresholds


def best_on_validation(detectors: Mapping[str, Detector]) -> str:
    """The name of the detector of highest validation AUROC (after `fit_thresholds`)."""
    return max(detectors, key=lambda name: detectors[name].validation.get("auroc", -1.0))


def examples(scores: np.ndarray, labels: np.ndarray, threshold: float, per_kind: int = 3) -> dict:
    """Row indices of a few photos per outcome: the most confident of each, for a figure.

    Keys ``accepted landmark``, ``accepted non-landmark``, ``rejected landmark``,
    ``rejected non-landmark``.
    """
    scores, positive = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    accepted = scores >= threshold
    kinds = {
        "accepted landmark": (accepted & positive, -1),
        "accepted non-landmark": (accepted & ~positive, -1),
        "rejected landmark": (~accepted & positive, 1),
        "rejected non-landmark": (~accepted & ~positive, 1),
    }
    out = {}
    for name, (mask, sign) in kinds.items():
        rows = np.flatnonzero(mask)
        out[name] = rows[np.argsort(sign * scores[rows], kind="stable")][:per_kind].tolist()
    return out
