"""One interface for the non-landmark detectors: ``score(batch) -> higher means landmark``.

A `Detector` scores a batch given as a list of RGB uint8 images (any size; the detector's own
eval transform prepares them), a prepared tensor ``(N, 3, s, s)``, or, for the embedding-based
`utils.ood.matching.MatchingDetector`, an array of unit embeddings ``(N, D)``. ``accepts``
says "shows a landmark" where ``score >= threshold``.

Thresholds are chosen on the validation split only (`choose_threshold`): ``accuracy`` (the
threshold of highest validation accuracy; the split is balanced, so this is also the balanced
accuracy) or ``tpr95`` (the highest threshold that still accepts 95% of the validation
landmarks). `Detector.fit_threshold` freezes it: a frozen detector refuses a second fit, and
`utils.ood.evaluate.SealedSplits` opens the test split only once every detector is frozen.

A saved detector (`Detector.save`) is one ``torch.save`` file of tensors and plain containers
(``weights_only=True`` loads it, `load_detector`): ``format``, ``method``, ``threshold``,
``rule``, ``params`` (the method's settings chosen on validation), ``validation`` (its
metrics there) and the method's weights (the network's ``config``, ``class_ids`` and ``model``
state dict; for matching also both embedding databases). It needs nothing else to run, so
`utils.inference.submit`, ``python -m utils recognize --detector`` and a demo can all load it.

Each subclass joins `KINDS` (its ``method`` -> the class) when it is defined, and a function
that builds a ready detector with no file joins `BUILT_IN` under a name (`register_builtin`);
`utils.ood` imports every detector module, so both are full once the package is imported, and
this base class names none of them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from utils.data.augment import eval_transform
from utils.training import checkpoint
from utils.training.devices import resolve_device

FORMAT = "gldv2-non-landmark-detector/1"
RULES = ("accuracy", "tpr95")
CLOCK = itertools.count()  # orders threshold freezes and split reads (SealedSplits)
KINDS: dict[str, type[Detector]] = {}  # method -> detector class, filled by subclassing
BUILT_IN: dict[str, Callable[[str], Detector]] = {}  # name -> (device -> ready detector)


class ThresholdError(RuntimeError):
    """A threshold fitted twice, or a detector used before its threshold is chosen."""


def choose_threshold(scores: np.ndarray, labels: np.ndarray, rule: str = "accuracy") -> float:
    """The threshold of ``rule`` (module docstring) on validation scores; labels 1 = landmark.

    ``accuracy``: candidates are the midpoints between consecutive distinct scores (and one
    below the lowest / above the highest); the first of highest accuracy wins.
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, not {rule!r}")
    if not scores.size or not np.isfinite(scores).all():
        raise ValueError("need finite validation scores to choose a threshold")
    if rule == "tpr95":
        positives = np.sort(scores[labels])
        if not positives.size:
            raise ValueError("tpr95 needs landmark photos in the validation split")
        return float(positives[int(math.floor(0.05 * len(positives)))])
    values = np.unique(scores)
    candidates = np.concatenate(
        [[values[0] - 1.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1.0]]
    )
    accuracy = [np.mean((scores >= t) == labels) for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


class Detector:
    """Base class: preparation of images, the threshold, saving. Subclasses define `_score`."""

    method = "base"

    def __init_subclass__(cls, **kwargs):
        """Register a subclass that names its own ``method`` in `KINDS`."""
        super().__init_subclass__(**kwargs)
        if "method" in cls.__dict__:
            known = KINDS.get(cls.method, cls)
            if (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
                raise ValueError(f"two detectors named {cls.method!r}: {known} and {cls}")
            KINDS[cls.method] = cls

    def __init__(self, image_size: int, pipeline: int = 2, device: str = "cpu"):
        self.image_size, self.pipeline = int(image_size), int(pipeline)
        self.device = resolve_device(device)
        self.transform = eval_transform(self.image_size, self.pipeline)
        self.threshold = float("nan")
        self.rule = ""
        self.frozen_at: int | None = None
        self.params: dict = {}
        self.validation: dict = {}
        self.batch_size = 32

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **kwargs) -> Detector:
        """On ``best.pt`` of a training run (the network a subclass's `from_state` reads)."""
        return cls.from_state({"network": checkpoint.load(path)}, device, **kwargs)

    # --- scoring -------------------------------------------------------------------------
    def prepare(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """RGB uint8 images -> the network's input ``(N, 3, s, s)``."""
        return torch.stack([self.transform(image=im)["image"] for im in images])

    def _score(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score(self, batch) -> np.ndarray:
        """``(N,)`` float64 scores, higher means landmark (see the module docstring)."""
        if isinstance(batch, np.ndarray) and batch.ndim == 2:
            return np.asarray(self._score(batch), np.float64)
        if isinstance(batch, torch.Tensor):
            chunks = [batch[i : i + self.batch_size] for i in range(0, len(batch), self.batch_size)]
        else:
            images = list(batch)
            chunks = [
                self.prepare(images[i : i + self.batch_size])
                for i in range(0, len(images), self.batch_size)
            ]
        out = [np.asarray(self._score(c), np.float64) for c in chunks]
        return np.concatenate(out) if out else np.zeros(0)

    def accepts(self, batch, threshold: float | None = None) -> np.ndarray:
        """``(N,)`` bool: shows a landmark (``score >= threshold``, the saved one by default)."""
        return self.above(self.score(batch), threshold)

    def above(self, scores: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """`accepts` of scores already computed by `score`: ``scores >= threshold``."""
        limit = self.threshold if threshold is None else float(threshold)
        if not math.isfinite(limit):
            raise ThresholdError(f"{self.method}: no threshold chosen yet (fit_threshold)")
        return np.asarray(scores) >= limit

    # --- threshold -----------------------------------------------------------------------
    @property
    def frozen(self) -> bool:
        """Whether the threshold is chosen (and may no longer change)."""
        return self.frozen_at is not None

    def fit_threshold(self, val_scores, val_labels, rule: str = "accuracy") -> float:
        """Choose the threshold on validation scores and freeze it (`choose_threshold`)."""
        return self.freeze(choose_threshold(val_scores, val_labels, rule), rule)

    def freeze(self, threshold: float, rule: str) -> float:
        """Set a threshold chosen elsewhere (``rule`` says how) and freeze it."""
        if self.frozen:
            raise ThresholdError(f"{self.method}: the threshold is frozen at {self.threshold}")
        self.threshold, self.rule = float(threshold), rule
        self.frozen_at = next(CLOCK)
        return self.threshold

    # --- saving --------------------------------------------------------------------------
    def weights(self) -> dict:
        """The method's tensors (subclasses)."""
        return {}

    def state(self) -> dict:
        """Everything `load_detector` needs, as tensors and plain containers."""
        if not self.frozen:
            raise ThresholdError(f"{self.method}: choose the threshold before saving")
        return {
            "format": FORMAT,
            "method": self.method,
            "threshold": self.threshold,
            "rule": self.rule,
            "image_size": self.image_size,
            "pipeline": self.pipeline,
            "params": dict(self.params),
            "validation": dict(self.validation),
            **self.weights(),
        }

    def save(self, path: str | Path) -> Path:
        """Write the detector (atomic; loads with ``weights_only=True``)."""
        return checkpoint.save_atomic(self.state(), path)

    def describe(self) -> dict:
        """Method, threshold, rule and the validation-chosen settings (JSON-ready)."""
        return {
            "method": self.method,
            "threshold": self.threshold,
            "rule": self.rule,
            **self.params,
        }


def network_state(model: torch.nn.Module, class_ids: Sequence[int], config: dict) -> dict:
    """A network as `utils.training.checkpoint.model_from_state` reads it (CPU tensors)."""
    return {
        "config": dict(config),
        "class_ids": [int(i) for i in class_ids],
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def register_builtin(name: str):
    """Decorator: ``function(device) -> frozen detector`` becomes ``load_detector(name)``."""

    def register(function: Callable[[str], Detector]) -> Callable[[str], Detector]:
        if BUILT_IN.get(name, function) is not function:
            raise ValueError(f"two built-in detectors named {name!r}")
        BUILT_IN[name] = function
        return function

    return register


def _restore(detector: Detector, state: dict) -> Detector:
    detector.freeze(state["threshold"], state["rule"])
    detector.params, detector.validation = dict(state["params"]), dict(state["validation"])
    return detector


def load_detector(path: str | Path, device: str = "cpu") -> Detector:
    """A detector saved by `Detector.save` (``weights_only=True``), threshold frozen.

    A string naming a built-in detector (`BUILT_IN`, e.g. ``"imagenet"``) returns it without
    any file; write a file of that name as a path (``Path("imagenet")``, ``"./imagenet.pt"``).
    """
    if isinstance(path, str) and path in BUILT_IN:
        return BUILT_IN[path](device)
    state = checkpoint.load(path)
    if state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a non-landmark detector ({FORMAT})")
    if state["method"] not in KINDS:
        known = ", ".join(sorted(KINDS))
        raise ValueError(f"{path}: unknown detector method {state['method']!r} (known: {known})")
    return _restore(KINDS[state["method"]].from_state(state, device), state)
