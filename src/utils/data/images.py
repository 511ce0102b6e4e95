"""Image reading for GLDv2-style collections.

`load_image` turns any file Pillow can open into an ``(H, W, 3)`` ``uint8`` RGB array:
EXIF orientation applied, every mode (``1``, ``L``, ``P``, ``RGBA``, ``LA``, ``CMYK``,
``I;16``, ``I``, ``F``) mapped to RGB, transparency composited on white, and JPEGs decoded at
a reduced DCT scale when a smaller side is asked for. Pillow's decompression-bomb guard stays
on: every file is first opened (header only) by Pillow.

Colour and greyscale JPEGs are decoded by libjpeg-turbo through ``simplejpeg``, which is
about 1.7x faster than Pillow at full size and scales by any factor k/8 (Pillow's ``draft``:
1/2, 1/4, 1/8 only); CMYK JPEGs and every other format go through Pillow.

A file that cannot be read raises `ImageLoadError`, which names the file and the reason.
CLI: ``python -m utils resize --src DIR --dst DIR --short-side 384 [--workers N]``
(see `utils.resize`).

Batch code uses `iter_images` with a `BadFiles` log so that one broken file is skipped,
counted and reported at the end instead of ending the run.

Writing: `encode_jpeg` (RGB array to JPEG bytes) and `write_atomic` (a file that readers never
see half-written), for the resized copies and the demo's drawings.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

_WHITE = (255, 255, 255)


class ImageLoadError(OSError):
    """A file that is not a readable image; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: cannot read image ({reason})")


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Map a Pillow image of any mode to a contiguous ``(H, W, 3)`` uint8 array."""
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        # 16/32-bit integer or float greyscale: scale to 8 bits instead of clipping.
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max(initial=0.0)
        if mode == "F" and top <= 1.0:
            arr = arr * 255.0
        elif top > 255.0:
            arr = arr / (65535.0 if top <= 65535.0 else top) * 255.0
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        img = Image.alpha_composite(background, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def _draft_size(size: tuple[int, int], min_side: int) -> tuple[int, int] | None:
    """Size to ask the JPEG decoder for so that the shorter side stays >= ``min_side``."""
    short = min(size)
    if min_side <= 0 or short <= min_side:
        return None
    ratio = min_side / short
    return max(1, math.ceil(size[0] * ratio)), max(1, math.ceil(size[1] * ratio))


_TRANSPOSE = {  # EXIF orientation -> numpy ops on an (H, W, C) array
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, -1)[::-1],  # transverse
    8: lambda a: np.rot90(a, 1),
}


def _turbo_decode(path: Path, img: Image.Image, min_side: int | None) -> np.ndarray:
    """libjpeg-turbo decode of a YCbCr/greyscale JPEG, smallest scale keeping ``min_side``."""
    side = min_side if min_side and min_side > 0 else 0
    rgb = simplejpeg.decode_jpeg(path.read_bytes(), "RGB", min_height=side, min_width=side)
    orient = _TRANSPOSE.get(img.getexif().get(0x0112, 1))
    return np.ascontiguousarray(orient(rgb) if orient else rgb)


def load_image(path: str | Path, min_side: int | None = None) -> np.ndarray:
    """Read an image file as RGB.

    Args:
        path: image file (JPEG, PNG, WebP, TIFF, ... anything Pillow opens).
        min_side: when given, JPEGs are decoded at the smallest DCT scale whose shorter side is
            still ``>= min_side`` (at most 2x larger than asked; scales k/8 for colour and
            greyscale JPEGs, 1/2, 1/4, 1/8 for CMYK). Other formats are decoded at full size.
            No resampling is done here.

    Returns:
        ``(H, W, 3)`` uint8 array in RGB order, EXIF orientation applied.

    Raises:
        ImageLoadError: missing, empty, truncated or non-image file, an unsupported mode, or a
            decompression bomb; the message names the file.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            if img.format == "JPEG" and img.mode in ("RGB", "L"):
                return _turbo_decode(path, img, min_side)
            if min_side and img.format == "JPEG":
                target = _draft_size(img.size, min_side)
                if target is not None:
                    img.draft(None, target)
            img.load()
            return _to_rgb(ImageOps.exif_transpose(img))
    except FileNotFoundError as err:
        raise ImageLoadError(path, "file not found") from err
    except UnidentifiedImageError as err:
        size = path.stat().st_size if path.exists() else 0
        reason = "empty file" if size == 0 else "not an image Pillow can identify"
        raise ImageLoadError(path, reason) from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageLoadError(path, f"decompression bomb guard: {err}") from err
    except (OSError, ValueError, SyntaxError) as err:
        # Pillow reports truncated data as OSError and broken headers as SyntaxError.
        raise ImageLoadError(path, f"{type(err).__name__}: {err}") from err


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """RGB uint8 ``(H, W, 3)`` -> JPEG bytes (OpenCV); ValueError when it cannot encode."""
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"OpenCV could not encode the image {image.shape}")
    return data.tobytes()


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through ``.<name>.<pid>.<thread>.part`` and a rename.

    A reader never sees a half-written file, an interrupted write leaves only the ``.part``
    file, and writers of one path in several processes or threads never share a partial file.
    """
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    partial.write_bytes(data)
    partial.replace(path)
    return path


@cache
def image_suffixes() -> frozenset[str]:
    """Lower-case suffixes of every format Pillow can open here (``.jpg``, ``.gif``, ...)."""
    Image.init()
    return frozenset(
        ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN
    )


def split_files(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """``(images, others)``: the files under ``folder`` (recursive, sorted) split by suffix.

    Images are the files whose suffix Pillow can open (`image_suffixes`); ``others`` are the
    rest (hidden files left out), for a batch job to list by name as skipped.
    """
    files = sorted(
        p
        for p in Path(folder).rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    suffixes = image_suffixes()
    return [p for p in files if p.suffix.lower() in suffixes], [
        p for p in files if p.suffix.lower() not in suffixes
    ]


def image_files(folder: str | Path) -> list[Path]:
    """Image files (by suffix, `image_suffixes`) under ``folder``, recursively, sorted."""
    return split_files(folder)[0]


@dataclass
class BadFiles:
    """Files a batch job skipped, with the reason for each; report them at the end."""

    entries: list[tuple[str, str]] = field(default_factory=list)

    def add(self, error: ImageLoadError) -> None:
        """Record one skipped file."""
        self.entries.append((error.path, error.reason))

    def __len__(self) -> int:
        return len(self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def summary(self, limit: int = 20) -> str:
        """One line per skipped file (at most ``limit``), or a line saying none were skipped."""
        if not self.entries:
            return "all images were read"
        lines = [f"skipped {len(self.entries)} unreadable image(s):"]
        lines += [f"  {path}: {reason}" for path, reason in self.entries[:limit]]
        if len(self.entries) > limit:
            lines.append(f"  ... and {len(self.entries) - limit} more")
        return "\n".join(lines)


def iter_images(
    paths: Iterable[str | Path],
    bad: BadFiles,
    min_side: int | None = None,
    progress: bool = True,
    desc: str = "images",
) -> Iterator[tuple[Path, np.ndarray]]:
    """Yield ``(path, image)`` for each readable file; unreadable ones go to ``bad``."""
    paths = list(paths)
    for path in tqdm(paths, desc=desc, disable=not progress, unit="img"):
        try:
            yield Path(path), load_image(path, min_side=min_side)
        except ImageLoadError as err:
            bad.add(err)
