"""Global-descriptor retrieval: embeddings, a faiss index, kNN and per-landmark aggregation.

- `extract_embeddings`: L2-normalised ``(N, D)`` float32 embeddings of a dataset, batched
  with a progress bar; `save_embeddings`/`load_embeddings` keep them as ``NAME.npy`` plus
  ``NAME_ids.csv``.
- `EmbeddingIndex`: faiss inner-product search (cosine on unit vectors). ``exact``
  (``IndexFlatIP``) by default; ``ivf`` (``IndexIVFFlat``, ``nprobe`` lists visited) or
  ``hnsw`` (``IndexHNSWFlat``) as approximate options, whose `recall_at_1` against exact
  search `utils.bench` reports.
- `aggregate`: per-landmark scores from the k nearest neighbours, ``top1`` (the nearest
  image's landmark and cosine), ``vote`` (most frequent landmark among k, ties broken by
  summed cosine; confidence = summed cosine / k) or ``sum`` (largest summed cosine).
- A non-landmark detector plugs in as `NonLandmarkHook`: ``hook(query_embeddings) -> (Q,)``
  scores where higher means "not a landmark"; `apply_non_landmark` blanks those above a
  threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from utils.metrics import NO_LANDMARK

NonLandmarkHook = Callable[[np.ndarray], np.ndarray]
INDEX_KINDS = ("exact", "ivf", "hnsw")


@torch.no_grad()
def extract_embeddings(
    model: nn.Module, loader, device: torch.device | str, progress: bool = True
) -> np.ndarray:
    """``model.embed`` over a loader of ``(images, labels)``: ``(N, D)`` float32, unit rows."""
    model.eval()
    chunks = []
    for images, _ in tqdm(loader, desc="embed", disable=not progress):
        emb = model.embed(images.to(device))
        chunks.append(nn.functional.normalize(emb.float(), dim=1).cpu().numpy())
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, 0), np.float32)


def save_embeddings(
    folder: str | Path, name: str, embeddings: np.ndarray, ids: Sequence[str]
) -> Path:
    """Write ``NAME.npy`` and ``NAME_ids.csv``; returns the ``.npy`` path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if len(ids) != len(embeddings):
        raise ValueError(f"{len(ids)} ids for {len(embeddings)} embeddings")
    np.save(folder / f"{name}.npy", embeddings)
    pd.DataFrame({"id": list(ids)}).to_csv(folder / f"{name}_ids.csv", index=False)
    return folder / f"{name}.npy"


def load_embeddings(folder: str | Path, name: str) -> tuple[np.ndarray, list[str]]:
    """Read what `save_embeddings` wrote."""
    folder = Path(folder)
    ids = pd.read_csv(folder / f"{name}_ids.csv", dtype=str)["id"].tolist()
    return np.load(folder / f"{name}.npy"), ids


class EmbeddingIndex:
    """Inner-product kNN over unit vectors with faiss (see the module docstring)."""

    def __init__(
        self,
        embeddings: np.ndarray,
        kind: str = "exact",
        nlist: int = 1024,
        nprobe: int = 16,
        hnsw_m: int = 32,
        ef_search: int = 64,
    ):
        if kind not in INDEX_KINDS:
            raise ValueError(f"index kind must be one of {INDEX_KINDS}, not {kind!r}")
        data = np.ascontiguousarray(embeddings, dtype=np.float32)
        dim = data.shape[1]
        if kind == "exact":
            self.index = faiss.IndexFlatIP(dim)
        elif kind == "ivf":
            nlist = max(1, min(nlist, len(data) // 39))  # faiss wants ~39 points per centroid
            self.quantizer = faiss.IndexFlatIP(dim)
            self.index = faiss.IndexIVFFlat(self.quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            self.index.train(data)
            self.index.nprobe = min(nprobe, nlist)
        else:
            self.index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efSearch = ef_search
        self.index.add(data)
        self.kind = kind

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine scores and gallery indices of the ``k`` nearest, each ``(Q, k)``, best first."""
        k = min(k, len(self))
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def brute_force(gallery: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The numpy baseline of `EmbeddingIndex.search`: full similarity matrix + partial sort."""
    sim = queries @ gallery.T
    k = min(k, gallery.shape[0])
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    scores = np.take_along_axis(sim, top, axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(scores, order, 1), np.take_along_axis(top, order, 1)


def recall_at_1(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Fraction of queries whose first approximate neighbour is the exact first neighbour."""
    return float(np.mean(approximate[:, 0] == exact[:, 0]))


def aggregate(
    scores: np.ndarray, indices: np.ndarray, labels: np.ndarray, how: str = "top1"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-query landmark and confidence from kNN results (see the module docstring)."""
    labels = np.asarray(labels)
    neighbour_labels = labels[indices]
    if how == "top1":
        return neighbour_labels[:, 0], scores[:, 0].astype(np.float64)
    if how not in ("vote", "sum"):
        raise ValueError(f"aggregation must be top1, vote or sum, not {how!r}")
    predicted = np.empty(len(scores), dtype=labels.dtype)
    confidence = np.empty(len(scores), np.float64)
    k = scores.shape[1]
    for q in range(len(scores)):
        totals: dict = {}
        votes: dict = {}
        for label, score in zip(neighbour_labels[q], scores[q], strict=True):
            totals[label] = totals.get(label, 0.0) + float(score)
            votes[label] = votes.get(label, 0) + 1
        if how == "vote":
            best = max(totals, key=lambda lab, v=votes, t=totals: (v[lab], t[lab]))
        else:
            best = max(totals, key=totals.__getitem__)
        predicted[q], confidence[q] = best, totals[best] / (k if how == "vote" else 1)
    return predicted, confidence


def apply_non_landmark(
    predicted: np.ndarray, non_landmark_scores: np.ndarray, threshold: float
) -> np.ndarray:
    """Predictions with ``NO_LANDMARK`` where the detector's score exceeds ``threshold``."""
    out = np.array(predicted, copy=True)
    out[np.asarray(non_landmark_scores) > threshold] = NO_LANDMARK
    return out


def checkpoint_embedder(path: str | Path, device: str = "cpu"):
    """A function ``images -> (N, D)`` unit embeddings from a trained checkpoint."""
    from utils.data.augment import eval_transform
    from utils.training.checkpoint import load_trained
    from utils.training.devices import resolve_device

    dev = resolve_device(device)
    model, _, config = load_trained(path, dev)
    transform = eval_transform(config["image_size"], config["pipeline"])

    @torch.no_grad()
    def embed(images: list[np.ndarray]) -> np.ndarray:
        batch = torch.stack([transform(image=im)["image"] for im in images]).to(dev)
        return model.embed(batch).float().cpu().numpy()

    return embed
