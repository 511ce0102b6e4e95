"""Benchmarks: a ratio against a baseline, measured in one run.

``python -m utils bench loader [--images DIR] [--count 256] [--size 256] [--workers 2]
[--json]``: images per second of a training input pipeline on the same JPEGs (800x600 to
1600x1200, generated once into ``data/bench/loader`` when absent), all with pipeline 2 at
``size`` and the same number of workers:

- ``naive``: Pillow full-size decode, then pipeline 2 (what a first loader usually does);
- ``project``: `utils.datasets` + `make_loader`: reduced-size DCT decode, one thread per worker;
- ``ceiling``: reduced-size decode alone, no augmentation: the limit of this loader.

Each is timed over its second epoch (workers started, files in the page cache).

``python -m utils bench feed [--data-root DIR --manifest-dir DIR] [--size 224] [--batch 64]
[--workers 2] [--epochs 3] [--rounds 2] [--json]``: images per second training's loader
delivers over several epochs against the loader it replaced (`utils.bench.feed`), from JPEG
files and from the memory cache.

``python -m utils bench train [--models resnet50,efficientnet-b2] [--size 224] [--batch 32]
[--steps 10] [--device auto] [--data-root DIR --manifest-dir DIR] [--workers -1] [--cache]
[--json]``: training images per second of each backbone in every precision the device has, with
and without channels_last, the ratio of each to fp32, and the end-to-end rate with training's
loader beside the fastest step rate (`utils.bench.train`).

``python -m utils bench step [--models efficientnet-b2,resnet50] [--size 96] [--batch 16]
[--steps 4] [--rounds 4] [--device auto] [--json]``: training images per second of training's
step (``nn.SiLU``, fused AdamW) against the stock swish and the per-tensor AdamW, alternating
rounds, and their ratio (`utils.bench.step`).

``python -m utils bench metrics [--size 1000000]``: seconds for GAP and GAP@k over a million
random predictions, against a plain Python loop (on 100,000, scaled).

``python -m utils bench retrieval [--sizes 100000,1000000] [--json]``: faiss exact vs numpy
brute force vs IVF search, and the cost of local-feature re-ranking (`utils.bench_retrieval`).

``python -m utils bench delf [--photos DIR] [--images 12] [--checkpoint delf.pt]
[--max-side 512] [--threads 0] [--json]``: seconds per photo of notebook 05's DELF extractor
against the full-forward baseline, and their ratio (`utils.bench.delf`).

``python -m utils bench recognize [--photos ../shared/real-photos] [--sizes 1000,10000]
[--shortlist 15] [--exhaustive-max 1000] [--global-max 1000] [--features 2000] [--json]``:
`recognize` by default (pretrained descriptor), exhaustive matching and the visual-word
shortlist, on the real photos' gallery
padded with generated distractor photos to each size: seconds per query, accuracy, GAP,
AUROC, and the one-time index costs apart (`utils.bench.recognize`).

``python -m utils bench vote [--sizes 1000,10000] [--queries 100] [--json]``: per-query
milliseconds of the voting rule's search against the former plain cosine search on synthetic
galleries of each size, their ratio, and its one-time whitening and calibration seconds
(`utils.bench.vote`).

``python -m utils bench demo [--photos ../shared/real-photos] [--size 60] [--run RUN]
[--no-served] [--json]``: seconds per answer of ``python -m utils demo --gallery`` on a gallery
of ``size`` photos (real ones padded with distractors), alone and through the served app
(`utils.bench.demo`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from utils.bench.delf import bench_delf, print_delf
from utils.bench.demo import bench_demo, print_demo
from utils.bench.feed import bench_feed, print_feed
from utils.bench.gallery import bench_gallery, print_gallery
from utils.bench.loader import LOADER_IMAGES, bench_loader, make_bench_jpegs, print_loader
from utils.bench.metrics import bench_metrics, print_metrics
from utils.bench.recognize import DISTRACTORS, bench_recognize, print_recognize
from utils.bench.retrieval import bench_rerank, bench_search, print_retrieval
from utils.bench.step import bench_step, print_step
from utils.bench.train import bench_train, print_train
from utils.bench.vote import bench_vote, print_vote
from utils.data.images import image_files
from utils.retrieval.realphotos import add_photos_argument, photos_missing
from utils.retrieval.recognize import SHORTLIST
from utils.retrieval.vocabulary import WORDS


def int_list(text: str) -> list[int]:
    """``"1000,10000"`` -> ``[1000, 10000]`` (argparse ``type`` of the comma-separated options)."""
    return [int(n) for n in text.split(",") if n.strip()]


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    parser = argparse.ArgumentParser(
        prog="python -m utils bench", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True, help="what to measure")
    loader = sub.add_parser("loader", help="input pipeline throughput vs a naive loader")
    loader.add_argument("--images", type=Path, default=LOADER_IMAGES, help="JPEG folder")
    loader.add_argument("--count", type=int, default=256, help="number of JPEGs (>= 200)")
    loader.add_argument("--size", type=int, default=256, help="crop size")
    loader.add_argument("--workers", type=int, default=2, help="loader processes")
    loader.add_argument("--batch", type=int, default=32, help="images per batch")
    loader.add_argument("--json", action="store_true", help="print JSON only")
    feed = sub.add_parser("feed", help="training's loader vs the former one, over epochs")
    feed.add_argument(
        "--data-root", type=Path, default=Path("data/minigld-default"), help="dataset folder"
    )
    feed.add_argument(
        "--manifest-dir",
        type=Path,
        default=Path("data_manifests/minigld-default-top30"),
        help="manifests of that dataset (the train split is read)",
    )
    feed.add_argument("--size", type=int, default=224, help="crop size")
    feed.add_argument("--batch", type=int, default=64, help="images per batch")
    feed.add_argument("--workers", type=int, default=2, help="loader processes")
    feed.add_argument("--epochs", type=int, default=3, help="epochs per timed run")
    feed.add_argument("--rounds", type=int, default=2, help="interleaved repetitions")
    feed.add_argument("--json", action="store_true", help="print JSON only")
    trainer = sub.add_parser("train", help="training throughput of each backbone")
    trainer.add_argument(
        "--models", default="resnet50,efficientnet-b2", help="comma-separated backbones"
    )
    trainer.add_argument("--size", type=int, default=224, help="input size, pixels")
    trainer.add_argument("--batch", type=int, default=32, help="images per step")
    trainer.add_argument("--steps", type=int, default=10, help="timed steps per setting")
    trainer.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    trainer.add_argument(
        "--data-root",
        type=Path,
        default=Path("data/minigld-default"),
        help="dataset for the end-to-end rate (skipped when its manifest is missing)",
    )
    trainer.add_argument(
        "--manifest-dir",
        type=Path,
        default=Path("data_manifests/minigld-default-top30"),
        help="manifests of that dataset",
    )
    trainer.add_argument(
        "--workers",
        type=int,
        default=-1,
        help="loader processes, end to end; -1: as training chooses for the device",
    )
    trainer.add_argument(
        "--cache",
        action="store_true",
        help="end to end from decoded images in memory, as with training's --cache",
    )
    trainer.add_argument("--json", action="store_true", help="print JSON only")
    stepper = sub.add_parser("step", help="training's step kernels vs the ones they replaced")
    stepper.add_argument(
        "--models", default="efficientnet-b2,resnet50", help="comma-separated backbones"
    )
    stepper.add_argument("--size", type=int, default=96, help="input size, pixels")
    stepper.add_argument("--batch", type=int, default=16, help="images per step")
    stepper.add_argument("--steps", type=int, default=4, help="timed steps per round")
    stepper.add_argument("--rounds", type=int, default=4, help="alternating rounds")
    stepper.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    stepper.add_argument("--json", action="store_true", help="print JSON only")
    scoring = sub.add_parser("metrics", help="GAP over a million predictions")
    scoring.add_argument("--size", type=int, default=1_000_000, help="predictions")
    scoring.add_argument("--json", action="store_true", help="print JSON only")
    search = sub.add_parser("retrieval", help="kNN search and re-ranking cost")
    search.add_argument("--sizes", type=int_list, default="100000,1000000", help="gallery sizes")
    search.add_argument("--images", type=Path, default=LOADER_IMAGES, help="generated JPEGs")
    search.add_argument(
        "--photos",
        type=Path,
        default=None,
        help="read-only folder of real photos for re-ranking (else generated)",
    )
    search.add_argument("--rerank-images", type=int, default=20, help="photos re-ranked")
    search.add_argument("--json", action="store_true", help="print JSON only")
    local = sub.add_parser("delf", help="DELF extraction: 05's extractor vs full forward")
    local.add_argument("--photos", type=Path, default=None, help="real photos (else generated)")
    local.add_argument("--images", type=int, default=12, help="photos timed")
    local.add_argument("--generated", type=Path, default=LOADER_IMAGES, help="generated JPEGs")
    local.add_argument("--checkpoint", type=Path, default=None, help="05's delf.pt (else random)")
    local.add_argument("--max-side", type=int, default=512, help="longer side before scaling")
    local.add_argument("--threads", type=int, default=0, help="torch threads, 0: the default")
    local.add_argument("--json", action="store_true", help="print JSON only")
    gal = sub.add_parser("gallery", help="leaderboard gallery: embedding rate, search at scale")
    gal.add_argument(
        "--sizes", type=int_list, default="100000,1580470", help="gallery sizes (comma-separated)"
    )
    gal.add_argument(
        "--sides", type=int_list, default="96,256", help="image sides embedded (comma-separated)"
    )
    gal.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0: default")
    gal.add_argument("--queries", type=int, default=1000, help="queries measured per gallery")
    gal.add_argument("--ivf-max", type=int, default=200_000, help="largest gallery given IVF")
    gal.add_argument("--nlist", type=int, default=1024, help="IVF lists (k-means centroids)")
    gal.add_argument(
        "--frozen-photos",
        type=int,
        default=8,
        help="photos the frozen descriptor reads by engine, with and without flips (0: skip)",
    )
    gal.add_argument(
        "--nprobe",
        type=int_list,
        default="32",
        help="IVF lists visited per query (comma-separated: one row each)",
    )
    gal.add_argument("--json", action="store_true", help="print JSON only")
    rec = sub.add_parser("recognize", help="exhaustive matching vs the visual-word shortlist")
    add_photos_argument(rec)
    rec.add_argument(
        "--sizes", type=int_list, default="1000,10000", help="gallery sizes (comma-separated)"
    )
    rec.add_argument(
        "--distractors", type=Path, default=DISTRACTORS, help="generated distractor photos"
    )
    rec.add_argument(
        "--cache", type=Path, default=None, help="index and features kept between runs"
    )
    rec.add_argument("--shortlist", type=int, default=SHORTLIST, help="photos verified per query")
    rec.add_argument(
        "--exhaustive-max",
        type=int,
        default=1000,
        help="largest gallery matched exhaustively too",
    )
    rec.add_argument(
        "--global-max",
        type=int,
        default=1000,
        help="largest gallery in the pretrained-descriptor mode (0: not measured)",
    )
    rec.add_argument("--features", type=int, default=2000, help="RootSIFT features per photo")
    rec.add_argument("--max-side", type=int, default=1024, help="longer image side for SIFT")
    rec.add_argument("--words", type=int, default=WORDS, help="visual words")
    rec.add_argument(
        "--calibration-queries",
        type=int,
        default=100,
        help="gallery photos playing queries in calibration (both modes)",
    )
    rec.add_argument("--part", default="all", help="real-photo part: tune, check or all")
    rec.add_argument("--workers", type=int, default=1, help="feature extraction processes")
    rec.add_argument("--json", action="store_true", help="print JSON only")
    voting = sub.add_parser("vote", help="the voting rule's search vs the plain cosine search")
    voting.add_argument("--sizes", type=int_list, default="1000,10000", help="gallery sizes")
    voting.add_argument("--queries", type=int, default=100, help="queries per size")
    voting.add_argument("--json", action="store_true", help="print JSON only")
    demo = sub.add_parser("demo", help="seconds per answer of the Gradio demo")
    add_photos_argument(demo)
    demo.add_argument("--size", type=int, default=60, help="gallery photos")
    demo.add_argument("--run", type=Path, default=None, help="run whose detectors are shown")
    demo.add_argument("--cache", type=Path, default=None, help="the gallery's feature cache")
    demo.add_argument(
        "--distractors", type=Path, default=DISTRACTORS, help="generated distractor photos"
    )
    demo.add_argument(
        "--no-served", action="store_true", help="skip the round trips through the app"
    )
    demo.add_argument("--threads", type=int, default=1, help="CPU threads per answer")
    demo.add_argument("--json", action="store_true", help="print JSON only")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parser().parse_args(argv)
    if args.command in ("recognize", "demo") and photos_missing(args.photos):
        return 2
    if args.command == "demo":
        result = bench_demo(
            args.photos,
            args.size,
            args.run,
            args.cache,
            args.distractors,
            served=not args.no_served,
            threads=args.threads,
            progress=not args.json,
        )
        show = print_demo
    elif args.command == "recognize":
        result = bench_recognize(
            args.photos,
            args.sizes,
            args.distractors,
            args.cache,
            args.shortlist,
            args.exhaustive_max,
            args.features,
            args.max_side,
            args.words,
            args.calibration_queries,
            args.part,
            workers=args.workers,
            progress=not args.json,
            global_max=args.global_max,
        )
        show = print_recognize
    elif args.command == "gallery":
        result = bench_gallery(
            args.sizes,
            args.sides,
            args.threads,
            args.queries,
            args.ivf_max,
            args.nlist,
            tuple(args.nprobe),
            args.frozen_photos,
        )
        show = print_gallery
    elif args.command == "delf":
        if args.photos is not None:
            photos = image_files(args.photos)[: args.images]
        else:
            photos = make_bench_jpegs(args.generated, args.images)
        result = bench_delf(photos, args.checkpoint, args.max_side, args.threads)
        show = print_delf
    elif args.command == "step":
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        result = bench_step(models, args.size, args.batch, args.steps, args.rounds, args.device)
        show = print_step
    elif args.command == "vote":
        result = bench_vote(args.sizes, args.queries)
        show = print_vote
    elif args.command == "metrics":
        result = bench_metrics(args.size)
        show = print_metrics
    elif args.command == "retrieval":
        if args.photos is not None:
            photos = image_files(args.photos)[: args.rerank_images]
        else:
            photos = make_bench_jpegs(args.images, args.rerank_images)
        result = {"search": [bench_search(n) for n in args.sizes], "rerank": bench_rerank(photos)}
        show = print_retrieval
    elif args.command == "feed":
        result = bench_feed(
            args.data_root,
            args.manifest_dir,
            args.size,
            args.batch,
            args.workers,
            args.epochs,
            args.rounds,
        )
        show = print_feed
    elif args.command == "loader":
        result = bench_loader(args.images, args.count, args.size, args.workers, args.batch)
        show = print_loader
    else:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        result = bench_train(
            models,
            args.size,
            args.batch,
            args.steps,
            args.device,
            args.data_root if args.data_root.is_dir() else None,
            args.manifest_dir,
            args.workers,
            args.cache,
        )
        show = print_train
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
    return 0
