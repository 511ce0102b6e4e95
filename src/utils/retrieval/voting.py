"""The pretrained descriptor's answer: kNN voting over a whitened gallery, a ranking confidence.

`VoteRule` holds the settings (chosen on the tune parts of the real photos, docs/retrieval.md);
`VoteGallery` is a gallery made ready for it (`utils.retrieval.knn` does the arithmetic):

1. the gallery's unit descriptors ``(G, D)`` are PCA-whitened on themselves (no labels;
   `utils.retrieval.knn.fit_whitening`, which declines with a stated reason on a gallery too
   small to fit it) and, with ``dba``, database-side augmented;
2. a query descriptor is whitened the same way and, with ``qe``, alpha-query-expanded;
3. its ``k`` most similar gallery photos vote for their landmarks with their whitened cosines
   (``S(L) = sum_{j in topk, y_j = L} cos_j``); with local verification (the caller's inlier
   counts ``n_j`` of shortlisted photos) each landmark also gets ``V(L) = min(max(max_j n_j -
   floor, 0), cap) / cap`` (0 to 1), and the answer is ``argmax_L S(L) + inlier_vote * V(L)``;
4. its confidence is the plain (unwhitened) cosine of the answer's most similar photo plus
   ``inlier_confidence * V(L)``: whitening sharpens *which* landmark, the plain cosine tells
   best *how sure* (on the tune parts it ranked right answers above the rest better than the
   vote margin, a z-score, or the ImageNet landmark score);
5. rejection: accepted when the confidence exceeds ``tau``, set on the gallery itself
   (`VoteGallery.calibrate`): each of up to `CALIBRATION_QUERIES` gallery photos plays a query
   against the gallery without its own landmark (a place the gallery lacks; its local evidence
   is taken as 0, what the noise ``floor`` leaves of unrelated photos); ``tau`` is the
   ``tau_quantile`` of those confidences. 0.75 was chosen on the tune part of gldv2-sample
   (full and 5-per-landmark galleries) as the level of 0.5, 0.75, 0.9, 0.95, 0.99 with the
   largest sum of the rates of known queries accepted and right and of others rejected.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from utils.retrieval.knn import database_augment, fit_whitening, normalize, query_expand, vote

CALIBRATION_QUERIES = 500  # gallery photos playing queries in `VoteGallery.calibrate`, at most


@dataclass(frozen=True)
class VoteRule:
    """Settings of the voting answer (module docstring); ``whiten_dim=0``: no whitening.

    ``min_photos_per_dim``: gallery photos needed per whitened dimension (fewer: fewer
    dimensions, `utils.retrieval.knn.fit_whitening`). ``cap``: inliers above the floor that
    count fully.
    """

    k: int = 3
    whiten_dim: int = 256
    shrinkage: float = 0.1
    min_photos_per_dim: float = 2.0
    dba: int = 0
    qe: int = 0
    alpha: float = 3.0
    inlier_vote: float = 1.0
    inlier_confidence: float = 0.5
    cap: int = 20
    tau_quantile: float = 0.75


@dataclass(frozen=True)
class VoteAnswer:
    """One query's answer: scores per landmark ``(L,)``, best, confidence, cosines ``(G,)``.

    ``cosine``: the plain cosines to every gallery photo (what the details show).
    """

    scores: np.ndarray
    best: Hashable | None
    confidence: float
    cosine: np.ndarray


class VoteGallery:
    """A gallery ready for voting: plain and transformed descriptors, label codes, ``tau``.

    Args:
        embeddings: ``(G, D)`` unit descriptors of the gallery photos.
        labels: ``(G,)`` landmark of each photo.
        rule: the `VoteRule`.
    """

    def __init__(self, embeddings: np.ndarray, labels: Sequence[Hashable], rule: VoteRule):
        self.rule = rule
        self.raw = normalize(embeddings)
        self.whitening, self.note = None, "no whitening (whiten_dim 0)"
        if rule.whiten_dim:
            self.whitening, self.note = fit_whitening(
                self.raw, rule.whiten_dim, rule.shrinkage, rule.min_photos_per_dim
            )
        self.plain = self.transform(self.raw)
        self.gallery = database_augment(self.plain, rule.dba, rule.alpha)
        self.names, codes = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
        self.codes = codes.astype(np.int64)
        self.floor = 0.0
        self.tau = float("inf")

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Whitened unit rows (as they are without whitening)."""
        vectors = normalize(np.atleast_2d(vectors))
        return vectors if self.whitening is None else self.whitening.apply(vectors)

    def whitened_cosine(self, descriptor: np.ndarray) -> np.ndarray:
        """``(G,)`` cosines of one query to the gallery in the voting space (shortlist order)."""
        query = self.transform(descriptor)
        if self.rule.qe:
            query = query_expand(query, self.gallery, self.rule.qe, self.rule.alpha)
        return (query @ self.gallery.T)[0]

    def local_votes(self, inliers: dict[int, int] | None) -> np.ndarray:
        """``(L,)`` ``V(L)`` from inlier counts of gallery photos (module docstring, step 3)."""
        out = np.zeros(len(self.names), np.float32)
        for j, count in (inliers or {}).items():
            value = min(max(count - self.floor, 0.0), self.rule.cap) / self.rule.cap
            out[self.codes[j]] = max(out[self.codes[j]], value)
        return out

    def answer(
        self,
        descriptor: np.ndarray,
        inliers: dict[int, int] | None = None,
        whitened: np.ndarray | None = None,
    ) -> VoteAnswer:
        """The `VoteAnswer` of a unit descriptor ``(D,)``; ``inliers``: photo index -> count.

        ``whitened``: its `whitened_cosine`, when the caller has it already (the shortlist).
        """
        if whitened is None:
            whitened = self.whitened_cosine(descriptor)
        local = self.local_votes(inliers)
        scores = vote(whitened[None], self.codes, len(self.names), self.rule.k)[0]
        scores = scores + self.rule.inlier_vote * local
        best = int(scores.argmax())
        cosine = self.raw @ normalize(descriptor).ravel()
        nearest = float(cosine[self.codes == best].max())
        confidence = nearest + self.rule.inlier_confidence * float(local[best])
        return VoteAnswer(scores, self.names[best], confidence, cosine)

    def calibrate(self, seed: int = 0) -> np.ndarray:
        """Set ``tau`` from the gallery itself (module docstring, step 5).

        Returns the confidences of the photos that played queries against the gallery without
        their landmark (``(n,)``); ``tau`` stays infinite (nothing accepted) with one landmark.
        """
        n = len(self.codes)
        players = np.arange(n)
        if n > CALIBRATION_QUERIES:
            players = np.sort(np.random.default_rng(seed).choice(n, CALIBRATION_QUERIES, False))
        out = []
        for start in range(0, len(players), 128):
            rows = players[start : start + 128]
            others = self.codes[rows][:, None] != self.codes[None, :]
            whitened = np.where(others, self.plain[rows] @ self.gallery.T, -np.inf)
            scores = vote(whitened, self.codes, len(self.names), self.rule.k)
            scores[np.arange(len(rows)), self.codes[rows]] = -np.inf  # its own: absent
            best = scores.argmax(axis=1)
            plain = np.where(others, self.raw[rows] @ self.raw.T, -np.inf)
            same = self.codes[None, :] == best[:, None]
            out.append(np.where(same, plain, -np.inf).max(axis=1))
        confidences = np.concatenate(out) if out else np.zeros(0)
        confidences = confidences[np.isfinite(confidences)]
        if len(confidences):
            self.tau = float(np.quantile(confidences, self.rule.tau_quantile))
        return confidences
