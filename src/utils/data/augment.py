"""The report's two augmentation pipelines (its Table 1) on the albumentations 2.x API.

Both take an RGB uint8 ``(H, W, 3)`` array of any size and return a ``(3, s, s)`` float32
tensor, normalised per channel as ``x = (v / 255 - mean) / std`` (or, with ``normalize=False``,
the uint8 tensor, which training normalises on its device with `normalize_batch`):

- pipeline 1: ``RandomResizedCrop(size=(s, s))``, ``ImageCompression(quality_range=(99, 100))``,
  ``RandomBrightnessContrast(p=0.2)``, horizontal flip (p=0.5), a rare vertical flip (p=0.05:
  landmarks are seldom upside down), hue/saturation (p=0.3), CLAHE (p=0.1), blur (p=0.1), and
  ``Normalize()`` with the library's default statistics;
- pipeline 2: ``SmallestMaxSize(round(1.125 s))`` (288 at s=256) then ``RandomCrop(s, s)``,
  ``RandomBrightnessContrast(p=0.3)``, ``Sharpen(alpha=(0.1, 0.3), p=0.2)``, the same flips,
  hue/saturation, CLAHE and blur, and ``Normalize`` with ImageNet's mean and std.

albumentations' default ``Normalize`` statistics are ImageNet's ((0.485, 0.456, 0.406),
(0.229, 0.224, 0.225)), so the two normalisations agree numerically; pipeline 2 names them.

`eval_transform` resizes the shorter side to ``round(1.125 s)`` and centre-crops ``s``, with the
pipeline's normalisation. `decode_side` tells the loader how small a JPEG may be decoded.

albumentations checks PyPI for a newer release when imported unless ``NO_ALBUMENTATIONS_UPDATE``
is set; this module sets it (offline machines would otherwise wait on the network).
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from albumentations.pytorch import ToTensorV2  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PIPELINES = (1, 2)
RESIZE_RATIO = 288 / 256  # pipeline 2's shorter side before the crop, relative to s


def _check(size: int, pipeline: int | None = None) -> None:
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"image size must be an integer >= 8, got {size!r}")
    if pipeline is not None and pipeline not in PIPELINES:
        raise ValueError(f"pipeline must be 1 or 2, got {pipeline!r}")


def resize_side(size: int) -> int:
    """Shorter side before the crop: ``round(1.125 * size)`` (288 for 256)."""
    return round(RESIZE_RATIO * size)


def _normalize(pipeline: int) -> A.Normalize:
    return A.Normalize() if pipeline == 1 else A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)


def _colour_and_blur() -> list:
    """The flips, hue/saturation, CLAHE and blur both pipelines share."""
    return [
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.05),
        A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=10, p=0.3),
        A.CLAHE(clip_limit=2.0, tile_grid_size=(8, 8), p=0.1),
        A.Blur(blur_limit=(3, 5), p=0.1),
    ]


def _finish(pipeline: int, normalize: bool) -> list:
    """``Normalize`` and ``ToTensorV2``, or ``ToTensorV2`` alone (uint8, `normalize_batch`)."""
    return [_normalize(pipeline), ToTensorV2()] if normalize else [ToTensorV2()]


def pipeline1(size: int, seed: int | None = None, normalize: bool = True) -> A.Compose:
    """Report pipeline 1 (see the module docstring) producing ``(3, size, size)`` tensors.

    ``normalize=False``: uint8 tensors, normalised by `normalize_batch` on the device.
    """
    _check(size)
    return A.Compose(
        [
            A.RandomResizedCrop(size=(size, size)),
            A.ImageCompression(quality_range=(99, 100)),
            A.RandomBrightnessContrast(p=0.2),
            *_colour_and_blur(),
            *_finish(1, normalize),
        ],
        seed=seed,
    )


def pipeline2(size: int, seed: int | None = None, normalize: bool = True) -> A.Compose:
    """Report pipeline 2 (see the module docstring) producing ``(3, size, size)`` tensors.

    ``normalize=False``: uint8 tensors, normalised by `normalize_batch` on the device.
    """
    _check(size)
    return A.Compose(
        [
            A.SmallestMaxSize(max_size=resize_side(size)),
            A.RandomCrop(height=size, width=size),
            A.RandomBrightnessContrast(p=0.3),
            A.Sharpen(alpha=(0.1, 0.3), p=0.2),
            *_colour_and_blur(),
            *_finish(2, normalize),
        ],
        seed=seed,
    )


def train_transform(
    size: int, pipeline: int, seed: int | None = None, normalize: bool = True
) -> A.Compose:
    """`pipeline1` or `pipeline2` by number."""
    _check(size, pipeline)
    return (pipeline1 if pipeline == 1 else pipeline2)(size, seed, normalize)


def normalize_batch(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` -> float32 ``(v - 255 mean) / (255 std)``, ImageNet's statistics.

    The same values as the pipelines' ``Normalize`` (both use ImageNet's statistics), computed
    where ``images`` are (the GPU, for training) and in their memory format. A loader then ships
    a quarter of the bytes, and its workers skip the float conversion, which is 60% of pipeline
    2's cost at 224 px. Float input is returned unchanged (already normalised).
    """
    if images.is_floating_point():
        return images
    mean, std = _pixel_statistics(images.device)
    return (images.float() - mean) / std


@functools.cache
def _pixel_statistics(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``255 mean`` and ``255 std`` as ``(1, 3, 1, 1)`` tensors on ``device``.

    Made once per device: not copied to the GPU (a synchronising copy) at every training step.
    """
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
    return mean, std


def eval_transform(size: int, pipeline: int = 2) -> A.Compose:
    """Deterministic resize of the shorter side to ``round(1.125 size)`` + centre crop."""
    _check(size, pipeline)
    return A.Compose(
        [
            A.SmallestMaxSize(max_size=resize_side(size)),
            A.CenterCrop(height=size, width=size),
            _normalize(pipeline),
            ToTensorV2(),
        ]
    )


def decode_side(size: int, pipeline: int, train: bool = True) -> int:
    """Smallest shorter side a JPEG may be decoded at without starving the transform.

    Pipeline 2 and evaluation first resize the shorter side to ``round(1.125 size)``, so that
    many pixels suffice. Pipeline 1 crops a random area first; decoding at ``size`` keeps
    whole-image crops at full detail and upsamples small crops (a trade of detail for speed).
    """
    _check(size, pipeline)
    return size if (train and pipeline == 1) else resize_side(size)


def denormalize(image: torch.Tensor) -> np.ndarray:
    """Undo ``Normalize`` for display: ``(3, H, W)`` tensor -> ``(H, W, 3)`` uint8.

    ``v = clip(255 * (x * std + mean), 0, 255)`` with ImageNet's mean and std (both pipelines).
    """
    array = image.detach().cpu().numpy().transpose(1, 2, 0)
    array = array * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)
    return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
