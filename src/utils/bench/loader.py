"""Input-pipeline benchmark: naive loader vs the project's loader vs the decode ceiling.

See `utils.bench` for the command; all three use the same JPEGs, pipeline 2 and workers.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from utils.data.augment import decode_side, pipeline2
from utils.data.datasets import FolderDataset, make_loader
from utils.minigld.camera import compose, view
from utils.minigld.render import KINDS, LandmarkSpec, landmark_layers

REPO = Path(__file__).resolve().parents[3]  # the checkout: src/utils/bench/ is three below
LOADER_IMAGES = REPO / "data" / "bench" / "loader"


def make_bench_jpegs(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` photo-like JPEGs of 800x600 to 1600x1200 (4:3 either way), made once."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"bench_{i:04d}.jpg" for i in range(count)]
    for index, path in enumerate(paths):
        if path.is_file():
            continue
        rng = np.random.default_rng([seed, index])
        width = int(rng.integers(800, 1601))
        size = (width, width * 3 // 4) if rng.random() < 0.7 else (width * 3 // 4, width)
        spec = LandmarkSpec(index % 24, "bench", KINDS[index % len(KINDS)], seed + index % 24)
        image = view(compose(landmark_layers(spec), rng, "day"), rng, size)
        grain = rng.normal(0, 6, image.shape)  # sensor noise: real photos are not smooth
        image = np.clip(image + grain, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(path, quality=90)
    return paths


class NaiveDataset(Dataset):
    """The baseline: full-size Pillow decode, then the transform."""

    def __init__(self, paths: list[Path], transform):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        with Image.open(self.paths[index]) as img:
            image = np.asarray(img.convert("RGB"))
        return self.transform(image=image)["image"], 0


def _count_collate(batch: list) -> int:
    return len(batch)


def images_per_second(loader: DataLoader, epochs: int = 2) -> float:
    """Throughput of the last of ``epochs`` passes over the loader."""
    rate = 0.0
    for _ in range(epochs):
        start, seen = time.perf_counter(), 0
        for batch in loader:
            seen += batch if isinstance(batch, int) else len(batch[0])
        rate = seen / (time.perf_counter() - start)
    return rate


def bench_loader(folder: Path, count: int, size: int, workers: int, batch: int) -> dict:
    """The three throughputs of the module docstring and their ratios."""
    paths = make_bench_jpegs(folder, count)
    side = decode_side(size, pipeline=2)
    naive = DataLoader(
        NaiveDataset(paths, pipeline2(size, seed=0)),
        batch_size=batch,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    dataset = FolderDataset(paths, transform=pipeline2(size), min_side=side)
    project = make_loader(dataset, batch_size=batch, workers=workers, pin_memory=False)
    plain = FolderDataset(paths, min_side=side)
    ceiling = make_loader(
        plain, batch_size=batch, workers=workers, pin_memory=False, collate_fn=_count_collate
    )
    rates = {
        name: images_per_second(loader)
        for name, loader in (("naive", naive), ("project", project), ("ceiling", ceiling))
    }
    return {
        "images": len(paths),
        "size": size,
        "workers": workers,
        "cpu_count": os.cpu_count(),
        "images_per_second": {k: round(v, 1) for k, v in rates.items()},
        "ratio_project_vs_naive": round(rates["project"] / rates["naive"], 2),
        "fraction_of_ceiling": round(rates["project"] / rates["ceiling"], 2),
    }


def print_loader(result: dict) -> None:
    """Print `bench_loader`'s result as a small table."""
    rates = result["images_per_second"]
    print(
        f"loader benchmark: {result['images']} JPEGs (800x600 to 1600x1200), pipeline 2 at "
        f"{result['size']} px, {result['workers']} workers, {result['cpu_count']} CPUs"
    )
    for name, label in (
        ("naive", "naive (full decode + pipeline 2)"),
        ("project", "project loader (reduced decode + pipeline 2)"),
        ("ceiling", "ceiling (reduced decode, no augmentation)"),
    ):
        print(f"  {label:<48} {rates[name]:8.1f} img/s")
    print(
        f"  ratio project / naive: {result['ratio_project_vs_naive']:.2f}x; "
        f"project reaches {result['fraction_of_ceiling']:.0%} of the ceiling"
    )
