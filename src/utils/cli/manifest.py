"""``python -m utils manifest``: GLDv2-Use manifests (top-N landmarks, 80/10/10 per class)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.data.gldv2 import DataContractError, default_data_root
from utils.data.manifests import build_manifests, write_manifests


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    p = argparse.ArgumentParser(prog="python -m utils manifest", description=__doc__)
    p.add_argument("--data-root", type=Path, default=None, help="default: Kaggle's folder")
    p.add_argument(
        "--top", type=int, default=100, help="number of most frequent landmarks; 0: every landmark"
    )
    p.add_argument("--seed", type=int, default=42, help="seed of the per-class split")
    p.add_argument(
        "--source",
        choices=("auto", "clean", "train"),
        default="auto",
        help="labels from train_clean.csv, train.csv, or the first present (auto)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    return p


def main(argv: list[str] | None = None) -> int:
    """Write the manifests; 2 on a data root that breaks the contract."""
    args = parser().parse_args(argv)
    root = args.data_root or default_data_root()
    try:
        manifests = build_manifests(root, top=args.top, seed=args.seed, source=args.source)
    except (DataContractError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_manifests(manifests, args.out)
    counts = manifests.summary["counts"]
    print(
        f"wrote {args.out}: {manifests.summary['num_classes']} classes, "
        f"train {counts['train']}, val {counts['val']}, test {counts['test']}"
    )
    return 0
