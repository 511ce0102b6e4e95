"""Local features: one interface, two extractors (RootSIFT and DELF-style attention).

An extractor maps an RGB uint8 image ``(H, W, 3)`` to `LocalFeatures`: keypoints ``(N, 2)``
(x, y in the input image's pixels), unit-length descriptors ``(N, D)`` and a strength per
keypoint ``(N,)`` (SIFT response, or DELF attention).

- `RootSift` (OpenCV SIFT, needs no weights): the image is resized so that its longer side is
  ``max_side``; up to ``max_features`` keypoints over SIFT's scale space; descriptors mapped
  to RootSIFT (Arandjelovic & Zisserman 2012): ``d = sqrt(s / ||s||_1)``, so that the dot
  product of two descriptors is the Hellinger kernel of the SIFT histograms.
- `DelfExtractor` (`utils.retrieval.delf_features`): the learned attention picks the strongest
  locations of an intermediate feature map at several image scales; their feature vectors
  (L2-normalised) are the descriptors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints ``(N, 2)`` (x, y), descriptors ``(N, D)``, strengths ``(N,)``, image size.

    All float32; ``size`` is the ``(height, width)`` of the image the features come from.
    """

    keypoints: np.ndarray
    descriptors: np.ndarray
    strengths: np.ndarray
    size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.keypoints)

    @classmethod
    def empty(cls, dim: int, size: tuple[int, int]) -> LocalFeatures:
        """No features (a blank or tiny image)."""
        return cls(np.zeros((0, 2), np.float32), np.zeros((0, dim), np.float32), np.zeros(0), size)


class LocalExtractor(Protocol):
    """What `utils.retrieval.rerank` needs from an extractor."""

    name: str

    def extract(self, image: np.ndarray) -> LocalFeatures:
        """Features of an RGB uint8 ``(H, W, 3)`` image."""
        ...


def root_sift(descriptors: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """RootSIFT: ``sqrt(d / ||d||_1)`` per row; the result has unit L2 norm."""
    descriptors = np.asarray(descriptors, np.float32)
    l1 = np.abs(descriptors).sum(axis=1, keepdims=True) + eps
    return np.sqrt(descriptors / l1)


def resize_longer(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Resize so that the longer side is at most ``max_side``; returns the image and scale."""
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale == 1.0:
        return image, 1.0
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


class RootSift:
    """OpenCV SIFT with RootSIFT descriptors; see the module docstring."""

    name = "sift"

    def __init__(
        self,
        max_features: int = 2000,
        max_side: int = 1024,
        contrast_threshold: float = 0.02,
        root: bool = True,
    ):
        self.max_features, self.max_side = max_features, max_side
        self.contrast_threshold, self.root = contrast_threshold, root

    def extract(self, image: np.ndarray) -> LocalFeatures:
        """Features of an RGB uint8 image (keypoints in its own pixel coordinates)."""
        small, scale = resize_longer(image, self.max_side)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        sift = cv2.SIFT_create(
            nfeatures=self.max_features, contrastThreshold=self.contrast_threshold
        )
        keypoints, descriptors = sift.detectAndCompute(grey, None)
        if descriptors is None or not keypoints:
            return LocalFeatures.empty(128, image.shape[:2])
        points = np.array([k.pt for k in keypoints], np.float32) / scale
        strengths = np.array([k.response for k in keypoints], np.float32)
        if self.root:
            descriptors = root_sift(descriptors)
        else:
            descriptors = descriptors / (np.linalg.norm(descriptors, axis=1, keepdims=True) + 1e-7)
        return LocalFeatures(points, descriptors.astype(np.float32), strengths, image.shape[:2])
