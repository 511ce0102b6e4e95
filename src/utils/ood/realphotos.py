"""Landmark vs non-landmark on the real photos, with no network trained on them.

``python -m utils nonlandmark --photos ../shared/real-photos --part tune|check [--ks 0,1,3,5]``

Runs the three-fold protocol of `utils.retrieval.realphotos` (RootSIFT, RANSAC, the
recognizer's calibrated evidence) on one part and scores every query of a gallery landmark
(positive) or of a non-landmark photo (negative); queries of landmarks outside the gallery are
left out (no detector built on the gallery can know them). Scores, higher means landmark:

- ``evidence``: the recognizer's confidence ``E / (E + tau)`` of its best landmark;
- ``inliers k=K``: the most verified inliers with any gallery photo, minus the mean of the
  ``K`` largest inlier counts with the non-landmark photos of the other folds (GLR 2020's
  non-landmark penalisation with local verification in place of cosines; ``K = 0``: none).

Choose the score on ``tune`` (`choose`), report it on ``check``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from utils.data.gldv2 import read_csv_checked
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
    return p


def main(argv: list[str] | None = None) -> int:
    """Print the AUROCs as JSON (and, for both parts, the score chosen on tune)."""
    args = parser().parse_args(argv)
    if realphotos.photos_missing(args.photos):
        return 2
    ks = [int(k) for k in args.ks.split(",")]
    parts = realphotos.PARTS if args.part == "both" else (args.part,)
    out = {part: aurocs(scores(args.photos, part, ks)) for part in parts}
    if args.part == "both":
        chosen = choose(out["tune"])
        out["chosen on tune"] = {"score": chosen, "check AUROC": out["check"][chosen]}
    print(json.dumps(out, indent=2))
    return 0
