"""``python -m utils validate``: check a submission.csv (columns, ids, predictions)."""

from __future__ import annotations

import argparse
from pathlib import Path

from utils.submission import validate_submission


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    p = argparse.ArgumentParser(prog="python -m utils validate", description=__doc__)
    p.add_argument("submission", type=Path, help="the submission.csv to check")
    p.add_argument("--sample", type=Path, default=None, help="sample_submission.csv (test ids)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Print each problem; 1 when there is any."""
    args = parser().parse_args(argv)
    problems = validate_submission(args.submission, sample=args.sample)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{args.submission}: valid")
    return 1 if problems else 0
