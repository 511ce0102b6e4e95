"""Figures shared by the notebooks. Each function returns its matplotlib ``Figure``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure


def image_grid(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    ncols: int = 6,
    size: float = 2.2,
) -> Figure:
    """Show ``(H, W, 3)`` uint8 images (or float images in [0, 1]) in a grid."""
    if not images:
        raise ValueError("image_grid needs at least one image")
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < len(images):
            ax.imshow(images[index])
            if titles is not None:
                ax.set_title(str(titles[index]), fontsize=8)
    fig.tight_layout()
    return fig


def class_distribution_plot(counts: pd.DataFrame, names: dict[int, str], top: int = 20) -> Figure:
    """Rank-frequency curve (log-log) and the ``top`` landmarks by image count, by name."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    left.loglog(counts["rank"], counts["images"], marker=".", linestyle="-")
    left.set(xlabel="class rank", ylabel="images", title="images per class (long tail)")
    head = counts.head(top)
    labels = [names.get(int(i), str(i)) for i in head["landmark_id"]]
    sns.barplot(x=head["images"].to_numpy(), y=labels, ax=right, orient="h", color="tab:blue")
    right.set(xlabel="images", title=f"top {len(head)} landmarks")
    fig.tight_layout()
    return fig


def stats_histograms(stats: pd.DataFrame, columns: Sequence[str]) -> Figure:
    """One histogram per statistic column."""
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 3), squeeze=False)
    for ax, column in zip(axes.flat, columns, strict=True):
        sns.histplot(stats[column], ax=ax, bins=30, log_scale=column == "laplacian_var")
        ax.set_title(column)
    fig.tight_layout()
    return fig


def split_bars(table: pd.DataFrame) -> Figure:
    """Stacked bars of images per class in train / val / test."""
    body = table.drop(index="all", errors="ignore")[["train", "val", "test"]]
    fig, ax = plt.subplots(figsize=(min(16, 2 + 0.3 * len(body)), 3.5))
    body.plot.bar(stacked=True, ax=ax, width=0.85)
    ax.set(xlabel="landmark_id", ylabel="images", title="split per class")
    fig.tight_layout()
    return fig


def augmentation_grid(
    images: Sequence[np.ndarray],
    make_transform: Callable[..., Callable],
    views: int = 6,
    seed: int = 0,
    title: str = "",
) -> Figure:
    """Each row: one image, then ``views - 1`` augmented views of it.

    View ``k`` comes from ``make_transform(seed=seed + k)``; its normalised tensor output is
    shown through `utils.augment.denormalize`.
    """
    from utils.data.augment import denormalize

    transforms = [make_transform(seed=seed + k) for k in range(views - 1)]
    cells = []
    for image in images:
        cells.append(image)
        cells += [denormalize(t(image=image)["image"]) for t in transforms]
    fig = image_grid(cells, ncols=views)
    if title:
        fig.suptitle(title)
    return fig


def training_curves(history: Sequence[dict]) -> Figure:
    """Loss, accuracy and validation GAP per epoch from `utils.train`'s history."""
    frame = pd.DataFrame(history)
    if frame.empty:
        raise ValueError("training_curves needs at least one epoch of history")
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    panels = (
        ("loss", ["train_loss", "val_loss"]),
        ("accuracy", ["train_accuracy", "val_accuracy"]),
        ("GAP", ["val_gap"]),
    )
    for ax, (title, columns) in zip(axes, panels, strict=True):
        for column in columns:
            ax.plot(frame["epoch"], frame[column], marker="o", label=column)
        ax.set(xlabel="epoch", title=title)
        ax.legend()
    fig.tight_layout()
    return fig


def keypoints_figure(
    image: np.ndarray, keypoints: np.ndarray, strengths: np.ndarray, title: str = ""
) -> Figure:
    """An image with its keypoints, marker size growing with strength (e.g. attention)."""
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(image)
    size = 4 + 40 * (strengths - strengths.min()) / (np.ptp(strengths) + 1e-9)
    ax.scatter(
        keypoints[:, 0], keypoints[:, 1], s=size, c="yellow", edgecolors="black", linewidths=0.3
    )
    ax.set(title=title or f"{len(keypoints)} keypoints")
    ax.axis("off")
    fig.tight_layout()
    return fig


def matches_figure(
    query: np.ndarray, gallery: np.ndarray, pairs: np.ndarray, title: str = ""
) -> Figure:
    """Two images side by side with a line per inlier pair ``(K, 4)``: qx, qy, gx, gy."""
    height = max(query.shape[0], gallery.shape[0])
    canvas = np.full((height, query.shape[1] + gallery.shape[1], 3), 255, np.uint8)
    canvas[: query.shape[0], : query.shape[1]] = query
    canvas[: gallery.shape[0], query.shape[1] :] = gallery
    fig, ax = plt.subplots(figsize=(11, 5))
    ax.imshow(canvas)
    for qx, qy, gx, gy in pairs:
        ax.plot([qx, gx + query.shape[1]], [qy, gy], linewidth=0.7, color="lime")
    ax.set(title=title or f"{len(pairs)} inliers")
    ax.axis("off")
    fig.tight_layout()
    return fig


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, float]]) -> Figure:
    """ROC curves, one per detector: ``{name: (fpr, tpr, auroc)}``."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for name, (fpr, tpr, area) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUROC {area:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false-positive rate (non-landmarks accepted)", ylabel="true-positive rate")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
