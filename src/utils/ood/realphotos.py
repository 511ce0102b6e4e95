"""Landmark vs non-landmark on the real photos, with no network trained on them.

``python -m utils nonlandmark --photos ../shared/real-photos --part tune|check [--ks 0,1,3,5]``
``python -m utils nonlandmark --imagenet --part tune|check [--stress night|far]``

Runs the three-fold protocol of `utils.retrieval.realphotos` (RootSIFT, RANSAC, the
recognizer's calibrated evidence) on one part and scores every query of a gallery landmark
(positive) or of a non-landmark photo (negative); queries of landmarks outside the gallery are
left out (no detector built on the gallery can know them). Scores, higher means landmark:

- ``evidence``: the recognizer's confidence ``E / (E + tau)`` of its best landmark;
- ``inliers k=K``: the most verified inliers with any gallery photo, minus the mean of the
  ``K`` largest inlier counts with the non-landmark photos of the other folds (GLR 2020's
  non-landmark penalisation with local verification in place of cosines; ``K = 0``: none).

Choose the score on ``tune`` (`choose`), report it on ``check``.

``--imagenet`` scores every photo of the part instead (no gallery: landmark photos positive,
``non_landmark`` negative) with `utils.ood.imagenet`'s built-in detector, optionally altered
by `utils.retrieval.realphotos.stress`: AUROC (bootstrap 95% interval), FPR at 95% TPR with its
count (Wilson interval) and the rates accepted at the detector's own threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from utils.data.gldv2 import read_csv_checked
from utils.data.images import load_image
from utils.metrics import auroc
from utils.retrieval import realphotos


def scores(photos: str | Path, part: str, ks=(0, 1, 3, 5)) -> pd.DataFrame:
    """One row per scored query: ``file``, ``landmark`` (bool) and one column per score."""
    photos = Path(photos)
    cache: dict = {}
    result = realphotos.evaluate(photos, part=part, cache=cache)
    rows = result["rows"]
    manifest = read_csv_checked(photos / "manifest.csv", ("file", "label"))
    frame = realphotos.assign_folds(realphotos.select_part(manifest[["file", "label"]], part))
    labels = dict(zip(frame["file"], frame["label"], strict=True))
    folds = dict(zip(frame["file"], frame["fold"], strict=True))
    features = cache["features"]
    recognizer = realphotos.project_recognizer()
    others = [f for f in frame["file"] if labels[f] == realphotos.NONE]
    table = []
    for row in rows.itertuples():
        is_landmark = row.truth != ""
        if not is_landmark and labels[row.file] != realphotos.NONE:
            continue  # a landmark outside the gallery
        query = features[row.file, None][0]
        database = [f for f in others if folds[f] != row.fold and f != row.file]
        inliers = np.sort(
            [
                recognizer.matcher(query, features[f, None][0], recognizer.settings).inliers
                for f in database
            ]
        )[::-1]
        entry = {"file": row.file, "landmark": is_landmark, "evidence": row.confidence}
        for k in ks:
            penalty = float(np.mean(inliers[:k])) if k and len(inliers) else 0.0
            entry[f"inliers k={k}"] = row.top_inliers - penalty
        table.append(entry)
    return pd.DataFrame(table)


def aurocs(table: pd.DataFrame) -> dict:
    """AUROC of every score column, with the counts."""
    positive = table["landmark"].to_numpy(bool)
    out = {
        name: auroc(table[name].to_numpy(np.float64), positive)
        for name in table.columns
        if name not in ("file", "landmark")
    }
    return {**out, "landmarks": int(positive.sum()), "non_landmarks": int((~positive).sum())}


def choose(tune: dict) -> str:
    """The score of highest AUROC on the tune part (ties: the first)."""
    names = [k for k in tune if k not in ("landmarks", "non_landmarks")]
    return max(names, key=lambda k: tune[k])


def imagenet_scores(
    photos: str | Path, part: str, alteration: str | None = None, detector=None
) -> pd.DataFrame:
    """``file``, ``landmark`` (bool), ``score`` of every photo of ``part`` (module docstring)."""
    from utils.ood.imagenet import default_detector

    photos = Path(photos)
    detector = detector or default_detector()
    manifest = read_csv_checked(photos / "manifest.csv", ("file", "label"))
    frame = realphotos.select_part(manifest[["file", "label"]], part).reset_index(drop=True)
    images = [realphotos.stress(load_image(photos / f), alteration) for f in frame["file"]]
    return pd.DataFrame(
        {
            "file": frame["file"],
            "landmark": (frame["label"] != realphotos.NONE).to_numpy(),
            "score": detector.score(images),
        }
    )


def detection_summary(table: pd.DataFrame, threshold: float) -> dict:
    """AUROC, FPR at 95% TPR and the accepted rates at ``threshold``, counts and intervals."""
    positive, score = table["landmark"].to_numpy(bool), table["score"].to_numpy(np.float64)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    ranked = np.sort(score[positive])
    at_95 = ranked[int(np.floor(0.05 * n_pos))] if n_pos else np.inf
    out = {"landmarks": n_pos, "non_landmarks": n_neg}
    out["auroc"] = auroc(score, positive)
    out["auroc_ci"] = list(
        realphotos.bootstrap_interval(lambda i: auroc(score[i], positive[i]), positive)
    )
    counts = {
        "fpr_at_95_tpr": (int((score[~positive] >= at_95).sum()), n_neg),
        "accepted_landmarks": (int((score[positive] >= threshold).sum()), n_pos),
        "accepted_non_landmarks": (int((score[~positive] >= threshold).sum()), n_neg),
    }
    for name, (k, n) in counts.items():
        out[name] = k / n if n else float("nan")
        out[f"{name}_count"] = [k, n]
        out[f"{name}_ci"] = list(realphotos.wilson(k, n))
    out["threshold"] = float(threshold)
    return out


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    p = argparse.ArgumentParser(
        prog="python -m utils nonlandmark", description=__doc__.split("\n")[0]
    )
    realphotos.add_photos_argument(p)
    p.add_argument(
        "--part",
        choices=(*realphotos.PARTS, "both"),
        default="both",
        help="tune, check, or both (choose on tune, report on check)",
    )
    p.add_argument("--ks", default="0,1,3,5", help="non-landmark penalties tried, comma-separated")
    p.add_argument(
        "--imagenet", action="store_true", help="score every photo with the ImageNet detector"
    )
    p.add_argument(
        "--stress", choices=("night", "far"), default=None, help="with --imagenet: alter photos"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Print the AUROCs as JSON (and, for both parts, the score chosen on tune)."""
    args = parser().parse_args(argv)
    if realphotos.photos_missing(args.photos):
        return 2
    parts = realphotos.PARTS if args.part == "both" else (args.part,)
    if args.imagenet:
        from utils.ood.imagenet import default_detector

        detector = default_detector()
        out = {
            part: detection_summary(
                imagenet_scores(args.photos, part, args.stress, detector), detector.threshold
            )
            for part in parts
        }
        print(json.dumps(out, indent=2))
        return 0
    if args.stress:
        print("error: --stress needs --imagenet", file=sys.stderr)
        return 2
    ks = [int(k) for k in args.ks.split(",")]
    out = {part: aurocs(scores(args.photos, part, ks)) for part in parts}
    if args.part == "both":
        chosen = choose(out["tune"])
        out["chosen on tune"] = {"score": chosen, "check AUROC": out["check"][chosen]}
    print(json.dumps(out, indent=2))
    return 0
