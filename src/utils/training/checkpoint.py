"""Checkpoints written atomically and read with ``weights_only=True``.

A training checkpoint is a dict of tensors and plain containers: ``model``, ``optimizer``,
``scheduler``, ``scaler`` state dicts, ``epoch`` (epochs completed), ``best_gap``,
``history``, ``config``, ``class_ids`` and ``rng`` (torch CPU/CUDA, numpy and python states).
`save_atomic` writes to a temporary file beside the target and renames it, so a run killed
mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from utils.data.datasets import ClassMap
from utils.models import build_model


class CheckpointError(RuntimeError):
    """A file that is not a checkpoint loading with ``weights_only=True``; names the file."""


def save_atomic(obj: dict, path: str | Path) -> Path:
    """``torch.save`` to ``path`` via a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, partial)
    os.replace(partial, path)
    return path


def load(path: str | Path) -> dict:
    """A checkpoint dict, loaded on the CPU with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for a bad file
        raise CheckpointError(
            f"{path}: not a checkpoint that loads with weights_only=True: "
            f"{str(err).splitlines()[0]}"
        ) from err


def rng_state() -> dict:
    """Every random state a resumed run needs, as tensors and plain containers."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` saved."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def output_size(config: dict, classes: int) -> int:
    """Outputs of a run's network: one logit for the ``binary`` task, else one per class."""
    return 1 if config.get("task", "landmark") == "binary" else classes


def load_trained(path: str | Path, device: torch.device | str = "cpu"):
    """``(model, class_map, config)`` from ``best.pt``/``last.pt``; the model in eval mode."""
    return model_from_state(load(path), device)


def model_from_state(state: dict, device: torch.device | str = "cpu"):
    """`load_trained` from a loaded dict holding ``config``, ``class_ids`` and ``model``."""
    config = state["config"]
    class_map = ClassMap(state["class_ids"])
    model = build_model(
        config["model"],
        output_size(config, len(class_map)),
        head=config.get("head", ""),
        subcenters=config.get("subcenters", 3),
        scale=config.get("scale", 30.0),
        pooling=config.get("pooling", "avg"),
    )
    model.load_state_dict(state["model"])
    return model.to(device).eval(), class_map, config
