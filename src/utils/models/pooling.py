"""Generalized-mean (GeM) pooling: a pure function and a module.

``gem(x, p)[b, c] = ( mean_{h,w} max(x[b, c, h, w], eps) ** p ) ** (1 / p)`` for ``x`` of
shape ``(B, C, H, W)``, giving ``(B, C)``. ``p = 1`` is average pooling, ``p -> inf`` max
pooling; retrieval networks learn ``p`` (initialised at 3, Radenovic et al. 2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def gem(x: torch.Tensor, p: torch.Tensor | float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """GeM of the module docstring: ``(B, C, H, W) -> (B, C)``, in float32 for stability."""
    p = torch.as_tensor(p, dtype=torch.float32, device=x.device)
    pooled = F.adaptive_avg_pool2d(x.float().clamp(min=eps).pow(p), 1).pow(1.0 / p)
    return pooled.flatten(1).to(x.dtype)


class GeM(nn.Module):
    """`gem` with a trainable exponent ``p`` (initial 3)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, trainable: bool = True):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=trainable)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C)``."""
        return gem(x, self.p, self.eps)

    def extra_repr(self) -> str:
        """``p`` and ``eps`` in the module's repr."""
        return f"p={float(self.p.detach()):.3f}, eps={self.eps}"
