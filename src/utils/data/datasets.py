"""Datasets and loaders over manifests and image folders.

- `ClassMap`: ``landmark_id <-> class index``, built from the train split (sorted ids) and
  saved as JSON beside the checkpoints so that val/test/inference use the same indices.
- `ManifestDataset`: rows ``id,landmark_id`` of a manifest under a data root; item ``i`` is
  ``(image, class index)`` with ``image`` the transform's output (``(3, s, s)`` float32).
- `FolderDataset`: every image under a folder (e.g. non-landmarks), with one fixed label.
- `make_loader`: a ``DataLoader`` with workers, pinned memory, persistent and seeded workers.

JPEGs are decoded at reduced DCT scale (``decode_side``): a 1600x1200 file feeding a 256 px
crop is decoded at 400x300, which is what keeps 4 vCPUs from starving a T4.

``ManifestDataset(..., cache=True)`` keeps the decoded (reduced-scale) arrays in memory, so that
later epochs spend the CPU on the network rather than on JPEG decoding; `fill_cache` decodes
them all up front (before loader workers fork, so that they share the filled cache). A cached
image is exactly what `load_image` returns, so caching never changes a result. Memory: about
``3 * side * side * aspect`` bytes per image with ``side >= min_side`` the decoded shorter side
(e.g. ~80 MB for the default profile's 1364 manifest images at ``min_side=108``).
"""

from __future__ import annotations

import json
import random
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from utils.data.gldv2 import image_path, read_csv_checked
from utils.data.images import ImageLoadError, image_files, load_image

Transform = Callable[..., dict]
BROKEN_POLICIES = ("raise", "replace", "drop")


class ClassMap:
    """Bijection between landmark ids and contiguous class indices ``0..n-1`` (sorted ids)."""

    def __init__(self, landmark_ids: Sequence[int]):
        ids = sorted({int(i) for i in landmark_ids})
        if not ids:
            raise ValueError("a class map needs at least one landmark id")
        self.landmark_ids = ids
        self._index = {landmark: index for index, landmark in enumerate(ids)}

    @classmethod
    def from_manifest(cls, frame: pd.DataFrame) -> ClassMap:
        """Classes of a train split (``landmark_id`` column)."""
        return cls(frame["landmark_id"].tolist())

    def __len__(self) -> int:
        return len(self.landmark_ids)

    def index(self, landmark_id: int) -> int:
        """Class index of a landmark id; KeyError names the id when it is not a class."""
        try:
            return self._index[int(landmark_id)]
        except KeyError:
            raise KeyError(
                f"landmark {landmark_id} is not one of the {len(self)} classes"
            ) from None

    def landmark(self, index: int) -> int:
        """Landmark id of a class index."""
        return self.landmark_ids[index]

    def save(self, path: str | Path) -> Path:
        """Write ``{"landmark_ids": [...]}``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"landmark_ids": self.landmark_ids}) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ClassMap:
        """Read a file written by `save`."""
        return cls(json.loads(Path(path).read_text(encoding="utf-8"))["landmark_ids"])


def _apply(transform: Transform | None, image: np.ndarray):
    return image if transform is None else transform(image=image)["image"]


class ManifestDataset(Dataset):
    """``(image, class index)`` for each manifest row; see the module docstring.

    Args:
        manifest: a frame or CSV path with ``id,landmark_id``.
        data_root: the dataset folder (images at ``train/a/b/c/<id>.jpg``).
        class_map: classes; rows of other landmarks are an error (pass the train map).
        transform: albumentations transform (``transform(image=...)["image"]``) or None.
        min_side: shorter side JPEGs may be decoded at (None: full size).
        check_files: verify at construction that every image exists, naming the first missing.
        on_broken: what an unreadable image does: ``raise`` (`ImageLoadError` naming id and
            file); ``replace`` (training: reported once, replaced by the next readable row, so
            a long training goes on); ``drop`` (evaluation: the item is ``None``, which
            `drop_broken_collate` leaves out, and items carry their row index, so predictions
            stay aligned with ids and the dropped rows can be counted).
        split: the image folder under ``data_root`` (``train`` or ``test``).
        cache: keep decoded images in memory (see the module docstring).
        label_column: the column mapped through ``class_map`` (``label`` for a binary
            landmark / non-landmark manifest, `utils.data.manifests.read_binary_split`).

    A manifest with a ``path`` column names each image's file (relative to ``data_root``, or
    absolute) instead of the Kaggle layout's ``split/a/b/c/<id>.jpg``.
    """

    def __init__(
        self,
        manifest: pd.DataFrame | str | Path,
        data_root: str | Path,
        class_map: ClassMap,
        transform: Transform | None = None,
        min_side: int | None = None,
        check_files: bool = True,
        split: str = "train",
        on_broken: str = "raise",
        cache: bool = False,
        label_column: str = "landmark_id",
    ):
        if on_broken not in BROKEN_POLICIES:
            raise ValueError(f"on_broken must be one of {BROKEN_POLICIES}, not {on_broken!r}")
        if not isinstance(manifest, pd.DataFrame):
            manifest = read_csv_checked(manifest, ("id", "landmark_id"), dtype={"id": str})
        self.ids = manifest["id"].astype(str).tolist()
        self.labels = [class_map.index(i) for i in manifest[label_column]]
        if "path" in manifest.columns:
            self.paths = [Path(data_root) / p for p in manifest["path"].astype(str)]
        else:
            self.paths = [image_path(data_root, i, split) for i in self.ids]
        self.transform, self.min_side = transform, min_side
        self.on_broken, self.broken = on_broken, set()
        self.cache: dict[int, np.ndarray] | None = {} if cache else None
        if check_files:
            missing = [(i, p) for i, p in zip(self.ids, self.paths, strict=True) if not p.is_file()]
            if missing:
                image_id, path = missing[0]
                raise FileNotFoundError(
                    f"image {image_id} of the manifest is missing: expected {path} "
                    f"({len(missing)} of {len(self.ids)} files missing)"
                )

    def __len__(self) -> int:
        return len(self.ids)

    def _decode(self, row: int) -> np.ndarray:
        """The decoded image of a row, from the cache when it is on (filling it)."""
        if self.cache is None:
            return load_image(self.paths[row], min_side=self.min_side)
        image = self.cache.get(row)
        if image is None:
            image = self.cache[row] = load_image(self.paths[row], min_side=self.min_side)
        return image

    def fill_cache(self) -> int:
        """Decode every readable image into the cache (a no-op without ``cache``).

        Unreadable images are left out (`__getitem__` deals with them). Returns the number of
        cached images.
        """
        if self.cache is None:
            return 0
        for row in range(len(self.ids)):
            try:
                self._decode(row)
            except ImageLoadError:
                pass
        return len(self.cache)

    def __getitem__(self, key: int | tuple[int, int]):
        """Item ``key``: a row index, or ``(batch_seed, index)`` opening a `SeededBatches` batch.

        A batch seed reseeds the transform first, so the batch's augmentations depend on the
        batch, not on which worker made it or what it made before.
        """
        if isinstance(key, tuple):
            seed, index = key
            if hasattr(self.transform, "set_random_seed"):
                self.transform.set_random_seed(seed)
        else:
            index = key
        for offset in range(len(self.ids)):
            row = (index + offset) % len(self.ids)
            try:
                image = self._decode(row)
            except ImageLoadError as err:
                error = ImageLoadError(err.path, f"image id {self.ids[row]}: {err.reason}")
                if self.on_broken == "raise":
                    raise error from err
                if self.on_broken == "drop":
                    warnings.warn(f"{error}; left out of the evaluation", stacklevel=2)
                    return None
                if row not in self.broken:
                    self.broken.add(row)
                    warnings.warn(f"{error}; using the next readable image", stacklevel=2)
                continue
            item = _apply(self.transform, image), self.labels[row]
            return (*item, row) if self.on_broken == "drop" else item
        raise ImageLoadError(self.paths[index], "no image of this manifest can be read")


class FolderDataset(Dataset):
    """Every image under a folder (recursive, sorted), or a list of files, with one label.

    ``on_broken``: ``raise`` (`ImageLoadError` naming the file) or ``drop`` (the item is
    ``None`` and readable items carry their row, ``(image, label, row)``, as in
    `ManifestDataset`, so a batch job over e.g. test files keeps every id). ``warn=False``
    drops without a warning, for a caller that counts and reports the dropped rows itself.
    """

    def __init__(
        self,
        source: str | Path | Sequence[str | Path],
        label: int = 0,
        transform: Transform | None = None,
        min_side: int | None = None,
        on_broken: str = "raise",
        warn: bool = True,
    ):
        if on_broken not in ("raise", "drop"):
            raise ValueError(f"on_broken must be raise or drop, not {on_broken!r}")
        if isinstance(source, str | Path):
            folder = Path(source)
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder}: image folder not found")
            paths = image_files(folder)
            if not paths:
                raise ValueError(f"{folder}: no image files (any format Pillow opens) found")
        else:
            paths = [Path(p) for p in source]
        self.paths = paths
        self.label, self.transform, self.min_side = label, transform, min_side
        self.on_broken, self.warn = on_broken, warn

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            image = load_image(self.paths[index], self.min_side)
        except ImageLoadError as err:
            if self.on_broken == "raise":
                raise
            if self.warn:
                warnings.warn(f"{err}; left out", stacklevel=2)
            return None
        item = _apply(self.transform, image), self.label
        return (*item, index) if self.on_broken == "drop" else item


def drop_broken_collate(batch: list):
    """``default_collate`` of the readable items (``None`` marks a dropped one), or ``None``."""
    kept = [item for item in batch if item is not None]
    return default_collate(kept) if kept else None


def seed_worker(worker_id: int) -> None:
    """Seed a loader worker: python, numpy, the dataset's albumentations transform; 1 thread.

    The seed is torch's per-worker seed, itself drawn from the loader's seeded generator, so a
    seeded loader gives the same batches on every run. OpenCV and torch run single-threaded in
    a worker (the workers already fill the cores). ``cv2.setNumThreads(0)``, not 1: in a worker
    forked after the parent used OpenCV's thread pool, ``setNumThreads(1)`` deadlocks.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
    cv2.setNumThreads(0)
    torch.set_num_threads(1)
    info = torch.utils.data.get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info else None
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int = 32,
    shuffle: bool = False,
    workers: int = 2,
    seed: int = 0,
    pin_memory: bool | None = None,
    drop_last: bool = False,
    collate_fn: Callable | None = None,
    sampler: torch.utils.data.Sampler | None = None,
    persistent: bool = True,
    batch_sampler: torch.utils.data.Sampler | None = None,
) -> DataLoader:
    """A ``DataLoader`` with seeded workers, persistent when ``persistent`` and ``workers > 0``.

    ``pin_memory`` defaults to whether CUDA is available. With ``workers == 0`` the dataset's
    transform is seeded here instead of in the workers. A ``sampler`` (e.g. DDP's) replaces
    ``shuffle``; a ``batch_sampler`` (`utils.data.batches.SeededBatches`) replaces
    ``batch_size``, ``shuffle``, ``sampler`` and ``drop_last``.
    """
    generator = torch.Generator().manual_seed(seed)
    if workers == 0 and hasattr(getattr(dataset, "transform", None), "set_random_seed"):
        dataset.transform.set_random_seed(seed)
    batching = (
        {"batch_sampler": batch_sampler}
        if batch_sampler is not None
        else {
            "batch_size": batch_size,
            "shuffle": shuffle if sampler is None else None,
            "sampler": sampler,
            "drop_last": drop_last,
        }
    )
    return DataLoader(
        dataset,
        **batching,
        num_workers=workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=persistent and workers > 0,
        worker_init_fn=seed_worker,
        generator=generator,
        collate_fn=collate_fn or default_collate,
        prefetch_factor=4 if workers > 0 else None,
    )
