"""A pre-resized copy of an image tree: the usual way to make a GLDv2 epoch affordable.

``python -m utils resize --src DIR --dst DIR --short-side 384 [--workers N]`` mirrors
every image under ``src`` (the ``a/b/c`` layout kept) into ``dst`` as a JPEG whose shorter
side is ``short-side`` (smaller images are re-encoded at their size, never enlarged). It runs
in parallel with a progress bar, resumes where it stopped (a file already in ``dst`` is not
redone; each file is written to a temporary name and renamed, so an interrupted run leaves no
half-written image), and skips broken files, listing them at the end and in
``dst/resize_broken.csv``.
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from utils.data.images import (
    BadFiles,
    ImageLoadError,
    encode_jpeg,
    image_files,
    load_image,
    write_atomic,
)

BROKEN_REPORT = "resize_broken.csv"


@dataclass
class ResizeReport:
    """What a resize run did."""

    written: int = 0
    already_done: int = 0
    broken: BadFiles = field(default_factory=BadFiles)

    def summary(self) -> str:
        """One line of counts, then the broken files."""
        line = (
            f"resized {self.written}, already done {self.already_done}, broken {len(self.broken)}"
        )
        return line if not self.broken else f"{line}\n{self.broken.summary()}"


def shrink(image: np.ndarray, short_side: int) -> np.ndarray:
    """Resize ``(H, W, 3)`` so that ``min(H, W) == short_side`` (area filter); never enlarge."""
    height, width = image.shape[:2]
    scale = short_side / min(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def target_path(src_root: Path, dst_root: Path, path: Path) -> Path:
    """``dst_root/<path relative to src_root>`` with a ``.jpg`` suffix."""
    return (dst_root / path.relative_to(src_root)).with_suffix(".jpg")


def resize_one(task: tuple[str, str, int, int]) -> tuple[str, str | None]:
    """Resize one file; returns ``(src, None)`` or ``(src, reason)`` when it is broken."""
    src, dst, short_side, quality = task
    try:
        image = shrink(load_image(src, min_side=short_side), short_side)
    except ImageLoadError as err:
        return src, err.reason
    try:
        data = encode_jpeg(image, quality)
    except ValueError:
        return src, "OpenCV could not encode the resized image"
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(dst, data)
    return src, None


def resize_tree(
    src: str | Path,
    dst: str | Path,
    short_side: int = 384,
    workers: int | None = None,
    quality: int = 90,
    progress: bool = True,
) -> ResizeReport:
    """Mirror ``src`` into ``dst`` at ``short_side`` (see the module docstring)."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: source folder not found")
    if short_side < 1:
        raise ValueError(f"--short-side must be positive, got {short_side}")
    files = image_files(src)
    if dst.is_dir():
        for stale in dst.rglob(".*.part"):  # left by a run that was killed mid-write
            stale.unlink()
    report = ResizeReport()
    tasks = []
    for path in files:
        out = target_path(src, dst, path)
        if out.is_file() and out.stat().st_size > 0:
            report.already_done += 1
        else:
            tasks.append((str(path), str(out), short_side, quality))
    workers = workers or min(4, os.cpu_count() or 1)
    bar = tqdm(total=len(tasks), desc="resize", unit="img", disable=not progress)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for path, reason in pool.map(resize_one, tasks, chunksize=8):
            if reason is None:
                report.written += 1
            else:
                report.broken.add(ImageLoadError(path, reason))
            bar.update()
    bar.close()
    dst.mkdir(parents=True, exist_ok=True)
    with open(dst / BROKEN_REPORT, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "reason"])
        writer.writerows(report.broken.entries)
    return report
