"""Evaluation of `utils.retrieval.recognize` on real photos: a three-fold protocol, by parts.

``python -m utils realphotos --photos ../shared/real-photos --part tune|check|all
[--reference] [--ablation] [--stress night|far] [--json]``

The folder holds ``manifest.csv`` (``file,label``; ``non_landmark`` for photos without one)
and the images. Parts (`part_of`): the photos are split *by landmark* into ``tune``, the only
part settings are chosen on, and ``check``, which judges them (``all``: both together, the
former protocol). Within a part: for each landmark with at least 3 photos (sorted by file
name), photo ``i`` is a query in fold ``i % 3`` and in the gallery of the other folds; photos
of landmarks with fewer photos and non-landmarks are queries whose truth is "none", spread over
the folds the same way. Reported over all queries of the three folds, with counts and 95%
intervals (Wilson for rates; GAP and AUROC: percentile bootstrap over queries, resampled
within known-landmark queries and within the others, 2000 draws, seed 0):

- accuracy: top-1 (the best landmark, accepted or not) over queries of gallery landmarks;
- GAP: every query predicts its best landmark with its confidence (`utils.metrics`);
- AUROC of the confidence, known-landmark queries against the rest;
- accepted: how often the rejection rule accepts known-landmark queries, and the others.

``--stress night|far`` alters every query (not the gallery) before recognition, to probe
robustness beyond these easy photos: ``night`` darkens it like a night shot
(``v' = 255 * 0.6 * (v / 255) ** 2.2`` with a blue cast and sensor noise), ``far`` shrinks it to
40% of its size, as seen from further away.

``--reference`` also runs the plain baseline the brief quotes, with its own acceptance rule:
OpenCV SIFT (1000 features, longer side 640 px), ratio 0.8, affine RANSAC (20 px, 1000
iterations), landmark score = the most inliers of any of its photos, accepted when above
`REFERENCE_INLIERS` (chosen on the tune part: the count that best separates correctly
recognised known-landmark queries from the others).

Features are extracted once per photo and each pair is matched once per run (not once per
fold); ``flip`` in `evaluate` mislabels a fraction of the gallery photos (robustness test).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from utils.data.gldv2 import read_csv_checked
from utils.data.images import load_image
from utils.metrics import auroc, gap_from_correct
from utils.retrieval.local_features import RootSift
from utils.retrieval.recognize import COSINE_WEIGHT, GLOBAL_TOP_K, Recognizer
from utils.retrieval.rerank import MatchSettings, match_pair
from utils.retrieval.voting import VoteRule

NONE = "non_landmark"
FOLDS = 3
PARTS = ("tune", "check")
REFERENCE_INLIERS = 30  # the reference accepts a landmark with more inliers (chosen on tune)
# The split by landmark (fixed before any measurement on it; balanced by photo count): the
# landmarks with at least 3 photos (the galleries) and the distractor landmarks with fewer.
CHECK_LANDMARKS = frozenset(
    {
        "british_museum",
        "chateau_de_sceaux",
        "tower_bridge",
        "brooklyn_bridge",
        "sagrada_familia",
        "united_states_capitol",
    }
)


def part_of(file: str, label: str) -> str:
    """``tune`` or ``check``: the part of the real photos a photo belongs to.

    A landmark's photos all go to one part: ``check`` for the landmarks of `CHECK_LANDMARKS`,
    ``tune`` for every other (unknown landmarks too). Non-landmark photos alternate by the
    number in their file name (``non_landmark_07.jpg``: odd, ``check``; even, ``tune``), or by
    the parity of the name's length when it holds no number.
    """
    if label != NONE:
        return "check" if label in CHECK_LANDMARKS else "tune"
    digits = "".join(c for c in Path(file).stem if c.isdigit())
    number = int(digits) if digits else len(Path(file).stem)
    return "check" if number % 2 else "tune"


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


def reference_recognizer(progress: bool = False, matcher=match_pair) -> Recognizer:
    """The plain-SIFT baseline of the module docstring, with its own fixed inlier threshold."""
    settings = MatchSettings(
        ratio=0.8, mutual=False, method="affine", threshold=20 / 640, iterations=1000
    )
    extractor = RootSift(max_features=1000, max_side=640, contrast_threshold=0.04, root=False)
    return Recognizer(
        extractor,
        settings,
        aggregate="max",
        progress=progress,
        threshold=REFERENCE_INLIERS,
        matcher=matcher,
    )


def pretrained_recognizer(progress: bool, matcher, **rule) -> Recognizer:
    """RootSIFT and the shared pretrained descriptor's top `GLOBAL_TOP_K`, with ``rule``."""
    return Recognizer(
        RootSift(),
        embedder=shared_descriptor(),
        top_k=GLOBAL_TOP_K,
        progress=progress,
        matcher=matcher,
        **rule,
    )


def project_recognizer(progress: bool = False, matcher=match_pair) -> Recognizer:
    """The recognizer ``recognize`` builds by default: kNN voting, RootSIFT verification."""
    return pretrained_recognizer(progress, matcher, vote=VoteRule())


def fused_recognizer(progress: bool = False, matcher=match_pair) -> Recognizer:
    """The former default (``recognize --rule fused``): descriptor + RootSIFT, fused."""
    return pretrained_recognizer(progress, matcher, cosine_weight=COSINE_WEIGHT)


def local_recognizer(progress: bool = False, matcher=match_pair) -> Recognizer:
    """The recognizer of ``recognize --global none``: RootSIFT evidence only."""
    return Recognizer(RootSift(), progress=progress, matcher=matcher)


def descriptor_recognizer(progress: bool = False, matcher=match_pair) -> Recognizer:
    """The pretrained descriptor alone: the nearest photo's cosine, calibrated on the gallery."""
    return Recognizer(None, embedder=shared_descriptor(), progress=progress)


@lru_cache(maxsize=1)
def shared_descriptor():
    """The default `utils.retrieval.descriptor.GlobalDescriptor`, built once per process."""
    from utils.retrieval.descriptor import GlobalDescriptor

    return GlobalDescriptor()


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial rate (95% for ``z = 1.96``); NaNs for no trials.

    >>> [round(x, 3) for x in wilson(48, 49)]
    [0.893, 0.996]
    """
    if trials == 0:
        return float("nan"), float("nan")
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials**2))
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(
    statistic, known: np.ndarray, draws: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(index)`` over queries.

    Queries are resampled with replacement within the known-landmark queries and within the
    others (so both classes keep their size); ``statistic`` takes an index array.
    """
    known = np.asarray(known, bool)
    groups = [np.flatnonzero(known), np.flatnonzero(~known)]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        index = np.concatenate([rng.choice(g, len(g)) for g in groups if len(g)])
        values.append(statistic(index))
    values = np.array(values, np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def select_part(manifest: pd.DataFrame, part: str) -> pd.DataFrame:
    """The rows of ``manifest`` in ``part`` (``tune``, ``check``, or ``all``)."""
    if part == "all":
        return manifest
    if part not in PARTS:
        raise ValueError(f"part must be tune, check or all, not {part!r}")
    keep = [
        part_of(f, lab) == part for f, lab in zip(manifest["file"], manifest["label"], strict=True)
    ]
    return manifest[keep]


def flipped_labels(frame: pd.DataFrame, fraction: float, seed: int = 0) -> pd.Series:
    """Labels with ``ceil(fraction * gallery photos)`` gallery photos given another landmark.

    Drawn with a seeded generator; the photo stays mislabelled in every fold it is in the
    gallery of (a wrong label belongs to the photo). No flip for ``fraction <= 0``.
    """
    labels = frame["label"].copy()
    gallery = np.flatnonzero(frame["in_gallery"].to_numpy())
    count = math.ceil(fraction * len(gallery)) if fraction > 0 else 0
    if not count:
        return labels
    rng = np.random.default_rng(seed)
    names = sorted(set(labels.iloc[gallery]))
    for i in rng.choice(gallery, count, replace=False):
        others = [n for n in names if n != labels.iloc[i]]
        labels.iloc[i] = others[int(rng.integers(len(others)))]
    return labels


def cached_matcher(matches: dict):
    """`match_pair` that matches each pair of feature objects once, kept in ``matches``.

    Keyed by the objects' identities: the caller keeps the features alive while it runs.
    """

    def matcher(a, b, settings):
        key = (id(a), id(b))
        if key not in matches:
            matches[key] = match_pair(a, b, settings)
        return matches[key]

    return matcher


def evaluate(
    photos: str | Path,
    make_recognizer=project_recognizer,
    progress: bool = False,
    alteration: str | None = None,
    part: str = "all",
    flip: float = 0.0,
    seed: int = 0,
    cache: dict | None = None,
) -> dict:
    """Run the protocol on ``part``; returns the metrics, counts, intervals and query rows.

    ``cache`` (a dict, kept by the caller) keeps features and pair matches between runs with
    the same ``make_recognizer``; ``flip`` and ``seed``: `flipped_labels` of the galleries.
    """
    photos = Path(photos)
    manifest = read_csv_checked(photos / "manifest.csv", ("file", "label"))
    frame = assign_folds(select_part(manifest[["file", "label"]], part))
    gallery_labels = flipped_labels(frame, flip, seed)
    cache = {} if cache is None else cache
    matcher = cached_matcher(cache.setdefault("matches", {}))
    probe = make_recognizer(progress, matcher)
    features = cache.setdefault("features", {})

    def described(file: str, kind: str | None):
        if (file, kind) not in features:
            features[file, kind] = probe.describe_image(stress(load_image(photos / file), kind))
        return features[file, kind]

    rows = []
    for fold in range(FOLDS):
        in_gallery = (frame["in_gallery"] & (frame["fold"] != fold)).to_numpy()
        queries = frame[frame["fold"] == fold]
        gallery = [described(f, None) for f in frame["file"][in_gallery]]
        recognizer = make_recognizer(progress, matcher).fit_described(
            [g[0] for g in gallery],
            np.stack([g[1] for g in gallery]) if gallery[0][1] is not None else None,
            gallery_labels[in_gallery].tolist(),
        )
        for file, label, known in zip(
            queries["file"], queries["label"], queries["in_gallery"], strict=True
        ):
            result = recognizer.recognize_described(*described(file, alteration))
            rows.append(query_row(file, fold, label if known else "", result))
    return summarise(pd.DataFrame(rows))


def query_row(file: str, fold: int, truth: str, result) -> dict:
    """One row of the protocol's table: the query, its truth ("" for none) and the answer."""
    return {
        "file": file,
        "fold": fold,
        "truth": truth,
        "best": result.best,
        "accepted": result.landmark is not None,
        "confidence": result.confidence,
        "top_inliers": max((c.match.inliers for c in result.candidates), default=0),
    }


def summarise(table: pd.DataFrame) -> dict:
    """Metrics of the query rows of `evaluate`, with counts and 95% intervals."""
    known = (table["truth"] != "").to_numpy()
    correct = ((table["best"] == table["truth"]).to_numpy()) & known
    accepted = table["accepted"].to_numpy(bool)
    confidence = table["confidence"].to_numpy(np.float64)

    def gap_of(index):
        return gap_from_correct(
            correct[index], confidence[index], np.ones(len(index), bool), known[index]
        )

    def auroc_of(index):
        return auroc(confidence[index], known[index])

    everything = np.arange(len(table))
    n_known, n_other = int(known.sum()), int((~known).sum())
    counts = {
        "accuracy": (int(correct.sum()), n_known),
        "accepted_known": (int(accepted[known].sum()), n_known),
        "accepted_correct_known": (int((accepted & correct).sum()), n_known),
        "accepted_other": (int(accepted[~known].sum()), n_other),
    }
    result: dict = {"queries": len(table), "known_landmark_queries": n_known}
    for name, (k, n) in counts.items():
        result[name] = k / n if n else float("nan")
        result[f"{name}_count"] = [k, n]
        result[f"{name}_ci"] = list(wilson(k, n))
    result["gap"] = gap_of(everything)
    result["gap_ci"] = list(bootstrap_interval(gap_of, known))
    result["auroc"] = auroc_of(everything)
    result["auroc_ci"] = list(bootstrap_interval(auroc_of, known))
    result["rows"] = table
    return result


def report(name: str, r: dict) -> str:
    """One readable paragraph of `summarise`'s metrics."""

    def rate(key):
        k, n = r[f"{key}_count"]
        low, high = r[f"{key}_ci"]
        return f"{r[key]:.3f} ({k}/{n}; 95% CI {low:.2f}-{high:.2f})"

    def boot(key):
        low, high = r[f"{key}_ci"]
        return f"{r[key]:.3f} (bootstrap 95% CI {low:.2f}-{high:.2f})"

    return (
        f"{name}, {r['queries']} queries:\n"
        f"  top-1 accuracy {rate('accuracy')}\n  GAP {boot('gap')}\n  AUROC {boot('auroc')}\n"
        f"  accepted: known {rate('accepted_known')}, correctly "
        f"{rate('accepted_correct_known')}; others {rate('accepted_other')}"
    )


def add_photos_argument(parser: argparse.ArgumentParser) -> None:
    """``--photos``: the real-photo folder, shared by the commands that evaluate on it."""
    parser.add_argument(
        "--photos",
        type=Path,
        default=Path("../shared/real-photos"),
        help="folder with manifest.csv (file,label) and the images",
    )


def photos_missing(photos: Path) -> bool:
    """True, with the error printed, when ``photos`` (`add_photos_argument`) lacks manifest.csv."""
    if (photos / "manifest.csv").is_file():
        return False
    print(f"error: {photos / 'manifest.csv'} not found", file=sys.stderr)
    return True


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    parser = argparse.ArgumentParser(
        prog="python -m utils realphotos", description=__doc__.split("\n")[0]
    )
    add_photos_argument(parser)
    parser.add_argument(
        "--part",
        choices=(*PARTS, "all"),
        default="all",
        help="tune: choose settings; check: judge them; all: the 92-photo protocol",
    )
    parser.add_argument("--reference", action="store_true", help="also run the plain baseline")
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also run RootSIFT alone (--global none) and the pretrained descriptor alone",
    )
    parser.add_argument(
        "--stress", choices=("night", "far"), default=None, help="alter every query"
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parser().parse_args(argv)
    if photos_missing(args.photos):
        return 2
    runs = {"project (Lite2 kNN voting + RootSIFT, calibrated)": project_recognizer}
    if args.ablation:
        runs["former fused rule (--rule fused)"] = fused_recognizer
        runs["RootSIFT alone (--global none)"] = local_recognizer
        runs["Lite2 descriptor alone (nearest photo's cosine)"] = descriptor_recognizer
    if args.reference:
        runs[f"reference (plain SIFT, max inliers > {REFERENCE_INLIERS})"] = reference_recognizer
    results = {}
    for name, make in runs.items():
        result = evaluate(args.photos, make, progress=False, alteration=args.stress, part=args.part)
        result.pop("rows")
        results[name] = result
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for name, r in results.items():
        print(report(f"{name} [part {args.part}]", r))
    return 0
