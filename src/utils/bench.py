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
import sys
import time
from pathlib import Path

import numpy as np

from utils.bench_loader import LOADER_IMAGES, bench_loader, make_bench_jpegs, print_loader
from utils.bench_train import bench_train, print_train
from utils.images import image_files


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
            photos = image_files(args.photos)[: args.rerank_images]
        else:
            photos = make_bench_jpegs(args.images, args.rerank_images)
        result = {"search": [bench_search(n) for n in sizes], "rerank": bench_rerank(photos)}
        show = _print_retrieval
    elif args.command == "loader":
        result = bench_loader(args.images, args.count, args.size, args.workers, args.batch)
        show = print_loader
    else:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        result = bench_train(models, args.size, args.batch, args.steps, args.device)
        show = print_train
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
