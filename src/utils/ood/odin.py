"""ODIN (Liang et al., 2018) on a trained landmark classifier (the report's section 7.3).

For an input ``x`` and temperature ``T``: ``S(x; T) = max_c softmax(f(x) / T)_c``. The input is
first moved against the gradient of the loss of its own predicted class,
``x' = x - epsilon * sign(-grad_x log S(x; T))``, which raises ``S`` (to first order), and more
for in-distribution inputs than for others; the score is ``S(x'; T)``. ``epsilon`` is in the
units of the network's (ImageNet-normalised) input. With ``T = 1`` and ``epsilon = 0`` the score
is the plain maximum softmax probability. ``T`` and ``epsilon`` are chosen on the validation
split (highest AUROC, `fit`); the threshold afterwards, on the same split.

The passes without a gradient (the moved inputs, the scores) run through an
`utils.models.onnx_trunk.EngineRunner` of ``model.logits`` (``engine``: ONNX Runtime on a CPU
where it is installed, 3.2x as fast as torch for 04's EfficientNet-B2 at 96 px, logits within
2e-6); the gradients stay in torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from utils.metrics import auroc
from utils.models.onnx_trunk import EngineRunner
from utils.ood.detector import Detector, network_state
from utils.training.checkpoint import model_from_state


def gradient_sign_and_logits(model: torch.nn.Module, images: torch.Tensor, temperature: float):
    """``(sign(grad_x log S(x; T)), f(x))`` of one pass.

    The direction that raises the max softmax, and the clean logits ``(N, C)`` (detached).
    """
    x = images.clone().requires_grad_(True)
    logits = model.logits(x).float()
    log_max = torch.log_softmax(logits / temperature, dim=1).max(dim=1).values
    (-log_max.sum()).backward()
    return -x.grad.sign(), logits.detach()


def odin_gradient_sign(model: torch.nn.Module, images: torch.Tensor, temperature: float):
    """``sign(grad_x log S(x; T))`` per image: the direction that raises the max softmax."""
    return gradient_sign_and_logits(model, images, temperature)[0]


def softmax_max(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``max_c softmax(logits / T)_c`` per row."""
    return torch.softmax(logits.float() / temperature, dim=1).max(dim=1).values


@torch.no_grad()
def max_softmax(model, images: torch.Tensor, temperature: float, logits=None) -> torch.Tensor:
    """``max_c softmax(f(x) / T)_c`` per image.

    ``logits``: what computes ``f`` (default ``model.logits``; e.g. an
    `utils.models.onnx_trunk.EngineRunner` of it).
    """
    return softmax_max((logits or model.logits)(images), temperature)


def odin_score(
    model, images: torch.Tensor, temperature: float = 1.0, epsilon: float = 0.0, logits=None
):
    """The ODIN score of the module docstring, ``(N,)`` numpy; ``logits`` as `max_softmax`."""
    if epsilon:
        images = images + epsilon * odin_gradient_sign(model, images, temperature)
    return max_softmax(model, images, temperature, logits).cpu().numpy()


class OdinDetector(Detector):
    """ODIN scores of a landmark classifier (`utils.training.train` checkpoint)."""

    method = "odin"

    def __init__(
        self,
        model: torch.nn.Module,
        class_ids: Sequence[int],
        config: dict,
        temperature: float = 1.0,
        epsilon: float = 0.0,
        device: str = "cpu",
        engine: str = "auto",
    ):
        super().__init__(config["image_size"], config["pipeline"], device)
        self.model = model.to(self.device).eval().requires_grad_(False)  # gradients: input only
        self.logits = EngineRunner(self.model, "logits", engine, self.device, "ODIN classifier")
        self.class_ids, self.config = list(class_ids), config
        self.params = {"temperature": float(temperature), "epsilon": float(epsilon)}

    @classmethod
    def from_state(cls, state: dict, device: str = "cpu", **kwargs) -> OdinDetector:
        """From a saved detector's (or a checkpoint's) ``network`` and ``params``."""
        model, class_map, config = model_from_state(state["network"])
        params = {**state.get("params", {}), **kwargs}
        return cls(
            model,
            class_map.landmark_ids,
            config,
            params.get("temperature", 1.0),
            params.get("epsilon", 0.0),
            device,
            params.get("engine", "auto"),
        )

    def _score(self, batch: torch.Tensor) -> np.ndarray:
        with torch.enable_grad():
            return odin_score(
                self.model,
                batch.to(self.device),
                self.params["temperature"],
                self.params["epsilon"],
                self.logits,
            )

    def fit(
        self,
        val_batch: torch.Tensor,
        val_labels: np.ndarray,
        temperatures: Sequence[float] = (1, 10, 100, 1000),
        epsilons: Sequence[float] = (0, 0.0005, 0.001, 0.002, 0.004),
    ) -> dict:
        """Choose ``T`` and ``epsilon`` of highest validation AUROC; returns the grid's AUROCs.

        ``val_batch``: the prepared validation images; one gradient per temperature, whose
        pass also gives the clean logits (``epsilon = 0``); the moved inputs go through
        ``self.logits``.
        """
        labels = np.asarray(val_labels).astype(bool)
        grid, best = {}, (-1.0, 1.0, 0.0)
        for temperature in temperatures:
            scores = {e: [] for e in epsilons}
            for i in range(0, len(val_batch), self.batch_size):
                chunk = val_batch[i : i + self.batch_size].to(self.device)
                with torch.enable_grad():
                    sign, clean = gradient_sign_and_logits(self.model, chunk, temperature)
                for eps in epsilons:
                    if eps:
                        score = max_softmax(
                            self.model, chunk + eps * sign, temperature, self.logits
                        )
                    else:
                        score = softmax_max(clean, temperature)
                    scores[eps].append(score.cpu().numpy())
            for eps in epsilons:
                value = auroc(np.concatenate(scores[eps]), labels)
                grid[f"T={temperature:g} eps={eps:g}"] = value
                if value > best[0]:
                    best = (value, float(temperature), float(eps))
        self.params = {"temperature": best[1], "epsilon": best[2]}
        self.validation = {"auroc": best[0], "grid": grid}
        return grid

    def weights(self) -> dict:
        """The classifier."""
        return {"network": network_state(self.model, self.class_ids, self.config)}
