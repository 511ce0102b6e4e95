"""DELF extraction benchmark: notebook 05's extractor against the full-forward baseline.

Both extract from the same photos (real ones with ``--photos``, else generated JPEGs of 800x600
to 1600x1200; each resized to ``max_side`` and run at the extractor's three scales) with the
same network, EfficientNet-B2 with an attention head, from a 05 checkpoint (``delf.pt``) or at
random initialisation (the cost does not depend on the weights):

- ``baseline``: the extractor as it was: the stride-16 map read from ``extract_endpoints``
  (which also runs the stride-32 stages and the head convolution), weights and inputs in the
  default contiguous layout;
- ``project``: `utils.retrieval.delf_features.DelfExtractor` as 05 uses it: the forward pass
  stops at the stride-16 map (`utils.models.delf.efficientnet_stride16`), channels_last.

Both run the whole `DelfExtractor.extract` (resizing, scales, keypoint selection); the baseline
is timed first, before the weights are turned channels_last. Each is timed over its second pass
over the photos (the first warms the allocator). ``max_difference`` is the largest absolute
difference between the two stride-16 maps of the first photo at the first scale: the same map,
up to float rounding.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from utils.data.images import load_image
from utils.models import build_model
from utils.models.delf import Delf
from utils.retrieval.delf_features import DelfExtractor


class _FullForward(nn.Module):
    """`Delf.maps` through ``extract_endpoints``, which runs the whole network (the baseline)."""

    def __init__(self, delf: Delf):
        super().__init__()
        self.inner, self.stride = delf, delf.stride

    def maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            fmap = self.inner.backbone.body.net.extract_endpoints(x)["reduction_4"]
        return fmap, self.inner.attention(fmap)


def _seconds_per_image(extractor: DelfExtractor, arrays: list[np.ndarray]) -> float:
    """Mean seconds of ``extractor.extract`` over ``arrays``, second pass."""
    for _ in range(2):
        start = time.perf_counter()
        for array in arrays:
            extractor.extract(array)
    return (time.perf_counter() - start) / len(arrays)


def bench_delf(
    images: list[Path], checkpoint: Path | None = None, max_side: int = 512, threads: int = 0
) -> dict:
    """Seconds per photo of the baseline and of `DelfExtractor`, and their ratio."""
    if threads:
        torch.set_num_threads(threads)
    if checkpoint is not None:
        delf = DelfExtractor.from_checkpoint(checkpoint, channels_last=False).delf
    else:
        torch.manual_seed(0)
        delf = Delf(build_model("efficientnet-b2", 30), 30)
    arrays = [load_image(p) for p in images]
    baseline = DelfExtractor(_FullForward(delf), max_side=max_side, channels_last=False)
    baseline_s = _seconds_per_image(baseline, arrays)
    x, _ = baseline.scaled_inputs(arrays[0])[0]
    reference, _ = baseline.delf.maps(x)
    project = DelfExtractor(delf, max_side=max_side)  # turns the weights channels_last
    project_s = _seconds_per_image(project, arrays)
    x, _ = project.scaled_inputs(arrays[0])[0]
    ours, _ = project.delf.maps(x)
    return {
        "images": len(arrays),
        "max_side": max_side,
        "scales": list(project.scales),
        "threads": torch.get_num_threads(),
        "baseline_s_per_image": round(baseline_s, 4),
        "project_s_per_image": round(project_s, 4),
        "ratio": round(baseline_s / project_s, 2),
        "max_difference": float((reference - ours).abs().max()),
    }


def print_delf(result: dict) -> None:
    """One line per extractor, then the ratio."""
    print(
        f"DELF extraction, EfficientNet-B2, {result['images']} photos at {result['max_side']} px, "
        f"scales {result['scales']}, {result['threads']} threads:"
    )
    print(
        f"  baseline (extract_endpoints, contiguous)  {result['baseline_s_per_image']:.3f} s/image"
    )
    print(
        f"  project  (stride-16 stop, channels_last)  {result['project_s_per_image']:.3f} s/image"
    )
    print(
        f"  ratio {result['ratio']:.2f}x; largest difference of the two stride-16 maps "
        f"{result['max_difference']:.2e}"
    )
