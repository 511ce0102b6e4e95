"""DOLG (Yang et al. 2021): orthogonal fusion of local and global features on ResNet-50.

For an image ``x (B, 3, H, W)``, with ResNet-50's ``layer3`` map ``F3 (B, 1024, H/16, W/16)``
and ``layer4`` map ``F4 (B, 2048, H/32, W/32)``::

    local:   M  = MultiAtrous(F3)            dilated 3x3 convs (rates 6, 12, 18) + image pool,
                                             concatenated and fused to 1024 channels
             a  = softplus(conv1x1(relu(bn(conv1x1(M)))))       attention  (B, 1, h, w)
             fl = a * M / ||M||_channels                        (B, 1024, h, w)
    global:  fg = Linear(GeM(F4))                                (B, 1024)
    fusion:  f_orth = fl - (fl . fg / |fg|^2) fg   at every location (the part of fl
             orthogonal to fg), pooled over h, w    (B, 1024)
    output:  e  = normalize(Linear([f_orth, fg]))               (B, 512) unit embedding

The classification head (`utils.models.heads.CosineHead`) turns ``e`` into class cosines;
ArcFace's margin is applied in the loss. Every op is size-agnostic (adaptive pooling,
interpolation to the map's own size) and layout-agnostic (channels_last works).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tv

from utils.models.heads import CosineHead
from utils.models.pooling import GeM

LOCAL_DIM, GLOBAL_DIM, EMBED_DIM = 1024, 1024, 512


def orthogonal_fusion(f_local: torch.Tensor, f_global: torch.Tensor) -> torch.Tensor:
    """``f_l - (f_l . f_g / |f_g|^2) f_g`` per location: ``(B, C, h, w)``, ``(B, C)`` -> same.

    Each location's local vector loses its component along the global vector, so the two carry
    complementary information.
    """
    dtype = torch.promote_types(f_local.dtype, torch.float32)  # float16 is computed in float32
    local, g = f_local.to(dtype), f_global.to(dtype)
    dot = torch.einsum("bchw,bc->bhw", local, g)
    norm2 = (g * g).sum(dim=1).clamp(min=1e-12)
    projection = (dot / norm2[:, None, None])[:, None] * g[:, :, None, None]
    return (local - projection).to(f_local.dtype)


class MultiAtrous(nn.Module):
    """Dilated 3x3 convolutions at several rates plus an image-pool branch, fused by 1x1."""

    def __init__(self, channels: int, out: int, rates: tuple[int, ...] = (6, 12, 18)):
        super().__init__()
        branch = out // 2
        self.dilated = nn.ModuleList(
            nn.Conv2d(channels, branch, 3, padding=r, dilation=r) for r in rates
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, branch, 1))
        self.fuse = nn.Sequential(
            nn.Conv2d(branch * (len(rates) + 1), out, 1), nn.BatchNorm2d(out), nn.ReLU(True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w) -> (B, out, h, w)``."""
        pooled = F.interpolate(self.pool(x), size=x.shape[-2:], mode="nearest")
        return self.fuse(torch.cat([conv(x) for conv in self.dilated] + [pooled], dim=1))


class LocalAttention(nn.Module):
    """Self-attention score ``softplus(conv(relu(bn(conv(M)))))`` weighting normalised ``M``."""

    def __init__(self, channels: int):
        super().__init__()
        self.score = nn.Sequential(
            nn.Conv2d(channels, channels, 1),
            nn.BatchNorm2d(channels),
            nn.ReLU(True),
            nn.Conv2d(channels, 1, 1),
            nn.Softplus(),
        )

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w) -> (B, C, h, w)``: ``a * M / ||M||``."""
        return F.normalize(m, dim=1) * self.score(m)


class Dolg(nn.Module):
    """ResNet-50 + DOLG embedding + cosine head; see the module docstring.

    ``forward(x)`` returns class cosines ``(B, n)``; ``embed(x)`` the unit embedding
    ``(B, 512)``. ``scale`` is ArcFace's ``s``: ``scale * cos`` are the logits at inference.
    """

    name = "dolg"

    def __init__(self, num_classes: int, subcenters: int = 1, scale: float = 30.0):
        super().__init__()
        net = tv.resnet50(weights=None, zero_init_residual=True)  # see models.backbones
        self.net = net  # the backbone, under its torchvision names (pretrained weights load)
        local_in = net.layer3[-1].conv3.out_channels  # 1024
        global_in = net.layer4[-1].conv3.out_channels  # 2048
        net.fc = nn.Identity()
        self.atrous = MultiAtrous(local_in, LOCAL_DIM)
        self.attention = LocalAttention(LOCAL_DIM)
        self.gem = GeM()
        self.global_fc = nn.Linear(global_in, GLOBAL_DIM)
        self.embedding = nn.Linear(LOCAL_DIM + GLOBAL_DIM, EMBED_DIM)
        self.head = CosineHead(EMBED_DIM, num_classes, subcenters)
        self.scale, self.feature_dim = scale, EMBED_DIM

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Unit embeddings ``(B, 512)``."""
        net = self.net
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        f3 = net.layer3(net.layer2(net.layer1(x)))
        f4 = net.layer4(f3)
        f_global = self.global_fc(self.gem(f4))  # (B, 1024)
        f_local = self.attention(self.atrous(f3))  # (B, 1024, h, w)
        f_orth = F.adaptive_avg_pool2d(orthogonal_fusion(f_local, f_global), 1).flatten(1)
        return F.normalize(self.embedding(torch.cat([f_orth, f_global], dim=1)), dim=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding (what retrieval indexes), as `LandmarkClassifier.features`."""
        return self.embed(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class cosines ``(B, n)`` (float32)."""
        return self.head(self.embed(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``scale * cos`` ``(B, n)``: softmax-ready scores at inference (no margin)."""
        return self.scale * self(x)
