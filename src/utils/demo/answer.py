"""The demo's answer to one uploaded file, without a server (`Demo.answer` -> `Answer`).

For a photo the answer holds:

- each detector's verdict: ``score >= threshold`` means "shows a landmark". The recognizer is
  always one of them: its score is `utils.retrieval.recognize.Recognition.score` against its
  threshold (the voting rule's confidence and ``tau``; with ``--rule fused`` the best
  landmark's evidence ``E(L)`` and ``tau(L)``, `utils.retrieval.calibration`); a non-landmark
  detector (saved by notebook 07, or the built-in ``imagenet``, `utils.ood.Detector`) scores
  the image itself; when the detectors say landmark and the recognizer knows none, the answer
  says so ("a landmark, not one I know"); The verdicts
  that ``gate`` decide landmark-or-not: the recognizer's, and the gate detector's if one is set;
- the recognised landmark (None: rejected) and the top 3 landmarks by the answer's rule
  (largest ``E / tau``) with ``confidence = E / (E + tau(L))``, the recognizer's formula;
- the top 5 retrieved gallery photos (landmark, similarity, inliers) and the inlier matches
  between the query and the best of them, drawn (`utils.demo.draw`).

A file that cannot be used raises `UploadError` with a message for the page that names the file
and the limit it broke: empty, not an image, more than ``max_pixels`` or a side under
``min_side`` pixels.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from utils.data.images import ImageLoadError, load_image
from utils.demo.draw import draw_matches
from utils.retrieval.calibration import Calibration, confidence_of, margin
from utils.retrieval.recognize import UNKNOWN_LANDMARK, Recognition, Recognizer

MAX_PIXELS = 40_000_000  # larger photos are refused (decoding one costs seconds and memory)
MIN_SIDE = 32  # a smaller side holds too few SIFT keypoints to match


class UploadError(ValueError):
    """An uploaded file the demo cannot use; the message names the file and what was expected."""


def read_upload(
    path: str | Path, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE
) -> np.ndarray:
    """The uploaded image as RGB ``(H, W, 3)`` uint8, its size checked before decoding."""
    path = Path(path)
    if not path.is_file():
        raise UploadError(f"{path.name}: no such file was received")
    if path.stat().st_size == 0:
        raise UploadError(f"{path.name}: the file is empty (0 bytes); upload a photo")
    try:
        with Image.open(path) as header:  # reads the header only
            width, height = header.size
    except Image.DecompressionBombError as err:
        raise UploadError(
            f"{path.name}: too large an image ({err}); the limit is "
            f"{max_pixels / 1e6:.0f} megapixels"
        ) from err
    except (UnidentifiedImageError, OSError) as err:
        raise UploadError(
            f"{path.name}: not an image (JPEG, PNG, WebP, GIF, TIFF... expected)"
        ) from err
    if width * height > max_pixels:
        raise UploadError(
            f"{path.name}: {width}x{height} is {width * height / 1e6:.1f} megapixels, more than "
            f"the {max_pixels / 1e6:.0f} megapixels this demo accepts; resize it"
        )
    if min(width, height) < min_side:
        raise UploadError(
            f"{path.name}: {width}x{height} is too small; each side needs at least "
            f"{min_side} pixels"
        )
    try:
        return load_image(path)
    except ImageLoadError as err:
        raise UploadError(f"{path.name}: cannot read the image ({err.reason})") from err


@dataclass(frozen=True)
class Verdict:
    """One detector's verdict: ``landmark`` is ``score >= threshold``; ``gates``: it decides."""

    name: str
    landmark: bool
    score: float
    threshold: float
    gates: bool


@dataclass(frozen=True)
class Retrieved:
    """A retrieved gallery photo: its file, landmark, similarity and verified inliers."""

    photo: str
    landmark: str
    similarity: float
    inliers: int


@dataclass
class Answer:
    """What the page shows for one photo (`to_dict` is its JSON form, without the image)."""

    file: str
    landmark: str | None
    summary: str
    top3: list[tuple[str, float]]
    verdicts: list[Verdict]
    retrieved: list[Retrieved]
    matches: np.ndarray | None = field(default=None, repr=False)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready: landmark, summary, top 3, verdicts, retrieved photos, seconds."""
        return {
            "file": self.file,
            "landmark": self.landmark,
            "summary": self.summary,
            "top3": [{"landmark": name, "confidence": round(c, 4)} for name, c in self.top3],
            "detectors": [asdict(v) for v in self.verdicts],
            "retrieved": [asdict(r) for r in self.retrieved],
            "seconds": round(self.seconds, 3),
        }


def top_confidences(
    result: Recognition, calibration: Calibration, k: int = 3
) -> list[tuple[str, float]]:
    """The ``k`` landmarks of largest ``E / tau(L)``, each with ``E / (E + tau(L))``."""
    threshold = calibration.threshold
    ranked = sorted(result.evidence, key=lambda lm: -margin(result.evidence[lm], threshold(lm)))
    out = []
    for landmark in ranked[:k]:
        value, tau = result.evidence[landmark], threshold(landmark)
        out.append((str(landmark), confidence_of(value, tau)))
    return out


def top_landmarks(result: Recognition, recognizer: Recognizer, k: int = 3) -> list:
    """The answer's top ``k`` landmarks with a value each.

    With the voting rule, its scores (votes + verified inliers); else `top_confidences`.
    """
    if recognizer.voting is None:
        return top_confidences(result, recognizer.calibration, k)
    ranked = sorted(result.evidence.items(), key=lambda item: -item[1])[:k]
    return [(str(name), float(value)) for name, value in ranked]


class Demo:
    """A fitted recognizer, its gallery photos and the non-landmark detectors to show.

    Args:
        recognizer: fitted on ``photos`` (one label per photo, in order).
        photos: the gallery files, in the recognizer's order (kept as resolved paths).
        detectors: name -> a detector with ``score([image])`` and ``threshold``.
        gate: the name of the detector whose verdict decides with the recognizer's, or None.
        max_pixels, min_side: the upload limits (`read_upload`).
        drawings: the folder the page writes drawn images to (`drawing_folder`).
    """

    def __init__(
        self,
        recognizer: Recognizer,
        photos: Sequence[Path],
        detectors: Mapping | None = None,
        gate: str | None = None,
        max_pixels: int = MAX_PIXELS,
        min_side: int = MIN_SIDE,
        drawings: Path | None = None,
    ):
        detectors = dict(detectors or {})
        if gate is not None and gate not in detectors:
            raise ValueError(f"gate {gate!r} is not one of the detectors {sorted(detectors)}")
        if len(photos) != len(recognizer.labels):
            raise ValueError(f"{len(photos)} photos for {len(recognizer.labels)} gallery labels")
        self.recognizer, self.photos = recognizer, [Path(p).resolve() for p in photos]
        self.detectors, self.gate = detectors, gate
        self.max_pixels, self.min_side = max_pixels, min_side
        self.drawings = Path(drawings) if drawings is not None else None

    def drawing_folder(self) -> Path:
        """The folder for drawn images: ``drawings``, or a temporary one made on the first call."""
        if self.drawings is None:
            self.drawings = Path(tempfile.mkdtemp(prefix="landmark-demo-"))
        self.drawings.mkdir(parents=True, exist_ok=True)
        return self.drawings

    def examples(self, n: int = 6) -> list[tuple[Path, str]]:
        """``(photo, landmark)``: the first gallery photo of the first ``n`` landmarks."""
        first: dict = {}
        for photo, label in zip(self.photos, self.recognizer.labels, strict=True):
            first.setdefault(str(label), photo)
        return [(photo, label) for label, photo in first.items()][:n]

    def verdicts(self, image: np.ndarray, result: Recognition) -> list[Verdict]:
        """The recognizer's verdict, then each detector's (module docstring)."""
        out = [
            Verdict("recognizer", result.landmark is not None, result.score, result.threshold, True)
        ]
        for name, detector in self.detectors.items():
            score = float(detector.score([image])[0])
            threshold = float(detector.threshold)
            out.append(Verdict(name, score >= threshold, score, threshold, name == self.gate))
        return out

    def answer(self, path: str | Path) -> Answer:
        """The `Answer` for one uploaded file; `UploadError` when it cannot be used."""
        start = time.perf_counter()
        image = read_upload(path, self.max_pixels, self.min_side)
        result = self.recognizer.recognize(image)
        verdicts = self.verdicts(image, result)
        refused = [v for v in verdicts if v.gates and not v.landmark]
        landmark = None if refused else str(result.landmark)
        retrieved = [
            Retrieved(str(self.photos[c.index]), str(c.landmark), c.cosine, c.match.inliers)
            for c in result.candidates
        ]
        matches = None
        if result.candidates and result.candidates[0].match.inliers > 0:
            best = result.candidates[0]
            gallery_image = load_image(self.photos[best.index])
            matches = draw_matches(image, gallery_image, best.match.pairs)
        return Answer(
            Path(path).name,
            landmark,
            summary(landmark, result, refused, verdicts),
            top_landmarks(result, self.recognizer),
            verdicts,
            retrieved,
            matches,
            time.perf_counter() - start,
        )


def summary(
    landmark: str | None,
    result: Recognition,
    refused: Sequence[Verdict],
    verdicts: Sequence[Verdict] = (),
) -> str:
    """One sentence that names one of three cases, and why.

    "A known landmark: NAME" (accepted); `UNKNOWN_LANDMARK` when only the recognizer rejects
    it and every detector shown says "landmark" (a landmark the gallery lacks); "No landmark"
    when a detector shown says it is none; "Not a known landmark" with no detector shown.
    """
    detectors = [v for v in verdicts if v.name != "recognizer"]
    if landmark is None and detectors and all(v.landmark for v in detectors):
        names = ", ".join(f"{v.name} {v.score:.3g} >= {v.threshold:.3g}" for v in detectors)
        return (
            f"{UNKNOWN_LANDMARK[0].upper()}{UNKNOWN_LANDMARK[1:]}: the detectors say landmark "
            f"({names}), but no gallery landmark's evidence is above its threshold"
        )
    if landmark is not None:
        return f"A known landmark: {landmark} (confidence {result.confidence:.2f})"
    reasons = []
    for v in refused:
        if v.name == "recognizer":
            guess = f" (best guess: {result.best})" if v.score > 0 else ""
            reasons.append(
                f"the best landmark's evidence is {v.score:.3g}, not above its threshold "
                f"{v.threshold:.3g}{guess}"
            )
        else:
            reasons.append(f"{v.name} scores {v.score:.3g}, below its threshold {v.threshold:.3g}")
    if result.landmark is not None:
        reasons.append(f"the recognizer alone would say {result.landmark}")
    case = "No landmark" if any(not v.landmark for v in detectors) else "Not a known landmark"
    return f"{case}: {'; '.join(reasons)}"
