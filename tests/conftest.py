"""Shared fixtures: a tiny generated dataset, its manifests, and image-writing helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils import manifests, minigld

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


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
