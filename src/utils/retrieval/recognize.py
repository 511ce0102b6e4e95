"""Recognise landmarks in photos against a gallery of known landmarks (`Recognizer`).

The gallery holds photos with a landmark each (`utils.retrieval.gallery` reads a folder of one
sub-folder per landmark and caches what is extracted); the command line is
``python -m utils recognize`` (`utils.cli.recognize`). How a query is scored:

With the pretrained descriptor the default answer is kNN voting (``vote=VoteRule()``,
`utils.retrieval.voting`): the gallery's descriptors whitened on themselves, the ``top_k``
photos by whitened cosine verified by RootSIFT, the 3 nearest voting, the plain cosine of the
answer's photo (plus verified inliers) as confidence, and ``tau`` from the gallery without each
photo's own landmark. Otherwise (``--rule fused``, ``--global none``, a checkpoint):

1. candidates: with a global embedder (the frozen ImageNet EfficientNet-Lite2 descriptor,
   `utils.retrieval.descriptor`; or a trained checkpoint's embeddings) the ``top_k``
   gallery photos of highest cosine; without one (``--global none``) every gallery photo, or,
   in a gallery of more than ``--shortlist-above`` photos, the ``--shortlist`` photos of highest
   tf-idf similarity of visual words (`utils.retrieval.vocabulary.ShortlistIndex`);
2. each candidate is verified by local matches (`utils.retrieval.rerank`): RootSIFT, or DELF
   with a checkpoint that carries an attention module;
3. evidence per landmark and the calibrated rejection rule (`utils.retrieval.calibration`):
   inliers above the noise floor summed over the landmark's photos, plus the best photo's
   cosine (weighted, above what unrelated photos reach, with the pretrained descriptor); the
   answer is the landmark whose evidence most exceeds its threshold, with ``confidence = E / (E
   + tau(L))``, accepted when ``confidence > 0.5``.

Calibration sees, for every gallery photo playing a query, the candidates a query would see
(its ``top_k`` by cosine; its visual-word shortlist; else all other photos, or, in a gallery where
the other landmarks hold more than ``calibration_pairs`` photos, whole landmarks drawn at random
up to that many photos); in a gallery of more than ``calibration_queries`` photos, that many
photos drawn at random (seeded) play queries. The noise floors (inliers, cosine) are measured on
`FLOOR_PAIRS` photos of other landmarks drawn at random per calibration query whenever the
candidates are a shortlist of the most similar photos, whose inliers and cosines overstate what
unrelated photos share.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from utils.data.images import ImageLoadError, load_image
from utils.retrieval.calibration import (
    FLOOR_QUANTILE,
    FLOOR_RANDOM_PAIRS,
    FUSED_TAU_QUANTILE,
    RULES,
    TAU_QUANTILE,
    Calibration,
    best_per_landmark,
    calibrate,
    confidence_of,
    margin,
    random_pairs,
    sum_or_max_evidence,
)
from utils.retrieval.local_features import LocalExtractor, LocalFeatures, RootSift
from utils.retrieval.rerank import MatchSettings, PairMatch, match_pair
from utils.retrieval.vocabulary import ShortlistIndex, StoredFeatures
from utils.retrieval.voting import VoteGallery, VoteRule

Embedder = Callable[[list[np.ndarray]], np.ndarray]  # RGB images -> (N, D) unit vectors
# a non-landmark gate: RGB image -> (shows a landmark, score); `utils.cli.recognize` builds one
# from a detector saved by notebook 07
Gate = Callable[[np.ndarray], tuple[bool, float]]
SHORTLIST = 15  # photos verified per query with the visual-word index (utils.bench recognize)
FLOOR_PAIRS = 10  # random photos of other landmarks per calibration query measuring the floor
SHORTLIST_ABOVE = 100  # galleries of more photos use the index by default
CALIBRATION_QUERIES = 500  # gallery photos that play queries in calibration, at most
GLOBAL_TOP_K = 15  # photos verified per query with the pretrained descriptor (chosen on tune)
COSINE_WEIGHT = 40.0  # inliers per unit of cosine above c0, pretrained descriptor (tune)
COS_FLOOR_QUANTILE = 0.5  # c0: this quantile of unrelated photos' cosines (chosen on tune)
UNKNOWN_LANDMARK = "a landmark, not one I know"  # the detector says landmark, the gallery no
KNOWN_LANDMARK = "a known landmark"  # accepted by the gallery's rule
NO_LANDMARK = "no landmark"  # rejected, and the detector says no landmark either
NOT_KNOWN = "no known landmark"  # rejected, no detector to tell the two cases apart
RULES_PRETRAINED = ("vote", "fused")  # --rule: kNN voting (default) or the former fused rule
GLOBALS = ("lite2", "lite0", "none")  # --global: the pretrained descriptor's backbone, or none


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

    ``score``: the number the rule compares with ``threshold`` (the best landmark's evidence;
    with `VoteRule`, its raw confidence, `utils.retrieval.voting`).
    """

    landmark: Hashable | None
    best: Hashable | None
    confidence: float
    evidence: dict
    candidates: list[Candidate]
    threshold: float = float("nan")
    score: float = float("nan")


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
        tau_quantile: float | None = None,
        threshold: float | None = None,
        matcher: Callable[[LocalFeatures, LocalFeatures, MatchSettings], PairMatch] = match_pair,
        shortlist: ShortlistIndex | None = None,
        shortlist_size: int = SHORTLIST,
        calibration_queries: int = CALIBRATION_QUERIES,
        cosine_weight: float | None = None,
        cos_floor_quantile: float = COS_FLOOR_QUANTILE,
        vote: VoteRule | None = None,
    ):
        if extractor is None and embedder is None:
            raise ValueError("need local features, a global embedder, or both")
        if aggregate not in ("sum", "max"):
            raise ValueError(f"aggregate must be sum or max, not {aggregate!r}")
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, not {rule!r}")
        self.aggregate, self.calibration_pairs = aggregate, calibration_pairs
        if tau_quantile is None:  # the cosine term's continuous evidence needs a higher level
            tau_quantile = TAU_QUANTILE if cosine_weight is None else FUSED_TAU_QUANTILE
        self.rule, self.tau_quantile, self.fixed_threshold = rule, tau_quantile, threshold
        self.extractor, self.embedder, self.matcher = extractor, embedder, matcher
        self.settings = settings or MatchSettings()
        self.top_k, self.progress = top_k, progress
        self.shortlist, self.shortlist_size = shortlist, shortlist_size
        self.calibration_queries = calibration_queries
        self.cosine_weight, self.cos_floor_quantile = cosine_weight, cos_floor_quantile
        if vote is not None and embedder is None:
            raise ValueError("the voting rule needs a global embedder")
        self.vote, self.voting = vote, None
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
        if self.vote is not None:
            self._fit_voting()
        elif self.fixed_threshold is not None:
            self.calibration = Calibration(0.0, float(self.fixed_threshold))
        else:
            self._calibrate()
        return self

    def _fit_voting(self) -> None:
        """`VoteGallery` on the embeddings; its noise floor (inliers) and ``tau`` from them."""
        self.voting = VoteGallery(self.embeddings, self.labels, self.vote)
        floor = 0.0
        if self.extractor is not None:
            floor = self.random_pair_floor()
        self.voting.floor = floor
        self.voting.calibrate()
        tau = self.voting.tau if self.fixed_threshold is None else float(self.fixed_threshold)
        self.voting.tau = tau
        self.calibration = Calibration(floor, tau)

    def random_pair_floor(self, pairs: int = FLOOR_RANDOM_PAIRS, seed: int = 2) -> float:
        """The `FLOOR_QUANTILE` of the inliers of random gallery pairs of two landmarks.

        What unrelated photos share by chance; up to ``pairs`` pairs, drawn seeded.
        """
        counts = [
            self.matcher(self.features[i], self.features[j], self.settings).inliers
            for i, j in tqdm(
                random_pairs(self.labels, pairs, seed),
                desc="noise floor",
                disable=not self.progress,
            )
        ]
        return float(np.quantile(counts, FLOOR_QUANTILE)) if counts else 0.0

    def _evidence(self, labels, inliers, cosine) -> dict:
        """Per-landmark evidence (module docstring); `sum_or_max_evidence`."""
        aggregate = "max" if self.extractor is None else self.aggregate
        return sum_or_max_evidence(
            labels,
            None if self.extractor is None else inliers,
            self.floor,
            cosine,
            aggregate,
            self.cosine_weight,
            self.calibration.cos_floor,
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
            k = min(self.top_k, n - 1)
            for start in range(0, len(players), 256):  # rows of players only, in blocks
                rows = players[start : start + 256]
                cos = self.embeddings[rows] @ self.embeddings.T
                cos[np.arange(len(rows)), rows] = -np.inf
                top = np.argpartition(-cos, k - 1, axis=1)[:, :k]
                candidates[rows[:, None], top] = True
            np.fill_diagonal(candidates, False)
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
        shortlisted = self.shortlist is not None or (
            self.cosine_weight is not None and self.embeddings is not None and self.top_k
        )
        if not shortlisted or self.extractor is None:
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
            cosine_weight=self.cosine_weight,
            cos_floor=self.cosine_floor(candidates, labels, cosine, noise),
        )
        self.calibration = Calibration(
            calibration.floor,
            calibration.tau,
            calibration.thresholds,
            calibration.negatives,
            tuple(int(used[i]) for i in calibration.suspects),
            calibration.cos_floor,
        )

    def cosine_floor(self, candidates, labels, cosine, noise) -> float:
        """``c0``: the ``cos_floor_quantile`` of the cosines unrelated photos reach (0 if unused).

        Measured on the random pairs of other landmarks (`floor_pairs`), else on the candidate
        pairs of other landmarks; all arrays are restricted to the photos calibration uses.
        """
        if self.cosine_weight is None or cosine is None:
            return 0.0
        pairs = candidates if noise is None else noise
        different = np.asarray(labels, dtype=object)[:, None] != np.asarray(labels, dtype=object)
        chosen = np.asarray(pairs, bool) & different
        np.fill_diagonal(chosen, False)
        level = self.cos_floor_quantile
        return float(np.quantile(cosine[chosen], level)) if chosen.any() else 0.0

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
        if self.voting is not None:
            return self._recognize_voting(local, emb)
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
        # ties (no evidence at all, say) go to the landmark of the most similar photo
        nearest = best_per_landmark(labels, cosine[order])
        best = (
            max(evidence, key=lambda k: (margin(evidence[k], threshold(k)), nearest[k]))
            if evidence
            else None
        )
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
        return Recognition(
            accepted, best, float(confidence), evidence, candidates, float(tau), float(value)
        )

    def _recognize_voting(self, local: LocalFeatures | None, emb: np.ndarray) -> Recognition:
        """The `VoteRule` answer: the ``top_k`` photos by whitened cosine verified locally."""
        whitened = self.voting.whitened_cosine(emb)
        order = np.argsort(-whitened, kind="stable")[: self.top_k or len(whitened)]
        matches = {
            int(j): self.matcher(local, self.features[j], self.settings) if local else None
            for j in order
        }
        inliers = {j: m.inliers for j, m in matches.items() if m is not None}
        answer = self.voting.answer(emb, inliers, whitened)
        evidence = {
            self.voting.names[i]: float(answer.scores[i])
            for i in np.argsort(-answer.scores)
            if answer.scores[i] > 0
        }
        empty = PairMatch(0, 0, np.zeros((0, 4), np.float32))
        ranked = sorted(order, key=lambda j: (-inliers.get(j, 0), -answer.cosine[j]))[:5]
        candidates = [
            Candidate(int(j), self.labels[j], float(answer.cosine[j]), matches[j] or empty)
            for j in ranked
        ]
        tau = self.voting.tau
        accepted = answer.best if answer.confidence > tau else None
        return Recognition(
            accepted,
            answer.best,
            float(confidence_of(answer.confidence, tau)),
            evidence,
            candidates,
            float(tau),
            float(answer.confidence),
        )


def describe(result: Recognition, gallery_names: Sequence[str]) -> dict:
    """A JSON-ready summary: answer, evidence per landmark, and the most similar known photos."""
    evidence = sorted(result.evidence.items(), key=lambda item: -item[1])[:5]
    return {
        "landmark": result.landmark,
        "best": result.best,
        "confidence": round(result.confidence, 6),
        "score": round(result.score, 6),
        "threshold": round(result.threshold, 6),
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
    judge: Gate | None = None,
) -> tuple[pd.DataFrame, dict]:
    """``id, landmark, best, confidence`` for every file, and `describe` of each by id.

    An unreadable file gets an empty row (and a warning naming it); the run goes on. With a
    ``gate`` (a non-landmark detector), a photo it rejects gets an empty row without being
    matched, and its details say ``rejected`` with the detector's score. Each answered photo's
    details carry a ``verdict``, one of three cases: `KNOWN_LANDMARK` (accepted),
    `UNKNOWN_LANDMARK` (rejected by the gallery's rule, a landmark to the detector: ``gate``,
    else ``judge``, which only classifies rejected photos) or `NO_LANDMARK`; `NOT_KNOWN` when
    neither is given.
    """
    names = gallery_names or [str(i) for i in range(len(recognizer.labels))]
    rows, details = [], {}
    for path in tqdm(paths, desc="queries", disable=not progress):
        image_id = Path(path).stem
        try:
            image = load_image(path)
            accepted = None
            if gate is not None:
                accepted, value = gate(image)
                if not accepted:
                    rows.append((image_id, "", "", 0.0))
                    details[image_id] = {
                        "rejected": "not a landmark",
                        "score": round(value, 6),
                        "verdict": NO_LANDMARK,
                    }
                    continue
            result = recognizer.recognize(image)
            if result.landmark is None and accepted is None and judge is not None:
                accepted, value = judge(image)
        except ImageLoadError as err:
            warnings.warn(f"{err}; writing an empty prediction", stacklevel=2)
            rows.append((image_id, "", "", 0.0))
            details[image_id] = {"error": str(err)}
            continue
        rows.append((image_id, result.landmark or "", result.best or "", result.confidence))
        details[image_id] = describe(result, names)
        if result.landmark is not None:
            details[image_id]["verdict"] = KNOWN_LANDMARK
        elif accepted is None:
            details[image_id]["verdict"] = NOT_KNOWN
        else:
            details[image_id]["verdict"] = UNKNOWN_LANDMARK if accepted else NO_LANDMARK
            details[image_id]["detector_score"] = round(value, 6)
    return pd.DataFrame(rows, columns=["id", "landmark", "best", "confidence"]), details


def build_recognizer(
    local: str = "sift",
    checkpoint: str | None = None,
    top_k: int = 10,
    device: str = "cpu",
    progress: bool = True,
    global_descriptor: str = "lite2",
    global_top_k: int = GLOBAL_TOP_K,
    rule: str = "vote",
) -> Recognizer:
    """A recognizer from CLI choices: local features and a global embedder.

    The global embedder: a trained ``checkpoint``'s embeddings (its ``top_k`` re-ranked, GLR
    2019's fused evidence), else the pretrained descriptor ``global_descriptor`` (`GLOBALS`:
    ``lite2``/``lite0``; its ``global_top_k`` verified), or ``none`` (local features only).
    With the pretrained descriptor, ``rule`` (`RULES_PRETRAINED`) is ``vote`` (kNN voting,
    `utils.retrieval.voting`, the default) or ``fused`` (the former rule, `COSINE_WEIGHT`).
    """
    extractor: LocalExtractor | None = None
    embedder, weight, k, vote = None, None, 0, None
    if global_descriptor not in GLOBALS:
        raise ValueError(f"--global must be one of {', '.join(GLOBALS)}, not {global_descriptor!r}")
    if rule not in RULES_PRETRAINED:
        raise ValueError(f"--rule must be one of {', '.join(RULES_PRETRAINED)}, not {rule!r}")
    if checkpoint:
        from utils.retrieval.index import checkpoint_embedder

        embedder, k = checkpoint_embedder(checkpoint, device), top_k
    elif global_descriptor != "none":
        from utils.retrieval.descriptor import GlobalDescriptor

        embedder = GlobalDescriptor(backbone=f"efficientnet-{global_descriptor}", device=device)
        k = global_top_k
        if rule == "vote":
            vote = VoteRule()
        else:
            weight = COSINE_WEIGHT
    if local == "sift":
        extractor = RootSift()
    elif local == "delf":
        if not checkpoint:
            raise ValueError("--local delf needs --checkpoint with a trained attention module")
        from utils.retrieval.delf_features import DelfExtractor

        extractor = DelfExtractor.from_checkpoint(checkpoint, device)
    elif local != "none":
        raise ValueError(f"--local must be sift, delf or none, not {local!r}")
    if extractor is None and embedder is None:
        raise ValueError("--local none needs a global embedder (--global or --checkpoint)")
    return Recognizer(
        extractor, embedder=embedder, top_k=k, progress=progress, cosine_weight=weight, vote=vote
    )
