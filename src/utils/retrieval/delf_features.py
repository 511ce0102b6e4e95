"""DELF keypoints and descriptors from a trained `utils.models.delf.Delf`, and its checkpoint.

Keypoints are the locations of highest attention over several image scales; the descriptor of a
keypoint is its L2-normalised feature vector ``(C,)``, its position the centre of its receptive
field ``((j + 0.5) * stride / s, (i + 0.5) * stride / s)`` at scale ``s``. `save_delf` writes a
self-contained checkpoint (the classifier plus the attention head); loading it is strict: a
missing or misnamed attention key is an error, not a silently untrained head.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from utils.data.augment import IMAGENET_MEAN, IMAGENET_STD
from utils.models import build_model
from utils.models.delf import Delf
from utils.retrieval.local_features import LocalFeatures, resize_longer
from utils.training.checkpoint import load, save_atomic


def _backbone_state(delf: Delf) -> dict:
    """The frozen backbone's entries of ``delf.state_dict()`` (they come from the classifier)."""
    return {k: v for k, v in delf.state_dict().items() if k.startswith("backbone.")}


def save_delf(delf: Delf, classifier_state: dict, path: str | Path) -> Path:
    """A self-contained checkpoint: the classifier checkpoint plus the attention head."""
    state = {k: classifier_state[k] for k in ("model", "config", "class_ids")}
    return save_atomic({**state, "delf": delf.head_state()}, path)


class DelfExtractor:
    """Keypoints and descriptors from a trained `Delf` (see the module docstring)."""

    name = "delf"

    def __init__(
        self,
        delf: Delf,
        device: torch.device | str = "cpu",
        scales: tuple[float, ...] = (0.7071, 1.0, 1.4142),
        max_side: int = 512,
        max_features: int = 1000,
        channels_last: bool = True,
    ):
        # channels_last: the same maps, faster on CPU (`bench delf`)
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        self.delf = delf.eval().to(device, memory_format=self.layout)
        self.device = torch.device(device)
        self.scales, self.max_side, self.max_features = scales, max_side, max_features
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **kwargs) -> DelfExtractor:
        """Load a checkpoint written by `save_delf`."""
        state = load(path)
        if "delf" not in state:
            raise ValueError(f"{path}: no attention module in this checkpoint (train it in 05)")
        model = build_model(state["config"]["model"], len(state["class_ids"]))
        model.load_state_dict(state["model"])
        delf = Delf(model, len(state["class_ids"]))
        try:
            delf.load_state_dict({**_backbone_state(delf), **state["delf"]}, strict=True)
        except RuntimeError as err:
            raise ValueError(f"{path}: attention module does not fit: {err}") from err
        return cls(delf, device, **kwargs)

    def scaled_inputs(self, image: np.ndarray) -> list[tuple[torch.Tensor, float]]:
        """Per scale: the normalised input ``(1, 3, h, w)`` and the factor image px -> its px."""
        base, base_scale = resize_longer(image, self.max_side)
        pixels = torch.from_numpy(np.ascontiguousarray(base)).permute(2, 0, 1)[None].float() / 255
        inputs = []
        for scale in self.scales:
            size = (max(16, round(base.shape[1] * scale)), max(16, round(base.shape[0] * scale)))
            x = F.interpolate(pixels, size=(size[1], size[0]), mode="bilinear", align_corners=False)
            x = ((x - self.mean) / self.std).to(self.device, memory_format=self.layout)
            inputs.append((x, base_scale * size[0] / base.shape[1]))
        return inputs

    @torch.no_grad()
    def extract(self, image: np.ndarray) -> LocalFeatures:
        """Features of an RGB uint8 image (keypoints in its own pixel coordinates)."""
        points, descriptors, strengths = [], [], []
        for x, s in self.scaled_inputs(image):
            fmap, attention = self.delf.maps(x)
            h, w = fmap.shape[-2:]
            ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            xy = (
                np.stack(
                    [(jj.ravel() + 0.5) * self.delf.stride, (ii.ravel() + 0.5) * self.delf.stride],
                    axis=1,
                )
                / s
            )
            points.append(xy)
            descriptors.append(F.normalize(fmap[0].flatten(1).T, dim=1).cpu().numpy())
            strengths.append(attention[0, 0].flatten().cpu().numpy())
        strength = np.concatenate(strengths)
        keep = np.argsort(-strength, kind="stable")[: self.max_features]
        return LocalFeatures(
            np.concatenate(points)[keep].astype(np.float32),
            np.concatenate(descriptors)[keep].astype(np.float32),
            strength[keep].astype(np.float32),
            image.shape[:2],
        )
