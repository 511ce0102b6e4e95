"""One folder of photos per landmark -> a folder in the competition's layout.

Udacity's ``landmark_images/`` (``00.Haleakala_National_Park/*.jpg``, ...) or a person's own
photos become what every notebook reads (`utils.data.gldv2`):

- ``train.csv`` (``id,landmark_id``) and ``train/a/b/c/<id>.jpg``;
- ``train_label_to_category.csv`` (``landmark_id,category``: the folder's name);
- ``test/a/b/c/<id>.jpg``, ``sample_submission.csv`` (``id,landmarks``, empty) and
  ``test_solution.csv`` (``id,landmarks``: the true landmark id, empty for a non-landmark);
- ``import.json``: what was done (counts, the settings, the files skipped and why).

Landmark ids are 0, 1, ... in the order of the folder names. A photo's id is the first 16 hex
digits of the SHA-256 of its bytes, so a rerun gives the same ids and a photo that appears twice
is imported once (the second is listed as a duplicate). The test part is stratified: each
landmark with at least `MIN_FOR_TEST` photos gives ``round(test_fraction * n)`` of them (at least
1), drawn with a seeded generator; photos of ``non_landmarks`` (optional) all go to test with an
empty truth. Every photo is decoded (any format Pillow opens) and written as a JPEG; one that
cannot be read is listed and skipped, never fatal.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from utils.data.gldv2 import image_path
from utils.data.images import ImageLoadError, image_files, load_image

MIN_FOR_TEST = 2  # a landmark with fewer photos keeps them all in train
JPEG_QUALITY = 95


@dataclass
class ImportReport:
    """What `import_folders` wrote: counts per part, and the files it skipped with reasons."""

    landmarks: int = 0
    train: int = 0
    test: int = 0
    non_landmarks: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self, out: Path) -> str:
        """One line of counts, then one line per skipped file."""
        lines = [
            f"wrote {out}: {self.landmarks} landmarks, train {self.train} photos, test "
            f"{self.test} ({self.non_landmarks} of them non-landmarks), "
            f"{len(self.skipped)} skipped"
        ]
        lines += [f"  skipped {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


def photo_id(path: Path) -> str:
    """First 16 hex digits of the SHA-256 of the file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def landmark_folders(src: Path) -> list[Path]:
    """The sub-folders of ``src`` that hold images, sorted by name; ValueError if under two."""
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: folder not found (expected one sub-folder per landmark)")
    folders = [p for p in sorted(src.iterdir()) if p.is_dir() and image_files(p)]
    if len(folders) < 2:
        raise ValueError(
            f"{src}: expected sub-folders of images for at least two landmarks (one per "
            f"landmark, named after it), found {len(folders)}"
        )
    return folders


def test_count(n: int, fraction: float) -> int:
    """Photos of a landmark of ``n`` that go to test (module docstring).

    >>> [test_count(n, 0.2) for n in (1, 2, 5, 12)]
    [0, 1, 1, 2]
    """
    if n < MIN_FOR_TEST or fraction <= 0:
        return 0
    return min(n - 1, max(1, round(fraction * n)))


def import_folders(
    src: str | Path,
    out: str | Path,
    test_fraction: float = 0.2,
    non_landmarks: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> ImportReport:
    """Write ``out`` in the competition's layout from ``src`` (module docstring)."""
    src, out = Path(src), Path(out)
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), not {test_fraction}")
    folders = landmark_folders(src)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: exists and is not empty; choose a new folder")
    rng = np.random.default_rng(seed)
    report = ImportReport(landmarks=len(folders))
    plan: list[tuple[Path, int | None]] = []  # (file, landmark id or None for a non-landmark)
    for landmark, folder in enumerate(folders):
        plan += [(path, landmark) for path in image_files(folder)]
    if non_landmarks is not None:
        plan += [(path, None) for path in image_files(non_landmarks)]
    seen: dict[str, str] = {}
    kept: list[tuple[str, Path, int | None]] = []
    for path, landmark in tqdm(plan, desc="import", disable=not progress, unit="img"):
        try:
            image = load_image(path)
        except ImageLoadError as err:
            report.skipped.append((str(path), err.reason))
            continue
        key = photo_id(path)
        if key in seen:
            report.skipped.append((str(path), f"duplicate of {seen[key]}"))
            continue
        seen[key] = str(path)
        kept.append((key, path, landmark))
        _write_jpeg(image, out / "pending" / f"{key}.jpg")
    train, test = [], []
    for landmark in range(len(folders)):
        ids = sorted(k for k, _, lm in kept if lm == landmark)
        chosen = set(rng.permutation(ids)[: test_count(len(ids), test_fraction)].tolist())
        train += [(k, landmark) for k in ids if k not in chosen]
        test += [(k, str(landmark)) for k in ids if k in chosen]
    others = sorted(k for k, _, lm in kept if lm is None)
    test += [(k, "") for k in others]
    for key, _ in train:
        _move(out / "pending" / f"{key}.jpg", image_path(out, key, "train"))
    for key, _ in test:
        _move(out / "pending" / f"{key}.jpg", image_path(out, key, "test"))
    (out / "pending").rmdir()
    pd.DataFrame(train, columns=["id", "landmark_id"]).to_csv(out / "train.csv", index=False)
    categories = [(i, folder.name) for i, folder in enumerate(folders)]
    pd.DataFrame(categories, columns=["landmark_id", "category"]).to_csv(
        out / "train_label_to_category.csv", index=False
    )
    test = sorted(test)
    solution = pd.DataFrame(test, columns=["id", "landmarks"])
    solution.to_csv(out / "test_solution.csv", index=False)
    solution.assign(landmarks="").to_csv(out / "sample_submission.csv", index=False)
    report.train, report.test, report.non_landmarks = len(train), len(test), len(others)
    settings = {"src": str(src), "test_fraction": test_fraction, "seed": seed}
    settings["non_landmarks"] = str(non_landmarks) if non_landmarks is not None else None
    (out / "import.json").write_text(
        json.dumps({**settings, **asdict(report)}, indent=2) + "\n", encoding="utf-8"
    )
    return report


def _write_jpeg(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, "JPEG", quality=JPEG_QUALITY)


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    source.replace(target)
