"""The leaderboard gallery: every train image the data root lists when the job runs.

On Kaggle the hidden re-run may bring another train set than the public one, so the gallery is
read from the data root's label file at run time (`read_source`: ``train.csv``, or
``train_clean.csv``), never from ids fixed before. `embed_gallery` embeds it in chunks with a
progress bar and a running estimate of the total; a file that is missing or cannot be decoded is
skipped and counted (`GallerySkips`), never fatal, and listed once at the end, not one warning
per file (a flood at GLDv2's 1.58M images).

Memory: the gallery is ``N x D`` float32, ``4 N D`` bytes: 1.58M x 1280 is 8.1 GB, 1.58M x 512
is 3.2 GB (`gallery_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from utils.data.datasets import FolderDataset, drop_broken_collate, make_loader
from utils.data.gldv2 import image_path, read_source
from utils.inference.budget import TimeBudget

SOURCES = ("train", "clean")  # gallery label file: train.csv | train_clean.csv


def gallery_bytes(rows: int, dim: int) -> int:
    """Bytes of an ``(rows, dim)`` float32 gallery."""
    return 4 * int(rows) * int(dim)


def read_gallery_list(data_root: str | Path, source: str = "train") -> pd.DataFrame:
    """``id, landmark_id`` of every image the data root's label file lists (one row per id)."""
    if source not in SOURCES:
        raise ValueError(f"gallery source must be one of {SOURCES}, not {source!r}")
    labels, _ = read_source(data_root, source)
    return labels.drop_duplicates("id").reset_index(drop=True)


@dataclass
class GallerySkips:
    """Gallery images left out, by reason (paths; ``listed`` counts what the file lists)."""

    listed: int = 0
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    out_of_budget: int = 0

    def summary(self, shown: int = 5) -> str:
        """One line: how many were used and why the others were not."""
        used = self.listed - len(self.missing) - len(self.unreadable) - self.out_of_budget
        parts = [f"gallery: {used} of {self.listed} listed images embedded"]
        for name, items in (("missing", self.missing), ("unreadable", self.unreadable)):
            if items:
                more = f", ... {len(items) - shown} more" if len(items) > shown else ""
                parts.append(f"{len(items)} {name} ({', '.join(items[:shown])}{more})")
        if self.out_of_budget:
            parts.append(f"{self.out_of_budget} left out by the time budget")
        return "; ".join(parts)


@dataclass
class Gallery:
    """Unit embeddings ``(M, D)`` of the images read, their landmarks and ids ``(M,)``."""

    embeddings: np.ndarray
    labels: np.ndarray
    ids: list[str]
    paths: list[Path]
    skips: GallerySkips

    def __len__(self) -> int:
        return len(self.labels)


@torch.no_grad()
def embed_gallery(
    model: nn.Module,
    data_root: str | Path,
    listing: pd.DataFrame,
    transform,
    device: torch.device,
    budget: TimeBudget | None = None,
    batch_size: int = 64,
    workers: int = 2,
    dtype: torch.dtype | None = None,
    progress: bool = True,
) -> Gallery:
    """Embed the images of ``listing`` (``id, landmark_id``) under ``data_root/train/``.

    Missing files are found first (one ``stat`` each) and skipped; unreadable ones are dropped
    by the loader; the budget (None: unlimited) stops the loop between batches.
    """
    budget = budget or TimeBudget()
    ids = listing["id"].astype(str).tolist()
    paths = [image_path(data_root, image_id) for image_id in ids]
    present = np.array([p.is_file() for p in paths], bool)
    skips = GallerySkips(listed=len(ids), missing=[str(paths[i]) for i in np.flatnonzero(~present)])
    rows = np.flatnonzero(present)
    dataset = FolderDataset(
        [paths[i] for i in rows], transform=transform, on_broken="drop", warn=False
    )
    loader = make_loader(dataset, batch_size, workers=workers, collate_fn=drop_broken_collate)
    chunks, kept, reached = [], [], 0
    with tqdm(total=len(rows), desc="gallery", unit="img", disable=not progress) as bar:
        for number, batch in enumerate(loader):
            span = range(number * batch_size, min(len(rows), (number + 1) * batch_size))
            if not budget.allows(reached, len(span)):
                break
            got = batch[2].numpy() if batch is not None else np.zeros(0, np.int64)
            skips.unreadable += [str(dataset.paths[r]) for r in sorted(set(span) - set(got))]
            if len(got):
                with torch.autocast(
                    device.type, dtype=dtype or torch.float32, enabled=dtype is not None
                ):
                    emb = model.embed(batch[0].to(device, non_blocking=True))
                chunks.append(nn.functional.normalize(emb.float(), dim=1).cpu().numpy())
                kept.append(rows[got])
            reached = span.stop
            bar.update(len(span))
            bar.set_postfix(total_s=f"{budget.estimate(reached, len(rows)):.0f}")
    skips.out_of_budget = len(rows) - reached
    if not chunks:
        return Gallery(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), [], [], skips)
    order = np.concatenate(kept)
    labels = listing["landmark_id"].to_numpy(np.int64)[order]
    return Gallery(
        np.concatenate(chunks).astype(np.float32),
        labels,
        [ids[i] for i in order],
        [paths[i] for i in order],
        skips,
    )


def describe_gallery(
    vectors,
    data_root: str | Path,
    listing: pd.DataFrame,
    budget: TimeBudget | None = None,
) -> Gallery:
    """`embed_gallery` with any `utils.inference.descriptors.Vectors` function.

    Missing files are found first and skipped; what ``vectors`` cannot read or the budget
    leaves out is counted in the `GallerySkips`.
    """
    budget = budget or TimeBudget()
    ids = listing["id"].astype(str).tolist()
    paths = [image_path(data_root, image_id) for image_id in ids]
    present = np.array([p.is_file() for p in paths], bool)
    skips = GallerySkips(listed=len(ids), missing=[str(paths[i]) for i in np.flatnonzero(~present)])
    rows = np.flatnonzero(present)
    found, kept, unreadable, out = vectors([paths[i] for i in rows], budget, "gallery")
    skips.unreadable = [str(paths[rows[i]]) for i in unreadable]
    skips.out_of_budget = out
    if not len(kept):
        return Gallery(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), [], [], skips)
    order = rows[kept]
    return Gallery(
        np.asarray(found, np.float32),
        listing["landmark_id"].to_numpy(np.int64)[order],
        [ids[i] for i in order],
        [paths[i] for i in order],
        skips,
    )
