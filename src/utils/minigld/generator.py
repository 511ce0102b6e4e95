"""The embedded default: a generated mini GLDv2 in the exact Kaggle layout.

``python -m utils minigld --out DIR [--profile tiny|default] [--seed N] [--workers N]`` writes::

    train.csv                    id,landmark_id        (about 2% of labels are wrong)
    train_clean.csv              landmark_id,images    (the rows whose label is right)
    train_label_to_category.csv  landmark_id,category  (Wikimedia-style Category: URLs)
    train/a/b/c/<id>.jpg, test/a/b/c/<id>.jpg
    sample_submission.csv        id,landmarks          (empty predictions)
    test_solution.csv            id,landmarks          (the truth; empty = not a landmark)
    non_landmark/<id>.jpg        distractor photos for training non-landmark detectors
    minigld.json                 profile, seed and counts (written last: marks completion)

GLDv2's hard properties are kept: class sizes follow a power law
(``n_r = max(min_images, round(max_images * r ** -alpha))`` for the class of rank ``r``),
every photo is another view of its landmark (see `utils.camera`), about 2% of train labels
are noise, and most test photos show no landmark or a landmark that is absent from train
(its true id in ``test_solution.csv`` is one no train row has).

Same profile and seed give identical CSVs and identical image bytes: every photo is drawn
from its own generator seeded by ``(seed, photo index)``, whatever the number of workers.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from utils.data.gldv2 import image_path
from utils.minigld.camera import degrade, photo_size, photograph
from utils.minigld.render import KINDS, LandmarkSpec, landmark_layers
from utils.minigld.scenes import SCENES, non_landmark_scene

NOISE_RATE = 0.02
_TEMPLATES = {
    "tower": "{} Tower",
    "dome": "Cathedral of {}",
    "arch": "{} Gate",
    "pyramid": "Pyramid of {}",
    "bridge": "{} Bridge",
    "pagoda": "{} Pagoda",
    "temple": "Temple of {}",
    "lighthouse": "{} Lighthouse",
    "wheel": "{} Wheel",
    "statue": "Statue of {}",
    "castle": "{} Castle",
    "skyscraper": "{} Trade Center",
}
_ONSETS = ("v", "dr", "k", "m", "t", "br", "s", "l", "n", "qu", "z", "g", "th", "r", "p")
_VOWELS = ("a", "e", "o", "i", "u", "ae", "ia")
_CODAS = ("", "n", "r", "l", "s", "m", "th")


@dataclass(frozen=True)
class Profile:
    """Sizes of one generated dataset."""

    landmarks: int  # landmarks present in train
    unseen: int  # landmarks that appear only in test
    max_images: int  # train photos of the most frequent landmark
    min_images: int  # train photos of the rarest landmark
    alpha: float  # power-law exponent of the class sizes
    test_seen: int  # test photos of train landmarks
    test_unseen: int  # test photos of landmarks absent from train
    test_non_landmark: int  # test photos without a landmark
    non_landmark: int  # photos in non_landmark/
    long_side: tuple[int, int]  # range of the photos' longer side, pixels


PROFILES = {
    "tiny": Profile(6, 2, 24, 8, 0.8, 10, 6, 24, 24, (160, 320)),
    "default": Profile(48, 8, 300, 6, 0.9, 120, 80, 400, 400, (256, 640)),
}


def class_sizes(profile: Profile) -> list[int]:
    """Train photos per landmark, head first (the power law of the module docstring)."""
    ranks = np.arange(1, profile.landmarks + 1)
    sizes = np.maximum(profile.min_images, np.round(profile.max_images * ranks**-profile.alpha))
    return sizes.astype(int).tolist()


def synthetic_name(rng: np.random.Generator, kind: str) -> str:
    """An invented, name-like landmark name such as ``Velmarin Gate``."""
    word = "".join(
        str(rng.choice(_ONSETS)) + str(rng.choice(_VOWELS)) + str(rng.choice(_CODAS))
        for _ in range(int(rng.integers(2, 4)))
    )
    return _TEMPLATES[kind].format(word.capitalize())


def _unique_hex_ids(rng: np.random.Generator, count: int) -> list[str]:
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < count:
        candidate = f"{int(rng.integers(0, 2**63)):016x}"
        if candidate not in seen:
            seen.add(candidate)
            ids.append(candidate)
    return ids


def plan(profile: Profile, seed: int) -> tuple[list[LandmarkSpec], pd.DataFrame]:
    """Landmarks and one row per photo: ``id, split, landmark_id, label, scene``.

    ``split`` is train, test or non_landmark; ``label`` is the (possibly noisy) train label;
    ``landmark_id`` the landmark actually drawn (-1: a non-landmark ``scene``).
    """
    rng = np.random.default_rng([seed, 0])
    total = profile.landmarks + profile.unseen
    landmark_ids = (rng.choice(200_000, size=total, replace=False) + 1).tolist()
    kinds = [KINDS[i % len(KINDS)] for i in rng.permutation(total)]
    names: set[str] = set()
    specs = []
    for index, (landmark_id, kind) in enumerate(zip(landmark_ids, kinds, strict=True)):
        name = synthetic_name(rng, kind)
        while name in names:
            name = synthetic_name(rng, kind)
        names.add(name)
        specs.append(LandmarkSpec(int(landmark_id), name, kind, seed * 1000 + index))
    seen, unseen = specs[: profile.landmarks], specs[profile.landmarks :]

    rows = []
    for spec, size in zip(seen, class_sizes(profile), strict=True):
        rows += [("train", spec.landmark_id, "")] * size
    test_seen = rng.choice(len(seen), size=profile.test_seen)
    rows += [("test", seen[i].landmark_id, "") for i in test_seen]
    test_unseen = rng.choice(len(unseen), size=profile.test_unseen) if unseen else []
    rows += [("test", unseen[i].landmark_id, "") for i in test_unseen]
    for split, count in (
        ("test", profile.test_non_landmark),
        ("non_landmark", profile.non_landmark),
    ):
        rows += [(split, -1, str(SCENES[i])) for i in rng.integers(0, len(SCENES), size=count)]
    photos = pd.DataFrame(rows, columns=["split", "landmark_id", "scene"])
    photos.insert(0, "id", _unique_hex_ids(rng, len(photos)))

    labels = photos["landmark_id"].to_numpy().copy()
    train_rows = np.flatnonzero(photos["split"].to_numpy() == "train")
    noisy = rng.choice(train_rows, size=round(NOISE_RATE * len(train_rows)), replace=False)
    seen_ids = np.array([s.landmark_id for s in seen])
    for row in noisy:
        labels[row] = rng.choice(seen_ids[seen_ids != labels[row]])
    photos["label"] = labels
    return specs, photos


def _render(task: tuple[str, LandmarkSpec | None, str, int, int, tuple[int, int]]) -> None:
    """Draw one photo and write it (runs in worker processes)."""
    path, spec, scene, seed, index, long_side = task
    rng = np.random.default_rng([seed, 1, index])
    if spec is not None:
        data = photograph(landmark_layers(spec), rng, long_side)
    else:
        width, height = photo_size(rng, long_side)
        data = degrade(non_landmark_scene(rng, width, height, scene), rng)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)


def _photo_path(out: Path, image_id: str, split: str) -> Path:
    if split == "non_landmark":
        return out / "non_landmark" / f"{image_id}.jpg"
    return image_path(out, image_id, split)


def _write_csvs(out: Path, specs: list[LandmarkSpec], photos: pd.DataFrame) -> None:
    def save(frame: pd.DataFrame, name: str) -> None:
        frame.to_csv(out / name, index=False, lineterminator="\n")

    train = photos[photos["split"] == "train"]
    save(train[["id", "label"]].rename(columns={"label": "landmark_id"}), "train.csv")
    clean = train[train["label"] == train["landmark_id"]]
    grouped = clean.groupby("landmark_id", sort=True)["id"].agg(" ".join).reset_index()
    save(grouped.rename(columns={"id": "images"}), "train_clean.csv")
    train_ids = set(train["label"])
    categories = [
        (s.landmark_id, "http://commons.wikimedia.org/wiki/Category:" + s.name.replace(" ", "_"))
        for s in sorted(specs, key=lambda s: s.landmark_id)
        if s.landmark_id in train_ids
    ]
    save(
        pd.DataFrame(categories, columns=["landmark_id", "category"]), "train_label_to_category.csv"
    )
    test = photos[photos["split"] == "test"].sort_values("id")
    truth = test["landmark_id"].map(lambda v: "" if v < 0 else str(v))
    save(pd.DataFrame({"id": test["id"], "landmarks": truth}), "test_solution.csv")
    save(pd.DataFrame({"id": test["id"], "landmarks": ""}), "sample_submission.csv")


def generate(
    out: str | Path,
    profile: str = "default",
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Write the dataset into ``out`` (see the module docstring); returns its summary."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, not {profile!r}")
    spec_profile = PROFILES[profile]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "minigld.json").unlink(missing_ok=True)
    start = time.perf_counter()
    specs, photos = plan(spec_profile, seed)
    by_id = {s.landmark_id: s for s in specs}
    tasks = [
        (
            str(_photo_path(out, row.id, row.split)),
            by_id.get(row.landmark_id),
            row.scene,
            seed,
            index,
            spec_profile.long_side,
        )
        for index, row in enumerate(photos.itertuples(index=False))
    ]
    workers = workers or min(4, os.cpu_count() or 1)
    bar = tqdm(total=len(tasks), desc=f"minigld {profile}", unit="img", disable=not progress)
    if workers == 1:
        for task in tasks:
            _render(task)
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(_render, tasks, chunksize=16):
                bar.update()
    bar.close()
    _write_csvs(out, specs, photos)
    summary = {
        "profile": profile,
        "seed": seed,
        "settings": asdict(spec_profile),
        "counts": photos["split"].value_counts().sort_index().to_dict(),
        "landmarks_in_train": spec_profile.landmarks,
        "landmarks_only_in_test": spec_profile.unseen,
        "noisy_train_labels": int((photos["label"] != photos["landmark_id"]).sum()),
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / "minigld.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def read_marker(root: str | Path) -> dict:
    """The ``minigld.json`` of a finished dataset at ``root``, or ``{}`` for any other folder."""
    marker = Path(root) / "minigld.json"
    return json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else {}


def is_complete(out: str | Path, profile: str, seed: int) -> bool:
    """Whether ``out`` holds a finished dataset of this profile and seed."""
    summary = read_marker(out)
    return summary.get("profile") == profile and summary.get("seed") == seed


def profile_of(root: str | Path) -> str | None:
    """The profile of a finished mini dataset at ``root``, or None for any other folder."""
    return read_marker(root).get("profile")


def ensure(out: str | Path, profile: str = "default", seed: int = 0, progress: bool = True) -> Path:
    """Generate the dataset unless ``out`` already holds it; returns ``out``."""
    if not is_complete(out, profile, seed):
        generate(out, profile, seed, progress=progress)
    return Path(out)


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    parser = argparse.ArgumentParser(
        prog="python -m utils minigld", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    parser.add_argument(
        "--profile", choices=sorted(PROFILES), default="default", help="dataset size"
    )
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--workers", type=int, default=None, help="default: up to 4 CPU cores")
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when OUT already holds this profile and seed",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parser().parse_args(argv)
    if args.if_missing and is_complete(args.out, args.profile, args.seed):
        print(f"{args.out} already holds minigld {args.profile} (seed {args.seed})")
        return 0
    summary = generate(args.out, args.profile, args.seed, args.workers)
    print(f"wrote {args.out}: {summary['counts']} in {summary['seconds']} s")
    return 0
