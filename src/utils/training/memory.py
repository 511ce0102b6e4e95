"""What a classification head costs to train: its parameters, gradients and optimiser state.

A head of ``P`` parameters trained in fp32 with AdamW holds the weights (``4P`` bytes), their
gradients (``4P``) and AdamW's two moments (``8P``): ``16P`` bytes (`training_bytes`). For the
leaderboard model's linear head, ``P = D * C + C`` (``D`` features, ``C`` classes); for
EfficientNet-Lite2 (``D = 1280``) over GLDv2-clean's 81,313 landmarks that is 104.2M parameters,
417 MB of weights and 1.67 GB to train; a sub-centre ArcFace head (``k`` centres, no bias) has
``P = D * C * k``.
"""

from __future__ import annotations

from torch import nn

GLDV2_CLEAN_CLASSES = 81_313


def parameters(module: nn.Module) -> int:
    """Number of parameters of a module."""
    return sum(p.numel() for p in module.parameters())


def training_bytes(count: int, optimizer_moments: int = 2, bytes_per_value: int = 4) -> int:
    """Bytes of weights, gradients and optimiser moments of ``count`` parameters."""
    return int(count) * bytes_per_value * (2 + optimizer_moments)


def head_cost(model: nn.Module) -> dict:
    """The head's parameters and bytes of a `utils.models.backbones.LandmarkClassifier`."""
    count = parameters(model.head)
    return {
        "parameters": count,
        "weights_bytes": 4 * count,
        "training_bytes": training_bytes(count),
        "backbone_parameters": parameters(model) - count,
    }
