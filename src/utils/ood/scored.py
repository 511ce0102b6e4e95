"""Notebook 07 on a competition folder that ships its truth but no non-landmark photo.

The competition's layout holds no non-landmark photo to train on; a folder scored like
``gldv2-sample`` or `utils.data.folders`'s import (``test_solution.csv``: each test id's
landmark, empty where it shows none of the train landmarks) holds such photos in its test set.
`build_split` turns that test set into 07's three splits, so the detectors that need no
non-landmark training photo (ODIN, matching without a non-landmark database, ImageNet) are
chosen and measured on the folder's real photos:

- ``val``: the test ids of 08's tune part (`utils.submission.tune_part`, a hash of the id
  fixed in code): ODIN's ``T`` and ``epsilon``, and every threshold, are chosen here;
- ``test``: the ids of 08's check part, read once every threshold is frozen (`SealedSplits`);
- ``train``: at most ``per_landmark`` photos of each landmark of ``train.csv`` (drawn with
  ``seed``), matching's landmark database; with no non-landmark database its score is
  ``max_j cos(q, L_j)`` (``penalty_k = 0``).

Label 1: the photo shows a landmark of ``train.csv``; 0: it does not, which, as the competition
counts it, covers both photos of no landmark and photos of places absent from train.
``landmark_id`` is the true id (the smallest where several are given), -1 for none. ``source``
tells the kinds apart where the data root has gldv2-sample's ``sources.csv`` (``id,place``,
``place`` `NO_PLACE` for a photo of no landmark): ``train landmark``, ``other place``, ``no
landmark``; without it the label-0 photos are ``not in train``. The binary classifier and GLR
2020's penalty learn from non-landmark photos and are left out. `mode` says which of 07's
three ways a data root takes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from utils.data.gldv2 import image_path, read_test_ids
from utils.ood.data import draw_landmark_photos, non_landmark_sources, relative_path
from utils.submission import read_solution, tune_part

SOLUTION = "test_solution.csv"
TRAIN_SOURCE = "train.csv"  # the landmark database's rows
NO_PLACE = "non_landmark"  # sources.csv's place of a photo that shows no landmark
KINDS = ("train landmark", "other place", "no landmark", "not in train")  # a test row's source


def mode(data_root: str | Path, extra_root: str | Path | None = None) -> str:
    """07's way for a data root: ``trained``, ``scored`` or ``untrained``.

    ``trained`` with non-landmark photos (`utils.ood.data.non_landmark_sources`), else
    ``scored`` where the data root ships ``test_solution.csv``, else ``untrained``.
    """
    if non_landmark_sources(data_root, extra_root):
        return "trained"
    return "scored" if (Path(data_root) / SOLUTION).is_file() else "untrained"


def build_split(data_root: str | Path, per_landmark: int = 70, seed: int = 0) -> pd.DataFrame:
    """07's split of a scored test set (module docstring), one row per photo with its ``split``.

    Columns as `utils.ood.data.build_split`'s: ``id, landmark_id, path, label, source, split``.
    Test ids come from ``sample_submission.csv`` (else ``test/``); an id the solution does not
    list raises, since its label would be a guess.
    """
    data_root = Path(data_root)
    rng = np.random.default_rng(seed)
    rows = []
    for group in draw_landmark_photos(data_root, per_landmark, rng):
        for image_id, landmark in sorted(group):
            path = relative_path(image_path(data_root, image_id), data_root)
            rows.append((image_id, landmark, path, 1, TRAIN_SOURCE, "train"))
    solution = read_solution(data_root / SOLUTION)
    truth = dict(zip(solution["id"], solution["truth"], strict=True))
    test_ids = read_test_ids(data_root)
    unknown = [i for i in test_ids if i not in truth]
    if unknown:
        raise ValueError(
            f"{data_root / SOLUTION}: no truth for {len(unknown)} test ids (first: {unknown[0]}); "
            "every test id needs a row, empty where it shows no landmark of train.csv"
        )
    places = _places(data_root)
    tune = tune_part(test_ids)
    for image_id, in_tune in zip(test_ids, tune, strict=True):
        landmark = min(truth[image_id]) if truth[image_id] else -1
        path = relative_path(image_path(data_root, image_id, "test"), data_root)
        split = "val" if in_tune else "test"
        rows.append(
            (
                image_id,
                landmark,
                path,
                int(landmark >= 0),
                _kind(landmark, places.get(image_id)),
                split,
            )
        )
    frame = pd.DataFrame(rows, columns=["id", "landmark_id", "path", "label", "source", "split"])
    if frame["id"].duplicated().any():
        raise ValueError(f"{data_root}: an id is both a train and a test photo")
    return frame


def _places(data_root: Path) -> dict[str, str]:
    """``{id: place}`` of ``sources.csv`` where it has both columns, else empty."""
    path = data_root / "sources.csv"
    if not path.is_file():
        return {}
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"id", "place"} <= set(frame.columns):
        return {}
    return dict(zip(frame["id"], frame["place"], strict=True))


def _kind(landmark: int, place: str | None) -> str:
    """A test photo's `KINDS` entry from its true landmark and its place (None: unknown)."""
    if landmark >= 0:
        return KINDS[0]
    if place is None:
        return KINDS[3]
    return KINDS[2] if place == NO_PLACE else KINDS[1]
