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


PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def autocast_dtype(device: torch.device, amp: bool = True, precision: str = "auto"):
    """The autocast dtype of a run on ``device``, or None for plain float32.

    ``auto``: float16 on CUDA when ``amp`` (with a GradScaler), float32 on the CPU; ``fp16``:
    float16 (CUDA only); ``bf16``: bfloat16 (CUDA, or CPUs whose oneDNN kernels have it, e.g.
    AVX512-BF16); ``fp32``: none.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "fp32" or (precision == "auto" and not (amp and device.type == "cuda")):
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs CUDA; on the CPU use bf16 or fp32")
    return torch.bfloat16 if precision == "bf16" else torch.float16
