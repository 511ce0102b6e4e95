"""Devices: the one place that turns a device name into a ``torch.device``.

Library code takes the device as an argument and follows it; nothing calls ``.cuda()``.
"""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def ddp_backend(device: torch.device) -> str:
    """The process-group backend for ``device``: NCCL on CUDA, gloo on the CPU.

    Chosen from the resolved device, not from whether CUDA exists, so ``--device cpu`` on a
    GPU machine runs with gloo.
    """
    return "nccl" if device.type == "cuda" else "gloo"
