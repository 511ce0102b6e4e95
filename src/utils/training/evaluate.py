"""Evaluate trained classifiers: manifest splits, predictions, accuracy and GAP.

`split_dataset` builds a manifest split with a run's transform (from its ``config.json``
fields), `predict` runs a model over a loader, `summarize` turns the predictions into
accuracy and GAP (every image of a manifest split shows a landmark), and `evaluate` does all
of it for a checkpoint written by `utils.training.train`
(``python -m utils evaluate --checkpoint best.pt --split test``).

Unreadable images: the training split replaces one by the next readable row (a long run goes
on); a val/test split drops it, so every prediction keeps its own id and the metrics count
what was left out (``dropped``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from utils.data.augment import decode_side, eval_transform, train_transform
from utils.data.datasets import ClassMap, ManifestDataset, drop_broken_collate, make_loader
from utils.data.manifests import read_binary_split, read_manifests
from utils.metrics import accuracy, auroc, gap
from utils.training.checkpoint import load_trained
from utils.training.devices import autocast_dtype, resolve_device


def cap(frame: pd.DataFrame, max_images: int, seed: int) -> pd.DataFrame:
    """At most ``max_images`` rows (a seeded sample), or all when ``max_images`` is 0."""
    if max_images <= 0 or len(frame) <= max_images:
        return frame
    return frame.sample(n=max_images, random_state=seed).sort_index()


def split_dataset(
    config: dict, class_map: ClassMap, split: str, train: bool = False, cache: bool = False
):
    """One manifest split (capped) with the run's transform: augmented when ``train``.

    A training split yields uint8 tensors (see `utils.training.feeding`), the others float32
    ones. ``cache`` keeps the decoded images in memory (`ManifestDataset`'s ``cache``). A run of
    the ``binary`` task reads its ``id,landmark_id,path,label`` manifests (labels 0/1).

    An unreadable image is replaced by the next readable row when ``train``, and dropped
    otherwise (`ManifestDataset`'s ``on_broken``; see the module docstring).
    """
    binary = config.get("task", "landmark") == "binary"
    if binary:
        frame = read_binary_split(config["manifest_dir"], split)
    else:
        frame = read_manifests(config["manifest_dir"]).split(split)
    frame = cap(frame, config["max_images"], config["seed"])
    size, pipeline = config["image_size"], config["pipeline"]
    if train:  # uint8 tensors, normalised on the device (`utils.data.augment.normalize_batch`)
        transform = train_transform(size, pipeline, seed=config["seed"], normalize=False)
    else:
        transform = eval_transform(size, pipeline)
    side = decode_side(size, pipeline, train=train)
    return ManifestDataset(
        frame,
        config["data_root"],
        class_map,
        transform,
        min_side=side,
        on_broken="replace" if train else "drop",
        cache=cache,
        label_column="label" if binary else "landmark_id",
    )


def split_loader(dataset: ManifestDataset, batch_size: int, workers: int, seed: int = 0):
    """An evaluation loader over a split: batches leave out dropped (unreadable) items."""
    return make_loader(
        dataset, batch_size, workers=workers, seed=seed, collate_fn=drop_broken_collate
    )


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    dtype: torch.dtype | None = None,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Class predictions, softmax confidences, labels and per-image losses over a loader.

    Batches are ``(images, labels)`` or ``(images, labels, rows)``; ``rows`` (the dataset's
    row of each image, from a ``drop`` split) is returned as ``row``. A ``None`` batch (every
    image of it unreadable) is skipped. Returns arrays of shape ``(N,)``.
    """
    model.eval()
    keys = ("predicted", "confidence", "label", "loss", "row")
    out: dict[str, list] = {key: [] for key in keys}
    for batch in tqdm(loader, desc="eval", disable=not progress, leave=False):
        if batch is None:
            continue
        images, labels = batch[0].to(device, non_blocking=True), batch[1].to(device)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model.logits(images).float()
        probs = logits.softmax(dim=1)
        confidence, predicted = probs.max(dim=1)
        out["loss"].append(nn.functional.cross_entropy(logits, labels, reduction="none").cpu())
        out["predicted"].append(predicted.cpu())
        out["confidence"].append(confidence.cpu())
        out["label"].append(labels.cpu())
        if len(batch) > 2:
            out["row"].append(batch[2])
    return {k: torch.cat(v).numpy() if v else np.zeros(0, np.int64) for k, v in out.items()}


@torch.no_grad()
def predict_binary(
    model: nn.Module, loader: DataLoader, device: torch.device, dtype: torch.dtype | None = None
) -> dict[str, np.ndarray]:
    """The logit and probability of "landmark" (its sigmoid), labels 0/1, per-image BCE."""
    model.eval()
    logit, probability, labels, losses = [], [], [], []
    for batch in loader:
        if batch is None:
            continue
        images, label = batch[0].to(device, non_blocking=True), batch[1].to(device)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model.logits(images).float().reshape(-1)
        logit.append(logits.cpu())
        probability.append(torch.sigmoid(logits).cpu())
        labels.append(label.cpu())
        losses.append(
            nn.functional.binary_cross_entropy_with_logits(
                logits, label.float(), reduction="none"
            ).cpu()
        )
    out = {"logit": logit, "probability": probability, "label": labels, "loss": losses}
    return {k: torch.cat(v).numpy() if v else np.zeros(0) for k, v in out.items()}


def summarize_binary(pred: dict[str, np.ndarray], expected: int | None = None) -> dict:
    """Accuracy at probability 0.5, AUROC and mean loss of `predict_binary`'s output.

    The AUROC is of the logits: a saturated sigmoid would give ties.
    """
    label = pred["label"].astype(bool)
    summary = {
        "accuracy": float(np.mean((pred["probability"] > 0.5) == label)) if label.size else 0.0,
        "auroc": auroc(pred["logit"], label),
        "loss": float(pred["loss"].mean()) if pred["loss"].size else float("nan"),
    }
    if expected is not None:
        summary["dropped"] = expected - len(label)
    return summary


def summarize(pred: dict[str, np.ndarray], expected: int | None = None) -> dict[str, float]:
    """Accuracy, GAP and mean loss of `predict`'s output (every image shows a landmark).

    With ``expected`` (the split's size), ``dropped`` counts the images left out as
    unreadable; the rates are over the ``len(pred["label"])`` images that were read.
    """
    summary = {
        "accuracy": accuracy(pred["predicted"], pred["label"]),
        "gap": gap(pred["predicted"], pred["confidence"], pred["label"]),
        "loss": float(pred["loss"].mean()) if pred["loss"].size else float("nan"),
    }
    if expected is not None:
        summary["dropped"] = expected - len(pred["label"])
    return summary


def evaluate(
    path: str | Path,
    split: str = "test",
    device: str = "auto",
    workers: int = 2,
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[dict, pd.DataFrame]:
    """Metrics and per-image predictions of a checkpoint on a manifest split.

    The table has one row per image that was read (``id``, ``landmark_id``, ``predicted``,
    ``confidence``); the metrics say how many were dropped as unreadable.
    """
    dev = resolve_device(device)
    model, class_map, config = load_trained(path, dev)
    data = split_dataset(config, class_map, split)
    dtype = autocast_dtype(dev, config["amp"], config.get("precision", "auto"), config["model"])
    loader = split_loader(data, batch_size, workers)
    pred = predict(model, loader, dev, dtype, progress)
    table = pd.DataFrame(
        {
            "id": [data.ids[row] for row in pred["row"]],
            "landmark_id": [class_map.landmark(i) for i in pred["label"]],
            "predicted": [class_map.landmark(i) for i in pred["predicted"]],
            "confidence": pred["confidence"],
        }
    )
    metrics = {"split": split, "images": len(table), **summarize(pred, len(data))}
    return metrics, table


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    p = argparse.ArgumentParser(prog="python -m utils evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, required=True, help="best.pt or last.pt of a run")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="split")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--workers", type=int, default=2, help="data loader processes")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch")
    p.add_argument("--out", type=Path, default=None, help="per-image predictions CSV to write")
    return p


def main(argv: list[str] | None = None) -> int:
    """Print the metrics as JSON; 2 on a missing or unreadable checkpoint."""
    args = parser().parse_args(argv)
    try:
        metrics, table = evaluate(
            args.checkpoint, args.split, args.device, args.workers, args.batch_size
        )
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
    print(json.dumps(metrics, indent=2))
    return 0
