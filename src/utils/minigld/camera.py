"""Photograph a synthetic landmark: sky, lighting, viewpoint, occluders and degradations.

`photograph` composes a landmark's `utils.render.Layers` over a sky of the chosen time of day,
re-lights it (day, golden hour, overcast, night with lit windows), and views it through a
random camera: a homography from a source quadrilateral in the world canvas to the output
frame, which covers scale, crop, zoomed details, rotation and perspective. `degrade` then adds
occluders, blur, noise, greyscale and encodes a JPEG of random quality.
"""

from __future__ import annotations

import cv2
import numpy as np

from utils.minigld.render import WORLD, Layers

TIMES = ("day", "golden", "overcast", "night")
ASPECTS = (4 / 3, 3 / 4, 16 / 9, 1.0, 3 / 2, 2 / 3)
_SKY = {  # (zenith RGB, horizon RGB)
    "day": ((70, 130, 220), (180, 210, 240)),
    "golden": ((90, 110, 190), (250, 180, 110)),
    "overcast": ((150, 155, 160), (200, 200, 205)),
    "night": ((10, 14, 40), (45, 50, 90)),
}
_TINT = {
    "day": (1.0, 1.0, 1.0),
    "golden": (1.15, 0.95, 0.75),
    "overcast": (0.85, 0.87, 0.9),
    "night": (0.32, 0.34, 0.45),
}


def photo_size(rng: np.random.Generator, long_side: tuple[int, int]) -> tuple[int, int]:
    """Random ``(width, height)`` with a long side in ``long_side`` and a common aspect."""
    side = int(rng.integers(long_side[0], long_side[1] + 1))
    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]
    if aspect >= 1:
        return side, max(32, int(side / aspect))
    return max(32, int(side * aspect)), side


def sky(rng: np.random.Generator, time: str) -> np.ndarray:
    """``(WORLD, WORLD, 3)`` float32 vertical gradient with a few soft clouds."""
    zenith, horizon = (np.array(c, np.float32) for c in _SKY[time])
    t = np.linspace(0, 1, WORLD, dtype=np.float32)[:, None, None]
    canvas = np.broadcast_to(zenith * (1 - t) + horizon * t, (WORLD, WORLD, 3)).copy()
    if time != "night":
        clouds = np.zeros((WORLD // 8, WORLD // 8), np.float32)
        for _ in range(int(rng.integers(0, 5))):
            center = (int(rng.integers(0, WORLD // 8)), int(rng.integers(0, WORLD // 16)))
            axes = (int(rng.integers(3, 12)), int(rng.integers(1, 4)))
            cv2.ellipse(clouds, center, axes, 0, 0, 360, 1.0, -1)
        clouds = cv2.resize(cv2.GaussianBlur(clouds, (0, 0), 1.5), (WORLD, WORLD))[:, :, None]
        canvas = canvas * (1 - 0.7 * clouds) + 240.0 * 0.7 * clouds
    return canvas


def compose(layers: Layers, rng: np.random.Generator, time: str) -> np.ndarray:
    """Landmark over sky, re-lit for ``time``: ``(WORLD, WORLD, 3)`` float32 in [0, 255]."""
    alpha = layers.alpha[:, :, None]
    tint = np.array(_TINT[time], np.float32) * rng.uniform(0.85, 1.15)
    lit = layers.body.astype(np.float32) * tint
    if time == "night":
        glow = layers.lights[:, :, None] * np.array([255, 215, 140], np.float32)
        lit = np.maximum(lit, glow * rng.uniform(0.6, 1.0))
    return sky(rng, time) * (1 - alpha) + lit * alpha


def view(world: np.ndarray, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Look at ``world`` through a random camera; returns ``(H, W, 3)`` uint8.

    The source rectangle has the output's aspect, a side of ``WORLD / zoom`` (``zoom`` up to
    3.5: close-ups of details), a centre near the structure, corners jittered by up to 8% of
    its side (perspective) and a rotation of up to 8 degrees.
    """
    width, height = size
    zoom = float(rng.choice([rng.uniform(1.0, 1.8), rng.uniform(1.8, 3.5)], p=[0.75, 0.25]))
    src_w = WORLD / zoom
    src_h = src_w * height / width
    if src_h > WORLD:
        src_w, src_h = src_w * WORLD / src_h, WORLD
    cx = np.clip(WORLD * rng.uniform(0.35, 0.65), src_w / 2, WORLD - src_w / 2)
    cy = np.clip(WORLD * rng.uniform(0.4, 0.65), src_h / 2, WORLD - src_h / 2)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float32) * [src_w / 2, src_h / 2]
    angle = np.deg2rad(rng.uniform(-8, 8))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    corners = corners @ rot.T + rng.uniform(-0.08, 0.08, (4, 2)) * [src_w, src_h]
    src = (corners + [cx, cy]).astype(np.float32)
    dst = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    out = cv2.warpPerspective(
        world, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    return np.clip(out, 0, 255).astype(np.uint8)


def occlude(img: np.ndarray, rng: np.random.Generator, count: int) -> None:
    """Draw ``count`` foreground occluders (people, cars, branches) in place."""
    height, width = img.shape[:2]
    for _ in range(count):
        color = tuple(int(c) for c in rng.integers(0, 200, 3))
        x, y = int(rng.uniform(0, width)), int(rng.uniform(height * 0.5, height))
        s = int(rng.uniform(0.06, 0.3) * height)
        shape = rng.integers(3)
        if shape == 0:  # a person
            cv2.ellipse(img, (x, y), (max(1, s // 4), max(1, s // 2)), 0, 0, 360, color, -1)
            cv2.circle(img, (x, y - s // 2 - s // 8), max(1, s // 7), color, -1)
        elif shape == 1:  # a car
            cv2.rectangle(img, (x - s, y - s // 3), (x + s, y + s // 3), color, -1)
        else:  # a branch across the frame
            cv2.line(img, (x, 0), (int(rng.uniform(0, width)), y), color, max(2, s // 10))


def degrade(img: np.ndarray, rng: np.random.Generator, allow_grey: bool = True) -> bytes:
    """Occluders, blur, noise, greyscale, then JPEG at a random quality; returns the file."""
    img = np.ascontiguousarray(img)
    occlude(img, rng, int(rng.choice([0, 0, 1, 2, 3])))
    if rng.random() < 0.25:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 2.5))
    elif rng.random() < 0.1:
        k = int(rng.integers(5, 13))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1.0 / k
        img = cv2.filter2D(img, -1, kernel)
    if rng.random() < 0.5:
        noise = rng.normal(0, rng.uniform(2, 10), img.shape).astype(np.float32)
        img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    quality = int(rng.integers(40, 96))
    if allow_grey and rng.random() < 0.06:
        out = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    else:
        out = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a JPEG")
    return data.tobytes()


def photograph(
    layers: Layers, rng: np.random.Generator, long_side: tuple[int, int] = (256, 640)
) -> bytes:
    """One JPEG photo of a landmark from a random time of day and viewpoint."""
    time = str(rng.choice(TIMES, p=[0.55, 0.15, 0.15, 0.15]))
    world = compose(layers, rng, time)
    return degrade(view(world, rng, photo_size(rng, long_side)), rng)
