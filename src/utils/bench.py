"""Benchmarks: a ratio against a baseline, measured in one run.

``python -m utils.bench loader [--images DIR] [--count 256] [--size 256] [--workers 2]
[--json]``: images per second of a training input pipeline on the same JPEGs (800x600 to
1600x1200, generated once into ``data/bench/loader`` when absent), all with pipeline 2 at
``size`` and the same number of workers:

- ``naive``: Pillow full-size decode, then pipeline 2 (what a first loader usually does);
- ``project``: `utils.datasets` + `make_loader`: reduced-size DCT decode, one thread per worker;
- ``ceiling``: reduced-size decode alone, no augmentation: the limit of this loader.

Each is timed over its second epoch (workers started, files in the page cache).

``python -m utils.bench train [--models resnet50,efficientnet-b2] [--size 224] [--batch 32]
[--steps 10] [--device auto] [--json]``: training images per second of each backbone (forward,
backward and AdamW step on random batches, after warm-up steps), in fp32 and, on CUDA, with
AMP (float16) + channels_last, and the ratio between them.

``python -m utils.bench metrics [--size 1000000]``: seconds for GAP and GAP@k over a million
random predictions, against a plain Python loop (on 100,000, scaled).

``python -m utils.bench retrieval [--sizes 100000,1000000] [--json]``: faiss exact vs numpy
brute force vs IVF search, and the cost of local-feature re-ranking (`utils.bench_retrieval`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from utils.augment import decode_side, pipeline2
from utils.camera import compose, view
from utils.datasets import FolderDataset, make_loader
from utils.render import KINDS, LandmarkSpec, landmark_layers

REPO = Path(__file__).resolve().parents[2]
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


def _print_loader(result: dict) -> None:
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


def train_step_rate(model, device, size: int, batch: int, steps: int, fast: bool) -> float:
    """Training images/s of ``model`` on random data; ``fast``: AMP + channels_last (CUDA)."""
    import torch

    memory = torch.channels_last if fast else torch.contiguous_format
    model = model.to(device, memory_format=memory).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=fast)
    images = torch.randn(batch, 3, size, size, device=device).to(memory_format=memory)
    labels = torch.randint(0, 10, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.float16, enabled=fast):
            loss = torch.nn.functional.cross_entropy(model(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batch * steps / (time.perf_counter() - start)


def bench_train(models: list[str], size: int, batch: int, steps: int, device: str) -> dict:
    """fp32 (and on CUDA, AMP + channels_last) training throughput of each backbone."""
    from utils.evaluate import resolve_device
    from utils.models import build_model

    dev = resolve_device(device)
    rows = []
    for name in models:
        row = {
            "model": name,
            "fp32": round(
                train_step_rate(build_model(name, 10), dev, size, batch, steps, False), 1
            ),
        }
        if dev.type == "cuda":
            row["amp_channels_last"] = round(
                train_step_rate(build_model(name, 10), dev, size, batch, steps, True), 1
            )
            row["ratio"] = round(row["amp_channels_last"] / row["fp32"], 2)
        rows.append(row)
    import torch

    card = (
        torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    )
    return {"device": card, "size": size, "batch": batch, "steps": steps, "rows": rows}


def _print_train(result: dict) -> None:
    print(
        f"training throughput on {result['device']}: {result['size']} px, batch "
        f"{result['batch']}, {result['steps']} timed steps (images/s)"
    )
    for row in result["rows"]:
        extra = (
            f", AMP + channels_last {row['amp_channels_last']:.1f} ({row['ratio']:.2f}x)"
            if "ratio" in row
            else ""
        )
        print(f"  {row['model']:<16} fp32 {row['fp32']:.1f}{extra}")


def bench_metrics(size: int, loop_size: int = 100_000, seed: int = 0) -> dict:
    """Vectorised GAP / GAP@5 on ``size`` predictions vs a Python loop (scaled from loop_size)."""
    from utils.metrics import gap, gap_at_k

    rng = np.random.default_rng(seed)
    truth = np.where(rng.random(size) < 0.3, -1, rng.integers(0, 1000, size))
    predicted, confidence = rng.integers(0, 1000, size), rng.random(size)
    start = time.perf_counter()
    gap(predicted, confidence, truth)
    vectorised = time.perf_counter() - start
    top5 = rng.integers(0, 1000, (size, 5))
    start = time.perf_counter()
    gap_at_k(top5, np.sort(rng.random((size, 5)), axis=1)[:, ::-1], truth)
    at_k = time.perf_counter() - start
    start = time.perf_counter()
    order = sorted(range(loop_size), key=lambda i: -confidence[i])
    hits, total = 0, 0.0
    for rank, i in enumerate(order, 1):
        if truth[i] != -1 and predicted[i] == truth[i]:
            hits += 1
            total += hits / rank
    loop = (time.perf_counter() - start) * size / loop_size
    return {
        "predictions": size,
        "gap_s": round(vectorised, 3),
        "gap_at_5_s": round(at_k, 3),
        "python_loop_s_scaled": round(loop, 2),
        "speedup": round(loop / vectorised, 1),
    }


def _print_metrics(result: dict) -> None:
    print(
        f"{result['predictions']:,} predictions: GAP {result['gap_s']} s, GAP@5 "
        f"{result['gap_at_5_s']} s; a plain Python loop would take about "
        f"{result['python_loop_s_scaled']} s ({result['speedup']}x slower than GAP)"
    )


def _print_retrieval(result: dict) -> None:
    for row in result["search"]:
        print(f"gallery {row['gallery']:,} x {row['dim']}-d, {row['queries']} queries:")
        for name, figures in row.items():
            if isinstance(figures, dict):
                print(
                    f"  {name:<28} {figures['qps']:>9.1f} queries/s"
                    f"  {figures['memory_mb']:>8.1f} MB"
                    f"  recall@1 {figures['recall_at_1']:.3f}"
                )
    r = result["rerank"]
    print(
        f"re-ranking (RootSIFT, {r['images']} photos): extraction "
        f"{r['extract_ms_per_image']} ms/image, verification {r['verify_ms_per_pair']} ms/pair, "
        f"{r['ms_per_query_top3']} ms/query at top-3, {r['ms_per_query_top10']} ms/query at top-10"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m utils.bench", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    loader = sub.add_parser("loader", help="input pipeline throughput vs a naive loader")
    loader.add_argument("--images", type=Path, default=LOADER_IMAGES, help="JPEG folder")
    loader.add_argument("--count", type=int, default=256, help="number of JPEGs (>= 200)")
    loader.add_argument("--size", type=int, default=256, help="crop size")
    loader.add_argument("--workers", type=int, default=2)
    loader.add_argument("--batch", type=int, default=32)
    loader.add_argument("--json", action="store_true", help="print JSON only")
    trainer = sub.add_parser("train", help="training throughput of each backbone")
    trainer.add_argument("--models", default="resnet50,efficientnet-b2")
    trainer.add_argument("--size", type=int, default=224)
    trainer.add_argument("--batch", type=int, default=32)
    trainer.add_argument("--steps", type=int, default=10)
    trainer.add_argument("--device", default="auto")
    trainer.add_argument("--json", action="store_true", help="print JSON only")
    scoring = sub.add_parser("metrics", help="GAP over a million predictions")
    scoring.add_argument("--size", type=int, default=1_000_000)
    scoring.add_argument("--json", action="store_true", help="print JSON only")
    search = sub.add_parser("retrieval", help="kNN search and re-ranking cost")
    search.add_argument("--sizes", default="100000,1000000", help="gallery sizes")
    search.add_argument("--images", type=Path, default=LOADER_IMAGES, help="generated JPEGs")
    search.add_argument(
        "--photos",
        type=Path,
        default=None,
        help="read-only folder of real photos for re-ranking (else generated)",
    )
    search.add_argument("--rerank-images", type=int, default=20)
    search.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    if args.command == "metrics":
        result = bench_metrics(args.size)
        show = _print_metrics
    elif args.command == "retrieval":
        from utils.bench_retrieval import bench_rerank, bench_search

        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        if args.photos is not None:
            from utils.recognize import image_files

            photos = image_files(args.photos)[: args.rerank_images]
        else:
            photos = make_bench_jpegs(args.images, args.rerank_images)
        result = {"search": [bench_search(n) for n in sizes], "rerank": bench_rerank(photos)}
        show = _print_retrieval
    elif args.command == "loader":
        result = bench_loader(args.images, args.count, args.size, args.workers, args.batch)
        show = _print_loader
    else:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        result = bench_train(models, args.size, args.batch, args.steps, args.device)
        show = _print_train
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
