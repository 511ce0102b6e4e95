"""Feeding benchmark: training's loader against the one it replaced, on a manifest's train split.

Both make the same batches' worth of pipeline-2 images from the same decoded (or cached)
images with the same workers over several epochs, with nothing consuming them, so the rate is
the most a device could be fed:

- ``former``: float32 batches normalised by the workers, a new loader (new workers) each epoch;
- ``training``: `utils.training.feeding.training_loader`: uint8 batches (normalised later on the
  device), seeded batches, workers kept for the whole run.

See `utils.bench.cli` for the command.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from utils.data.augment import decode_side, train_transform
from utils.data.datasets import ClassMap, ManifestDataset, make_loader
from utils.data.manifests import read_manifests
from utils.training.feeding import training_loader


def _dataset(data_root, manifest_dir, size: int, normalize: bool, cache: bool) -> ManifestDataset:
    split = read_manifests(manifest_dir).train
    data = ManifestDataset(
        split,
        data_root,
        ClassMap.from_manifest(split),
        train_transform(size, 2, seed=0, normalize=normalize),
        min_side=decode_side(size, 2),
        on_broken="replace",
        cache=cache,
    )
    data.fill_cache()  # a no-op without the cache
    return data


def former_rate(data: ManifestDataset, batch: int, workers: int, epochs: int) -> float:
    """Images/s of a fresh float32 loader per epoch (the loader before `training_loader`)."""
    seen, start = 0, time.perf_counter()
    for epoch in range(epochs):
        loader = make_loader(
            data, batch, shuffle=True, workers=workers, seed=epoch, persistent=False
        )
        for _, labels in loader:
            seen += len(labels)
    return seen / (time.perf_counter() - start)


def training_rate(data: ManifestDataset, batch: int, workers: int, epochs: int) -> float:
    """Images/s of `training_loader` over ``epochs`` epochs (its workers started inside)."""
    loader, batches = training_loader(data, batch, workers, seed=0)
    seen, start = 0, time.perf_counter()
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        for _, labels in loader:
            seen += len(labels)
    return seen / (time.perf_counter() - start)


def bench_feed(
    data_root: str | Path,
    manifest_dir: str | Path,
    size: int = 224,
    batch: int = 64,
    workers: int = 2,
    epochs: int = 3,
    rounds: int = 2,
) -> dict:
    """Both rates, from files and from the memory cache, ``rounds`` times interleaved."""
    rows = []
    for cache in (False, True):
        floats = _dataset(data_root, manifest_dir, size, True, cache)
        uint8 = _dataset(data_root, manifest_dir, size, False, cache)
        for round_ in range(rounds):
            former = former_rate(floats, batch, workers, epochs)
            current = training_rate(uint8, batch, workers, epochs)
            rows.append(
                {
                    "cache": cache,
                    "round": round_ + 1,
                    "former": round(former, 1),
                    "training": round(current, 1),
                    "ratio": round(current / former, 2),
                }
            )
    return {
        "images": len(floats),
        "size": size,
        "batch": batch,
        "workers": workers,
        "epochs": epochs,
        "cpu_count": os.cpu_count(),
        "rows": rows,
    }


def print_feed(result: dict) -> None:
    """Print `bench_feed`'s result, a line per round."""
    print(
        f"feeding benchmark: {result['images']} train images, pipeline 2 at {result['size']} px, "
        f"batch {result['batch']}, {result['workers']} workers, {result['epochs']} epochs, "
        f"{result['cpu_count']} CPUs (images/s)"
    )
    for row in result["rows"]:
        source = "memory cache" if row["cache"] else "JPEG files"
        print(
            f"  {source:<12} round {row['round']}: former loader {row['former']:8.1f}, "
            f"training_loader {row['training']:8.1f}, ratio {row['ratio']:.2f}x"
        )
