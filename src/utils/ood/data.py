"""Non-landmark data and the balanced landmark / non-landmark split (the report's section 7).

Sources of non-landmark photos, each used when its usual folder layout is present under a root,
at most `LAYOUT_DEPTH` folders down (`non_landmark_sources`; on Kaggle the root is
``/kaggle/input``, where each attached dataset has its own folder):

- ``caltech101``: ``101_ObjectCategories/<class>/*.jpg`` (objects; the ``BACKGROUND_Google``
  class too, it holds no landmarks);
- ``celeba``: ``img_align_celeba/*.jpg`` (faces);
- ``sun397``: ``SUN397/<letter>/<category>/*.jpg``, only the report's indoor and street
  categories (`SUN397_CATEGORIES`; SUN397 also holds landmark-like scenes, e.g. towers);
- ``embedded``: the data root's ``non_landmark/`` (always, when present).

`build_split` draws at most ``per_landmark`` photos of each landmark of ``train.csv`` (the
report: about 70) and as many non-landmark photos as landmark photos (balanced; when one side
is short, the other is cut to its size, the landmarks by a round robin over landmarks, the
non-landmarks by a round robin over sources), then splits each side into train / val / test.
Landmark photos of ``exclude`` (e.g. the images a landmark classifier was trained on) go to
the train split only, so that val and test never show a network an image it was trained on;
when few photos lie outside ``exclude``, the set shrinks until val and test can be filled.
`write_split` writes ``train.csv``, ``val.csv``, ``test.csv`` (``id,landmark_id,path,label,
source``; label 1: landmark) and ``summary.json``; `utils.data.manifests.read_binary_split`
reads a split, and `utils.training.train` trains on them with ``task="binary"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from utils.data.gldv2 import image_path, read_train
from utils.data.images import image_files
from utils.data.manifests import SPLITS, read_binary_split, read_manifests
from utils.training.checkpoint import load

# The report's selection of SUN397 categories (indoor places and streets).
SUN397_CATEGORIES = (
    "amusement_arcade",
    "art_school",
    "art_studio",
    "bakery/shop",
    "bar",
    "beauty_salon",
    "bedroom",
    "bookstore",
    "classroom",
    "clothing_store",
    "coffee_shop",
    "computer_room",
    "dining_room",
    "gymnasium/indoor",
    "kitchen",
    "living_room",
    "office",
    "parking_lot",
    "playground",
    "restaurant",
    "shoe_shop",
    "street",
    "supermarket",
    "toyshop",
)
SOURCES = ("embedded", "caltech101", "celeba", "sun397")
LAYOUT_NAMES = ("101_ObjectCategories", "img_align_celeba", "SUN397")
# how deep under the extra root a layout folder may sit: on Kaggle the root is /kaggle/input and
# an attached dataset nests it, e.g. /kaggle/input/celeba-dataset/img_align_celeba/img_align_celeba
LAYOUT_DEPTH = 3
FRACTIONS = (0.6, 0.2, 0.2)  # train, val, test


def _sun397(root: Path) -> list[Path]:
    paths = []
    for category in SUN397_CATEGORIES:
        folder = root / "SUN397" / category[0] / category
        if folder.is_dir():
            paths += image_files(folder)
    return paths


def non_landmark_sources(data_root: str | Path, extra_root: str | Path | None = None) -> dict:
    """``{source: [paths]}`` of every source present (see the module docstring).

    ``embedded`` is ``data_root/non_landmark``; the other sources are looked up under
    ``extra_root`` (and under ``data_root`` when no extra root is given).
    """
    data_root = Path(data_root)
    root = Path(extra_root) if extra_root else data_root
    found: dict[str, list[Path]] = {}
    if (data_root / "non_landmark").is_dir():
        found["embedded"] = image_files(data_root / "non_landmark")
    layouts = _find_layouts(root, LAYOUT_DEPTH)
    if "101_ObjectCategories" in layouts:
        found["caltech101"] = image_files(layouts["101_ObjectCategories"])
    if "img_align_celeba" in layouts:
        found["celeba"] = image_files(layouts["img_align_celeba"])
    if "SUN397" in layouts:
        found["sun397"] = _sun397(layouts["SUN397"].parent)
    return {name: paths for name, paths in found.items() if paths}


def _find_layouts(root: Path, depth: int) -> dict[str, Path]:
    """``{layout folder name: its shallowest folder}`` at most ``depth`` levels under ``root``.

    Breadth first over folders only, so a mount of 1.58M photos costs a few directory listings.
    """
    found: dict[str, Path] = {}
    level = [root] if root.is_dir() else []
    for _ in range(depth):
        below = []
        for folder in level:
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir())
            except OSError:  # unreadable folder: nothing found there
                continue
            for child in children:
                if child.name in LAYOUT_NAMES and child.name not in found:
                    found[child.name] = child
            below += children
        level = below
    return found


def _round_robin(groups: list[list], count: int) -> list:
    """``count`` items taken one per group in turn (groups already shuffled)."""
    taken, position = [], 0
    while len(taken) < count:
        progressed = False
        for group in groups:
            if position < len(group) and len(taken) < count:
                taken.append(group[position])
                progressed = True
        if not progressed:
            break
        position += 1
    return taken


def relative_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` where it lies under it, else absolute (manifests' ``path``)."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


def draw_landmark_photos(
    data_root: Path, per_landmark: int, rng: np.random.Generator
) -> list[list[tuple[str, int]]]:
    """At most ``per_landmark`` photos of each landmark of ``train.csv``, drawn by ``rng``.

    One list per landmark (by id) of ``(image id, landmark)``, drawn from its ids sorted, in
    the order drawn (`build_split` and `utils.ood.scored.build_split`).
    """
    groups = []
    for landmark, ids in sorted(read_train(data_root).groupby("landmark_id")["id"]):
        ids = sorted(ids.astype(str))
        groups.append([(ids[i], int(landmark)) for i in rng.permutation(len(ids))[:per_landmark]])
    return groups


def build_split(
    data_root: str | Path,
    extra_root: str | Path | None = None,
    per_landmark: int = 70,
    max_per_source: int = 0,
    exclude: Iterable[str] = (),
    fractions: tuple[float, float, float] = FRACTIONS,
    seed: int = 0,
) -> pd.DataFrame:
    """The balanced landmark / non-landmark set, one row per photo with its ``split``.

    Args:
        data_root: dataset in the Kaggle layout (``train.csv``, ``train/``, ``non_landmark/``).
        extra_root: folder holding Caltech101 / CelebA / SUN397 in their usual layouts.
        per_landmark: at most this many photos of each landmark.
        max_per_source: at most this many photos of each non-landmark source (0: all).
        exclude: image ids kept out of val and test (the landmark network's training ids).
        fractions: train, val, test shares of each side.
        seed: the draw.
    """
    rng = np.random.default_rng(seed)
    data_root = Path(data_root)
    landmark_groups = draw_landmark_photos(data_root, per_landmark, rng)
    sources = non_landmark_sources(data_root, extra_root)
    if not sources:
        raise FileNotFoundError(f"no non-landmark photos under {data_root} or {extra_root}")
    source_groups = []
    for name in SOURCES:
        paths = sorted(sources.get(name, []))
        order = rng.permutation(len(paths))
        if max_per_source:
            order = order[:max_per_source]
        source_groups.append([(paths[i], name) for i in order])
    excluded = {str(i) for i in exclude}
    outside = sum(row[0] not in excluded for group in landmark_groups for row in group)
    held_share = fractions[1] + fractions[2]
    size = min(
        sum(map(len, landmark_groups)),
        sum(map(len, source_groups)),
        int(outside / held_share) if held_share else outside,
    )  # val and test hold only photos outside `exclude`
    # the landmark groups put photos outside `exclude` first, so that the draw keeps them
    landmark_groups = [
        [r for r in g if r[0] not in excluded] + [r for r in g if r[0] in excluded]
        for g in landmark_groups
    ]
    landmarks = _round_robin(landmark_groups, size)
    others = _round_robin(source_groups, size)
    n_val, n_test = round(size * fractions[1]), round(size * fractions[2])
    eligible = [row for row in landmarks if row[0] not in excluded]
    if len(eligible) < n_val + n_test:
        raise ValueError(
            f"{len(eligible)} landmark photos outside `exclude` for {n_val + n_test} val/test rows"
        )
    order = rng.permutation(len(eligible))
    held = [eligible[i] for i in order[: n_val + n_test]]
    held_ids = {row[0] for row in held}
    rest = [row for row in landmarks if row[0] not in held_ids]
    rows = []
    for split, part in (("val", held[:n_val]), ("test", held[n_val:]), ("train", rest)):
        for image_id, landmark in part:
            path = relative_path(image_path(data_root, image_id), data_root)
            rows.append((image_id, landmark, path, 1, "gldv2", split))
    order = rng.permutation(len(others))
    for rank, index in enumerate(order):
        path, source = others[index]
        split = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
        image_id = f"{source}-{path.parent.name}-{path.stem}"
        rows.append((image_id, -1, relative_path(path, data_root), 0, source, split))
    frame = pd.DataFrame(rows, columns=["id", "landmark_id", "path", "label", "source", "split"])
    if frame["id"].duplicated().any():
        raise ValueError("duplicate ids in the landmark / non-landmark set")
    return frame


def trained_classes(checkpoint_path: str | Path) -> set[int]:
    """Landmark ids a checkpoint's classifier knows (its classes)."""
    return {int(i) for i in load(checkpoint_path)["class_ids"]}


def trained_ids(checkpoint_path: str | Path) -> set[str]:
    """Ids of the train split a checkpoint was trained on (empty when its manifests are gone).

    ``build_split(exclude=...)`` keeps them out of val and test.
    """
    config = load(checkpoint_path)["config"]
    folder = Path(config.get("manifest_dir", ""))
    if not (folder / "train.csv").is_file():
        return set()
    if config.get("task", "landmark") == "binary":
        return set(read_binary_split(folder, "train")["id"])
    return set(read_manifests(folder).train["id"].astype(str))


def write_split(frame: pd.DataFrame, out: str | Path) -> Path:
    """``train/val/test.csv`` and ``summary.json`` (counts per split, label and source)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        part = frame[frame["split"] == split].drop(columns="split")
        part.to_csv(out / f"{split}.csv", index=False)
    counts = frame.groupby(["split", "label"]).size()
    summary = {
        "counts": {
            f"{s} {'landmark' if lab else 'non-landmark'}": int(n) for (s, lab), n in counts.items()
        },
        "sources": {k: int(v) for k, v in frame["source"].value_counts().items()},
        "landmarks": int(frame.loc[frame["label"] == 1, "landmark_id"].nunique()),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return out


def read_split(folder: str | Path, split: str) -> pd.DataFrame:
    """One split written by `write_split` (`utils.data.manifests.read_binary_split`)."""
    return read_binary_split(folder, split)
