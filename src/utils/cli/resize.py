"""``python -m utils resize``: a pre-resized copy of an image tree (resumable)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.data.resize import resize_tree


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    p = argparse.ArgumentParser(prog="python -m utils resize", description=__doc__)
    p.add_argument("--src", type=Path, required=True, help="source folder (e.g. train/)")
    p.add_argument("--dst", type=Path, required=True, help="destination folder")
    p.add_argument("--short-side", type=int, default=384, help="shorter side, pixels")
    p.add_argument("--workers", type=int, default=None, help="default: up to 4 cores")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality")
    return p


def main(argv: list[str] | None = None) -> int:
    """Resize the tree; broken files are listed at the end."""
    args = parser().parse_args(argv)
    try:
        report = resize_tree(args.src, args.dst, args.short_side, args.workers, args.quality)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0
