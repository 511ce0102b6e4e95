"""The leaderboard gallery: every train image the data root lists when the job runs.

On Kaggle the hidden re-run may bring another train set than the public one, so the gallery is
read from the data root's label file at run time (`read_source`: ``train.csv``, or
``train_clean.csv``), never from ids fixed before. `describe_gallery` describes it in chunks with a
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


def describe_gallery(
    vectors,
    data_root: str | Path,
    listing: pd.DataFrame,
    budget: TimeBudget | None = None,
) -> Gallery:
    """The `Gallery` of ``listing`` (``id, landmark_id``) under ``data_root/train/``.

    ``vectors``: a `utils.inference.descriptors.Vectors` function (the trained network, the
    frozen descriptor or both). Missing files are found first (one ``stat`` each) and skipped;
    what ``vectors`` cannot read or the budget (None: unlimited) leaves out is counted in the
    `GallerySkips`.
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
