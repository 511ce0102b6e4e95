"""DELF-style local features: attention over an intermediate map of a trained classifier.

As in DELF (Noh et al. 2017), the backbone stays frozen and a small attention network is
trained on its stride-16 feature map ``F`` of shape ``(B, C, H, W)`` (ResNet ``layer3``,
EfficientNet ``reduction_4``, MobileNetV2 ``features[:14]``)::

    a = softplus(conv1x1(relu(conv1x1(F))))            attention  (B, 1, H, W)
    y = sum_{h,w} a[h, w] * F[:, h, w] / ||F[:, h, w]||  pooled     (B, C)
    loss = cross_entropy(linear(y), label)

The keypoint extractor built on it (`utils.retrieval.delf_features.DelfExtractor`) keeps the
locations of highest attention over several image scales.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from utils.models.backbones import LandmarkClassifier


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


def efficientnet_stride16(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """EfficientNet's ``reduction_4`` endpoint ``(B, C, H/16, W/16)`` without the rest.

    The map ``extract_endpoints(x)["reduction_4"]`` returns (120 channels for B2): the input of
    the fourth stride-2 block. ``extract_endpoints`` also runs that block, the stride-32 stages
    and the head convolution, about a fifth of the time at DELF's sizes; this stops before them.
    """
    x = net._swish(net._bn0(net._conv_stem(x)))
    reductions, rate = 0, net._global_params.drop_connect_rate
    for index, block in enumerate(net._blocks):
        stride = block._block_args.stride
        if (stride[0] if isinstance(stride, list | tuple) else stride) > 1:
            reductions += 1
            if reductions == 4:
                return x
        x = block(x, drop_connect_rate=rate * index / len(net._blocks) if rate else rate)
    raise ValueError("an EfficientNet has four stride-2 blocks; this network has fewer")


# backbone -> its stride-16 feature map ``(B, C, H/16, W/16)`` from the classifier's body
STRIDE16_MAPS: dict[str, Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    "resnet50": lambda body, x: body.layer3(body.layer2(body.layer1(body.stem(x)))),
    "efficientnet-b2": lambda body, x: efficientnet_stride16(body.net, x),
    "mobilenet_v2": lambda body, x: body.features[:14](x),
}


def feature_map(model: LandmarkClassifier, x: torch.Tensor) -> torch.Tensor:
    """The stride-16 map of the module docstring (`STRIDE16_MAPS`); KeyError names the model."""
    if model.name not in STRIDE16_MAPS:
        raise KeyError(f"no stride-16 map known for {model.name!r}; add it to STRIDE16_MAPS")
    return STRIDE16_MAPS[model.name](model.body, x)


class Delf(nn.Module):
    """A frozen classifier plus a trainable attention head and classifier on its map."""

    def __init__(self, backbone: LandmarkClassifier, num_classes: int):
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        device = next(self.backbone.parameters()).device  # probe where the backbone lives
        with torch.no_grad():
            probe = feature_map(self.backbone, torch.zeros(1, 3, 64, 64, device=device))
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
