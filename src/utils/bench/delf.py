"""DELF extraction benchmark: notebook 05's extractor against the full-forward baseline.

Both extract from the same photos (real ones with ``--photos``, else generated JPEGs of 800x600
to 1600x1200; each resized to ``max_side`` and run at the extractor's three scales) with the
same network, EfficientNet-B2 with an attention head, from a 05 checkpoint (``delf.pt``) or at
random initialisation (the cost does not depend on the weights):

- ``baseline``: the stride-16 map read from ``extract_endpoints`` (which also runs the
  stride-32 stages and the head convolution), tensors in the default contiguous layout;
- ``project``: `utils.retrieval.delf_features.DelfExtractor`: the forward pass stops at the
  stride-16 map (`utils.models.delf.efficientnet_stride16`), tensors channels_last.

The project's time includes choosing the keypoints, the baseline's does not. Each is timed
over its second pass over the photos (the first warms the allocator). The row
also gives ``max_difference``, the largest absolute difference between the two stride-16 maps
of a photo at scale 1: the two compute the same map, up to float rounding.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from utils.data.augment import IMAGENET_MEAN, IMAGENET_STD
from utils.data.images import load_image
from utils.models import build_model
from utils.models.delf import Delf, feature_map
from utils.retrieval.delf_features import DelfExtractor
from utils.retrieval.local_features import resize_longer


def _baseline_maps(delf: Delf, image: np.ndarray, scales, max_side: int) -> list[torch.Tensor]:
    """Stride-16 map and attention per scale, through ``extract_endpoints``, contiguous."""
    base, _ = resize_longer(image, max_side)
    pixels = torch.from_numpy(np.ascontiguousarray(base)).permute(2, 0, 1)[None].float() / 255
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    maps = []
    for scale in scales:
        size = (max(16, round(base.shape[0] * scale)), max(16, round(base.shape[1] * scale)))
        x = (F.interpolate(pixels, size=size, mode="bilinear", align_corners=False) - mean) / std
        fmap = delf.backbone.body.net.extract_endpoints(x.contiguous())["reduction_4"]
        delf.attention(fmap)
        maps.append(fmap)
    return maps


def bench_delf(
    images: list[Path], checkpoint: Path | None = None, max_side: int = 512, threads: int = 0
) -> dict:
    """Seconds per photo of the baseline and of `DelfExtractor`, and their ratio."""
    if threads:
        torch.set_num_threads(threads)
    if checkpoint is not None:
        extractor = DelfExtractor.from_checkpoint(checkpoint, max_side=max_side)
        delf = extractor.delf
    else:
        torch.manual_seed(0)
        delf = Delf(build_model("efficientnet-b2", 30), 30)
        extractor = DelfExtractor(delf, max_side=max_side)
    delf = delf.eval()
    arrays = [load_image(p) for p in images]
    with torch.no_grad():
        timings = {}
        for name, run in (
            ("baseline", lambda a: _baseline_maps(delf, a, extractor.scales, max_side)),
            ("project", extractor.extract),
        ):
            for _ in range(2):  # the second pass is timed
                start = time.perf_counter()
                for array in arrays:
                    run(array)
                timings[name] = (time.perf_counter() - start) / len(arrays)
        base, _ = resize_longer(arrays[0], max_side)
        x = torch.from_numpy(np.ascontiguousarray(base)).permute(2, 0, 1)[None].float() / 255
        x = (x - extractor.mean) / extractor.std
        reference = delf.backbone.body.net.extract_endpoints(x)["reduction_4"]
        ours = feature_map(delf.backbone, x.contiguous(memory_format=torch.channels_last))
        difference = float((reference - ours).abs().max())
    return {
        "images": len(arrays),
        "max_side": max_side,
        "scales": list(extractor.scales),
        "threads": torch.get_num_threads(),
        "baseline_s_per_image": round(timings["baseline"], 4),
        "project_s_per_image": round(timings["project"], 4),
        "ratio": round(timings["baseline"] / timings["project"], 2),
        "max_difference": difference,
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
