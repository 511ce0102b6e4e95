"""Shared fixtures: a tiny generated dataset, its manifests, and image-writing helpers."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from utils import minigld
from utils.data import manifests
from utils.kernels.dryrun import CPU_OVERRIDES

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def train_config(tiny_root, tiny_manifest, out, **overrides):
    """A `TrainConfig` for the tiny profile: MobileNetV2, 32 px, one epoch, no workers, no W&B."""
    from utils.training.train import TrainConfig

    base = dict(
        data_root=str(tiny_root),
        manifest_dir=str(tiny_manifest),
        output_dir=str(out),
        model="mobilenet_v2",
        image_size=32,
        epochs=1,
        batch_size=16,
        workers=0,
        wandb_mode="disabled",
        seed=3,
    )
    return TrainConfig(**{**base, **overrides})


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """The tiny profile of the mini dataset, generated once per test session."""
    root = tmp_path_factory.mktemp("minigld") / "tiny"
    minigld.generate(root, "tiny", seed=0, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_manifest(tiny_root, tmp_path_factory) -> Path:
    """Top-5 manifests of the tiny dataset."""
    built = manifests.build_manifests(tiny_root, top=5, seed=42)
    return manifests.write_manifests(built, tmp_path_factory.mktemp("manifest") / "tiny-top5")


@pytest.fixture
def rgb() -> np.ndarray:
    """A 48x64 RGB gradient with a distinct value in every channel."""
    y, x = np.mgrid[0:48, 0:64]
    return np.stack([x * 4, y * 5, (x + y) * 2], axis=2).astype(np.uint8)


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    """Save a Pillow image and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def textured(seed: int, size=(480, 640)) -> np.ndarray:
    """A photo-like texture: blobs and lines at many scales (rich in SIFT keypoints)."""
    rng = np.random.default_rng(seed)
    image = np.full((*size, 3), 128, np.uint8)
    for _ in range(300):
        centre = (int(rng.integers(0, size[1])), int(rng.integers(0, size[0])))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.circle(image, centre, int(rng.integers(3, 30)), colour, -1)
        else:
            end = (int(rng.integers(0, size[1])), int(rng.integers(0, size[0])))
            cv2.line(image, centre, end, colour, int(rng.integers(1, 4)))
    return image


def warp(image: np.ndarray, seed: int = 0) -> np.ndarray:
    h, w = image.shape[:2]
    rng = np.random.default_rng(seed)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = (src + rng.uniform(-0.08, 0.08, (4, 2)) * [w, h]).astype(np.float32)
    return cv2.warpPerspective(image, cv2.getPerspectiveTransform(src, dst), (w, h))


def write_gallery(root: Path) -> Path:
    """``root/gallery``: three landmarks (textures), three warped views of each."""
    for landmark in range(3):
        folder = root / "gallery" / f"landmark_{landmark}"
        folder.mkdir(parents=True)
        for view in range(3):
            image = warp(textured(landmark), seed=view)
            cv2.imwrite(str(folder / f"v{view}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return root / "gallery"


def free_port() -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def copy_real_gallery(photos: Path, folder: Path) -> Path:
    """``folder``: Sacre-Coeur 1-5, British Museum 1-3, Chateau de Sceaux 1-3 of the real photos."""
    for landmark, numbers in (
        ("sacre_coeur", (1, 2, 3, 4, 5)),
        ("british_museum", (1, 2, 3)),
        ("chateau_de_sceaux", (1, 2, 3)),
    ):
        (folder / landmark).mkdir(parents=True)
        for n in numbers:
            name = f"{landmark}_{n:02d}.jpg"
            shutil.copy(photos / name, folder / landmark / name)
    return folder


# What the suite overrides so that the whole chain runs in about a minute on 2 CPU cores.
TINY_OVERRIDES = {
    "IMAGE_SIZE": 32,
    "EPOCHS": 1,
    "WORKERS": 0,
    "WANDB_MODE": "disabled",
    "DEVICE": "cpu",
    "ATTENTION_EPOCHS": 1,
    "K": 5,
    "TEMPERATURES": "1,1000",
    "EPSILONS": "0,0.002",
    "PENALTY_KS": "2,5",
    "PRETRAINED_SIZE": 64,
}


# The dry run of the kernels: its CPU overrides, shrunk like TINY_OVERRIDES.
DRYRUN_OVERRIDES = {
    **CPU_OVERRIDES,
    "IMAGE_SIZE": 32,
    "K": 5,
    "TEMPERATURES": "1,1000",
    "EPSILONS": "0,0.002",
    "PENALTY_KS": "2,5",
}
# Notebooks whose tiny run is taken from the kernels' dry run instead of running twice (the
# same notebooks with Kaggle's parameters; the suite's 15-minute budget): 05 and 06, which
# nothing later in the pipeline reads.
FROM_DRYRUN = ("05_delf_rerank", "06_dolg")


@pytest.fixture(scope="session")
def kernel_dryrun(tiny_root, tmp_path_factory):
    """``(root, runs)``: the committed kernels run as on Kaggle (`utils.kernels.dryrun`)."""
    from utils.kernels import dryrun

    root = tmp_path_factory.mktemp("dryrun")
    runs = dryrun.dry_run(
        REPO / "kernels", tiny_root, root, DRYRUN_OVERRIDES, log=lambda line: None
    )
    return root, runs


@pytest.fixture(scope="session")
def tiny_run(tiny_root, tiny_manifest, kernel_dryrun, tmp_path_factory) -> Path:
    """Every numbered notebook run once, in order, on the tiny profile: a pipeline run folder.

    The runner runs all but `FROM_DRYRUN`, whose artefacts, executed copies and logs are those
    of the kernels' dry run, linked in; ``results.md`` is then written over all of them.
    """
    out = tmp_path_factory.mktemp("pipeline") / "run"
    from utils import pipeline
    from utils.results import write_results

    parameters = pipeline.default_parameters(tiny_root, "tiny", tiny_manifest)
    notebooks = [nb for nb in pipeline.discover(REPO / "notebooks") if nb.stem not in FROM_DRYRUN]
    pipeline.run_pipeline(notebooks, {**parameters, **TINY_OVERRIDES}, out, progress=False)
    root, _ = kernel_dryrun
    for stem in FROM_DRYRUN:
        (out / stem).symlink_to(root / stem / "kaggle" / "working" / stem)
        (out / f"{stem}.ipynb").symlink_to(root / stem / f"{stem}.executed.ipynb")
        (out / f"{stem}.log").symlink_to(root / stem / f"{stem}.log")
    write_results(out)
    return out
