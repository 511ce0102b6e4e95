"""Predict the test set with a trained checkpoint: the classifier, or the test embeddings.

Both read the test images in order, in batches, while a `TimeBudget` allows the next batch, and
record in `TestPredictions` for all ``N`` rows a landmark id (``NO_LANDMARK`` where nothing was
predicted) and a confidence, plus which rows were unreadable and how many the budget left out.

- ``classifier``: softmax of the head, ``landmark = argmax_c p_c``, ``confidence = max_c p_c``.
- ``embed``: unit embeddings ``(M, D)`` of the rows read, for retrieval
  (`utils.inference.submit`: the gallery, the ranking and the optional RootSIFT re-ranking).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from utils.data.datasets import ClassMap, FolderDataset, drop_broken_collate, make_loader
from utils.inference.budget import TimeBudget
from utils.metrics import NO_LANDMARK

METHODS = ("classifier", "retrieval")


@dataclass
class TestPredictions:
    """One landmark and confidence per test row, and what was left out."""

    landmarks: np.ndarray  # (N,) int64, NO_LANDMARK where nothing was predicted
    confidences: np.ndarray  # (N,) float64, 0 where nothing was predicted
    unreadable: list[int] = field(default_factory=list)  # rows whose image could not be read
    out_of_budget: int = 0  # rows the time budget left out (at the end of the order)

    @classmethod
    def empty(cls, rows: int) -> TestPredictions:
        """``rows`` rows, none predicted."""
        return cls(np.full(rows, NO_LANDMARK, np.int64), np.zeros(rows, np.float64))

    @property
    def predicted(self) -> int:
        """Rows with a landmark."""
        return int((self.landmarks != NO_LANDMARK).sum())


def _batches(
    dataset: FolderDataset,
    batch_size: int,
    workers: int,
    budget: TimeBudget,
    pred: TestPredictions,
    desc: str,
    progress: bool,
) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """``(images, rows)`` of each batch while the budget allows it; records the rows left out.

    Batches are consecutive rows ``[b * batch_size, (b + 1) * batch_size)``, so the rows of a
    batch that are missing from it are the unreadable ones.
    """
    loader = make_loader(dataset, batch_size, workers=workers, collate_fn=drop_broken_collate)
    total, reached = len(dataset), 0
    with tqdm(total=total, desc=desc, disable=not progress) as bar:
        for number, batch in enumerate(loader):
            span = range(number * batch_size, min(total, (number + 1) * batch_size))
            if not budget.allows(reached, len(span)):
                break
            rows = batch[2].numpy() if batch is not None else np.zeros(0, np.int64)
            pred.unreadable += sorted(set(span) - set(rows.tolist()))
            if len(rows):
                yield batch[0], rows
            reached = span.stop
            bar.update(len(span))
            bar.set_postfix(total_s=f"{budget.estimate(reached, total):.0f}")
    pred.out_of_budget = total - reached


@torch.no_grad()
def predict_classifier(
    model: nn.Module,
    class_map: ClassMap,
    dataset: FolderDataset,
    device: torch.device,
    budget: TimeBudget,
    batch_size: int = 64,
    workers: int = 2,
    dtype: torch.dtype | None = None,
    progress: bool = True,
) -> TestPredictions:
    """The ``classifier`` method of the module docstring (``dtype``: autocast, None: fp32)."""
    model.eval()
    pred = TestPredictions.empty(len(dataset))
    ids = np.asarray(class_map.landmark_ids, np.int64)
    for images, rows in _batches(dataset, batch_size, workers, budget, pred, "test", progress):
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model.logits(images.to(device, non_blocking=True)).float()
        confidence, index = logits.softmax(dim=1).max(dim=1)
        pred.landmarks[rows] = ids[index.cpu().numpy()]
        pred.confidences[rows] = confidence.cpu().numpy()
    return pred


@torch.no_grad()
def embed(
    model: nn.Module,
    dataset: FolderDataset,
    device: torch.device,
    budget: TimeBudget,
    batch_size: int = 64,
    workers: int = 2,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, TestPredictions]:
    """Unit embeddings ``(M, D)`` of the rows read, those rows ``(M,)``, and the record."""
    model.eval()
    pred = TestPredictions.empty(len(dataset))
    chunks, done = [], []
    for images, rows in _batches(dataset, batch_size, workers, budget, pred, "embed", progress):
        emb = nn.functional.normalize(model.embed(images.to(device)).float(), dim=1)
        chunks.append(emb.cpu().numpy())
        done.append(rows)
    if not chunks:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), pred
    return np.concatenate(chunks).astype(np.float32), np.concatenate(done), pred
