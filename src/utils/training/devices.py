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
# ``auto``'s choice where it is not the device's default (CUDA: fp16 AMP; CPU: fp32), by
# measurement: on the team's AVX512-BF16 CPU (`python -m utils bench train`, 96 px, batch 16, one
# thread) ResNet-50 trains 1.9x faster in bfloat16 + channels_last than in fp32, EfficientNet-B2
# 0.7x (depthwise convolutions), so only ResNet-based networks switch; on an H200 float16 AMP made
# EfficientNet-B2 0.91x as fast as TF32 fp32 (issue 9's measurement), so it stays in fp32 there.
FASTEST = {
    ("cpu", "resnet50"): "bf16",
    ("cpu", "dolg"): "bf16",
    ("cuda", "efficientnet-b2"): "fp32",
}
DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def cpu_has_bf16() -> bool:
    """Whether this CPU's oneDNN kernels run bfloat16 natively (e.g. AVX512-BF16, AMX)."""
    return bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())


def resolve_precision(
    device: torch.device, amp: bool = True, precision: str = "auto", model: str = ""
) -> str:
    """``fp32``, ``fp16`` or ``bf16`` for a run of ``model`` on ``device``.

    ``auto``: the fastest measured for the model (`FASTEST`), else float16 AMP on CUDA and fp32
    on the CPU; ``amp=False`` means fp32. ``fp16`` needs CUDA.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs CUDA; on the CPU use bf16 or fp32")
    if precision != "auto":
        return precision
    if not amp:
        return "fp32"
    chosen = FASTEST.get((device.type, model), "fp16" if device.type == "cuda" else "fp32")
    if chosen == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        return "fp32"
    return chosen


def autocast_dtype(
    device: torch.device, amp: bool = True, precision: str = "auto", model: str = ""
) -> torch.dtype | None:
    """The autocast dtype of `resolve_precision`'s choice, or None for plain float32."""
    return DTYPES[resolve_precision(device, amp, precision, model)]
