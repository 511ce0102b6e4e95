"""``python -m utils gap``: GAP and accuracy of a submission against a solution file."""

from __future__ import annotations

import argparse
import sys

from utils.submission import SubmissionError, read_solution, read_submission, score


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    p = argparse.ArgumentParser(prog="python -m utils gap", description=__doc__)
    p.add_argument("--solution", required=True, help="id,landmarks (true ids, space-separated)")
    p.add_argument("--submission", required=True, help="id,landmarks ('landmark confidence')")
    p.add_argument(
        "--ignore-non-landmarks",
        action="store_true",
        help="leave queries without a landmark out of GAP",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Print GAP and accuracy; 2 on an unreadable file."""
    args = parser().parse_args(argv)
    try:
        solution = read_solution(args.solution)
        submission = read_submission(args.submission)
    except (SubmissionError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = score(solution, submission, ignore_non_landmarks=args.ignore_non_landmarks)
    for warning in result.pop("warnings"):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"GAP {result['gap']:.6f}")
    print(
        f"accuracy {result['accuracy']:.6f} (top-1 over {result['landmark_queries']} "
        f"landmark queries; {result['queries']} queries, {result['predictions']} predictions)"
    )
    return 0
