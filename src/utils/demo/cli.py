"""``python -m utils demo``: the Gradio demo on localhost.

``python -m utils demo [--run outputs/RUN] [--gallery DIR] [--port N] [--cache DIR]
[--detector PATH] [--gate NAME]``

Without ``--gallery`` it answers with the artefacts of a pipeline run (the most recent under
``outputs/`` by default); with ``--gallery DIR`` (one sub-folder per landmark) it needs no
checkpoint. See `utils.demo.gallery` for what each uses, `utils.demo.answer` for the answer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.cli.recognize import add_global_argument
from utils.demo.answer import MAX_PIXELS, MIN_SIDE, Demo
from utils.models.weights import WeightsError
from utils.retrieval.recognize import SHORTLIST


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    p = argparse.ArgumentParser(prog="python -m utils demo", description=__doc__.split("\n")[0])
    p.add_argument(
        "--run",
        type=Path,
        default=None,
        help="pipeline run folder (default: the most recent under outputs/)",
    )
    p.add_argument(
        "--gallery",
        type=Path,
        default=None,
        help="gallery folder, one sub-folder per landmark (no checkpoint needed)",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="gallery feature cache (default: GALLERY.index beside it; RUN/demo/gallery.index)",
    )
    p.add_argument("--checkpoint", default="", help="network for a run (default: DOLG, else 04)")
    p.add_argument(
        "--per-landmark", type=int, default=3, help="gallery photos per landmark from a run"
    )
    p.add_argument(
        "--detector",
        action="append",
        default=[],
        type=Path,
        help="another non-landmark detector file to show (repeatable)",
    )
    p.add_argument(
        "--gate",
        default="auto",
        help="detector whose verdict decides with the recognizer's (auto: the run's chosen; none)",
    )
    p.add_argument("--top-k", type=int, default=10, help="candidates verified (with a network)")
    add_global_argument(p)
    p.add_argument(
        "--landmark-detector",
        default="imagenet",
        choices=("imagenet", "none"),
        help="built-in landmark-or-not detector shown with a --gallery (none: no detector)",
    )
    p.add_argument(
        "--shortlist",
        type=int,
        default=SHORTLIST,
        help="photos verified per query with --gallery (0: every photo)",
    )
    p.add_argument("--port", type=int, default=7860, help="local port")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload, megabytes")
    p.add_argument(
        "--max-megapixels", type=float, default=MAX_PIXELS / 1e6, help="largest image accepted"
    )
    p.add_argument("--concurrency", type=int, default=2, help="answers computed at once")
    p.add_argument("--queue-size", type=int, default=64, help="requests that may wait")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per answer (torch, faiss)")
    return p


def build_demo(args: argparse.Namespace, progress: bool = True) -> tuple[Demo, str]:
    """The `Demo` of parsed options, and a sentence saying what it answers with."""
    from utils.demo import gallery

    gallery.set_threads(args.threads)
    detectors, gate = {}, None
    if args.gallery is not None:
        recognizer, photos = gallery.folder_recognizer(
            args.gallery,
            args.cache,
            shortlist=args.shortlist,
            progress=progress,
            global_descriptor=args.global_descriptor,
            device=args.device,
        )
        described = "local features only" if recognizer.embedder is None else "pretrained"
        source = f"Gallery: {args.gallery} ({len(photos)} photos, {described})."
        if args.run is not None:
            detectors, gate = gallery.run_detectors(args.run)
        if args.landmark_detector != "none":
            detectors[args.landmark_detector] = args.landmark_detector
    else:
        run = args.run or gallery.latest_run()
        checkpoint = gallery.run_checkpoint(run, args.checkpoint)
        paths, labels = gallery.run_gallery(checkpoint, args.per_landmark)
        cache = args.cache or run / "demo" / "gallery.index"
        recognizer, photos = gallery.fit_recognizer(
            paths,
            labels,
            cache,
            checkpoint,
            top_k=args.top_k,
            device=args.device,
            progress=progress,
        )
        detectors, gate = gallery.run_detectors(run)
        source = f"Run: {run} ({checkpoint.parent.name}, {len(photos)} gallery photos)."
    detectors.update({p.stem.removeprefix("detector_"): p for p in args.detector})
    if args.gate != "auto":
        gate = None if args.gate == "none" else args.gate
    loaded = gallery.load_detectors(detectors, args.device, progress)
    demo = Demo(recognizer, photos, loaded, gate, int(args.max_megapixels * 1e6), MIN_SIDE)
    return demo, source


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: fit the gallery, then serve until interrupted."""
    args = parser().parse_args(argv)
    try:
        demo, source = build_demo(args)
    except (FileNotFoundError, ValueError, WeightsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from utils.demo.app import build_app, launch

    launch(
        build_app(demo, source),
        demo,
        args.port,
        args.host,
        args.max_upload_mb,
        args.concurrency,
        args.queue_size,
    )
    return 0
