"""The inlier matches of a query and a gallery photo, drawn side by side (OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np


def draw_matches(
    query: np.ndarray, gallery: np.ndarray, pairs: np.ndarray, height: int = 360, limit: int = 100
) -> np.ndarray:
    """Both RGB images scaled to ``height`` rows, side by side, a line per inlier.

    Args:
        query: RGB uint8 ``(H, W, 3)``.
        gallery: RGB uint8 ``(H', W', 3)``.
        pairs: ``(K, 4)`` inliers, query x, y and gallery x, y in each image's own pixels
            (`utils.retrieval.rerank.PairMatch.pairs`).
        height: rows of the drawing.
        limit: at most this many lines (evenly spaced rows of ``pairs``), so it stays readable.

    Returns:
        RGB uint8 ``(height, Wq' + Wg', 3)``.
    """
    pairs = np.asarray(pairs, np.float32).reshape(-1, 4)
    if len(pairs) > limit:
        pairs = pairs[np.linspace(0, len(pairs) - 1, limit).astype(int)]
    scaled, points = [], []
    for image, xy in ((query, pairs[:, :2]), (gallery, pairs[:, 2:])):
        scale = height / image.shape[0]
        size = (max(1, round(image.shape[1] * scale)), height)
        scaled.append(np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA)))
        points.append([cv2.KeyPoint(float(x * scale), float(y * scale), 4.0) for x, y in xy])
    lines = [cv2.DMatch(i, i, 0.0) for i in range(len(pairs))]
    return cv2.drawMatches(
        scaled[0],
        points[0],
        scaled[1],
        points[1],
        lines,
        None,
        matchColor=(255, 200, 0),  # the images are RGB, so this is amber
        flags=cv2.DrawMatchesFlags_NOT_DRAW_SINGLE_POINTS,
    )
