"""Margin heads for metric learning: cosine heads, ArcFace, sub-centres, dynamic margins.

A head maps unit embeddings ``(B, D)`` to cosines ``(B, n)`` with each class's unit weight
vector; with ``k`` sub-centres per class (Deng et al. 2020) a class's cosine is the largest of its
``k``. The margin lives in the loss, so inference needs no labels (argmax cosine is the class).

ArcFace (Deng et al. 2019) adds an angular margin ``m`` to the target class only:
``logit_j = s * cos(theta_j + m)`` for ``j = y`` and ``s * cos(theta_j)`` otherwise. Where
``theta + m > pi`` the function ``cos(theta + m)`` stops decreasing, so the target logit falls
back to ``cos(theta) - m * sin(m)`` (the usual linear extension). Dynamic margins (GLR 2020)
give rare classes larger margins: ``m_c = a * normalised(count_c ** -1/4) + b`` with
``normalised(v) = (v - min v) / (max v - min v)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HEADS = ("arcface", "subcenter")


def arcface_logits(
    cosine: torch.Tensor, labels: torch.Tensor, s: float = 30.0, m: float | torch.Tensor = 0.3
) -> torch.Tensor:
    """ArcFace logits of the module docstring: ``(B, n)`` cosines -> ``(B, n)`` float32 logits.

    ``m`` is one margin or a ``(B,)`` tensor (each sample's class margin). Computed in float32
    with the cosine clamped inside ``(-1, 1)``, so float16 inputs under autocast are safe.
    """
    cos = cosine.float().clamp(-1 + 1e-7, 1 - 1e-7)
    m = torch.as_tensor(m, dtype=torch.float32, device=cos.device)
    m = m.reshape(-1, 1) if m.ndim else m
    target = cos.gather(1, labels.view(-1, 1))
    sin = torch.sqrt(1.0 - target * target)
    shifted = target * torch.cos(m) - sin * torch.sin(m)  # cos(theta + m)
    fallback = target - m * torch.sin(m)
    shifted = torch.where(target > torch.cos(math.pi - m), shifted, fallback)
    return s * cos.scatter(1, labels.view(-1, 1), shifted)


def arcface_loss(
    cosine: torch.Tensor,
    labels: torch.Tensor,
    s: float = 30.0,
    m: float | torch.Tensor = 0.3,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy of `arcface_logits` (a scalar)."""
    return F.cross_entropy(
        arcface_logits(cosine, labels, s, m), labels, label_smoothing=label_smoothing
    )


def dynamic_margins(counts, a: float = 0.45, b: float = 0.05) -> np.ndarray:
    """Per-class margins ``m_c = a * normalised(count_c ** -1/4) + b`` (module docstring).

    ``counts``: images per class ``(n,)``. All classes equally frequent: every margin is
    ``b + a / 2``.
    """
    counts = np.asarray(counts, np.float64)
    if (counts <= 0).any():
        raise ValueError("every class needs at least one image for a dynamic margin")
    v = counts**-0.25
    spread = v.max() - v.min()
    normalised = (v - v.min()) / spread if spread > 0 else np.full_like(v, 0.5)
    return (a * normalised + b).astype(np.float32)


class CosineHead(nn.Module):
    """Cosine of unit embeddings with ``k`` unit weight vectors per class: ``(B, D) -> (B, n)``.

    ``k = 1`` is the ArcFace head; ``k > 1`` the sub-centre head (max over a class's centres).
    """

    def __init__(self, dim: int, num_classes: int, subcenters: int = 1):
        super().__init__()
        if subcenters < 1:
            raise ValueError(f"subcenters must be >= 1, not {subcenters}")
        self.num_classes, self.subcenters = num_classes, subcenters
        self.weight = nn.Parameter(torch.empty(num_classes * subcenters, dim))
        nn.init.normal_(self.weight, std=dim**-0.5)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Cosines ``(B, n)`` in float32 (the embeddings are normalised here too)."""
        cos = F.linear(F.normalize(embeddings.float(), dim=1), F.normalize(self.weight.float()))
        if self.subcenters > 1:
            cos = cos.view(-1, self.num_classes, self.subcenters).amax(dim=2)
        return cos
