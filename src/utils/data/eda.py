"""Exploratory statistics of a landmark collection (the report's section 4).

Per image, on the RGB array ``x`` of shape ``(H, W, 3)`` with values in [0, 255] and its luma
``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601):

- ``brightness`` = mean(Y);
- ``contrast`` = std(Y), the RMS contrast;
- ``mean_r``, ``mean_g``, ``mean_b`` = the mean of each channel;
- ``laplacian_var`` = Var(∇²Y), the variance of the 3x3 Laplacian of Y (ksize=1 in OpenCV):
  a sharpness score, low for blurred photos.

`image_stats` computes them for one array; `collection_stats` for a list of files, reading
each at a reduced size (``min_side``, default 256) so that statistics are comparable across
resolutions and cheap; unreadable files are skipped and reported, not fatal.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from utils.data.gldv2 import image_path
from utils.data.images import BadFiles, iter_images

STAT_COLUMNS = ("brightness", "contrast", "mean_r", "mean_g", "mean_b", "laplacian_var")
_LUMA = np.array([0.299, 0.587, 0.114], np.float64)


def luma(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` float64 BT.601 luma of an ``(H, W, 3)`` RGB array."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {image.shape}")
    return image.astype(np.float64) @ _LUMA


def image_stats(image: np.ndarray) -> dict[str, float]:
    """The statistics of the module docstring for one ``(H, W, 3)`` RGB array."""
    y = luma(image)
    means = image.reshape(-1, 3).mean(axis=0)
    return {
        "brightness": float(y.mean()),
        "contrast": float(y.std()),
        "mean_r": float(means[0]),
        "mean_g": float(means[1]),
        "mean_b": float(means[2]),
        "laplacian_var": float(cv2.Laplacian(y, cv2.CV_64F, ksize=1).var()),
    }


def collection_stats(
    paths: list[str | Path],
    min_side: int | None = 256,
    progress: bool = True,
) -> tuple[pd.DataFrame, BadFiles]:
    """Statistics of every readable file: a frame indexed by path, and the skipped files.

    Columns: `STAT_COLUMNS` plus ``width``, ``height`` of the decoded array.
    """
    bad = BadFiles()
    rows = []
    for path, image in iter_images(paths, bad, min_side=min_side, progress=progress, desc="stats"):
        rows.append(
            {
                "path": str(path),
                "height": image.shape[0],
                "width": image.shape[1],
                **image_stats(image),
            }
        )
    columns = ["path", "height", "width", *STAT_COLUMNS]
    return pd.DataFrame(rows, columns=columns).set_index("path"), bad


def split_stats(
    root: str | Path, labels: pd.DataFrame, min_side: int | None = 256, progress: bool = True
) -> tuple[pd.DataFrame, BadFiles]:
    """`collection_stats` of the train images listed in ``labels`` (``id,landmark_id``).

    Returns the statistics joined with ``id`` and ``landmark_id``.
    """
    paths = [image_path(root, image_id) for image_id in labels["id"]]
    stats, bad = collection_stats(paths, min_side=min_side, progress=progress)
    keyed = labels.assign(path=[str(p) for p in paths]).set_index("path")
    return keyed.join(stats, how="inner").reset_index(drop=True), bad


def class_distribution(labels: pd.DataFrame) -> pd.DataFrame:
    """Images per class, most frequent first: columns ``landmark_id``, ``images``, ``rank``."""
    counts = labels.groupby("landmark_id").size().rename("images").reset_index()
    counts = counts.sort_values(["images", "landmark_id"], ascending=[False, True])
    return counts.assign(rank=np.arange(1, len(counts) + 1)).reset_index(drop=True)


def distribution_summary(counts: pd.DataFrame) -> dict[str, float]:
    """Long-tail summary of `class_distribution`: classes, images, min/median/max, top-10 share.

    ``head_share`` is the fraction of all images held by the 10% most frequent classes.
    """
    images = counts["images"].to_numpy()
    head = max(1, int(np.ceil(0.1 * len(images))))
    return {
        "classes": int(len(images)),
        "images": int(images.sum()),
        "min": int(images.min()),
        "median": float(np.median(images)),
        "max": int(images.max()),
        "head_share": float(np.sort(images)[::-1][:head].sum() / images.sum()),
    }
