"""``python -m utils recognize``: `utils.retrieval.recognize` gated by a non-landmark detector.

The options of `utils.retrieval.recognize`, plus ``--detector PATH`` (a detector saved by
notebook 07, `utils.ood.load_detector`) and ``--detector-threshold`` (default: the threshold
chosen on validation): a query the detector rejects gets an empty landmark without being
matched to the gallery.
"""

from __future__ import annotations

import argparse
import sys

from utils.ood import load_detector
from utils.retrieval import recognize


def parser() -> argparse.ArgumentParser:
    """The recognizer's options and the detector's."""
    p = recognize.parser()
    p.add_argument(
        "--detector",
        default=None,
        help="non-landmark detector saved by notebook 07 (e.g. outputs/RUN/07_ood/detector.pt)",
    )
    p.add_argument(
        "--detector-threshold",
        type=float,
        default=None,
        help="score a query needs to count as a landmark (default: the saved threshold)",
    )
    return p


def gate_of(path: str, threshold: float | None = None, device: str = "cpu"):
    """A `utils.retrieval.recognize.Gate` from a saved detector."""
    detector = load_detector(path, device)
    limit = detector.threshold if threshold is None else float(threshold)

    def gate(image):
        value = float(detector.score([image])[0])
        return value >= limit, value

    return gate


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parser().parse_args(argv)
    gate = None
    if args.detector:
        try:
            gate = gate_of(args.detector, args.detector_threshold, args.device)
        except (FileNotFoundError, ValueError, RuntimeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    del args.detector, args.detector_threshold
    return recognize.run(args, gate)
