"""Evaluation of `recognize`'s rules on a competition folder of real photos (``gldv2-sample``).

``python -m utils gldv2sample --data-root ../shared/gldv2-sample --part tune|check|all
[--per-landmark N] [--rules default,nn,...] [--cache DIR] [--json]``

The gallery is the folder's train photos (``train.csv``; with ``--per-landmark N`` the first N
photos by id of each landmark id, as small as the galleries people bring); the queries are its
test photos with ``test_solution.csv`` (empty: not a landmark of the gallery) and
``sources.csv``'s ``place`` of each photo. Queries are split *by place* into a ``tune`` part,
the only one settings are chosen on, and a ``check`` part that judges them (`TUNE_PLACES`,
fixed before any measurement: each part has one place of several landmark ids, the Great Wall
in tune and Niagara Falls in check, and one place absent from the gallery; non-landmark photos
alternate by their row). Metrics as `utils.retrieval.realphotos.summarise`: top-1 accuracy of
the best landmark over queries of gallery landmarks (Wilson interval), GAP of every query's best
landmark and confidence, AUROC of the confidence for those queries against the rest (bootstrap
intervals), and how often the rejection rule accepts each kind.

Descriptors and RootSIFT features are extracted once and cached under ``--cache`` (keyed by
each file's content), so a second run only matches.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from utils.data.gldv2 import image_path, read_csv_checked
from utils.retrieval.gallery import DescriptorStore, read_competition_gallery, report_skipped
from utils.retrieval.local_features import RootSift
from utils.retrieval.realphotos import (
    cached_matcher,
    query_row,
    report,
    shared_descriptor,
    summarise,
)
from utils.retrieval.recognize import COSINE_WEIGHT, GLOBAL_TOP_K, Recognizer
from utils.retrieval.vocabulary import ShortlistIndex
from utils.retrieval.voting import VoteRule

TUNE_PLACES = frozenset(
    {
        "Great_Wall_of_China",
        "Stonehenge",
        "Space_Needle",
        "Parthenon",
        "Geisel_Library",
        "Golden_Gate_Bridge",
    }
)
NON_LANDMARK = "non_landmark"
# name -> (recognizer options, what it is); "default" is what `recognize` runs
RULES: dict[str, tuple[dict, str]] = {
    "default": ({"vote": VoteRule()}, "kNN voting (k 3, whitened) + RootSIFT, the default"),
    "nn": (
        {"vote": VoteRule(k=1, whiten_dim=0), "local": False},
        "nearest gallery photo, its plain cosine (the baseline)",
    ),
    "no-sift": ({"vote": VoteRule(), "local": False}, "kNN voting, no RootSIFT"),
    "no-whitening": ({"vote": VoteRule(whiten_dim=0)}, "kNN voting + RootSIFT, unwhitened"),
    "k1": ({"vote": VoteRule(k=1)}, "nearest photo (whitened) + RootSIFT"),
    "k5": ({"vote": VoteRule(k=5)}, "kNN voting, k 5"),
    "qe-dba": ({"vote": VoteRule(qe=1, dba=1)}, "kNN voting + alpha-QE 1 + DBA 1"),
    "fused": ({"cosine_weight": COSINE_WEIGHT}, "the former fused rule (--rule fused)"),
}


def part_of(place: str, row: int) -> str:
    """``tune`` or ``check`` for a query of ``place`` (`TUNE_PLACES`) at ``row`` of the truth."""
    if place == NON_LANDMARK:
        return "tune" if row % 2 == 0 else "check"
    return "tune" if place in TUNE_PLACES else "check"


def read_queries(root: Path) -> pd.DataFrame:
    """``id, truth, place, part, path`` of the folder's test photos."""
    truth = read_csv_checked(root / "test_solution.csv", ("id", "landmarks"), dtype=str)
    sources = read_csv_checked(root / "sources.csv", ("id", "place"), dtype=str)
    place = dict(zip(sources["id"], sources["place"], strict=True))
    frame = truth.rename(columns={"landmarks": "truth"})[["id", "truth"]].copy()
    frame["truth"] = frame["truth"].fillna("").str.split().str[0].fillna("")
    frame["place"] = [place.get(i, NON_LANDMARK) for i in frame["id"]]
    frame["part"] = [part_of(p, i) for i, p in enumerate(frame["place"])]
    frame["path"] = [image_path(root, i, "test") for i in frame["id"]]
    return frame


def first_per_landmark(labels: list[str], keys: list[str], n: int) -> np.ndarray:
    """Indices of the first ``n`` photos (by id) of each landmark; all for ``n <= 0``."""
    if n <= 0:
        return np.arange(len(labels))
    frame = pd.DataFrame({"label": labels, "key": keys}).sort_values("key")
    return np.sort(frame.groupby("label").head(n).index.to_numpy())


def described(paths, cache: Path, progress: bool):
    """Descriptors and stored RootSIFT features of readable ``paths`` and their positions.

    Descriptors under ``cache/descriptors``, local features in the index folder ``cache/local``.
    """
    descriptor = shared_descriptor()
    vectors, kept = report_skipped(
        lambda: DescriptorStore(cache, descriptor, progress).get(list(paths))
    )
    index = ShortlistIndex(cache / "local", RootSift(), progress=progress)
    keys = report_skipped(lambda: index.store_features([paths[i] for i in kept]))
    index.keys = [k for k in keys if k is not None]
    if len(index.keys) != len(kept):
        raise ValueError("a photo the descriptor read could not be read for RootSIFT")
    return vectors, kept, index.features(cache=4096)


def evaluate(
    root: str | Path,
    rules: list[str],
    part: str = "all",
    per_landmark: int = 0,
    cache: str | Path = "outputs/gldv2-sample.index",
    progress: bool = True,
) -> dict[str, dict]:
    """`summarise` of each rule of ``rules`` (`RULES`) on ``part`` of the folder's queries."""
    root, cache = Path(root), Path(cache)
    gallery = read_competition_gallery(root)
    queries = read_queries(root)
    if part != "all":
        queries = queries[queries["part"] == part].reset_index(drop=True)
    g_vectors, g_kept, g_features = described(gallery.paths, cache / "gallery", progress)
    q_vectors, q_kept, q_features = described(list(queries["path"]), cache / "queries", progress)
    labels = [gallery.labels[i] for i in g_kept]
    chosen = first_per_landmark(labels, [gallery.paths[i].stem for i in g_kept], per_landmark)
    matcher = cached_matcher({})
    g_local = [g_features[int(i)] for i in chosen]
    q_local = [q_features[i] for i in range(len(q_kept))]
    results = {}
    for name in rules:
        options, _ = RULES[name]
        options = dict(options)
        local = options.pop("local", True)
        recognizer = Recognizer(
            RootSift() if local else None,
            embedder=shared_descriptor(),
            top_k=GLOBAL_TOP_K,
            progress=progress,
            matcher=matcher,
            **options,
        )
        recognizer.fit_described(
            g_local if local else [None] * len(chosen),
            g_vectors[chosen],
            [labels[int(i)] for i in chosen],
        )
        rows = []
        for position, q in enumerate(q_kept):
            result = recognizer.recognize_described(
                q_local[position] if local else None, q_vectors[position]
            )
            row = queries.iloc[q]
            rows.append(query_row(row["id"], 0, row["truth"], result))
        results[name] = summarise(pd.DataFrame(rows))
    return results


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    parser = argparse.ArgumentParser(
        prog="python -m utils gldv2sample", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=Path("../shared/gldv2-sample"),
        help="competition folder with test_solution.csv and sources.csv",
    )
    parser.add_argument(
        "--part", choices=("tune", "check", "all"), default="tune", help="which queries"
    )
    parser.add_argument(
        "--per-landmark", type=int, default=0, help="gallery photos per landmark id (0: all)"
    )
    parser.add_argument(
        "--rules",
        default="default,nn",
        help=f"comma-separated, of: {', '.join(RULES)}",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path("outputs/gldv2-sample.index"),
        help="folder caching descriptors and RootSIFT features",
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parser().parse_args(argv)
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        print(f"error: unknown rules {unknown}; choose from {', '.join(RULES)}", file=sys.stderr)
        return 2
    if not (args.data_root / "test_solution.csv").is_file():
        print(f"error: {args.data_root / 'test_solution.csv'} not found", file=sys.stderr)
        return 2
    results = evaluate(args.data_root, rules, args.part, args.per_landmark, args.cache)
    if args.json:
        for r in results.values():
            r.pop("rows")
        print(json.dumps(results, indent=2))
        return 0
    gallery = f"{args.per_landmark} per landmark" if args.per_landmark else "all train photos"
    for name, r in results.items():
        print(report(f"{name}: {RULES[name][1]} [part {args.part}, gallery {gallery}]", r))
    return 0
