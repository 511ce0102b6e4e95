"""What the demo answers with: a gallery folder, or the artefacts of a pipeline run.

- ``--gallery DIR`` (one sub-folder per landmark): no checkpoint. The pretrained
  EfficientNet-Lite2 descriptor shortlists the gallery and RootSIFT verifies (``--global``, as
  ``recognize``; with ``--global none`` the visual-word shortlist of
  `utils.retrieval.vocabulary.ShortlistIndex`, ``shortlist`` photos verified per query; 0: every
  photo), the recognizer's calibrated rejection rule, and the built-in ``imagenet``
  landmark-or-not detector beside it (``--landmark-detector``);
- ``--run RUN``: the run's trained network for global embeddings (`run_defaults`: DOLG, else
  EfficientNet-B2), its top-k candidates verified by RootSIFT (as ``recognize --checkpoint``),
  every non-landmark detector notebook 07 saved (``07_ood/detector_<name>.pt``; the one it chose,
  ``detector.pt``, gates the answer), and a gallery from the run's data: the first
  ``per_landmark`` train photos (by id) of each landmark of the network's manifests, named by
  the data root's ``train_label_to_category.csv``.

Either way the gallery's features are extracted once, with a progress bar, and cached in an
index folder keyed by the SHA-256 of each file (`utils.retrieval.gallery`); a restart reads them
back.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from utils.data.gldv2 import image_path, landmark_names
from utils.data.manifests import read_manifests
from utils.inference.submit import run_defaults
from utils.ood import load_detector
from utils.retrieval.gallery import fit_gallery, read_gallery
from utils.retrieval.recognize import SHORTLIST, Recognizer, build_recognizer
from utils.retrieval.vocabulary import file_key
from utils.training import checkpoint as checkpoints

# what makes a folder a run
CHECKPOINTS = (
    "04_train_effnet-lite2-imagenet/best.pt",
    "06_dolg/best.pt",
    "04_train_effnet/best.pt",
)


def set_threads(threads: int) -> None:
    """Threads of torch's (and faiss's) CPU kernels in this process.

    One by default in the demo: answers run side by side (the queue's concurrency), and on a
    loaded 2-core machine two threads per kernel made the run's four detectors take 19 s per
    photo against 0.6 s with one (their spinning threads wait for each other).
    """
    import faiss
    import torch

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def latest_run(outputs: str | Path = "outputs") -> Path:
    """The run folder under ``outputs`` whose trained checkpoint is the newest."""
    found = [c for run in Path(outputs).glob("*") for c in map(run.joinpath, CHECKPOINTS)]
    found = [c for c in found if c.is_file()]
    if not found:
        raise FileNotFoundError(
            f"{outputs}: no pipeline run with a trained checkpoint ({' or '.join(CHECKPOINTS)}); "
            "run `make pipeline`, or pass --gallery DIR"
        )
    return max(found, key=lambda c: c.stat().st_mtime).parent.parent


def run_gallery(checkpoint: str | Path, per_landmark: int = 3) -> tuple[list[Path], list[str]]:
    """The first ``per_landmark`` train photos of each landmark of the checkpoint's data."""
    config = checkpoints.load(checkpoint)["config"]
    root = Path(config["data_root"])
    train = read_manifests(config["manifest_dir"]).train.sort_values(["landmark_id", "id"])
    train = train.groupby("landmark_id").head(per_landmark)
    names = landmark_names(root)
    paths = [image_path(root, i) for i in train["id"]]
    labels = [names.get(int(lm), str(lm)) for lm in train["landmark_id"]]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: gallery photo of the run's data not found")
    return paths, labels


def saved_content(path: str | Path) -> list[tuple]:
    """What a ``torch.save`` file holds: its archive's entries (name, CRC, size).

    Two saves of one object differ in the archive's folder (the file's name) and a random
    serialization id, so those are left out.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return sorted(
                (info.filename.split("/", 1)[-1], info.CRC, info.file_size)
                for info in archive.infolist()
                if not info.filename.endswith("serialization_id")
            )
    except zipfile.BadZipFile:  # a legacy (non-zip) save: its bytes
        return [("", file_key(path), Path(path).stat().st_size)]


def run_detectors(run: str | Path) -> tuple[dict[str, Path], str | None]:
    """Notebook 07's saved detectors by name, and the name of the one it chose (or None)."""
    folder = Path(run) / "07_ood"
    found = {p.stem.removeprefix("detector_"): p for p in sorted(folder.glob("detector_*.pt"))}
    chosen = folder / "detector.pt"
    if not chosen.is_file():
        return found, None
    content = saved_content(chosen)
    for name, path in found.items():
        if saved_content(path) == content:
            return found, name
    return {**found, "chosen": chosen}, "chosen"


def load_detectors(paths: dict[str, Path], device: str = "cpu", progress: bool = True) -> dict:
    """`load_detector` of each, with a progress bar."""
    shown = progress and bool(paths)
    return {
        name: load_detector(path, device)
        for name, path in tqdm(paths.items(), desc="detectors", disable=not shown)
    }


def fit_recognizer(
    paths: Sequence[Path],
    labels: Sequence[str],
    cache: str | Path,
    checkpoint: str | Path | None = None,
    shortlist: int = SHORTLIST,
    top_k: int = 10,
    device: str = "cpu",
    progress: bool = True,
    global_descriptor: str = "lite2",
) -> tuple[Recognizer, list[Path]]:
    """A recognizer fitted on the gallery (module docstring), and its photos in order."""
    recognizer = build_recognizer(
        "sift", checkpoint, top_k, device, progress, global_descriptor=global_descriptor
    )
    kept = fit_gallery(recognizer, paths, labels, cache, shortlist=shortlist, progress=progress)
    return recognizer, [Path(paths[i]) for i in kept]


def folder_recognizer(folder: str | Path, cache: str | Path | None = None, **kwargs):
    """`fit_recognizer` on a gallery folder; the cache defaults to ``<folder>.index`` beside it."""
    folder = Path(folder)
    paths, labels = read_gallery(folder)
    cache = cache or folder.parent / f"{folder.name}.index"
    return fit_recognizer(paths, labels, cache, **kwargs)


def run_checkpoint(run: str | Path, checkpoint: str = "") -> Path:
    """The run's network for global embeddings (`run_defaults`), checked to exist."""
    path = Path(run_defaults(run, checkpoint, "none")[0])
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained checkpoint in the run (DOLG or 04)")
    return path
