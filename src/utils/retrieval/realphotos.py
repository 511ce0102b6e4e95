"""Evaluation of `utils.recognize` on real photos: a three-fold protocol.

``python -m utils realphotos --photos ../shared/real-photos [--reference] [--json]``

The folder holds ``manifest.csv`` (``file,label``; ``non_landmark`` for photos without one)
and the images. Protocol: for each landmark with at least 3 photos (sorted by file name),
photo ``i`` is a query in fold ``i % 3`` and in the gallery of the other folds; photos of
landmarks with fewer photos and non-landmarks are queries whose truth is "none", spread over
the folds the same way. Reported over all queries of the three folds:

- accuracy: top-1 (the best landmark, accepted or not) over queries of gallery landmarks;
- GAP: every query predicts its best landmark with its confidence (`utils.metrics`);
- AUROC of the confidence, known-landmark queries against the rest;
- accepted: how often the rejection rule accepts known-landmark queries, and the others.

``--stress night|far`` alters every query (not the gallery) before recognition, to probe
robustness beyond these easy photos: ``night`` darkens it like a night shot
(``v' = 255 * 0.6 * (v / 255) ** 2.2`` with a blue cast and sensor noise), ``far`` shrinks it to
40% of its size, as seen from further away.

``--reference`` also runs the plain baseline the brief quotes: OpenCV SIFT (1000 features,
longer side 640 px), ratio 0.8, affine RANSAC (20 px, 1000 iterations), landmark score = the
most inliers of any of its photos.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from utils.data.gldv2 import read_csv_checked
from utils.data.images import load_image
from utils.metrics import auroc, gap_from_correct
from utils.retrieval.local_features import RootSift
from utils.retrieval.recognize import Recognizer
from utils.retrieval.rerank import MatchSettings

NONE = "non_landmark"
FOLDS = 3


def assign_folds(manifest: pd.DataFrame) -> pd.DataFrame:
    """Add ``fold`` (where the photo is a query) and ``in_gallery`` (see the module docstring).

    ``in_gallery``: a photo of a landmark with at least 3 photos, so in the other folds' gallery.
    """
    frame = manifest.sort_values(["label", "file"]).reset_index(drop=True)
    frame["fold"] = frame.groupby("label").cumcount() % FOLDS
    counts = frame.groupby("label")["file"].transform("size")
    frame["in_gallery"] = (frame["label"] != NONE) & (counts >= FOLDS)
    others = ~frame["in_gallery"]
    frame.loc[others, "fold"] = np.arange(int(others.sum())) % FOLDS
    return frame


def stress(image: np.ndarray, kind: str | None, seed: int = 0) -> np.ndarray:
    """The query alteration of the module docstring (``None``: unchanged)."""
    if kind is None:
        return image
    if kind == "far":
        size = (max(16, round(image.shape[1] * 0.4)), max(16, round(image.shape[0] * 0.4)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if kind != "night":
        raise ValueError(f"stress must be night or far, not {kind!r}")
    dark = 255.0 * 0.6 * (image.astype(np.float64) / 255.0) ** 2.2 * np.array([0.8, 0.85, 1.0])
    noise = np.random.default_rng(seed).normal(0, 4, image.shape)
    return np.clip(dark + noise, 0, 255).astype(np.uint8)


def reference_recognizer(progress: bool = False) -> Recognizer:
    """The plain-SIFT baseline of the module docstring."""
    settings = MatchSettings(
        ratio=0.8, mutual=False, method="affine", threshold=20 / 640, iterations=1000
    )
    extractor = RootSift(max_features=1000, max_side=640, contrast_threshold=0.04, root=False)
    return Recognizer(extractor, settings, aggregate="max", progress=progress)


def project_recognizer(progress: bool = False) -> Recognizer:
    """The recognizer `utils.recognize` builds without a checkpoint."""
    return Recognizer(RootSift(), progress=progress)


def evaluate(
    photos: str | Path,
    make_recognizer=project_recognizer,
    progress: bool = False,
    alteration: str | None = None,
) -> dict:
    """Run the protocol; returns the metrics and one row per query."""
    photos = Path(photos)
    manifest = read_csv_checked(photos / "manifest.csv", ("file", "label"))
    frame = assign_folds(manifest[["file", "label"]])
    images = {f: load_image(photos / f) for f in frame["file"]}
    rows = []
    for fold in range(FOLDS):
        gallery = frame[frame["in_gallery"] & (frame["fold"] != fold)]
        queries = frame[frame["fold"] == fold]
        recognizer = make_recognizer(progress).fit(
            [images[f] for f in gallery["file"]], gallery["label"].tolist()
        )
        for file, label, known in zip(
            queries["file"], queries["label"], queries["in_gallery"], strict=True
        ):
            result = recognizer.recognize(stress(images[file], alteration))
            rows.append(
                {
                    "file": file,
                    "fold": fold,
                    "truth": label if known else "",
                    "best": result.best,
                    "accepted": result.landmark is not None,
                    "confidence": result.confidence,
                }
            )
    table = pd.DataFrame(rows)
    known = table["truth"] != ""
    correct = (table["best"] == table["truth"]) & known
    return {
        "queries": len(table),
        "known_landmark_queries": int(known.sum()),
        "accuracy": float(correct[known].mean()),
        "gap": gap_from_correct(correct, table["confidence"], np.ones(len(table), bool), known),
        "auroc": auroc(table["confidence"].to_numpy(), known.to_numpy()),
        "accepted_known": float(table["accepted"][known].mean()),
        "accepted_correct_known": float((table["accepted"] & correct)[known].mean()),
        "accepted_other": float(table["accepted"][~known].mean()),
        "rows": table,
    }


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    parser = argparse.ArgumentParser(
        prog="python -m utils realphotos", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--photos",
        type=Path,
        default=Path("../shared/real-photos"),
        help="folder with manifest.csv (file,label) and the images",
    )
    parser.add_argument("--reference", action="store_true", help="also run the plain baseline")
    parser.add_argument(
        "--stress", choices=("night", "far"), default=None, help="alter every query"
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parser().parse_args(argv)
    if not (args.photos / "manifest.csv").is_file():
        print(f"error: {args.photos / 'manifest.csv'} not found", file=sys.stderr)
        return 2
    runs = {"project (RootSIFT, evidence over photos, calibrated)": project_recognizer}
    if args.reference:
        runs["reference (plain SIFT, max inliers)"] = reference_recognizer
    results = {}
    for name, make in runs.items():
        result = evaluate(args.photos, make, progress=not args.json, alteration=args.stress)
        result.pop("rows")
        results[name] = result
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for name, r in results.items():
        print(
            f"{name}: accuracy {r['accuracy']:.3f}, GAP {r['gap']:.3f}, AUROC {r['auroc']:.3f}; "
            f"accepted {r['accepted_known']:.2f} of known-landmark queries "
            f"({r['accepted_correct_known']:.2f} correctly), {r['accepted_other']:.2f} of the "
            f"others ({r['queries']} queries)"
        )
    return 0
