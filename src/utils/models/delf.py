"""DELF-style local features: attention over an intermediate map of a trained classifier.

As in DELF (Noh et al. 2017), the backbone stays frozen and a small attention network is
trained on its stride-16 feature map ``F`` of shape ``(B, C, H, W)`` (ResNet ``layer3``,
EfficientNet ``reduction_4``, MobileNetV2 ``features[:14]``)::

    a = softplus(conv1x1(relu(conv1x1(F))))            attention  (B, 1, H, W)
    y = sum_{h,w} a[h, w] * F[:, h, w] / ||F[:, h, w]||  pooled     (B, C)
    loss = cross_entropy(linear(y), label)

Keypoints (`DelfExtractor`) are the locations of highest attention over several image
scales; the descriptor of a keypoint is its L2-normalised feature vector, its position the
centre of its receptive field ``((j + 0.5) * stride / s, (i + 0.5) * stride / s)`` at scale s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from utils.local_features import LocalFeatures, resize_longer
from utils.models.backbones import LandmarkClassifier, build_model


def attention_pool(fmap: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """``sum_hw a * F / ||F||``: ``(B, C, H, W)``, ``(B, 1, H, W)`` -> ``(B, C)``."""
    return (F.normalize(fmap, dim=1) * attention).sum(dim=(2, 3))


class AttentionHead(nn.Module):
    """``softplus(conv1x1(relu(conv1x1(F))))``: ``(B, C, H, W)`` -> ``(B, 1, H, W)``."""

    def __init__(self, channels: int, hidden: int = 512):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, 1)
        self.conv2 = nn.Conv2d(hidden, 1, 1)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        """Attention scores, non-negative."""
        return F.softplus(self.conv2(F.relu(self.conv1(fmap))))


def feature_map(model: LandmarkClassifier, x: torch.Tensor) -> torch.Tensor:
    """The stride-16 map of the module docstring for each backbone."""
    body = model.body
    if model.name == "resnet50":
        return body.layer3(body.layer2(body.layer1(body.stem(x))))
    if model.name == "efficientnet-b2":
        return body.net.extract_endpoints(x)["reduction_4"]
    return body.features[:14](x)


class Delf(nn.Module):
    """A frozen classifier plus a trainable attention head and classifier on its map."""

    def __init__(self, backbone: LandmarkClassifier, num_classes: int):
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        with torch.no_grad():
            probe = feature_map(self.backbone, torch.zeros(1, 3, 64, 64))
        self.channels, self.stride = probe.shape[1], 64 // probe.shape[-1]
        self.attention = AttentionHead(self.channels)
        self.classify = nn.Linear(self.channels, num_classes)

    def train(self, mode: bool = True) -> Delf:
        """Train the attention and its classifier; the backbone stays in eval mode."""
        super().train(mode)
        self.backbone.eval()
        return self

    def maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature map ``(B, C, H, W)`` (no gradient) and attention ``(B, 1, H, W)``."""
        with torch.no_grad():
            fmap = feature_map(self.backbone, x)
        return fmap, self.attention(fmap)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the attention-pooled features."""
        fmap, attention = self.maps(x)
        return self.classify(attention_pool(fmap, attention))

    def head_state(self) -> dict:
        """The trained part only (attention and classifier)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}


def train_attention(
    delf: Delf,
    loader,
    epochs: int,
    device: torch.device | str,
    lr: float = 1e-3,
    progress: bool = True,
) -> list[dict]:
    """Train the attention head with cross-entropy; returns loss and accuracy per epoch."""
    params = list(delf.attention.parameters()) + list(delf.classify.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr)
    history = []
    for epoch in range(epochs):
        delf.train()
        seen, loss_sum, hits = 0, 0.0, 0
        for images, labels in tqdm(
            loader, desc=f"attention {epoch + 1}/{epochs}", disable=not progress
        ):
            images, labels = images.to(device), labels.to(device)
            logits = delf(images)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(labels)
            loss_sum += loss.item() * len(labels)
            hits += int((logits.argmax(1) == labels).sum())
        history.append({"epoch": epoch + 1, "loss": loss_sum / seen, "accuracy": hits / seen})
    return history


def save_delf(delf: Delf, classifier_state: dict, path: str | Path) -> Path:
    """A self-contained checkpoint: the classifier checkpoint plus the attention head."""
    from utils.checkpoint import save_atomic

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
    ):
        self.delf, self.device = delf.eval().to(device), torch.device(device)
        self.scales, self.max_side, self.max_features = scales, max_side, max_features
        self.mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **kwargs) -> DelfExtractor:
        """Load a checkpoint written by `save_delf`."""
        from utils.checkpoint import load

        state = load(path)
        if "delf" not in state:
            raise ValueError(f"{path}: no attention module in this checkpoint (train it in 05)")
        model = build_model(state["config"]["model"], len(state["class_ids"]))
        model.load_state_dict(state["model"])
        delf = Delf(model, len(state["class_ids"]))
        delf.load_state_dict(state["delf"], strict=False)
        return cls(delf, device, **kwargs)

    @torch.no_grad()
    def extract(self, image: np.ndarray) -> LocalFeatures:
        """Features of an RGB uint8 image (keypoints in its own pixel coordinates)."""
        base, base_scale = resize_longer(image, self.max_side)
        points, descriptors, strengths = [], [], []
        pixels = torch.from_numpy(np.ascontiguousarray(base)).permute(2, 0, 1)[None].float() / 255
        for scale in self.scales:
            size = (max(16, round(base.shape[1] * scale)), max(16, round(base.shape[0] * scale)))
            x = F.interpolate(pixels, size=(size[1], size[0]), mode="bilinear", align_corners=False)
            x = ((x - self.mean) / self.std).to(self.device)
            fmap, attention = self.delf.maps(x)
            h, w = fmap.shape[-2:]
            s = base_scale * size[0] / base.shape[1]  # image pixels -> this scale's pixels
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
