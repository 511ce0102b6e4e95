"""The rejection rule of `utils.retrieval.recognize`, calibrated on the gallery itself.

Evidence per landmark of one query (`landmark_evidence`):
``E(L) = sum_{j in L} max(0, inliers_j - floor) + w * max(0, max_{j in L} cos_j - c0)``:
verified inliers above the noise ``floor`` summed over the landmark's photos, plus, with a
global descriptor, ``w`` inliers per unit of the best photo's cosine above ``c0`` (the cosine
unrelated photos reach; ``w = cosine_weight``). With ``cosine_weight=None`` (a trained
checkpoint's embeddings, as before) the cosine term is GLR 2019's fused score of the best photo,
``cos + min(inliers, 20) / 20`` (`utils.retrieval.rerank.landmark_evidence`). The answer is the
landmark whose evidence most exceeds its threshold (`margin`), with ``confidence = E / (E +
tau(L))`` (`confidence_of`).

Calibration (`calibrate`): every gallery photo plays a query against the rest of the gallery
and sees the candidates a query would see. ``floor`` is the 95th percentile of the inliers of
its pairs with other landmarks (what unrelated photos share by chance), ``c0`` the 95th
percentile of their cosines (measured on pairs drawn at random, not on a shortlist of the most
similar). Rule ``landmark`` (the default): ``tau(L)`` is the 75th percentile (95th with the
cosine term, `FUSED_TAU_QUANTILE`) of the evidence that photos of other landmarks gather for L;
``tau``, used for a landmark no photo saw, the same percentile over photos of the largest
evidence each gathers for a wrong landmark. Quantiles,
not the maximum: one mislabelled gallery photo (GLDv2 has about 2% wrong labels) would
otherwise set the threshold for every landmark; per landmark, it moves only the two landmarks
it confuses. The rule and the level were chosen on the tune part of the real photos
(`utils.retrieval.realphotos`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from utils.retrieval.rerank import landmark_evidence as fused_landmark_evidence

FLOOR_QUANTILE = 0.95
FLOOR_RANDOM_PAIRS = 200  # random pairs of two landmarks measuring a noise floor (`random_pairs`)
TAU_QUANTILE = 0.75  # chosen on the tune part of the real photos (utils.retrieval.realphotos)
# With the pretrained descriptor's cosine term the wrong evidence is continuous, not mostly 0:
# the 75th percentile let about a quarter of unrelated photos through by construction. The
# smallest of 0.75, 0.9, 0.95, 0.99, 1 that accepts none of the tune part's 22 other photos,
# plain, night and far, with no known-landmark query lost (utils.retrieval.realphotos).
FUSED_TAU_QUANTILE = 0.95
RULES = ("max", "quantile", "landmark")


@dataclass(frozen=True)
class Calibration:
    """The rejection rule: noise ``floor`` (inliers), threshold ``tau``, per-landmark ones.

    ``thresholds`` maps a landmark to its own threshold (rule ``landmark``); a landmark not in
    it (none measured) uses ``tau``. ``suspects``: indices of gallery photos that look
    mislabelled (`calibrate`), left out of the rule and of recognition.
    """

    floor: float
    tau: float
    thresholds: dict = field(default_factory=dict)
    negatives: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    suspects: tuple = ()
    cos_floor: float = 0.0  # c0 of the module docstring (with a cosine weight)

    def threshold(self, landmark: Hashable) -> float:
        """The evidence ``landmark`` must exceed to be accepted."""
        return self.thresholds.get(landmark, self.tau)


def random_pairs(
    labels: Sequence[Hashable], pairs: int = FLOOR_RANDOM_PAIRS, seed: int = 2
) -> list[tuple[int, int]]:
    """Up to ``pairs`` distinct ``(i, j)``, ``i < j``, of photos of two landmarks, sorted.

    Drawn seeded, at most ``20 * pairs`` draws: what unrelated photos share by chance is
    measured on them (the `FLOOR_QUANTILE` of their inliers).
    """
    labels = np.asarray(labels, dtype=object)
    if len(labels) < 2:
        return []
    rng = np.random.default_rng(seed)
    found: set[tuple[int, int]] = set()
    for _ in range(pairs * 20):
        if len(found) >= pairs:
            break
        i, j = (int(x) for x in rng.integers(0, len(labels), 2))
        if labels[i] != labels[j]:
            found.add((min(i, j), max(i, j)))
    return sorted(found)


def best_per_landmark(labels: Sequence[Hashable], values) -> dict:
    """The largest value of each landmark's photos (``labels`` and ``values`` are ``(G,)``)."""
    best: dict = {}
    for label, value in zip(labels, values, strict=True):
        best[label] = max(best.get(label, -np.inf), float(value))
    return best


def landmark_evidence(
    labels: Sequence[Hashable],
    inliers: np.ndarray,
    floor: float = 0.0,
    cosine: np.ndarray | None = None,
    cosine_weight: float | None = None,
    cos_floor: float = 0.0,
) -> dict:
    """``E(L)`` of the module docstring for one query's candidates (all ``(G,)``).

    >>> e = landmark_evidence(["a", "a", "b"], [12, 3, 0], 2.0, [0.8, 0.5, 0.7], 20.0, 0.6)
    >>> {k: round(v, 3) for k, v in e.items()}
    {'a': 15.0, 'b': 2.0}
    """
    if cosine is None or cosine_weight is None:
        return fused_landmark_evidence(labels, inliers, floor, cosine)
    evidence = fused_landmark_evidence(labels, inliers, floor)
    for label, best in best_per_landmark(labels, cosine).items():
        evidence[label] += cosine_weight * max(0.0, best - cos_floor)
    return evidence


def sum_or_max_evidence(
    labels, inliers, floor=0.0, cosine=None, aggregate="sum", cosine_weight=None, cos_floor=0.0
) -> dict:
    """Evidence per landmark of one query: `landmark_evidence` (``sum``) or the best photo's.

    ``max``: the most inliers of any of its photos; without inliers (``None``): the best cosine.
    """
    if inliers is None or aggregate == "max":
        return best_per_landmark(labels, cosine if inliers is None else inliers)
    return landmark_evidence(labels, inliers, floor, cosine, cosine_weight, cos_floor)


def calibrate(
    inliers: np.ndarray | None,
    labels: Sequence[Hashable],
    candidates: np.ndarray,
    cosine: np.ndarray | None = None,
    rule: str = "landmark",
    aggregate: str = "sum",
    floor_quantile: float = FLOOR_QUANTILE,
    tau_quantile: float = TAU_QUANTILE,
    minimum: float = 1.0,
    set_aside: bool = True,
    noise: np.ndarray | None = None,
    cosine_weight: float | None = None,
    cos_floor: float = 0.0,
) -> Calibration:
    """The rejection rule from gallery photos used as queries against the rest of the gallery.

    Pure: every gallery photo ``i`` plays a query whose candidate set is row ``i`` of
    ``candidates`` (``(n, n)`` bool, never the diagonal): exactly what a query would see (all
    other photos, the top-k shortlist by the global embedding, or whole landmarks sampled for a
    large gallery). Only candidate pairs are read; nothing unmeasured counts as 0 inliers.

    Args:
        inliers: ``(n, n)``, verified inliers of photo ``i`` as a query against photo ``j``;
            ``None`` without local features (the evidence is then the best cosine).
        labels: the landmark of each gallery photo.
        candidates: ``(n, n)`` bool, the candidate set of each photo.
        cosine: ``(n, n)`` global cosine similarities, or None.
        rule: ``max``: ``tau`` is the largest wrong evidence (the former rule; one mislabelled
            photo sets it); ``quantile``: the ``tau_quantile`` quantile over photos of the
            largest evidence each gathers for a wrong landmark; ``landmark``: that global
            ``tau`` plus, for each landmark L, the ``tau_quantile`` quantile of the evidence
            for L gathered by photos of other landmarks that had L among their candidates.
        aggregate: ``sum`` or ``max`` (`sum_or_max_evidence`).
        floor_quantile: ``floor`` is this quantile of the inliers of candidate pairs of
            different landmarks (``sum`` with inliers only; else 0).
        tau_quantile: the quantile of the rules ``quantile`` and ``landmark``.
        minimum: the smallest threshold (with inliers; none for cosine alone).
        set_aside: first find the photos that look mislabelled: as queries, they are
            accepted as another landmark (its evidence exceeds its threshold and their own
            landmark's evidence, from their candidates of their own landmark; inlier
            evidence only, without the cosine term; never without inliers); then calibrate
            again without them (as queries and as candidates).
        noise: ``(n, n)`` bool, the pairs whose inliers set ``floor`` (those of different
            landmarks count), when the candidates are not a random draw: a visual-word
            shortlist holds the most similar photos of other landmarks, whose inliers are
            not what unrelated photos share by chance. None: the candidate pairs.
        cosine_weight: ``w`` of the module docstring (None: GLR 2019's fused score).
        cos_floor: ``c0`` of the module docstring, measured by the caller on random pairs.

    Returns:
        The `Calibration`; ``negatives`` holds each photo's largest wrong evidence (photos with
        no other landmark among their candidates are left out).
    """
    options = (rule, aggregate, floor_quantile, tau_quantile, minimum, cosine_weight, cos_floor)
    first = _calibrate_once(inliers, labels, candidates, cosine, noise, *options)
    if not set_aside or inliers is None or first.negatives.size == 0:
        return first
    labels = np.array(list(labels), dtype=object)
    candidates = np.asarray(candidates, bool).copy()
    np.fill_diagonal(candidates, False)
    suspects = []
    for i in range(len(labels)):
        cols = np.flatnonzero(candidates[i])
        if not len(cols):
            continue
        evidence = sum_or_max_evidence(
            labels[cols],
            None if inliers is None else np.asarray(inliers)[i, cols],
            first.floor,
            None,  # verified matches only: a global cosine alone never sets a photo aside
            aggregate,
        )
        own = evidence.pop(labels[i], 0.0)
        if not evidence:
            continue
        wrong = max(evidence, key=lambda k: margin(evidence[k], first.threshold(k)))
        if evidence[wrong] > first.threshold(wrong) and evidence[wrong] > own:
            suspects.append(i)
    if not suspects:
        return first
    kept = candidates.copy()
    kept[suspects, :] = kept[:, suspects] = False
    if noise is not None:
        noise = np.asarray(noise, bool).copy()
        noise[suspects, :] = noise[:, suspects] = False
    second = _calibrate_once(inliers, labels, kept, cosine, noise, *options)
    return Calibration(
        second.floor, second.tau, second.thresholds, second.negatives, tuple(suspects), cos_floor
    )


def _calibrate_once(
    inliers,
    labels,
    candidates,
    cosine,
    noise,
    rule,
    aggregate,
    floor_quantile,
    tau_quantile,
    minimum,
    cosine_weight,
    cos_floor,
) -> Calibration:
    """One pass of `calibrate`, no photo set aside."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, not {rule!r}")
    labels = np.array(list(labels), dtype=object)
    candidates = np.asarray(candidates, bool).copy()
    np.fill_diagonal(candidates, False)
    different = labels[:, None] != labels[None, :]
    wrong = candidates & different
    unrelated = wrong
    if noise is not None:
        unrelated = np.asarray(noise, bool) & different
        np.fill_diagonal(unrelated, False)
    floor = 0.0
    if inliers is not None and aggregate == "sum" and unrelated.any():
        floor = float(np.quantile(np.asarray(inliers)[unrelated], floor_quantile))
    negatives, per_landmark = [], {}
    for i in range(len(labels)):
        cols = np.flatnonzero(wrong[i])
        if not len(cols):
            continue
        evidence = sum_or_max_evidence(
            labels[cols],
            None if inliers is None else np.asarray(inliers)[i, cols],
            floor,
            None if cosine is None else np.asarray(cosine)[i, cols],
            aggregate,
            cosine_weight,
            cos_floor,
        )
        negatives.append(max(evidence.values()))
        for landmark, value in evidence.items():
            per_landmark.setdefault(landmark, []).append(value)
    low = minimum if inliers is not None else -np.inf
    if not negatives:  # no other landmark among any candidates: nothing to calibrate on
        return Calibration(floor, minimum if inliers is not None else 0.0, cos_floor=cos_floor)
    negatives = np.array(negatives)
    if rule == "max":
        tau = float(negatives.max())
    else:
        tau = float(np.quantile(negatives, tau_quantile))
    thresholds = {}
    if rule == "landmark":
        thresholds = {
            landmark: max(low, float(np.quantile(values, tau_quantile)))
            for landmark, values in per_landmark.items()
        }
    return Calibration(floor, max(low, tau), thresholds, negatives, cos_floor=cos_floor)


def margin(evidence: float, threshold: float) -> float:
    """How far ``evidence`` clears ``threshold``; the answer is the landmark of largest margin.

    Their ratio for a positive threshold (inlier evidence), else their difference (cosines).
    """
    return evidence / threshold if threshold > 0 else evidence - threshold


def confidence_of(evidence: float, threshold: float) -> float:
    """``E / (E + tau)``: above 0.5 exactly when ``E > tau``; 0 without positive evidence."""
    return evidence / (evidence + threshold) if evidence > 0 and evidence + threshold > 0 else 0.0
