"""GLDv2-Use manifests: the N most frequent landmarks (or all of them), each split 80/10/10.

The report trains on the top-100 landmarks of GLDv2-clean, split 80/10/10, but left the ids of
each set as a TODO; these files are those ids. A manifest folder holds ``train.csv``,
``val.csv``, ``test.csv`` (``id,landmark_id``) and ``summary.json`` (source file and its
sha256, seed, class list, counts per split).

Selection: classes ranked by image count, ties broken by the smaller ``landmark_id``.
Split: within each class the ids are sorted, shuffled with a generator seeded by
``(seed, landmark_id)``, and cut into ``n_val = n_test = max(1, floor((n + 5) / 10))`` (10%
rounded half up) and the rest for train, so every class is in all three
splits and a class's split does not depend on which other classes were selected.

``top = 0`` keeps every landmark (the leaderboard model's manifest): a class of the top-N keeps
exactly its top-N split, so every top-N test id is a test id here; a class with fewer than
`MIN_IMAGES_PER_CLASS` images cannot be split and goes to train only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from utils.data.gldv2 import read_csv_checked, read_source

SPLITS = ("train", "val", "test")
MIN_IMAGES_PER_CLASS = 3


@dataclass(frozen=True)
class Manifests:
    """The three splits (``id,landmark_id`` frames) and the summary written beside them."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    summary: dict

    def split(self, name: str) -> pd.DataFrame:
        """One split by name (``train``, ``val`` or ``test``)."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {name!r}")
        return getattr(self, name)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


ALL = 0  # ``top`` that keeps every landmark


def top_classes(labels: pd.DataFrame, top: int) -> list[int]:
    """The ``top`` most frequent ``landmark_id`` values, ties broken by the smaller id.

    ``top = ALL`` (0) returns every landmark, in the same order.
    """
    counts = labels.groupby("landmark_id").size()
    if top < 0:
        raise ValueError(f"--top must be at least 1, or 0 for every landmark; got {top}")
    if top == ALL:
        top = len(counts)
    if top > len(counts):
        raise ValueError(f"--top {top} is larger than the {len(counts)} classes in the data")
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [int(landmark) for landmark, _ in ranked[:top]]


def adapted_top(labels: pd.DataFrame, wanted: int) -> tuple[int, str]:
    """``wanted`` landmarks, or fewer where the data has fewer that can be split; and a note.

    A landmark can be split 80/10/10 with at least `MIN_IMAGES_PER_CLASS` images; when fewer
    than ``wanted`` landmarks have that many, the top-N is all of them (the note says so).
    """
    counts = labels.groupby("landmark_id").size()
    usable = int((counts >= MIN_IMAGES_PER_CLASS).sum())
    if usable >= wanted:
        return wanted, f"top {wanted} of {len(counts)} landmarks"
    if usable == 0:
        raise ValueError(
            f"no landmark has the {MIN_IMAGES_PER_CLASS} images a train/val/test split needs "
            f"({len(counts)} landmarks)"
        )
    return usable, (
        f"top {usable}, adapted from {wanted}: the data has {len(counts)} landmarks, {usable} "
        f"of them with the {MIN_IMAGES_PER_CLASS} images a split needs"
    )


def split_class(
    ids: list[str], landmark_id: int, seed: int, small: str = "error"
) -> dict[str, list[str]]:
    """Split one class's ids 80/10/10 (see the module docstring for the exact rule).

    A class of fewer than `MIN_IMAGES_PER_CLASS` ids raises ValueError, or with
    ``small="train"`` goes to train whole.
    """
    n = len(ids)
    if n < MIN_IMAGES_PER_CLASS and small == "train":
        return {"train": sorted(ids), "val": [], "test": []}
    if n < MIN_IMAGES_PER_CLASS:
        raise ValueError(
            f"landmark {landmark_id} has {n} image(s); a class needs {MIN_IMAGES_PER_CLASS} "
            "to appear in train, val and test"
        )
    order = np.random.default_rng([seed, landmark_id]).permutation(n)
    shuffled = [sorted(ids)[i] for i in order]
    n_val = n_test = max(1, (n + 5) // 10)
    n_train = n - n_val - n_test
    return {
        "train": shuffled[:n_train],
        "val": shuffled[n_train : n_train + n_val],
        "test": shuffled[n_train + n_val :],
    }


def build_manifests(
    root: str | Path, top: int = 100, seed: int = 42, source: str = "auto"
) -> Manifests:
    """Select the ``top`` classes of the data root (0: all) and split each 80/10/10."""
    labels, source_path = read_source(root, source)
    labels = labels.drop_duplicates("id")
    classes = top_classes(labels, top)
    rows: dict[str, list[tuple[str, int]]] = {name: [] for name in SPLITS}
    grouped = labels[labels["landmark_id"].isin(classes)].groupby("landmark_id")["id"]
    for landmark_id in classes:
        parts = split_class(
            grouped.get_group(landmark_id).tolist(),
            landmark_id,
            seed,
            small="train" if top == ALL else "error",
        )
        for name in SPLITS:
            rows[name] += [(image_id, landmark_id) for image_id in parts[name]]
    frames = {
        name: pd.DataFrame(rows[name], columns=["id", "landmark_id"])
        .sort_values(["landmark_id", "id"])
        .reset_index(drop=True)
        for name in SPLITS
    }
    summary = {
        "source": source_path.name,
        "source_sha256": sha256_file(source_path),
        "seed": seed,
        "top": top,
        "num_classes": len(classes),
        "classes": classes,
        "counts": {name: len(frames[name]) for name in SPLITS},
        "split_rule": "per class: val=test=max(1,floor((n+5)/10)), train=rest",
    }
    if top == ALL:  # top-N summaries keep their former keys, byte for byte
        small = [c for c in classes if len(grouped.get_group(c)) < MIN_IMAGES_PER_CLASS]
        summary["train_only_classes"] = small
        summary["split_rule"] += f"; under {MIN_IMAGES_PER_CLASS} images: train only"
    return Manifests(summary=summary, **frames)


def write_manifests(manifests: Manifests, out: str | Path) -> Path:
    """Write ``train.csv``, ``val.csv``, ``test.csv`` and ``summary.json`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        manifests.split(name).to_csv(out / f"{name}.csv", index=False, lineterminator="\n")
    text = json.dumps(manifests.summary, indent=2) + "\n"
    (out / "summary.json").write_text(text, encoding="utf-8")
    return out


def read_manifests(folder: str | Path) -> Manifests:
    """Read a folder written by `write_manifests`."""
    folder = Path(folder)
    frames = {}
    for name in SPLITS:
        frame = read_csv_checked(folder / f"{name}.csv", ("id", "landmark_id"), dtype={"id": str})
        frames[name] = frame[["id", "landmark_id"]].astype({"landmark_id": "int64"})
    summary_path = folder / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    return Manifests(summary=summary, **frames)


BINARY_COLUMNS = ("id", "landmark_id", "path", "label")


def read_binary_split(folder: str | Path, split: str) -> pd.DataFrame:
    """One split of a binary (landmark / non-landmark) manifest folder.

    Columns ``id`` (unique), ``landmark_id`` (-1 for a non-landmark), ``path`` (relative to the
    data root, or absolute) and ``label`` (1: landmark, 0: non-landmark); extra columns
    (``source``) are kept. Written by `utils.ood.data`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    frame = read_csv_checked(Path(folder) / f"{split}.csv", BINARY_COLUMNS, dtype={"id": str})
    return frame.astype({"landmark_id": "int64", "label": "int64", "path": str})


def split_table(manifests: Manifests) -> pd.DataFrame:
    """Per-class image counts in each split, plus a total row: the report's split table."""
    counts = {
        name: manifests.split(name).groupby("landmark_id").size().rename(name) for name in SPLITS
    }
    table = pd.concat(counts.values(), axis=1).fillna(0).astype(int)
    table["total"] = table.sum(axis=1)
    table = table.sort_values(["total"], ascending=False)
    table.loc["all"] = table.sum(axis=0)
    return table
