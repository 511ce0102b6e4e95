"""``python -m utils recognize``: landmarks in photos, named against a gallery folder.

``python -m utils recognize --gallery DIR|--gallery-data-root DIR --queries DIR --out
predictions.csv [--global lite2|lite0|none] [--checkpoint CKPT] [--local sift|delf|none]
[--detector imagenet|PATH]
[--index DIR] [--workers P] [--details JSON]``

The gallery holds one sub-folder per landmark (the folder name is the landmark's name), or is a
competition folder (``--gallery-data-root``: ``train.csv`` and its images; the landmark is the
landmark id, and a ``name`` column gives its name from ``train_label_to_category.csv``; photos
listed but missing or unreadable are counted and left out); the queries are image files (id =
file name without extension). For every query a row
``id,landmark,confidence`` is written; ``landmark`` is empty when the photo is judged not to
show a known landmark, or could not be read (a warning names it, and the run goes on). How it
is scored: `utils.retrieval.recognize` (by default the pretrained EfficientNet-Lite2 descriptor
shortlists the gallery, RootSIFT + RANSAC verifies, and the evidence fuses both); what is
extracted is cached beside the gallery (`utils.retrieval.gallery`).

``--detector`` gates queries by a non-landmark detector (``imagenet``: the pretrained network's
landmark-like classes, `utils.ood.imagenet`; or a file saved by notebook 07): a query it rejects
gets an empty landmark without being matched; one it accepts that the gallery does not explain
is reported as a landmark not in the gallery (``--details``: ``"verdict"``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from utils.data.images import ImageLoadError, load_image, split_files
from utils.models.weights import WeightsError
from utils.ood import load_detector
from utils.retrieval.gallery import fit_gallery, read_competition_gallery, read_gallery
from utils.retrieval.recognize import (
    GLOBAL_TOP_K,
    GLOBALS,
    NO_LANDMARK,
    RULES_PRETRAINED,
    SHORTLIST,
    SHORTLIST_ABOVE,
    UNKNOWN_LANDMARK,
    Gate,
    build_recognizer,
    recognize_files,
)
from utils.retrieval.vocabulary import WORDS


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    parser = argparse.ArgumentParser(
        prog="python -m utils recognize",
        description="Recognise landmarks in photos against a gallery of known landmarks.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--gallery", type=Path, help="one sub-folder per landmark")
    source.add_argument(
        "--gallery-data-root",
        type=Path,
        help="a competition folder (train.csv + train/a/b/c/<id>.jpg): its train photos",
    )
    parser.add_argument("--queries", type=Path, required=True, help="folder of query images")
    parser.add_argument("--out", type=Path, required=True, help="predictions CSV to write")
    parser.add_argument("--checkpoint", default=None, help="trained model (global embeddings)")
    parser.add_argument(
        "--local",
        default="sift",
        choices=("sift", "delf", "none"),
        help="local features for verification",
    )
    add_global_argument(parser)
    parser.add_argument(
        "--global-top-k",
        type=int,
        default=GLOBAL_TOP_K,
        help="gallery photos verified per query with the pretrained descriptor",
    )
    parser.add_argument(
        "--rule",
        default="vote",
        choices=RULES_PRETRAINED,
        help="pretrained descriptor: vote (kNN voting, whitened; default) or fused (former)",
    )
    parser.add_argument("--top-k", type=int, default=10, help="candidates re-ranked (checkpoint)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument(
        "--index",
        type=Path,
        default=None,
        help="cache folder of gallery features (default: GALLERY.index beside the gallery)",
    )
    parser.add_argument(
        "--shortlist",
        type=int,
        default=SHORTLIST,
        help="gallery photos verified per query when the index is used",
    )
    parser.add_argument(
        "--shortlist-above",
        type=int,
        default=SHORTLIST_ABOVE,
        help="--global none: the visual-word index above this many photos (0: always, -1: never)",
    )
    parser.add_argument(
        "--words", type=int, default=WORDS, help="visual words of a new index's vocabulary"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes extracting new gallery features"
    )
    parser.add_argument(
        "--details",
        type=Path,
        default=None,
        help="JSON with each query's evidence and 5 most similar gallery photos",
    )
    parser.add_argument(
        "--detector",
        default=None,
        help="non-landmark detector: imagenet (built in) or a file saved by notebook 07",
    )
    parser.add_argument(
        "--detector-threshold",
        type=float,
        default=None,
        help="score a query needs to count as a landmark (default: the detector's own)",
    )
    return parser


def add_global_argument(parser: argparse.ArgumentParser) -> None:
    """``--global``: the pretrained descriptor shortlisting a gallery (recognize and the demo)."""
    parser.add_argument(
        "--global",
        dest="global_descriptor",
        default="lite2",
        choices=GLOBALS,
        help="pretrained global descriptor shortlisting the gallery (none: local features only)",
    )


def gate_of(name: str, threshold: float | None = None, device: str = "cpu") -> Gate:
    """A `utils.retrieval.recognize.Gate` from a detector (`utils.ood.load_detector`)."""
    detector = load_detector(name, device)
    limit = detector.threshold if threshold is None else float(threshold)

    def gate(image):
        value = float(detector.score([image])[0])
        return value >= limit, value

    return gate


def gallery_of(args: argparse.Namespace) -> tuple[list[Path], list[str], dict[str, str]]:
    """Gallery paths, labels and names (landmark id -> name; {} for a folder per landmark).

    From ``--gallery`` (one sub-folder per landmark, labels are the folder names) or
    ``--gallery-data-root`` (a competition folder, labels are landmark ids; photos listed but
    absent are counted and left out).
    """
    if args.gallery is not None:
        paths, labels = read_gallery(args.gallery)
        return paths, labels, {}
    found = read_competition_gallery(args.gallery_data_root)
    if found.missing:
        print(
            f"warning: {len(found.missing)} photos listed in "
            f"{args.gallery_data_root / 'train.csv'} are missing and left out "
            f"(first: {found.missing[0]})",
            file=sys.stderr,
        )
    return found.paths, found.labels, found.names


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parser().parse_args(argv)
    gate = judge = None
    try:
        if args.detector:
            gate = gate_of(args.detector, args.detector_threshold, args.device)
        elif args.global_descriptor != "none" and not args.checkpoint:
            # the same ImageNet network tells a rejected photo's two cases apart
            judge = gate_of("imagenet", args.detector_threshold, args.device)
    except (FileNotFoundError, ValueError, RuntimeError, WeightsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return run(args, gate, judge)


def run(args: argparse.Namespace, gate: Gate | None = None, judge: Gate | None = None) -> int:
    """Recognise the queries of parsed `parser` options, gated by ``gate`` when given.

    ``judge``: a detector that only sorts rejected photos into a landmark the gallery lacks
    and no landmark (`utils.retrieval.recognize.recognize_files`).
    """
    try:
        paths, labels, titles = gallery_of(args)
        queries, skipped = split_files(args.queries) if args.queries.is_dir() else ([], [])
        if not queries:
            raise FileNotFoundError(
                f"{args.queries}: no query images found (any format Pillow opens)"
            )
        recognizer = build_recognizer(
            args.local,
            args.checkpoint,
            args.top_k,
            args.device,
            global_descriptor=args.global_descriptor,
            global_top_k=args.global_top_k,
            rule=args.rule,
        )
    except (FileNotFoundError, ValueError, WeightsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    local_only = recognizer.embedder is None
    small = args.shortlist_above < 0 or len(paths) <= args.shortlist_above
    if not (local_only and small):  # cached in the gallery's index folder
        source = args.gallery or args.gallery_data_root
        folder = args.index or source.parent / f"{source.name}.index"
        use_words = local_only and args.local == "sift"
        try:
            kept_at = fit_gallery(
                recognizer,
                paths,
                labels,
                folder,
                shortlist=args.shortlist if use_words else 0,
                workers=args.workers,
                words=args.words,
            )
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        names = [str(paths[i]) for i in kept_at]
    else:  # local features only, a small gallery: matched exhaustively, in memory
        images, kept, names = [], [], []
        for path, label in zip(paths, labels, strict=True):
            try:
                images.append(load_image(path))
                kept.append(label)
                names.append(str(path))
            except ImageLoadError as err:
                print(f"warning: gallery image skipped: {err}", file=sys.stderr)
        recognizer.fit(images, kept)
    unread = len(paths) - len(names)
    if unread:
        print(
            f"warning: {unread} gallery photos could not be read and were left out",
            file=sys.stderr,
        )
    table, details = recognize_files(recognizer, queries, names, gate=gate, judge=judge)
    if args.details:
        args.details.parent.mkdir(parents=True, exist_ok=True)
        args.details.write_text(json.dumps(details, indent=2) + "\n", encoding="utf-8")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    columns = ["id", "landmark", "confidence"]
    if titles:  # a competition folder: landmark ids, and their names beside them
        table["name"] = table["landmark"].map(lambda lm: titles.get(lm, ""))
        columns.append("name")
    table[columns].to_csv(args.out, index=False, float_format="%.6f")
    for path in skipped:
        print(f"skipped (not an image format): {path}", file=sys.stderr)
    accepted = int((table["landmark"] != "").sum())
    verdicts = [d.get("verdict") for d in details.values()]
    cases = ""
    if gate is not None or judge is not None:
        cases = (
            f", {verdicts.count(UNKNOWN_LANDMARK)} landmarks not in the gallery, "
            f"{verdicts.count(NO_LANDMARK)} no landmark"
        )
    own = recognizer.calibration.thresholds.values()
    spread = f"; per landmark {min(own):.1f} to {max(own):.1f}" if own else ""
    if recognizer.voting is not None:
        rule = (
            f"kNN voting, k {recognizer.vote.k}, {recognizer.voting.note}; accepted when the "
            f"nearest photo's cosine plus verified inliers > {recognizer.tau:.3f}, i.e. "
            f"confidence > 0.5; noise floor {recognizer.floor:.1f} inliers"
        )
    else:
        rule = (
            f"threshold: evidence > {recognizer.tau:.1f}{spread}, "
            f"noise floor {recognizer.floor:.1f} inliers"
        )
    print(f"wrote {args.out}: {len(table)} queries, {accepted} recognised{cases} ({rule})")
    return 0
