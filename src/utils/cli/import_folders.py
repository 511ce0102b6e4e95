"""``python -m utils import-folders``: one folder per landmark -> the competition's layout.

``python -m utils import-folders --src landmark_images/ --out data/my-landmarks
[--test-fraction 0.2] [--non-landmarks DIR] [--seed 0]``; then ``make pipeline
DATA=data/my-landmarks`` or ``python -m utils pipeline --data-root data/my-landmarks``. What
it writes: `utils.data.folders`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.data.folders import import_folders


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    p = argparse.ArgumentParser(prog="python -m utils import-folders", description=__doc__)
    p.add_argument("--src", type=Path, required=True, help="one sub-folder of photos per landmark")
    p.add_argument("--out", type=Path, required=True, help="new folder to write")
    p.add_argument(
        "--test-fraction", type=float, default=0.2, help="share of each landmark's photos in test"
    )
    p.add_argument(
        "--non-landmarks", type=Path, default=None, help="folder of photos without a landmark"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the stratified test part")
    return p


def main(argv: list[str] | None = None) -> int:
    """Import; 2 on a source or destination that cannot be used."""
    args = parser().parse_args(argv)
    try:
        report = import_folders(
            args.src, args.out, args.test_fraction, args.non_landmarks, args.seed
        )
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.summary(args.out))
    return 0
