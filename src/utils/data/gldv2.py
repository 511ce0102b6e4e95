"""The data contract of GLDv2 and of Kaggle's landmark-recognition-2021.

A data root holds (Kaggle's layout; the embedded mini dataset writes the same files):

- ``train.csv``: ``id,landmark_id`` (GLDv2 itself adds ``url``: ``id,url,landmark_id``);
- ``train_clean.csv``: ``landmark_id,images``, the ids of the cleaned subset, space-separated;
- ``train_label_to_category.csv``: ``landmark_id,category``, a Wikimedia Commons URL such as
  ``http://commons.wikimedia.org/wiki/Category:Eiffel_Tower`` (name: ``Eiffel Tower``);
- ``train/a/b/c/abc....jpg`` and ``test/a/b/c/abc....jpg``: images by id;
- ``sample_submission.csv``: ``id,landmarks``, one row per test id.

Every reader checks its columns and raises `DataContractError` with one line that names the
file and the columns it expected.

CLI::

    python -m utils manifest --data-root DIR --top 100 --seed 42 --out data_manifests/NAME
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pandas as pd

KAGGLE_ROOT = Path("/kaggle/input/landmark-recognition-2021")
TRAIN_COLUMNS = ("id", "landmark_id")
CLEAN_COLUMNS = ("landmark_id", "images")
CATEGORY_COLUMNS = ("landmark_id", "category")
SUBMISSION_COLUMNS = ("id", "landmarks")


class DataContractError(ValueError):
    """A data file is missing or does not have the columns the contract expects."""


def default_data_root(fallback: str | Path = "data/minigld-default") -> Path:
    """Kaggle's competition folder when it exists (inside a Kaggle kernel), else ``fallback``."""
    return KAGGLE_ROOT if KAGGLE_ROOT.is_dir() else Path(fallback)


def read_csv_checked(path: str | Path, columns: tuple[str, ...], **kwargs) -> pd.DataFrame:
    """Read a CSV whose header must contain ``columns`` (extra columns are kept).

    Raises:
        DataContractError: the file is missing, empty, or lacks one of ``columns``.
    """
    path = Path(path)
    expected = ",".join(columns)
    if not path.is_file():
        raise DataContractError(f"{path}: file not found (expected a CSV with columns {expected})")
    try:
        frame = pd.read_csv(path, keep_default_na=False, **kwargs)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataContractError(
            f"{path}: unreadable CSV ({err}); expected columns {expected}"
        ) from err
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = ",".join(map(str, frame.columns))
        raise DataContractError(f"{path}: expected columns {expected}, found {found or 'none'}")
    return frame


def _landmark_ids(frame: pd.DataFrame, path: Path) -> pd.Series:
    ids = pd.to_numeric(frame["landmark_id"], errors="coerce")
    if ids.isna().any():
        row = int(ids.isna().to_numpy().argmax()) + 2  # header is line 1
        raise DataContractError(f"{path}: landmark_id must be an integer (line {row})")
    return ids.astype("int64")


def read_train(root: str | Path) -> pd.DataFrame:
    """``train.csv`` as a frame with columns ``id`` (str) and ``landmark_id`` (int64)."""
    path = Path(root) / "train.csv"
    frame = read_csv_checked(path, TRAIN_COLUMNS, dtype={"id": str})
    return pd.DataFrame({"id": frame["id"], "landmark_id": _landmark_ids(frame, path)})


def read_train_clean(root: str | Path) -> pd.DataFrame:
    """``train_clean.csv`` exploded to one row per image: columns ``id``, ``landmark_id``."""
    path = Path(root) / "train_clean.csv"
    frame = read_csv_checked(path, CLEAN_COLUMNS, dtype={"images": str})
    frame = frame.assign(landmark_id=_landmark_ids(frame, path), id=frame["images"].str.split())
    rows = frame[["id", "landmark_id"]].explode("id").dropna(subset=["id"])
    return rows.reset_index(drop=True)


def category_to_name(category: str) -> str:
    """Human name from a Wikimedia Commons category URL.

    >>> category_to_name("http://commons.wikimedia.org/wiki/Category:Eiffel_Tower")
    'Eiffel Tower'
    """
    tail = category.rsplit("Category:", 1)[-1] if "Category:" in category else category
    tail = tail.rstrip("/").rsplit("/", 1)[-1]
    return unquote(tail).replace("_", " ").strip()


def read_categories(root: str | Path) -> pd.DataFrame:
    """``train_label_to_category.csv`` with an added ``name`` column."""
    path = Path(root) / "train_label_to_category.csv"
    frame = read_csv_checked(path, CATEGORY_COLUMNS, dtype={"category": str})
    frame = frame.assign(landmark_id=_landmark_ids(frame, path))
    return frame.assign(name=frame["category"].map(category_to_name))


def landmark_names(root: str | Path) -> dict[int, str]:
    """``landmark_id -> name``; ``{}`` when the data root has no category file."""
    if not (Path(root) / "train_label_to_category.csv").is_file():
        return {}
    frame = read_categories(root)
    return dict(zip(frame["landmark_id"].tolist(), frame["name"].tolist(), strict=True))


def image_path(root: str | Path, image_id: str, split: str = "train") -> Path:
    """``root/split/a/b/c/abc....jpg`` for image id ``abc...``."""
    if len(image_id) < 3:
        raise ValueError(f"image id {image_id!r} is shorter than the 3 characters of its path")
    return Path(root) / split / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"


def read_test_ids(root: str | Path) -> list[str]:
    """Test ids from ``sample_submission.csv``, else from the files under ``test/``."""
    root = Path(root)
    sample = root / "sample_submission.csv"
    if sample.is_file():
        return read_csv_checked(sample, SUBMISSION_COLUMNS, dtype={"id": str})["id"].tolist()
    test_dir = root / "test"
    if not test_dir.is_dir():
        raise DataContractError(f"{root}: neither sample_submission.csv nor test/ exists")
    return sorted(p.stem for p in test_dir.glob("*/*/*/*.jpg"))


def read_source(root: str | Path, source: str = "auto") -> tuple[pd.DataFrame, Path]:
    """The labelled ids a manifest is built from, and the file they came from.

    ``source``: ``clean`` (``train_clean.csv``, GLDv2-clean), ``train`` (``train.csv``), or
    ``auto`` (clean when present). Kaggle's 2021 ``train.csv`` already is GLDv2-clean.
    """
    root = Path(root)
    if source not in ("auto", "clean", "train"):
        raise ValueError(f"source must be auto, clean or train, not {source!r}")
    if source == "clean" or (source == "auto" and (root / "train_clean.csv").is_file()):
        return read_train_clean(root), root / "train_clean.csv"
    return read_train(root), root / "train.csv"
