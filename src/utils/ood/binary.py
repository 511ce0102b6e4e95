"""The binary landmark / non-landmark classifier (the report's MobileNetV2, section 7.2).

Trained by the ordinary entry point, `utils.training.train` with ``task="binary"`` on the
manifests of `utils.ood.data` (one logit, ``BCEWithLogitsLoss``); its score is the logit, whose
sigmoid is the probability of "landmark" (the logit itself: a saturated sigmoid of an
untrained-looking network gives ties, the logit keeps the order).
"""

from __future__ import annotations

import numpy as np
import torch

from utils.ood.detector import Detector, network_state
from utils.training.checkpoint import model_from_state


class BinaryDetector(Detector):
    """``score = logit`` (``sigmoid(score)``: the probability of "landmark"), ``task="binary"``."""

    method = "binary"

    def __init__(self, model: torch.nn.Module, config: dict, device: str = "cpu"):
        if config.get("task") != "binary":
            raise ValueError("the binary detector needs a network trained with task=binary")
        super().__init__(config["image_size"], config["pipeline"], device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.params = {"model": config["model"]}

    @classmethod
    def from_state(cls, state: dict, device: str = "cpu") -> BinaryDetector:
        """From a saved detector's (or a checkpoint's) ``network``."""
        model, _, config = model_from_state(state["network"])
        return cls(model, config, device)

    @torch.no_grad()
    def _score(self, batch: torch.Tensor) -> np.ndarray:
        return self.model.logits(batch.to(self.device)).float().reshape(-1).cpu().numpy()

    def weights(self) -> dict:
        """The network."""
        return {"network": network_state(self.model, [0, 1], self.config)}
