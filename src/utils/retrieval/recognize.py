"""Recognise landmarks in photos against a gallery of known landmarks.

``python -m utils recognize --gallery DIR --queries DIR --out predictions.csv
[--checkpoint CKPT] [--local sift|delf|none] [--top-k K] [--index DIR] [--shortlist N]
[--shortlist-above M] [--words W] [--workers P]``

The gallery holds one sub-folder per landmark (the folder name is the landmark's name); the
queries are image files (id = file name without extension). For every query a row
``id,landmark,confidence`` is written; ``landmark`` is empty when the photo is judged not to
show a known landmark, or could not be read (a warning names it, and the run goes on).

How a query is scored (`Recognizer`):

1. candidates: every gallery image; with ``--checkpoint`` the ``top-k`` most similar by the
   global embedding (cosine); or, without a checkpoint in a gallery of more than
   ``--shortlist-above`` photos, the ``--shortlist`` photos of highest tf-idf similarity of
   visual words (`utils.retrieval.vocabulary.ShortlistIndex`, built once and saved beside the
   gallery, ``--index``);
2. each candidate is re-ranked by verified local matches (`utils.retrieval.rerank`): RootSIFT,
   or DELF with a checkpoint that carries an attention module;
3. evidence per landmark ``E(L) = sum_{j in L} max(0, inliers_j - floor)`` (+ the fused
   ``cos + min(inliers, 20)/20`` of its best photo with a checkpoint); the answer is the
   landmark whose evidence most exceeds its threshold (largest ``E(L) / tau(L)``), with
   ``confidence = E / (E + tau(L))``; it is accepted when ``E > tau(L)``, i.e. when
   ``confidence > 0.5``.

Rejection rule (`calibrate`), set from the gallery itself, not tuned per file: every gallery
photo plays a query against the rest of the gallery and sees the candidates a query would see
(with a checkpoint its ``top-k`` shortlist; with the visual-word index its own shortlist; else
all other photos, or, in a gallery where the other landmarks hold more than
``calibration_pairs`` photos, whole landmarks drawn at random up to that many photos). In a
gallery of more than ``calibration_queries`` photos, that many photos drawn at random (seeded)
play queries. Only measured pairs count. ``floor`` is the 95th percentile of the
inliers of its pairs with other landmarks (what unrelated photos share by chance; with the
visual-word index, whose shortlist holds the most similar photos of other landmarks, of
`FLOOR_PAIRS` photos of other landmarks drawn at random per calibration query). Rule
``landmark`` (the default): ``tau(L)`` is the 75th percentile of the evidence that photos of
other landmarks gather for L; ``tau``, used for a landmark no photo saw, the 75th percentile
over photos of the largest evidence each gathers for a wrong landmark. Quantiles, not the
maximum: one mislabelled gallery photo (GLDv2 has about 2% wrong labels) would otherwise set
the threshold for every landmark; per landmark, it moves only the two landmarks it confuses.
The rule and the level were chosen on the tune part of the real photos
(`utils.retrieval.realphotos`).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from utils.data.images import ImageLoadError, image_files, load_image, split_files
from utils.retrieval.local_features import LocalExtractor, LocalFeatures, RootSift
from utils.retrieval.rerank import MatchSettings, PairMatch, landmark_evidence, match_pair
from utils.retrieval.vocabulary import WORDS, ShortlistIndex, StoredFeatures

Embedder = Callable[[list[np.ndarray]], np.ndarray]  # RGB images -> (N, D) unit vectors
# a non-landmark gate: RGB image -> (shows a landmark, score); `utils.cli.recognize` builds one
# from a detector saved by notebook 07
Gate = Callable[[np.ndarray], tuple[bool, float]]
FLOOR_QUANTILE = 0.95
TAU_QUANTILE = 0.75  # chosen on the tune part of the real photos (utils.retrieval.realphotos)
RULES = ("max", "quantile", "landmark")
SHORTLIST = 15  # photos verified per query with the visual-word index (utils.bench recognize)
FLOOR_PAIRS = 10  # random photos of other landmarks per calibration query measuring the floor
SHORTLIST_ABOVE = 100  # galleries of more photos use the index by default
CALIBRATION_QUERIES = 500  # gallery photos that play queries in calibration, at most
T = TypeVar("T")


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

    def threshold(self, landmark: Hashable) -> float:
        """The evidence ``landmark`` must exceed to be accepted."""
        return self.thresholds.get(landmark, self.tau)


def sum_or_max_evidence(labels, inliers, floor=0.0, cosine=None, aggregate="sum") -> dict:
    """Evidence per landmark of one query: `landmark_evidence` (``sum``) or the best photo's.

    ``max``: the most inliers of any of its photos; without inliers (``None``): the best cosine.
    """
    if inliers is None or aggregate == "max":
        values = cosine if inliers is None else inliers
        best: dict = {}
        for label, value in zip(labels, values, strict=True):
            best[label] = max(best.get(label, -np.inf), float(value))
        return best
    return landmark_evidence(labels, inliers, floor, cosine)


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

    Returns:
        The `Calibration`; ``negatives`` holds each photo's largest wrong evidence (photos with
        no other landmark among their candidates are left out).
    """
    options = (rule, aggregate, floor_quantile, tau_quantile, minimum)
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
        second.floor, second.tau, second.thresholds, second.negatives, tuple(suspects)
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
        )
        negatives.append(max(evidence.values()))
        for landmark, value in evidence.items():
            per_landmark.setdefault(landmark, []).append(value)
    low = minimum if inliers is not None else -np.inf
    if not negatives:  # no other landmark among any candidates: nothing to calibrate on
        return Calibration(floor, minimum if inliers is not None else 0.0)
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
    return Calibration(floor, max(low, tau), thresholds, negatives)


@dataclass(frozen=True)
class Candidate:
    """One retrieved gallery image: its index, landmark, global cosine and verified matches."""

    index: int
    landmark: Hashable
    cosine: float
    match: PairMatch = field(repr=False)


@dataclass(frozen=True)
class Recognition:
    """The answer for one query: landmark (None: rejected), confidence, evidence, top 5.

    ``threshold``: the evidence the best landmark had to exceed.
    """

    landmark: Hashable | None
    best: Hashable | None
    confidence: float
    evidence: dict
    candidates: list[Candidate]
    threshold: float = float("nan")


def read_gallery(folder: str | Path) -> tuple[list[Path], list[str]]:
    """Paths and landmark names of a gallery folder with one sub-folder per landmark."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: gallery folder not found")
    paths, labels = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in image_files(sub):
            paths.append(path)
            labels.append(sub.name)
    if len(set(labels)) < 2:
        raise ValueError(
            f"{folder}: expected sub-folders of images for at least two landmarks "
            f"(one per landmark, named after it), found {len(set(labels))}"
        )
    return paths, labels


class Recognizer:
    """Gallery features plus the calibrated rejection rule; see the module docstring."""

    def __init__(
        self,
        extractor: LocalExtractor | None = None,
        settings: MatchSettings | None = None,
        embedder: Embedder | None = None,
        top_k: int = 0,
        aggregate: str = "sum",
        calibration_pairs: int = 60,
        progress: bool = True,
        rule: str = "landmark",
        tau_quantile: float = TAU_QUANTILE,
        threshold: float | None = None,
        matcher: Callable[[LocalFeatures, LocalFeatures, MatchSettings], PairMatch] = match_pair,
        shortlist: ShortlistIndex | None = None,
        shortlist_size: int = SHORTLIST,
        calibration_queries: int = CALIBRATION_QUERIES,
    ):
        if extractor is None and embedder is None:
            raise ValueError("need local features, a global embedder, or both")
        if aggregate not in ("sum", "max"):
            raise ValueError(f"aggregate must be sum or max, not {aggregate!r}")
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, not {rule!r}")
        self.aggregate, self.calibration_pairs = aggregate, calibration_pairs
        self.rule, self.tau_quantile, self.fixed_threshold = rule, tau_quantile, threshold
        self.extractor, self.embedder, self.matcher = extractor, embedder, matcher
        self.settings = settings or MatchSettings()
        self.top_k, self.progress = top_k, progress
        self.shortlist, self.shortlist_size = shortlist, shortlist_size
        self.calibration_queries = calibration_queries
        self.labels: list[Hashable] = []
        self.features: list[LocalFeatures] = []
        self.embeddings: np.ndarray | None = None
        self.calibration = Calibration(0.0, 1.0)

    @property
    def floor(self) -> float:
        """Inliers expected between unrelated photos (subtracted from each photo's inliers)."""
        return self.calibration.floor

    @property
    def tau(self) -> float:
        """The global threshold (landmarks without their own threshold use it)."""
        return self.calibration.tau

    def describe_image(self, image: np.ndarray) -> tuple[LocalFeatures | None, np.ndarray | None]:
        """Local features and global embedding of one RGB image (None where not used)."""
        local = self.extractor.extract(image) if self.extractor else None
        emb = self.embedder([image])[0] if self.embedder else None
        return local, emb

    def fit(self, images: Sequence[np.ndarray], labels: Sequence[Hashable]) -> Recognizer:
        """Describe the gallery and calibrate the rejection rule on it."""
        described = [
            self.describe_image(im)
            for im in tqdm(images, desc="gallery", disable=not self.progress)
        ]
        return self.fit_described(
            [d[0] for d in described],
            np.stack([d[1] for d in described]) if self.embedder else None,
            labels,
        )

    def fit_described(
        self,
        features: Sequence[LocalFeatures | None],
        embeddings: np.ndarray | None,
        labels: Sequence[Hashable],
    ) -> Recognizer:
        """`fit` from features already extracted (`describe_image` of each gallery photo).

        With a shortlist index, ``features`` are its gallery's (`ShortlistIndex.features`,
        read on demand), in the order of its ``keys``.
        """
        self.labels = list(labels)
        self.features = features if isinstance(features, StoredFeatures) else list(features)
        if self.shortlist is not None and len(self.shortlist.keys) != len(self.labels):
            raise ValueError(
                f"the shortlist index holds {len(self.shortlist.keys)} photos, "
                f"the gallery {len(self.labels)}"
            )
        self.embeddings = embeddings
        if self.fixed_threshold is not None:
            self.calibration = Calibration(0.0, float(self.fixed_threshold))
        else:
            self._calibrate()
        return self

    def _evidence(self, labels, inliers, cosine) -> dict:
        """Per-landmark evidence (module docstring); `sum_or_max_evidence`."""
        aggregate = "max" if self.extractor is None else self.aggregate
        return sum_or_max_evidence(
            labels, None if self.extractor is None else inliers, self.floor, cosine, aggregate
        )

    def calibration_candidates(self) -> np.ndarray:
        """``(n, n)`` bool: the gallery photos each gallery photo sees as a query.

        With an embedder and ``top_k``: its ``top_k`` nearest other photos by cosine, the very
        shortlist a query gets. Otherwise every other photo when the other landmarks' photos
        number at most ``calibration_pairs``; for a larger gallery, whole landmarks drawn at
        random (seeded) until ``calibration_pairs`` photos, at least one landmark: a sampled
        landmark's evidence is then complete, and the others are left out, not counted as 0.
        Plus, without an embedder, up to ``calibration_pairs`` photos of its own landmark (to
        find photos that look mislabelled, `calibrate`). With a shortlist index: its own
        shortlist of ``shortlist_size`` other photos, the very candidates a query gets. In a
        gallery of more than ``calibration_queries`` photos, only that many photos, drawn at
        random (seeded), play queries (the other rows are empty).
        """
        labels = np.array(self.labels, dtype=object)
        n = len(labels)
        candidates = np.zeros((n, n), bool)
        players = np.arange(n)
        if self.calibration_queries and n > self.calibration_queries:
            players = np.sort(
                np.random.default_rng(1).choice(n, self.calibration_queries, replace=False)
            )
        if self.shortlist is not None and self.extractor is not None:
            for i in players:
                found, _ = self.shortlist.search_gallery(int(i), self.shortlist_size)
                candidates[i, found] = True
            np.fill_diagonal(candidates, False)
            return candidates
        if self.embeddings is not None and self.top_k:
            cos = self.embeddings @ self.embeddings.T
            np.fill_diagonal(cos, -np.inf)
            order = np.argsort(-cos, axis=1, kind="stable")[:, : self.top_k]
            np.put_along_axis(candidates, order, True, axis=1)
            np.fill_diagonal(candidates, False)
            skipped = np.setdiff1d(np.arange(n), players)
            candidates[skipped] = False
            return candidates
        members: dict = {}
        for j, label in enumerate(labels):
            members.setdefault(label, []).append(j)
        names = list(members)
        rng = np.random.default_rng(0)
        for i in players:
            others = [name for name in names if name != labels[i]]
            if sum(len(members[name]) for name in others) <= self.calibration_pairs:
                chosen = others
            else:
                chosen, total = [], 0
                for k in rng.permutation(len(others)):
                    size = len(members[others[k]])
                    if chosen and total + size > self.calibration_pairs:
                        continue
                    chosen.append(others[k])
                    total += size
            for name in chosen:
                candidates[i, members[name]] = True
            candidates[i, members[labels[i]][: self.calibration_pairs + 1]] = True
        np.fill_diagonal(candidates, False)
        return candidates

    def floor_pairs(self, candidates: np.ndarray) -> np.ndarray | None:
        """``(n, n)`` bool: pairs measuring the noise floor (`calibrate`'s ``noise``), or None.

        With the visual-word shortlist, each calibration query (a row of ``candidates``
        with any pair) is also matched to `FLOOR_PAIRS` photos of other landmarks drawn at
        random (seeded): its shortlist holds the other landmarks' most similar photos, not
        what unrelated photos share by chance. Otherwise None (the candidates are random).
        """
        if self.shortlist is None or self.extractor is None:
            return None
        labels = np.array(self.labels, dtype=object)
        noise = np.zeros_like(candidates)
        rng = np.random.default_rng(2)
        for i in np.flatnonzero(candidates.any(axis=1)):
            others = np.flatnonzero(labels != labels[i])
            noise[i, rng.choice(others, min(FLOOR_PAIRS, len(others)), replace=False)] = True
        return noise

    def _calibrate(self) -> None:
        """Set the rejection rule (`calibrate`) on the gallery's candidate pairs."""
        full = self.calibration_candidates()
        noise = self.floor_pairs(full)
        measured = full if noise is None else full | noise
        # only photos in a measured pair matter: calibrate on them (exact, and small)
        used = np.flatnonzero(measured.any(axis=0) | measured.any(axis=1))
        within = np.ix_(used, used)
        candidates, measured = full[within], measured[within]
        noise = None if noise is None else noise[within]
        labels = np.array(self.labels, dtype=object)[used]
        cosine = None
        if self.embeddings is not None:
            cosine = self.embeddings[used] @ self.embeddings[used].T
        inliers = None
        cache = self.shortlist.pairs if self.shortlist is not None else None
        if self.extractor is not None:
            # each unordered candidate pair once (inlier counts are nearly symmetric)
            pairs = sorted(
                {(min(i, j), max(i, j)) for i, j in zip(*np.nonzero(measured), strict=True)}
            )
            inliers = np.full((len(labels), len(labels)), np.nan)
            for i, j in tqdm(pairs, desc="calibrate", disable=not self.progress):
                key = None
                if cache is not None:
                    key = self.shortlist.pair_key(used[i], used[j], self.settings)
                if key is not None and key in cache:
                    value = cache[key]
                else:
                    value = self.matcher(
                        self.features[used[i]], self.features[used[j]], self.settings
                    ).inliers
                    if key is not None:
                        cache[key] = int(value)
                inliers[i, j] = inliers[j, i] = value
            if cache is not None:
                self.shortlist.save_pairs()
        calibration = calibrate(
            inliers,
            labels,
            candidates,
            cosine,
            rule=self.rule,
            aggregate="max" if self.extractor is None else self.aggregate,
            tau_quantile=self.tau_quantile,
            noise=noise,
        )
        self.calibration = Calibration(
            calibration.floor,
            calibration.tau,
            calibration.thresholds,
            calibration.negatives,
            tuple(int(used[i]) for i in calibration.suspects),
        )

    def search_shortlist(self, local: LocalFeatures) -> tuple[np.ndarray, np.ndarray]:
        """Visual-word ranking deep enough for `verified_shortlist`: photos and tf-idf scores."""
        return self.shortlist.search(local, self.shortlist_size + len(self.calibration.suspects))

    def verified_shortlist(self, found: np.ndarray) -> np.ndarray:
        """The photos verified among a visual-word ranking: suspects out, the first N."""
        return found[~np.isin(found, self.calibration.suspects)][: self.shortlist_size]

    def recognize(self, image: np.ndarray) -> Recognition:
        """Best landmark, confidence and the top-5 verified candidates for one RGB image."""
        return self.recognize_described(*self.describe_image(image))

    def recognize_described(
        self, local: LocalFeatures | None, emb: np.ndarray | None
    ) -> Recognition:
        """`recognize` from the query's features (`describe_image`)."""
        n = len(self.labels)
        cosine = self.embeddings @ emb if emb is not None else np.zeros(n)
        if self.shortlist is not None and local is not None:
            # the visual-word shortlist; its tf-idf cosine stands for the global one in the
            # details (the evidence uses it only with an embedder, never here)
            found, scores = self.search_shortlist(local)
            cosine[found] = scores
            order = self.verified_shortlist(found)
        else:
            order = np.argsort(-cosine, kind="stable")
            if self.calibration.suspects:
                order = order[~np.isin(order, self.calibration.suspects)]
        if self.embedder is not None and self.top_k:
            order = order[: self.top_k]
        matches = {
            int(j): self.matcher(local, self.features[j], self.settings) if local else None
            for j in order
        }
        labels = [self.labels[j] for j in order]
        inliers = np.array([m.inliers if m else 0 for m in matches.values()], np.float64)
        evidence = self._evidence(labels, inliers, cosine[order] if emb is not None else None)
        threshold = self.calibration.threshold
        best = max(evidence, key=lambda k: margin(evidence[k], threshold(k))) if evidence else None
        value = evidence.get(best, 0.0)
        tau = threshold(best) if best is not None else self.tau
        confidence = confidence_of(value, tau)
        ranked = sorted(
            order, key=lambda j: (-(matches[j].inliers if matches[j] else 0), -cosine[j])
        )[:5]
        candidates = [
            Candidate(
                int(j),
                self.labels[j],
                float(cosine[j]),
                matches[j] or PairMatch(0, 0, np.zeros((0, 4), np.float32)),
            )
            for j in ranked
        ]
        accepted = best if value > tau else None
        return Recognition(accepted, best, float(confidence), evidence, candidates, float(tau))


def margin(evidence: float, threshold: float) -> float:
    """How far ``evidence`` clears ``threshold``; the answer is the landmark of largest margin.

    Their ratio for a positive threshold (inlier evidence), else their difference (cosines).
    """
    return evidence / threshold if threshold > 0 else evidence - threshold


def confidence_of(evidence: float, threshold: float) -> float:
    """``E / (E + tau)``: above 0.5 exactly when ``E > tau``; 0 without positive evidence."""
    return evidence / (evidence + threshold) if evidence > 0 and evidence + threshold > 0 else 0.0


def report_skipped(step: Callable[[], T]) -> T:
    """``step()``, printing each warning it gives (a gallery image it could not read)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = step()
    for warning in caught:
        print(f"warning: gallery image skipped: {warning.message}", file=sys.stderr)
    return out


def describe(result: Recognition, gallery_names: Sequence[str]) -> dict:
    """A JSON-ready summary: answer, evidence per landmark, and the most similar known photos."""
    evidence = sorted(result.evidence.items(), key=lambda item: -item[1])[:5]
    return {
        "landmark": result.landmark,
        "best": result.best,
        "confidence": round(result.confidence, 6),
        "evidence": {str(k): round(v, 3) for k, v in evidence},
        "similar": [
            {
                "photo": str(gallery_names[c.index]),
                "landmark": str(c.landmark),
                "inliers": c.match.inliers,
                "cosine": round(c.cosine, 4),
            }
            for c in result.candidates
        ],
    }


def recognize_files(
    recognizer: Recognizer,
    paths: Sequence[Path],
    gallery_names: Sequence[str] | None = None,
    progress: bool = True,
    gate: Gate | None = None,
) -> tuple[pd.DataFrame, dict]:
    """``id, landmark, best, confidence`` for every file, and `describe` of each by id.

    An unreadable file gets an empty row (and a warning naming it); the run goes on. With a
    ``gate`` (a non-landmark detector), a photo it rejects gets an empty row too, and its
    details say ``rejected`` with the detector's score.
    """
    names = gallery_names or [str(i) for i in range(len(recognizer.labels))]
    rows, details = [], {}
    for path in tqdm(paths, desc="queries", disable=not progress):
        image_id = Path(path).stem
        try:
            image = load_image(path)
            if gate is not None:
                accepted, value = gate(image)
                if not accepted:
                    rows.append((image_id, "", "", 0.0))
                    details[image_id] = {"rejected": "not a landmark", "score": round(value, 6)}
                    continue
            result = recognizer.recognize(image)
        except ImageLoadError as err:
            warnings.warn(f"{err}; writing an empty prediction", stacklevel=2)
            rows.append((image_id, "", "", 0.0))
            details[image_id] = {"error": str(err)}
            continue
        rows.append((image_id, result.landmark or "", result.best or "", result.confidence))
        details[image_id] = describe(result, names)
    return pd.DataFrame(rows, columns=["id", "landmark", "best", "confidence"]), details


def build_recognizer(
    local: str = "sift",
    checkpoint: str | None = None,
    top_k: int = 10,
    device: str = "cpu",
    progress: bool = True,
) -> Recognizer:
    """A recognizer from CLI choices: local features and, optionally, a trained checkpoint."""
    extractor: LocalExtractor | None = None
    embedder = None
    if checkpoint:
        from utils.retrieval.index import checkpoint_embedder

        embedder = checkpoint_embedder(checkpoint, device)
    if local == "sift":
        extractor = RootSift()
    elif local == "delf":
        if not checkpoint:
            raise ValueError("--local delf needs --checkpoint with a trained attention module")
        from utils.retrieval.delf_features import DelfExtractor

        extractor = DelfExtractor.from_checkpoint(checkpoint, device)
    elif local != "none":
        raise ValueError(f"--local must be sift, delf or none, not {local!r}")
    return Recognizer(
        extractor, embedder=embedder, top_k=top_k if checkpoint else 0, progress=progress
    )


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    parser = argparse.ArgumentParser(
        prog="python -m utils recognize", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--gallery", type=Path, required=True, help="one sub-folder per landmark")
    parser.add_argument("--queries", type=Path, required=True, help="folder of query images")
    parser.add_argument("--out", type=Path, required=True, help="predictions CSV to write")
    parser.add_argument("--checkpoint", default=None, help="trained model (global embeddings)")
    parser.add_argument(
        "--local",
        default="sift",
        choices=("sift", "delf", "none"),
        help="local features for verification",
    )
    parser.add_argument("--top-k", type=int, default=10, help="candidates re-ranked (checkpoint)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument(
        "--index",
        type=Path,
        default=None,
        help="visual-word index folder (default: GALLERY.index beside the gallery)",
    )
    parser.add_argument(
        "--shortlist",
        type=int,
        default=SHORTLIST,
        help="gallery photos verified per query when the index is used",
    )
    parser.add_argument(
        "--shortlist-above",
        type=int,
        default=SHORTLIST_ABOVE,
        help="use the index for galleries of more photos than this (0: always, -1: never)",
    )
    parser.add_argument(
        "--words", type=int, default=WORDS, help="visual words of a new index's vocabulary"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes extracting new gallery features"
    )
    parser.add_argument(
        "--details",
        type=Path,
        default=None,
        help="JSON with each query's evidence and 5 most similar gallery photos",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (without a detector; ``python -m utils recognize`` adds one)."""
    return run(parser().parse_args(argv))


def run(args: argparse.Namespace, gate: Gate | None = None) -> int:
    """Recognise the queries of parsed `parser` options, gated by ``gate`` when given."""
    try:
        paths, labels = read_gallery(args.gallery)
        queries, skipped = split_files(args.queries) if args.queries.is_dir() else ([], [])
        if not queries:
            raise FileNotFoundError(
                f"{args.queries}: no query images found (any format Pillow opens)"
            )
        recognizer = build_recognizer(args.local, args.checkpoint, args.top_k, args.device)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    use_index = (
        args.local == "sift"
        and not args.checkpoint
        and args.shortlist_above >= 0
        and len(paths) > args.shortlist_above
    )
    if use_index:
        folder = args.index or args.gallery.parent / f"{args.gallery.name}.index"
        try:
            index = ShortlistIndex(folder, recognizer.extractor, words=args.words)
            kept_at = report_skipped(lambda: index.update(paths, workers=args.workers))
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        names = [str(paths[i]) for i in kept_at]
        recognizer.shortlist, recognizer.shortlist_size = index, args.shortlist
        recognizer.fit_described(index.features(), None, [labels[i] for i in kept_at])
    else:
        images, kept, names = [], [], []
        for path, label in zip(paths, labels, strict=True):
            try:
                images.append(load_image(path))
                kept.append(label)
                names.append(str(path))
            except ImageLoadError as err:
                print(f"warning: gallery image skipped: {err}", file=sys.stderr)
        recognizer.fit(images, kept)
    table, details = recognize_files(recognizer, queries, names, gate=gate)
    if args.details:
        args.details.parent.mkdir(parents=True, exist_ok=True)
        args.details.write_text(json.dumps(details, indent=2) + "\n", encoding="utf-8")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table[["id", "landmark", "confidence"]].to_csv(args.out, index=False, float_format="%.6f")
    for path in skipped:
        print(f"skipped (not an image format): {path}", file=sys.stderr)
    accepted = int((table["landmark"] != "").sum())
    rejected = sum("rejected" in d for d in details.values())
    gated = f", {rejected} rejected as non-landmarks" if gate is not None else ""
    own = recognizer.calibration.thresholds.values()
    spread = f"; per landmark {min(own):.1f} to {max(own):.1f}" if own else ""
    print(
        f"wrote {args.out}: {len(table)} queries, {accepted} recognised{gated} "
        f"(threshold: evidence > {recognizer.tau:.1f}{spread}, "
        f"noise floor {recognizer.floor:.1f} inliers)"
    )
    return 0
