"""Recognise landmarks in photos against a gallery of known landmarks.

``python -m utils recognize --gallery DIR --queries DIR --out predictions.csv
[--checkpoint CKPT] [--local sift|delf|none] [--top-k K]``

The gallery holds one sub-folder per landmark (the folder name is the landmark's name); the
queries are image files (id = file name without extension). For every query a row
``id,landmark,confidence`` is written; ``landmark`` is empty when the photo is judged not to
show a known landmark, or could not be read (a warning names it, and the run goes on).

How a query is scored (`Recognizer`):

1. candidates: every gallery image, or with ``--checkpoint`` the ``top-k`` most similar by
   the global embedding (cosine);
2. each candidate is re-ranked by verified local matches (`utils.rerank`): RootSIFT, or DELF
   with a checkpoint that carries an attention module;
3. evidence per landmark ``E(L) = sum_{j in L} max(0, inliers_j - floor)`` (+ the fused
   ``cos + min(inliers, 20)/20`` of its best photo with a checkpoint); the answer is the
   landmark of highest evidence with ``confidence = E / (E + tau)``.

Rejection rule, set from the gallery itself, not tuned per file: every gallery photo is
matched against the photos of the *other* landmarks (at most 60 of them per photo: the nearest
by the global embedding with a checkpoint, else a seeded sample, so that calibrating a large
gallery stays affordable). ``floor`` is the 95th percentile of
those inlier counts (what unrelated photos share by chance) and ``tau`` the largest evidence
any gallery photo gathers for a wrong landmark. A query is accepted when ``E > tau``, i.e. when
``confidence > 0.5``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from utils.data.images import ImageLoadError, image_files, load_image, split_files
from utils.retrieval.local_features import LocalExtractor, LocalFeatures, RootSift
from utils.retrieval.rerank import MatchSettings, PairMatch, landmark_evidence, match_pair

Embedder = Callable[[list[np.ndarray]], np.ndarray]  # RGB images -> (N, D) unit vectors
FLOOR_QUANTILE = 0.95


@dataclass(frozen=True)
class Candidate:
    """One retrieved gallery image: its index, landmark, global cosine and verified matches."""

    index: int
    landmark: Hashable
    cosine: float
    match: PairMatch = field(repr=False)


@dataclass(frozen=True)
class Recognition:
    """The answer for one query: landmark (None: rejected), confidence, evidence, top 5."""

    landmark: Hashable | None
    best: Hashable | None
    confidence: float
    evidence: dict
    candidates: list[Candidate]


def read_gallery(folder: str | Path) -> tuple[list[Path], list[str]]:
    """Paths and landmark names of a gallery folder with one sub-folder per landmark."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: gallery folder not found")
    paths, labels = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in image_files(sub):
            paths.append(path)
            labels.append(sub.name)
    if len(set(labels)) < 2:
        raise ValueError(
            f"{folder}: expected sub-folders of images for at least two landmarks "
            f"(one per landmark, named after it), found {len(set(labels))}"
        )
    return paths, labels


class Recognizer:
    """Gallery features plus the calibrated rejection rule; see the module docstring."""

    def __init__(
        self,
        extractor: LocalExtractor | None = None,
        settings: MatchSettings | None = None,
        embedder: Embedder | None = None,
        top_k: int = 0,
        aggregate: str = "sum",
        calibration_pairs: int = 60,
        progress: bool = True,
    ):
        if extractor is None and embedder is None:
            raise ValueError("need local features, a global embedder, or both")
        if aggregate not in ("sum", "max"):
            raise ValueError(f"aggregate must be sum or max, not {aggregate!r}")
        self.aggregate, self.calibration_pairs = aggregate, calibration_pairs
        self.extractor, self.embedder = extractor, embedder
        self.settings = settings or MatchSettings()
        self.top_k, self.progress = top_k, progress
        self.labels: list[Hashable] = []
        self.features: list[LocalFeatures] = []
        self.embeddings: np.ndarray | None = None
        self.floor, self.tau = 0.0, 1.0

    def _describe(self, image: np.ndarray) -> tuple[LocalFeatures | None, np.ndarray | None]:
        local = self.extractor.extract(image) if self.extractor else None
        emb = self.embedder([image])[0] if self.embedder else None
        return local, emb

    def fit(self, images: Sequence[np.ndarray], labels: Sequence[Hashable]) -> Recognizer:
        """Describe the gallery and calibrate ``floor`` and ``tau`` on it."""
        described = [
            self._describe(im) for im in tqdm(images, desc="gallery", disable=not self.progress)
        ]
        self.labels = list(labels)
        self.features = [d[0] for d in described]
        self.embeddings = np.stack([d[1] for d in described]) if self.embedder else None
        self._calibrate()
        return self

    def _evidence(self, labels, inliers, cosine) -> dict:
        """Per-landmark evidence (module docstring), or its best photo's value.

        ``max``: the most inliers of any of its photos; without local features: the best cosine.
        """
        if self.extractor is None or self.aggregate == "max":
            values = cosine if self.extractor is None else inliers
            best: dict = {}
            for label, value in zip(labels, values, strict=True):
                best[label] = max(best.get(label, -np.inf), float(value))
            return best
        return landmark_evidence(labels, inliers, self.floor, cosine)

    def _calibrate(self) -> None:
        """Set ``floor`` and ``tau`` from cross-landmark gallery pairs (module docstring)."""
        labels = np.array(self.labels, dtype=object)
        if self.extractor is None:
            cos = self.embeddings @ self.embeddings.T
            self.floor, self.tau = 0.0, float(cos[labels[:, None] != labels[None, :]].max())
            return
        n = len(self.labels)
        other = labels[:, None] != labels[None, :]
        measured = np.zeros((n, n), bool)
        rng = np.random.default_rng(0)
        for i in range(n):
            candidates = np.flatnonzero(other[i])
            if len(candidates) > self.calibration_pairs:
                if self.embeddings is not None:  # the hardest negatives: nearest by cosine
                    near = np.argsort(-(self.embeddings[candidates] @ self.embeddings[i]))
                    candidates = candidates[near[: self.calibration_pairs]]
                else:
                    candidates = rng.choice(candidates, self.calibration_pairs, replace=False)
            measured[i, candidates] = measured[candidates, i] = True
        inliers = np.zeros((n, n))
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if measured[i, j]]
        for i, j in tqdm(pairs, desc="calibrate", disable=not self.progress):
            inliers[i, j] = inliers[j, i] = match_pair(
                self.features[i], self.features[j], self.settings
            ).inliers
        if self.aggregate == "sum":
            self.floor = float(np.quantile(inliers[measured], FLOOR_QUANTILE))
        wrong = []
        for i in range(n):
            mask = other[i]
            cos = (
                self.embeddings[mask] @ self.embeddings[i] if self.embeddings is not None else None
            )
            wrong.append(max(self._evidence(labels[mask], inliers[i, mask], cos).values()))
        self.tau = max(1.0, float(max(wrong)))

    def recognize(self, image: np.ndarray) -> Recognition:
        """Best landmark, confidence and the top-5 verified candidates for one RGB image."""
        local, emb = self._describe(image)
        n = len(self.labels)
        cosine = self.embeddings @ emb if emb is not None else np.zeros(n)
        order = np.argsort(-cosine, kind="stable")
        if self.embedder is not None and self.top_k:
            order = order[: self.top_k]
        matches = {
            int(j): match_pair(local, self.features[j], self.settings) if local else None
            for j in order
        }
        labels = [self.labels[j] for j in order]
        inliers = np.array([m.inliers if m else 0 for m in matches.values()], np.float64)
        evidence = self._evidence(labels, inliers, cosine[order] if emb is not None else None)
        best = max(evidence, key=evidence.get) if evidence else None
        value = evidence.get(best, 0.0)
        confidence = value / (value + self.tau) if value > 0 else 0.0
        ranked = sorted(
            order, key=lambda j: (-(matches[j].inliers if matches[j] else 0), -cosine[j])
        )[:5]
        candidates = [
            Candidate(
                int(j),
                self.labels[j],
                float(cosine[j]),
                matches[j] or PairMatch(0, 0, np.zeros((0, 4), np.float32)),
            )
            for j in ranked
        ]
        accepted = best if value > self.tau else None
        return Recognition(accepted, best, float(confidence), evidence, candidates)


def describe(result: Recognition, gallery_names: Sequence[str]) -> dict:
    """A JSON-ready summary: answer, evidence per landmark, and the most similar known photos."""
    evidence = sorted(result.evidence.items(), key=lambda item: -item[1])[:5]
    return {
        "landmark": result.landmark,
        "best": result.best,
        "confidence": round(result.confidence, 6),
        "evidence": {str(k): round(v, 3) for k, v in evidence},
        "similar": [
            {
                "photo": str(gallery_names[c.index]),
                "landmark": str(c.landmark),
                "inliers": c.match.inliers,
                "cosine": round(c.cosine, 4),
            }
            for c in result.candidates
        ],
    }


def recognize_files(
    recognizer: Recognizer,
    paths: Sequence[Path],
    gallery_names: Sequence[str] | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """``id, landmark, best, confidence`` for every file, and `describe` of each by id.

    An unreadable file gets an empty row (and a warning naming it); the run goes on.
    """
    names = gallery_names or [str(i) for i in range(len(recognizer.labels))]
    rows, details = [], {}
    for path in tqdm(paths, desc="queries", disable=not progress):
        image_id = Path(path).stem
        try:
            result = recognizer.recognize(load_image(path))
        except ImageLoadError as err:
            warnings.warn(f"{err}; writing an empty prediction", stacklevel=2)
            rows.append((image_id, "", "", 0.0))
            details[image_id] = {"error": str(err)}
            continue
        rows.append((image_id, result.landmark or "", result.best or "", result.confidence))
        details[image_id] = describe(result, names)
    return pd.DataFrame(rows, columns=["id", "landmark", "best", "confidence"]), details


def build_recognizer(
    local: str = "sift",
    checkpoint: str | None = None,
    top_k: int = 10,
    device: str = "cpu",
    progress: bool = True,
) -> Recognizer:
    """A recognizer from CLI choices: local features and, optionally, a trained checkpoint."""
    extractor: LocalExtractor | None = None
    embedder = None
    if checkpoint:
        from utils.retrieval.index import checkpoint_embedder

        embedder = checkpoint_embedder(checkpoint, device)
    if local == "sift":
        extractor = RootSift()
    elif local == "delf":
        if not checkpoint:
            raise ValueError("--local delf needs --checkpoint with a trained attention module")
        from utils.retrieval.delf_features import DelfExtractor

        extractor = DelfExtractor.from_checkpoint(checkpoint, device)
    elif local != "none":
        raise ValueError(f"--local must be sift, delf or none, not {local!r}")
    return Recognizer(
        extractor, embedder=embedder, top_k=top_k if checkpoint else 0, progress=progress
    )


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    parser = argparse.ArgumentParser(
        prog="python -m utils recognize", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--gallery", type=Path, required=True, help="one sub-folder per landmark")
    parser.add_argument("--queries", type=Path, required=True, help="folder of query images")
    parser.add_argument("--out", type=Path, required=True, help="predictions CSV to write")
    parser.add_argument("--checkpoint", default=None, help="trained model (global embeddings)")
    parser.add_argument(
        "--local",
        default="sift",
        choices=("sift", "delf", "none"),
        help="local features for verification",
    )
    parser.add_argument("--top-k", type=int, default=10, help="candidates re-ranked (checkpoint)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument(
        "--details",
        type=Path,
        default=None,
        help="JSON with each query's evidence and 5 most similar gallery photos",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parser().parse_args(argv)
    try:
        paths, labels = read_gallery(args.gallery)
        queries, skipped = split_files(args.queries) if args.queries.is_dir() else ([], [])
        if not queries:
            raise FileNotFoundError(
                f"{args.queries}: no query images found (any format Pillow opens)"
            )
        recognizer = build_recognizer(args.local, args.checkpoint, args.top_k, args.device)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    images, kept, names = [], [], []
    for path, label in zip(paths, labels, strict=True):
        try:
            images.append(load_image(path))
            kept.append(label)
            names.append(str(path))
        except ImageLoadError as err:
            print(f"warning: gallery image skipped: {err}", file=sys.stderr)
    recognizer.fit(images, kept)
    table, details = recognize_files(recognizer, queries, names)
    if args.details:
        args.details.parent.mkdir(parents=True, exist_ok=True)
        args.details.write_text(json.dumps(details, indent=2) + "\n", encoding="utf-8")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table[["id", "landmark", "confidence"]].to_csv(args.out, index=False, float_format="%.6f")
    for path in skipped:
        print(f"skipped (not an image format): {path}", file=sys.stderr)
    accepted = int((table["landmark"] != "").sum())
    print(
        f"wrote {args.out}: {len(table)} queries, {accepted} recognised "
        f"(threshold: evidence > {recognizer.tau:.1f}, noise floor {recognizer.floor:.1f} inliers)"
    )
    return 0
