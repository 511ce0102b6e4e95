"""Evaluate trained classifiers: devices, manifest splits, predictions, accuracy and GAP.

`split_dataset` builds a manifest split with a run's transform (from its ``config.json``
fields), `predict` runs a model over a loader, `summarize` turns the predictions into
accuracy and GAP (every image of a manifest split shows a landmark), and `evaluate` does all
of it for a checkpoint written by `utils.train`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from utils import checkpoint
from utils.augment import decode_side, eval_transform, train_transform
from utils.datasets import ClassMap, ManifestDataset, make_loader
from utils.manifests import read_manifests
from utils.metrics import accuracy, gap
from utils.models import build_model


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def cap(frame: pd.DataFrame, max_images: int, seed: int) -> pd.DataFrame:
    """At most ``max_images`` rows (a seeded sample), or all when ``max_images`` is 0."""
    if max_images <= 0 or len(frame) <= max_images:
        return frame
    return frame.sample(n=max_images, random_state=seed).sort_index()


def split_dataset(
    config: dict, class_map: ClassMap, split: str, train: bool = False, cache: bool = False
):
    """One manifest split (capped) with the run's transform: augmented when ``train``.

    ``cache`` keeps the decoded images in memory (`ManifestDataset`'s ``cache``).

    An unreadable image is reported once and replaced by the next readable row, so that a long
    training or evaluation is not lost to one broken file (`ManifestDataset`'s ``skip_broken``).
    """
    frame = read_manifests(config["manifest_dir"]).split(split)
    frame = cap(frame, config["max_images"], config["seed"])
    size, pipeline = config["image_size"], config["pipeline"]
    if train:
        transform = train_transform(size, pipeline, seed=config["seed"])
    else:
        transform = eval_transform(size, pipeline)
    side = decode_side(size, pipeline, train=train)
    return ManifestDataset(
        frame,
        config["data_root"],
        class_map,
        transform,
        min_side=side,
        skip_broken=True,
        cache=cache,
    )


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    amp: bool = False,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Class predictions, softmax confidences, labels and per-image losses over a loader."""
    model.eval()
    out: dict[str, list] = {"predicted": [], "confidence": [], "label": [], "loss": []}
    for images, labels in tqdm(loader, desc="eval", disable=not progress, leave=False):
        images, labels = images.to(device, non_blocking=True), labels.to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = model(images).float()
        probs = logits.softmax(dim=1)
        confidence, predicted = probs.max(dim=1)
        out["loss"].append(nn.functional.cross_entropy(logits, labels, reduction="none").cpu())
        out["predicted"].append(predicted.cpu())
        out["confidence"].append(confidence.cpu())
        out["label"].append(labels.cpu())
    return {k: torch.cat(v).numpy() if v else np.zeros(0) for k, v in out.items()}


def summarize(pred: dict[str, np.ndarray]) -> dict[str, float]:
    """Accuracy, GAP and mean loss of `predict`'s output (every image shows a landmark)."""
    return {
        "accuracy": accuracy(pred["predicted"], pred["label"]),
        "gap": gap(pred["predicted"], pred["confidence"], pred["label"]),
        "loss": float(pred["loss"].mean()) if pred["loss"].size else float("nan"),
    }


def load_trained(path: str | Path, device: torch.device | str = "cpu"):
    """``(model, class_map, config)`` from ``best.pt``/``last.pt``; the model in eval mode."""
    state = checkpoint.load(path)
    config = state["config"]
    class_map = ClassMap(state["class_ids"])
    model = build_model(config["model"], len(class_map))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), class_map, config


def evaluate(
    path: str | Path,
    split: str = "test",
    device: str = "auto",
    workers: int = 2,
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[dict, pd.DataFrame]:
    """Metrics and per-image predictions of a checkpoint on a manifest split."""
    dev = resolve_device(device)
    model, class_map, config = load_trained(path, dev)
    data = split_dataset(config, class_map, split)
    use_amp = config["amp"] and dev.type == "cuda"
    pred = predict(model, make_loader(data, batch_size, workers=workers), dev, use_amp, progress)
    table = pd.DataFrame(
        {
            "id": data.ids,
            "landmark_id": [class_map.landmark(i) for i in pred["label"]],
            "predicted": [class_map.landmark(i) for i in pred["predicted"]],
            "confidence": pred["confidence"],
        }
    )
    return {"split": split, "images": len(table), **summarize(pred)}, table
