"""A gallery of known landmarks on disk: reading it, and caching what is extracted from it.

`read_gallery`: a folder with one sub-folder per landmark (the folder name is the landmark's
name); `read_competition_gallery`: a folder in the competition's layout (``train.csv`` and
``train/a/b/c/<id>.jpg``), labelled by landmark id, named from ``train_label_to_category.csv``.
`fit_gallery` describes its photos for a `utils.retrieval.recognize.Recognizer` and
calibrates it; everything extracted is cached in the gallery's index folder
(``<gallery>.index`` by default), keyed by each file's content (SHA-256), so a second run, or a
renamed photo, costs only hashing:

- local features under ``features/`` (`utils.retrieval.vocabulary.ShortlistIndex`, which also
  holds the visual-word index when it is used);
- global descriptors under ``descriptors/<settings>/<k[:2]>/<k>.npy`` (`DescriptorStore`; the
  settings tag is a hash of the descriptor's `settings`, so another network or size never reads
  these vectors).

A damaged cache entry (a truncated ``.npy``/``.npz``, a broken ``pairs.json``) is recomputed,
with a warning naming the file; it never stops a run.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm.auto import tqdm

from utils.data.gldv2 import image_path, landmark_names, read_train
from utils.data.images import ImageLoadError, image_files, load_image
from utils.retrieval.vocabulary import WORDS, ShortlistIndex, file_key

T = TypeVar("T")


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


@dataclass(frozen=True)
class CompetitionGallery:
    """A competition folder as a gallery: photo paths, their landmark ids (str), names.

    ``names`` maps a landmark id to its name (``train_label_to_category.csv``; empty without
    it); ``missing`` lists the ids of ``train.csv`` whose image file is absent (left out).
    """

    paths: list[Path]
    labels: list[str]
    names: dict[str, str]
    missing: list[str]


def read_competition_gallery(root: str | Path) -> CompetitionGallery:
    """The train photos of a competition folder (``train.csv`` + images) as a gallery.

    Photos listed but absent are counted in ``missing`` and left out, never fatal; an
    unreadable one is left out later, where it is read (`fit_gallery` warns with its path).
    Raises `utils.data.gldv2.DataContractError` for a missing or malformed ``train.csv``, and
    ValueError when fewer than two landmarks have a photo on disk.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: competition folder not found")
    train = read_train(root)
    paths, labels, missing = [], [], []
    for image_id, landmark in zip(train["id"], train["landmark_id"], strict=True):
        path = image_path(root, image_id)
        if path.is_file():
            paths.append(path)
            labels.append(str(landmark))
        else:
            missing.append(image_id)
    if len(set(labels)) < 2:
        raise ValueError(
            f"{root}: train.csv lists {len(train)} photos, {len(paths)} on disk, of "
            f"{len(set(labels))} landmark(s); a gallery needs photos of at least two"
        )
    names = {str(k): v for k, v in landmark_names(root).items()}
    return CompetitionGallery(paths, labels, names, missing)


def report_skipped(step: Callable[[], T]) -> T:
    """``step()``, printing each warning it gives (a gallery image it could not read)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = step()
    for warning in caught:
        print(f"warning: gallery image skipped: {warning.message}", file=sys.stderr)
    return out


class DescriptorStore:
    """Global descriptors of gallery photos cached per file content (module docstring)."""

    def __init__(self, folder: str | Path, descriptor, progress: bool = True):
        settings = json.dumps(descriptor.settings, sort_keys=True)
        tag = hashlib.sha256(settings.encode()).hexdigest()[:12]
        self.folder = Path(folder) / "descriptors" / tag
        self.descriptor, self.progress, self.settings = descriptor, progress, settings

    def path(self, key: str) -> Path:
        """Where the descriptor of the photo with content ``key`` is stored."""
        return self.folder / key[:2] / f"{key}.npy"

    def _read(self, key: str) -> np.ndarray | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            vector = np.load(path, allow_pickle=False)
            if vector.ndim != 1 or not np.isfinite(vector).all():
                raise ValueError(f"expected a finite vector, got shape {vector.shape}")
            return vector.astype(np.float32)
        except (OSError, ValueError, EOFError) as err:
            warnings.warn(f"{path}: damaged cached descriptor ({err}); recomputing", stacklevel=3)
            return None

    def _write(self, key: str, vector: np.ndarray) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, vector.astype(np.float32))
        tmp.replace(path)

    def get(
        self, paths: Sequence[Path], keys: Sequence[str] | None = None
    ) -> tuple[np.ndarray, list[int]]:
        """``(N, D)`` descriptors of the readable photos and their positions in ``paths``.

        Cached vectors are read; the others are computed (a progress bar) and stored. An
        unreadable image is left out with a warning naming it.
        """
        keys = list(keys) if keys is not None else [file_key(p) for p in paths]
        vectors: dict[int, np.ndarray] = {}
        todo = []
        for i, key in enumerate(keys):
            found = self._read(key)
            if found is None:
                todo.append(i)
            else:
                vectors[i] = found
        if todo:  # what the vectors of this folder are, for a reader of the cache
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / "settings.json").write_text(self.settings + "\n", encoding="utf-8")
        for i in tqdm(todo, desc="gallery: descriptors", disable=not self.progress or not todo):
            try:
                vector = self.descriptor([load_image(paths[i])])[0]
            except ImageLoadError as err:
                warnings.warn(f"{err}; left out of the gallery", stacklevel=2)
                continue
            self._write(keys[i], vector)
            vectors[i] = vector
        kept = sorted(vectors)
        if not kept:
            return np.zeros((0, 0), np.float32), []
        return np.stack([vectors[i] for i in kept]), kept


def fit_gallery(
    recognizer,
    paths: Sequence[Path],
    labels: Sequence[str],
    cache: str | Path,
    shortlist: int = 0,
    workers: int = 1,
    progress: bool = True,
    words: int = WORDS,
) -> list[int]:
    """Describe the gallery (cached, module docstring) and calibrate ``recognizer`` on it.

    ``shortlist`` > 0 without a global embedder: the visual-word index verifies that many
    photos per query. Returns the positions in ``paths`` of the photos kept (readable ones);
    the recognizer's gallery index ``i`` is ``paths[kept[i]]``.
    """
    index = None
    kept = list(range(len(paths)))
    if recognizer.extractor is not None:
        index = ShortlistIndex(cache, recognizer.extractor, words=words, progress=progress)
        if recognizer.embedder is None and shortlist > 0:
            kept = report_skipped(lambda: index.update(paths, workers=workers))
            recognizer.shortlist, recognizer.shortlist_size = index, shortlist
        else:
            keys = report_skipped(lambda: index.store_features(paths, workers))
            kept = [i for i, key in enumerate(keys) if key is not None]
            index.keys = [keys[i] for i in kept]
    embeddings = None
    if recognizer.embedder is not None:
        embeddings, found = _embed(recognizer.embedder, [paths[i] for i in kept], cache, progress)
        if len(found) < len(kept):  # an image the extractor read but the embedder could not
            kept = [kept[i] for i in found]
            if index is not None:
                index.keys = [index.keys[i] for i in found]
    if not kept:
        raise ValueError("no readable gallery photo")
    features = index.features() if index is not None else [None] * len(kept)
    recognizer.fit_described(features, embeddings, [labels[i] for i in kept])
    return kept


def _embed(embedder, paths: Sequence[Path], cache, progress: bool) -> tuple[np.ndarray, list[int]]:
    """Embeddings of ``paths``: cached when the embedder has ``settings``, else in batches."""
    if hasattr(embedder, "settings"):
        return report_skipped(lambda: DescriptorStore(cache, embedder, progress).get(paths))
    vectors, found = [], []
    for start in tqdm(range(0, len(paths), 32), desc="gallery: embeddings", disable=not progress):
        images = []
        for i in range(start, min(start + 32, len(paths))):
            try:
                images.append(load_image(paths[i]))
                found.append(i)
            except ImageLoadError as err:
                print(f"warning: gallery image skipped: {err}", file=sys.stderr)
        if images:
            vectors.append(embedder(images))
    return (np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32)), found
