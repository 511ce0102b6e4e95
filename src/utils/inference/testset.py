"""The competition's test set: its ids, which kind of run this is, and a dataset over it.

Kaggle re-runs a submitted notebook on the hidden test set, whose ``sample_submission.csv``
(and ``test/`` folder) replaces the public one. Competitors tell the two runs apart by the
size of the test set: `run_mode` calls a run ``interactive`` when the number of test ids equals
the public sample's row count, and ``full`` otherwise (or when asked for).
"""

from __future__ import annotations

from pathlib import Path

from utils.data.augment import decode_side, eval_transform
from utils.data.datasets import FolderDataset
from utils.data.gldv2 import image_path

RUN_MODES = ("auto", "interactive", "full")


def run_mode(test_ids: int, public_rows: int, mode: str = "auto") -> str:
    """``interactive`` or ``full`` (see the module docstring); ``mode`` may force either."""
    if mode not in RUN_MODES:
        raise ValueError(f"mode must be one of {RUN_MODES}, not {mode!r}")
    if mode != "auto":
        return mode
    return "interactive" if test_ids == public_rows else "full"


def test_dataset(
    data_root: str | Path, ids: list[str], image_size: int, pipeline: int = 2
) -> FolderDataset:
    """The test images of ``ids`` (``test/a/b/c/<id>.jpg``) with the evaluation transform.

    Items are ``(image (3, s, s), 0, row)``; an unreadable or missing file is ``None`` (a
    warning names it), so the job goes on and its row is written empty.
    """
    paths = [image_path(data_root, image_id, "test") for image_id in ids]
    return FolderDataset(
        paths,
        transform=eval_transform(image_size, pipeline),
        min_side=decode_side(image_size, pipeline, train=False),
        on_broken="drop",
    )
