"""Photos without a landmark, for the mini dataset's test set and ``non_landmark/`` folder.

`non_landmark_scene` draws one of `SCENES` directly at photo size: nature, rooms, streets of
ordinary houses (structures that are not landmarks: the hard negatives), close-up objects,
textures, crowds and documents. `utils.camera.degrade` then adds the same occluders, blur,
noise and JPEG artefacts as the landmark photos get.
"""

from __future__ import annotations

import cv2
import numpy as np

from utils.minigld.render import hsv

SCENES = ("nature", "indoor", "street", "object", "texture", "crowd", "document")


def _random_color(rng: np.random.Generator, v=(0.2, 0.95)) -> tuple[int, int, int]:
    return hsv(rng.random(), rng.uniform(0.05, 0.8), rng.uniform(*v))


def non_landmark_scene(rng: np.random.Generator, width: int, height: int, scene: str) -> np.ndarray:
    """A ``(height, width, 3)`` uint8 RGB photo of something that is not a landmark."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = _random_color(rng)
    horizon = int(height * rng.uniform(0.4, 0.7))
    if scene in ("nature", "street", "crowd"):
        img[:horizon] = hsv(0.58, rng.uniform(0.2, 0.6), rng.uniform(0.6, 0.95))
        img[horizon:] = _random_color(rng, (0.25, 0.6))
    if scene == "nature":
        for _ in range(int(rng.integers(2, 5))):
            xs = np.linspace(0, width, 7)
            ys = horizon - rng.uniform(10, height * 0.35, size=7)
            pts = np.array([(0, horizon), *zip(xs, ys, strict=True), (width, horizon)], np.int32)
            cv2.fillPoly(img, [pts], hsv(rng.uniform(0.2, 0.45), 0.4, rng.uniform(0.2, 0.6)))
        for _ in range(int(rng.integers(3, 15))):
            x, y, r = (
                int(rng.uniform(0, width)),
                int(rng.uniform(horizon, height)),
                int(rng.uniform(8, 40)),
            )
            cv2.circle(img, (x, y - r), r, hsv(0.3, 0.6, rng.uniform(0.2, 0.6)), -1, cv2.LINE_AA)
    elif scene == "street":  # ordinary houses: structures that are not landmarks
        x = 0
        while x < width:
            w, h = int(rng.uniform(40, 110)), int(rng.uniform(40, 120))
            color = _random_color(rng, (0.4, 0.9))
            cv2.rectangle(img, (x, horizon - h), (x + w, horizon), color, -1)
            roof = np.array(
                [
                    (x - 4, horizon - h),
                    (x + w + 4, horizon - h),
                    (x + w // 2, horizon - h - int(w * 0.4)),
                ],
                np.int32,
            )
            cv2.fillPoly(img, [roof], _random_color(rng, (0.2, 0.5)))
            cv2.rectangle(
                img, (x + w // 3, horizon - h // 2), (x + 2 * w // 3, horizon), (60, 40, 30), -1
            )
            x += w + int(rng.uniform(0, 20))
    elif scene == "indoor":
        cv2.rectangle(img, (0, horizon), (width, height), _random_color(rng), -1)
        for _ in range(int(rng.integers(2, 7))):
            x, y = int(rng.uniform(0, width * 0.8)), int(rng.uniform(0, height * 0.8))
            cv2.rectangle(
                img,
                (x, y),
                (x + int(rng.uniform(20, width / 3)), y + int(rng.uniform(20, height / 3))),
                _random_color(rng),
                -1,
            )
    elif scene == "object":
        center = (int(width * rng.uniform(0.3, 0.7)), int(height * rng.uniform(0.3, 0.7)))
        axes = (int(width * rng.uniform(0.15, 0.4)), int(height * rng.uniform(0.15, 0.4)))
        cv2.ellipse(
            img,
            center,
            axes,
            float(rng.uniform(0, 180)),
            0,
            360,
            _random_color(rng),
            -1,
            cv2.LINE_AA,
        )
        for _ in range(int(rng.integers(0, 8))):
            p = (
                int(center[0] + rng.normal(0, axes[0] / 2)),
                int(center[1] + rng.normal(0, axes[1] / 2)),
            )
            cv2.circle(img, p, int(rng.uniform(3, 15)), _random_color(rng), -1, cv2.LINE_AA)
    elif scene == "texture":
        small = rng.integers(0, 255, size=(int(rng.integers(4, 24)), int(rng.integers(4, 24)), 3))
        img = cv2.resize(small.astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    elif scene == "crowd":
        for _ in range(int(rng.integers(5, 25))):
            x, y = int(rng.uniform(0, width)), int(rng.uniform(horizon, height * 1.1))
            s = rng.uniform(0.5, 1.5) * height / 10
            color = _random_color(rng, (0.1, 0.7))
            cv2.ellipse(img, (x, int(y - s)), (int(s / 2), int(s)), 0, 0, 360, color, -1)
            cv2.circle(img, (x, int(y - 2.3 * s)), int(s / 3), hsv(0.07, 0.4, 0.7), -1)
    else:  # document
        img[:] = (245, 245, 240)
        for row in range(int(height * 0.1), int(height * 0.9), int(rng.integers(10, 18))):
            x = int(width * 0.1)
            while x < width * 0.9:
                w = int(rng.uniform(10, 50))
                cv2.rectangle(img, (x, row), (x + w, row + 4), (40, 40, 40), -1)
                x += w + 8
    return img
