"""Global-descriptor answers: whitening, DBA / alpha-QE, kNN voting per landmark, confidence.

Pure numpy operations on unit descriptors (rows), composed by `utils.retrieval.global_rule`:

- `fit_whitening` / `Whitening`: PCA whitening learned from the gallery's own descriptors (no
  labels). ``x' = normalize(((x - mu) @ V) * (lambda + s)^(-1/2))`` over the leading ``dim``
  principal directions ``V`` with eigenvalues ``lambda``, shrunk by ``s = shrinkage *
  mean(lambda)`` so that directions of tiny variance are not blown up. A gallery with fewer
  photos than ``min_photos_per_dim * dim`` cannot estimate that many directions: ``dim`` is cut
  to ``n // min_photos_per_dim``, and below `MIN_WHITENING_DIM` directions no whitening is fitted
  at all (`fit_whitening` returns None and says why).
- `database_augment` (DBA) and `query_expand` (alpha-QE, Radenovic et al. 2018): each vector is
  replaced by the normalised sum of its ``k`` nearest vectors (itself first) weighted by
  ``cos^alpha``.
- `vote` (kNN voting, as the GLR 2020 winners aggregate): a query's ``k`` nearest gallery photos
  vote for their landmark with their cosine: ``S(L) = sum_{j in topk, y_j = L} cos_j``.
- `confidence_from_votes`: one number per answer that ranks right answers above wrong ones and
  above unknown places: ``S(L1) - S(L2)`` margin or the best vote itself (`CONFIDENCES`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_WHITENING_DIM = 16  # fewer estimable directions than this: no whitening
CONFIDENCES = ("best", "margin")


def normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm (``(N, D) -> (N, D)``); a zero row stays zero."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


@dataclass(frozen=True)
class Whitening:
    """``apply(x) = normalize((x - mean) @ projection)``; ``projection`` is ``(D, d)``."""

    mean: np.ndarray
    projection: np.ndarray

    @property
    def dim(self) -> int:
        """Output dimension ``d``."""
        return int(self.projection.shape[1])

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Whitened unit rows ``(N, d)`` of unit rows ``(N, D)``."""
        return normalize((np.asarray(x, np.float32) - self.mean) @ self.projection)


def fit_whitening(
    x: np.ndarray,
    dim: int = 256,
    shrinkage: float = 0.1,
    min_photos_per_dim: float = 1.0,
) -> tuple[Whitening | None, str]:
    """PCA whitening of rows ``x`` ``(N, D)`` (module docstring) and a sentence saying what.

    Returns ``(None, reason)`` where the gallery is too small to fit ``MIN_WHITENING_DIM``
    directions (the caller then uses the descriptors as they are).
    """
    x = np.asarray(x, np.float64)
    n, d_in = x.shape
    usable = min(int(dim), d_in, int(n // max(min_photos_per_dim, 1e-9)), n - 1)
    if usable < MIN_WHITENING_DIM:
        return None, (
            f"no whitening: {n} gallery photos estimate at most {max(usable, 0)} directions "
            f"(fewer than {MIN_WHITENING_DIM})"
        )
    mean = x.mean(axis=0)
    centred = x - mean
    # eigenvectors of the covariance through the SVD of the centred data (N may be < D)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    eigen = singular**2 / n
    scale = 1.0 / np.sqrt(eigen[:usable] + shrinkage * eigen[:usable].mean())
    projection = (vt[:usable].T * scale).astype(np.float32)
    note = f"PCA whitening on {n} gallery photos, {usable} dimensions, shrinkage {shrinkage:g}"
    if usable < dim:
        note += f" (cut from {dim}: the gallery is too small for more)"
    return Whitening(mean.astype(np.float32), projection), note


def expand(
    x: np.ndarray, base: np.ndarray, k: int, alpha: float = 3.0, skip_self: bool = False
) -> np.ndarray:
    """Rows of ``x`` replaced by ``normalize(sum_{j in kNN(x_i) in base} max(cos, 0)^alpha b_j)``.

    The ``k`` nearest rows of ``base`` (``(G, D)``) of each row of ``x`` (``(N, D)``), plus the
    row itself with weight 1 (alpha-QE and DBA as in Radenovic et al. 2018). ``skip_self``:
    ``x`` is ``base`` and a row's nearest neighbour (itself) is not counted twice. ``k = 0``
    returns ``x`` unchanged.
    """
    x, base = np.asarray(x, np.float32), np.asarray(base, np.float32)
    if k <= 0 or not len(base):
        return x
    cos = x @ base.T
    if skip_self:
        np.fill_diagonal(cos, -np.inf)
    k = min(k, base.shape[0] - (1 if skip_self else 0))
    if k <= 0:
        return x
    top = np.argpartition(-cos, k - 1, axis=1)[:, :k]
    weights = np.maximum(np.take_along_axis(cos, top, axis=1), 0.0) ** alpha
    return normalize(x + np.einsum("nk,nkd->nd", weights, base[top]))


def database_augment(gallery: np.ndarray, k: int, alpha: float = 3.0) -> np.ndarray:
    """DBA: each gallery row expanded by its ``k`` nearest other gallery rows (`expand`)."""
    return expand(gallery, gallery, k, alpha, skip_self=True)


def query_expand(
    queries: np.ndarray, gallery: np.ndarray, k: int, alpha: float = 3.0
) -> np.ndarray:
    """alpha-QE: each query expanded by its ``k`` nearest gallery rows (`expand`)."""
    return expand(queries, gallery, k, alpha)


def vote(similarity: np.ndarray, labels: np.ndarray, n_labels: int, k: int) -> np.ndarray:
    """Votes of the k nearest photos: ``(Q, G)`` cosines, ``(G,)`` labels -> ``(Q, L)`` votes.

    ``S[q, L] = sum of the cosines of q's k most similar gallery photos whose label is L``
    (``k = 1``: the nearest photo alone). A landmark with no photo among the k gets 0; a
    similarity of ``-inf`` marks a photo the query may not see (never a vote).

    >>> vote(np.array([[0.9, 0.8, 0.7]]), np.array([0, 1, 1]), 2, k=3).round(2)
    array([[0.9, 1.5]], dtype=float32)
    """
    similarity = np.asarray(similarity, np.float32)
    labels = np.asarray(labels)
    q, g = similarity.shape
    votes = np.zeros((q, n_labels), np.float32)
    if not g or not q:
        return votes
    k = max(1, min(int(k), g))
    top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(q), k)
    values = similarity[np.arange(q)[:, None], top].ravel()
    seen = np.isfinite(values)
    np.add.at(votes, (rows[seen], labels[top].ravel()[seen]), values[seen])
    return votes


def confidence_from_votes(votes: np.ndarray, kind: str = "margin") -> tuple[np.ndarray, np.ndarray]:
    """Best label and its confidence per row of ``(Q, L)`` votes.

    ``best``: ``S(L1)``; ``margin``: ``S(L1) - S(L2)``, the lead over the runner-up (a photo
    of a place the gallery lacks tends to draw similar votes from several landmarks).

    >>> confidence_from_votes(np.array([[0.5, 2.0, 1.5]]), "margin")
    (array([1]), array([0.5], dtype=float32))
    """
    if kind not in CONFIDENCES:
        raise ValueError(f"confidence must be one of {CONFIDENCES}, not {kind!r}")
    votes = np.asarray(votes, np.float32)
    if votes.shape[1] == 0:
        return np.zeros(len(votes), int), np.zeros(len(votes), np.float32)
    best = votes.argmax(axis=1)
    first = votes[np.arange(len(votes)), best]
    if kind == "best" or votes.shape[1] == 1:
        return best, first
    second = np.partition(votes, -2, axis=1)[:, -2]
    return best, first - second
