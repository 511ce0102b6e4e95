"""Procedural landmarks for the embedded mini dataset.

Each synthetic landmark is a fixed scene on a ``WORLD x WORLD`` canvas: a structure of one of
`KINDS` (silhouette), a facade pattern, a palette, and surroundings (ground, hills, trees,
water) drawn once from the landmark's own seed. `landmark_layers` returns it as three arrays:

- ``body``: ``(WORLD, WORLD, 3)`` uint8 RGB of everything that is not sky;
- ``alpha``: ``(WORLD, WORLD)`` float32 in [0, 1], 1 where ``body`` is opaque;
- ``lights``: ``(WORLD, WORLD)`` float32 in [0, 1], the windows that glow at night.

`utils.camera` turns these layers into photos (sky, lighting, viewpoint, degradations).
Non-landmark scenes are drawn by `utils.scenes`.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np

WORLD = 512
KINDS = (
    "tower",
    "dome",
    "arch",
    "pyramid",
    "bridge",
    "pagoda",
    "temple",
    "lighthouse",
    "wheel",
    "statue",
    "castle",
    "skyscraper",
)


@dataclass(frozen=True)
class LandmarkSpec:
    """What makes one synthetic landmark: its id, name, structure kind and drawing seed."""

    landmark_id: int
    name: str
    kind: str
    seed: int


@dataclass(frozen=True)
class Layers:
    """A landmark's fixed scene; see the module docstring for shapes."""

    body: np.ndarray
    alpha: np.ndarray
    lights: np.ndarray


def hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    """RGB 0-255 tuple from hue, saturation, value in [0, 1]."""
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1))
    return int(r * 255), int(g * 255), int(b * 255)


class _Canvas:
    """Drawing helpers that paint body, alpha and lights together."""

    def __init__(self, size: int):
        self.body = np.zeros((size, size, 3), np.uint8)
        self.alpha = np.zeros((size, size), np.uint8)
        self.lights = np.zeros((size, size), np.uint8)

    def poly(self, points, color) -> None:
        pts = np.asarray(points, np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(self.body, [pts], color, cv2.LINE_AA)
        cv2.fillPoly(self.alpha, [pts], 255, cv2.LINE_AA)

    def rect(self, x0, y0, x1, y1, color) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], color)

    def ellipse(self, center, axes, color, start=0, end=360) -> None:
        c, a = tuple(int(v) for v in center), tuple(max(1, int(v)) for v in axes)
        cv2.ellipse(self.body, c, a, 0, start, end, color, -1, cv2.LINE_AA)
        cv2.ellipse(self.alpha, c, a, 0, start, end, 255, -1, cv2.LINE_AA)

    def line(self, p0, p1, color, width) -> None:
        p0, p1 = tuple(int(v) for v in p0), tuple(int(v) for v in p1)
        cv2.line(self.body, p0, p1, color, int(width), cv2.LINE_AA)
        cv2.line(self.alpha, p0, p1, 255, int(width), cv2.LINE_AA)

    def hole(self, points) -> None:
        """Make a region transparent again (an arch's opening)."""
        pts = np.asarray(points, np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(self.alpha, [pts], 0, cv2.LINE_AA)

    def facade(self, rng, x0, y0, x1, y1, color, pattern) -> None:
        """A block with a facade pattern: windows, columns, bands or bricks."""
        x0, y0, x1, y1 = int(x0), int(y0), int(x1), int(y1)
        self.rect(x0, y0, x1, y1, color)
        w, h = x1 - x0, y1 - y0
        dark = tuple(int(c * 0.55) for c in color)
        if pattern == "windows" and w > 8 and h > 8:
            cols, rows = int(rng.integers(2, 7)), int(rng.integers(2, 9))
            ww, wh = w / (cols * 2 + 1), h / (rows * 2 + 1)
            for i in range(cols):
                for j in range(rows):
                    wx, wy = x0 + ww * (2 * i + 1), y0 + wh * (2 * j + 1)
                    box = (int(wx), int(wy)), (int(wx + ww), int(wy + wh))
                    cv2.rectangle(self.body, box[0], box[1], dark, -1)
                    cv2.rectangle(self.lights, box[0], box[1], 255, -1)
        elif pattern == "columns":
            n = int(rng.integers(3, 9))
            for i in range(n):
                cx = x0 + w * (i + 0.5) / n
                cv2.rectangle(
                    self.body, (int(cx - w / (4 * n)), y0), (int(cx + w / (4 * n)), y1), dark, -1
                )
        elif pattern == "bands":
            step = max(3, int(h / rng.integers(3, 10)))
            for y in range(y0, y1, step * 2):
                cv2.rectangle(self.body, (x0, y), (x1, min(y + step, y1)), dark, -1)
        else:  # bricks
            step = max(3, int(rng.integers(4, 9)))
            for k, y in enumerate(range(y0, y1, step)):
                cv2.line(self.body, (x0, y), (x1, y), dark, 1)
                for x in range(x0 + (k % 2) * step, x1, step * 2):
                    cv2.line(self.body, (x, y), (x, min(y + step, y1)), dark, 1)


class Site(NamedTuple):
    """Where and how one structure stands, and its colours.

    Its kind, facade pattern, centre ``cx``, ground line, top, height and width (world
    pixels), and its palette (main, accent, roof colours).
    """

    kind: str
    pattern: str
    cx: float
    ground: int
    top: float
    height: float
    width: float
    main: tuple
    accent: tuple
    roof: tuple


def _draw_tower(c: _Canvas, rng: np.random.Generator, s: Site) -> None:
    """Draw a tower or a skyscraper (one of `DRAWERS`)."""
    kind, pattern, cx, ground, top, height, width, main, accent, roof = s
    tiers = int(rng.integers(2, 5)) if kind == "tower" else int(rng.integers(1, 3))
    w = width * (0.6 if kind == "tower" else 0.45)
    y = ground
    for _ in range(tiers):
        tier_h = height * 0.8 / tiers
        c.facade(
            rng,
            cx - w / 2,
            y - tier_h,
            cx + w / 2,
            y,
            main,
            "windows" if kind == "skyscraper" else pattern,
        )
        y -= tier_h
        w *= rng.uniform(0.6, 0.85)
    c.poly([(cx - w / 2, y), (cx + w / 2, y), (cx, top)], roof)


def _draw_dome(c: _Canvas, rng: np.random.Generator, s: Site) -> None:
    """Draw a dome (one of `DRAWERS`)."""
    kind, pattern, cx, ground, top, height, width, main, accent, roof = s
    c.facade(rng, cx - width / 2, ground - height * 0.45, cx + width / 2, ground, main, pattern)
    drum_w = width * rng.uniform(0.45, 0.7)
    drum_top = ground - height * 0.6
    c.facade(
        rng,
        cx - drum_w / 2,
        drum_top,
        cx + drum_w / 2,
        ground - height * 0.45,
        accent,
        "columns",
    )
    c.ellipse((cx, drum_top), (drum_w / 2, height * 0.3), roof, 180, 360)
    c.rect(cx - 4, drum_top - height * 0.4, cx + 4, drum_top - height * 0.28, accent)
    if rng.random() < 0.5:
        for side in (-1, 1):
            x = cx + side * width * 0.55
            c.facade(rng, x - 12, ground - height * 0.7, x + 12, ground, main, "bands")
            c.poly(
                [
                    (x - 14, ground - height * 0.7),
                    (x + 14, ground - height * 0.7),
                    (x, ground - height * 0.85),
                ],
                roof,
            )


def _draw_arch(c: _Canvas, rng: np.random.Generator, s: Site) -> None:
    """Draw an arch (one of `DRAWERS`)."""
    kind, pattern, cx, ground, top, height, width, main, accent, roof = s
    c.facade(rng, cx - width / 2, top + height * 0.2, cx + width / 2, ground, main, pattern)
    c.rect(cx - width / 2 - 6, top + height * 0.12, cx + width / 2 + 6, top + height * 0.22, accent)
    ow, oh = width * rng.uniform(0.3, 0.5), height * rng.uniform(0.35, 0.55)
    arc = [
        (cx + ow / 2 * np.cos(t), ground - oh + ow / 2 * np.sin(t) * -1)
        for t in np.linspace(0, np.pi, 16)
    ]
    c.hole([(cx + ow / 2, ground), *arc, (cx - ow / 2, ground)])


def _draw_pyramid(c: _Canvas, rng: np.random.Generator, s: Site) -> None:
    """Draw a pyramid (one of `DRAWERS`)."""
    kind, pattern, cx, ground, top, height, width, main, accent, roof = s
    c.poly([(cx - width, ground), (cx + width, ground), (cx, top)], main)
    for k in range(1, int(rng.integers(5, 14))):
        y = ground - height * k / 14
        half = width * (1 - k / 14)
        cv2.line(c.body, (int(cx - half), int(y)), (int(cx + half), int(y)), accent, 2)


def _draw_bridge(c: _Canvas, rng: np.random.Generator, s: Site) -> None:
    """Draw a bridge (one of `DRAWERS`)."""
    kind, pattern, cx, ground, top, height, width, main, accent, roof = s
    deck = ground - height * rng.uniform(0.25, 0.4)
    c.rect(0, deck - 10, WORLD, deck + 6, accent)
    for x in (WORLD * 0.25, WORLD * 0.75):
        c.facade(rng, x - 16, top, x + 16, ground, main, pattern)
        for end in (0, WORLD * 0.5, WORLD):
            c.line((x, top + 10), (end, deck - 10), roof, 2)


def _draw_pagoda(c: _Canvas, rng: np.random.Generator, s: Site) -> None:
    """Draw a pagoda (one of `DRAWERS`)."""
    kind, pattern, cx, ground, top, height, width, main, accent, roof = s
    tiers = int(rng.integers(3, 7))
    w, y = width * 0.5, ground
    for _ in range(tiers):
        tier_h = height / tiers
        c.facade(rng, cx - w / 2, y - tier_h * 0.7, cx + w / 2, y, main, "columns")
        c.poly(
            [
                (cx - w * 0.85, y - tier_h * 0.6),
                (cx + w * 0.85, y - tier_h * 0.6),
                (cx + w * 0.45, y - tier_h),
                (cx - w * 0.45, y - tier_h),
            ],
            roof,
        )
        y -= tier_h
        w *= 0.82


def _draw_temple(c: _Canvas, rng: np.random.Generator, s: Site) -> None:
    """Draw a temple (one of `DRAWERS`)."""
    kind, pattern, cx, ground, top, height, width, main, accent, roof = s
    for k in range(3):
        c.rect(
            cx - width / 2 - 12 + 4 * k,
            ground - 8 * (k + 1),
            cx + width / 2 + 12 - 4 * k,
            ground - 8 * k,
            accent,
        )
    c.facade(rng, cx - width / 2, top + height * 0.35, cx + width / 2, ground - 24, main, "columns")
    c.poly(
        [
            (cx - width / 2 - 8, top + height * 0.35),
            (cx + width / 2 + 8, top + height * 0.35),
            (cx, top + height * 0.1),
        ],
        roof,
    )


def _draw_lighthouse(c: _Canvas, rng: np.random.Generator, s: Site) -> None:
    """Draw a lighthouse (one of `DRAWERS`)."""
    kind, pattern, cx, ground, top, height, width, main, accent, roof = s
    bw, tw = width * 0.35, width * 0.2
    bands = int(rng.integers(3, 7))
    for k in range(bands):
        y0, y1 = ground - height * 0.8 * (k + 1) / bands, ground - height * 0.8 * k / bands
        f0, f1 = (k + 1) / bands, k / bands
        color = main if k % 2 == 0 else accent
        c.poly(
            [
                (cx - (bw - (bw - tw) * f1) / 2, y1),
                (cx + (bw - (bw - tw) * f1) / 2, y1),
                (cx + (bw - (bw - tw) * f0) / 2, y0),
                (cx - (bw - (bw - tw) * f0) / 2, y0),
            ],
            color,
        )
    c.rect(cx - tw / 2, top + height * 0.08, cx + tw / 2, top + height * 0.2, (250, 240, 180))
    cv2.rectangle(
        c.lights,
        (int(cx - tw / 2), int(top + height * 0.08)),
        (int(cx + tw / 2), int(top + height * 0.2)),
        255,
        -1,
    )
    c.poly(
        [
            (cx - tw / 2 - 4, top + height * 0.08),
            (cx + tw / 2 + 4, top + height * 0.08),
            (cx, top),
        ],
        roof,
    )


def _draw_wheel(c: _Canvas, rng: np.random.Generator, s: Site) -> None:
    """Draw a wheel (one of `DRAWERS`)."""
    kind, pattern, cx, ground, top, height, width, main, accent, roof = s
    radius = height * 0.45
    hub = (cx, ground - radius - height * 0.08)
    cv2.circle(c.body, (int(hub[0]), int(hub[1])), int(radius), main, 4, cv2.LINE_AA)
    cv2.circle(c.alpha, (int(hub[0]), int(hub[1])), int(radius), 255, 4, cv2.LINE_AA)
    spokes = int(rng.integers(8, 20))
    for k in range(spokes):
        t = 2 * np.pi * k / spokes
        rim = (hub[0] + radius * np.cos(t), hub[1] + radius * np.sin(t))
        c.line(hub, rim, accent, 2)
        c.ellipse(rim, (6, 5), roof)
    c.line(hub, (cx - radius * 0.6, ground), main, 6)
    c.line(hub, (cx + radius * 0.6, ground), main, 6)


def _draw_statue(c: _Canvas, rng: np.random.Generator, s: Site) -> None:
    """Draw a statue (one of `DRAWERS`)."""
    kind, pattern, cx, ground, top, height, width, main, accent, roof = s
    c.facade(
        rng,
        cx - width * 0.25,
        ground - height * 0.3,
        cx + width * 0.25,
        ground,
        accent,
        "bricks",
    )
    body_top = ground - height * 0.85
    c.poly(
        [
            (cx - width * 0.12, ground - height * 0.3),
            (cx + width * 0.12, ground - height * 0.3),
            (cx + width * 0.07, body_top),
            (cx - width * 0.07, body_top),
        ],
        main,
    )
    c.ellipse((cx, body_top - height * 0.05), (height * 0.045, height * 0.06), main)
    c.line((cx + width * 0.06, body_top + 5), (cx + width * 0.2, top), main, 7)


def _draw_castle(c: _Canvas, rng: np.random.Generator, s: Site) -> None:
    """Draw a castle (one of `DRAWERS`)."""
    kind, pattern, cx, ground, top, height, width, main, accent, roof = s
    c.facade(rng, cx - width / 2, ground - height * 0.45, cx + width / 2, ground, main, "bricks")
    merlons = int(rng.integers(5, 12))
    for k in range(merlons):
        x = cx - width / 2 + width * k / merlons
        c.rect(x, ground - height * 0.5, x + width / (2 * merlons), ground - height * 0.45, main)
    for x in np.linspace(cx - width / 2, cx + width / 2, int(rng.integers(2, 5))):
        c.facade(rng, x - 14, ground - height * 0.8, x + 14, ground, accent, "windows")
        c.poly([(x - 18, ground - height * 0.8), (x + 18, ground - height * 0.8), (x, top)], roof)


# kind -> the function that draws it (random draws in a fixed order: same seed, same bytes)
DRAWERS: dict[str, Callable[[_Canvas, np.random.Generator, Site], None]] = {
    "tower": _draw_tower,
    "skyscraper": _draw_tower,
    "dome": _draw_dome,
    "arch": _draw_arch,
    "pyramid": _draw_pyramid,
    "bridge": _draw_bridge,
    "pagoda": _draw_pagoda,
    "temple": _draw_temple,
    "lighthouse": _draw_lighthouse,
    "wheel": _draw_wheel,
    "statue": _draw_statue,
    "castle": _draw_castle,
}


def _structure(c: _Canvas, rng: np.random.Generator, kind: str, ground: int, palette) -> None:
    """Draw one structure of ``kind`` standing on the line ``y = ground`` (`DRAWERS`)."""
    main, accent, roof = palette
    pattern = str(rng.choice(["windows", "columns", "bands", "bricks"]))
    cx = WORLD * rng.uniform(0.4, 0.6)
    height = WORLD * rng.uniform(0.42, 0.62)
    width = WORLD * rng.uniform(0.22, 0.5)
    site = Site(kind, pattern, cx, ground, ground - height, height, width, main, accent, roof)
    DRAWERS[kind](c, rng, site)


def _surroundings(c: _Canvas, rng: np.random.Generator, ground: int, hue: float) -> None:
    """Ground strip plus the landmark's fixed hills, trees, lamps or water."""
    ground_color = hsv(
        rng.choice([0.08, 0.25, 0.33, 0.1]), rng.uniform(0.2, 0.6), rng.uniform(0.35, 0.7)
    )
    c.rect(0, ground, WORLD, WORLD, ground_color)
    if rng.random() < 0.35:  # water in the foreground
        water = hsv(0.58, 0.5, rng.uniform(0.4, 0.7))
        c.rect(0, ground + (WORLD - ground) * 0.4, WORLD, WORLD, water)
    for _ in range(int(rng.integers(0, 6))):  # trees at fixed places
        x, r = rng.uniform(0, WORLD), rng.uniform(10, 30)
        c.line((x, ground), (x, ground - r), (90, 60, 30), 4)
        c.ellipse((x, ground - r * 1.6), (r, r * 1.1), hsv(0.3, 0.6, rng.uniform(0.3, 0.6)))
    for _ in range(int(rng.integers(0, 3))):  # lamp posts
        x = rng.uniform(0, WORLD)
        c.line((x, ground), (x, ground - 70), (40, 40, 40), 3)
        c.ellipse((x, ground - 72), (5, 5), (255, 230, 160))
        cv2.circle(c.lights, (int(x), int(ground - 72)), 5, 255, -1)


def _hills(c: _Canvas, rng: np.random.Generator, ground: int) -> None:
    """Distant hills behind the structure (drawn first)."""
    if rng.random() < 0.5:
        xs = np.linspace(0, WORLD, 9)
        ys = ground - rng.uniform(20, 110, size=9)
        c.poly(
            [(0, ground), *zip(xs, ys, strict=True), (WORLD, ground)],
            hsv(rng.uniform(0.25, 0.4), 0.3, rng.uniform(0.35, 0.55)),
        )


@lru_cache(maxsize=128)
def landmark_layers(spec: LandmarkSpec) -> Layers:
    """Draw the fixed scene of one landmark (deterministic in ``spec.seed``)."""
    rng = np.random.default_rng(spec.seed)
    hue = rng.random()
    palette = (
        hsv(hue, rng.uniform(0.1, 0.6), rng.uniform(0.55, 0.95)),
        hsv(hue + rng.uniform(0.05, 0.5), rng.uniform(0.1, 0.7), rng.uniform(0.4, 0.9)),
        hsv(rng.random(), rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.8)),
    )
    ground = int(WORLD * rng.uniform(0.72, 0.86))
    canvas = _Canvas(WORLD)
    _hills(canvas, rng, ground)
    _structure(canvas, rng, spec.kind, ground, palette)
    _surroundings(canvas, rng, ground, hue)
    lights = (canvas.lights.astype(np.float32) / 255.0) * (canvas.alpha > 0)
    return Layers(canvas.body, canvas.alpha.astype(np.float32) / 255.0, lights)
