"""The pretrained descriptor's answer: kNN voting over a whitened gallery, a ranking confidence.

`VoteRule` holds the settings (chosen on the tune parts of the real photos, docs/retrieval.md);
`VoteGallery` is a gallery made ready for it (`utils.retrieval.knn` does the arithmetic):

1. the gallery's unit descriptors ``(G, D)`` are PCA-whitened on themselves (no labels;
   ``fit_whitening``, which declines with a stated reason on a gallery too small to fit it) and,
   with ``dba``, database-side augmented;
2. a query descriptor is whitened the same way and, with ``qe``, alpha-query-expanded;
3. its ``k`` most similar gallery photos vote for their landmarks with their cosines
   (``S(L) = sum_{j in topk, y_j = L} cos_j``); the answer is the landmark of most votes;
4. its confidence is the lead over the runner-up, ``S(L1) - S(L2)`` (``confidence="margin"``), or
   ``S(L1)`` (``"best"``), which orders right answers above wrong ones and above photos of
   places the gallery lacks (whose votes split between several landmarks);
5. rejection: the answer is accepted when the confidence exceeds ``tau``, set on the gallery
   itself (`VoteGallery.calibrate`): each of up to `CALIBRATION_QUERIES` gallery photos plays
   a query twice, against the gallery without itself (a known landmark) and without its whole
   landmark (a place the gallery lacks); ``tau`` is the ``tau_quantile`` of the second kind's
   confidences.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from utils.retrieval.knn import (
    confidence_from_votes,
    database_augment,
    fit_whitening,
    normalize,
    query_expand,
    vote,
)

CALIBRATION_QUERIES = 500  # gallery photos playing queries in `VoteGallery.calibrate`, at most


@dataclass(frozen=True)
class VoteRule:
    """Settings of the voting answer (module docstring); ``whiten_dim=0``: no whitening."""

    k: int = 5
    confidence: str = "margin"
    whiten_dim: int = 256
    shrinkage: float = 0.1
    dba: int = 0
    qe: int = 0
    alpha: float = 3.0
    tau_quantile: float = 0.95


@dataclass(frozen=True)
class VoteAnswer:
    """One query's answer: landmark votes ``(L,)``, best landmark, confidence, cosines ``(G,)``."""

    votes: np.ndarray
    best: Hashable | None
    confidence: float
    cosine: np.ndarray


class VoteGallery:
    """A gallery ready for voting: transformed descriptors, label codes and ``tau``.

    Args:
        embeddings: ``(G, D)`` unit descriptors of the gallery photos.
        labels: ``(G,)`` landmark of each photo.
        rule: the `VoteRule`.
    """

    def __init__(self, embeddings: np.ndarray, labels: Sequence[Hashable], rule: VoteRule):
        self.rule = rule
        embeddings = normalize(embeddings)
        self.whitening, self.note = None, "no whitening (whiten_dim 0)"
        if rule.whiten_dim:
            self.whitening, self.note = fit_whitening(embeddings, rule.whiten_dim, rule.shrinkage)
        self.plain = self.transform(embeddings)
        self.gallery = database_augment(self.plain, rule.dba, rule.alpha)
        self.names, codes = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
        self.codes = codes.astype(np.int64)
        self.tau = float("inf")

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Whitened unit rows (as they are without whitening)."""
        vectors = normalize(np.atleast_2d(vectors))
        return vectors if self.whitening is None else self.whitening.apply(vectors)

    def _answer(self, queries: np.ndarray, keep: np.ndarray | None = None):
        """Votes, best codes, confidences and cosines of transformed ``queries`` ``(Q, d)``.

        ``keep``: ``(Q, G)`` bool, the gallery photos each query may see (None: all).
        """
        gallery = self.gallery
        if self.rule.qe:
            if keep is None:
                queries = query_expand(queries, gallery, self.rule.qe, self.rule.alpha)
            else:  # one by one: each query sees only its own part of the gallery
                queries = np.stack(
                    [
                        query_expand(q[None], gallery[row], self.rule.qe, self.rule.alpha)[0]
                        for q, row in zip(queries, keep, strict=True)
                    ]
                )
        cosine = queries @ gallery.T
        if keep is not None:
            cosine = np.where(keep, cosine, -np.inf)
        votes = vote(cosine, self.codes, len(self.names), self.rule.k)
        best, confidence = confidence_from_votes(votes, self.rule.confidence)
        return votes, best, confidence, cosine

    def answer(self, descriptor: np.ndarray) -> VoteAnswer:
        """The `VoteAnswer` of one query's unit descriptor ``(D,)``."""
        votes, best, confidence, cosine = self._answer(self.transform(descriptor))
        return VoteAnswer(votes[0], self.names[best[0]], float(confidence[0]), cosine[0])

    def calibrate(self, seed: int = 0) -> dict:
        """Set ``tau`` from the gallery itself (module docstring, step 5); returns the evidence.

        ``{"known": (n,), "unknown": (n,)}`` confidences of the photos that played queries.
        A gallery photo's own landmark needs another photo to count as known; a landmark
        alone in the gallery leaves ``tau`` to the others (at least two landmarks needed).
        """
        n = len(self.codes)
        players = np.arange(n)
        if n > CALIBRATION_QUERIES:
            players = np.sort(np.random.default_rng(seed).choice(n, CALIBRATION_QUERIES, False))
        counts = np.bincount(self.codes, minlength=len(self.names))
        known, unknown = [], []
        for start in range(0, len(players), 128):
            rows = players[start : start + 128]
            same = self.codes[rows][:, None] == self.codes[None, :]
            others = ~same
            self_out = np.ones((len(rows), n), bool)
            self_out[np.arange(len(rows)), rows] = False
            queries = self.plain[rows]
            with_own = counts[self.codes[rows]] > 1
            if with_own.any():
                _, _, conf, _ = self._answer(queries[with_own], self_out[with_own])
                known.append(conf)
            _, _, conf, _ = self._answer(queries, others)
            unknown.append(conf)
        known_c = np.concatenate(known) if known else np.zeros(0)
        unknown_c = np.concatenate(unknown) if unknown else np.zeros(0)
        if len(unknown_c):
            self.tau = float(np.quantile(unknown_c, self.rule.tau_quantile))
        return {"known": known_c, "unknown": unknown_c}
