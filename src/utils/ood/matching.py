"""Feature matching against landmark and non-landmark databases (report 7.4, GLR 2020).

Every image is embedded by a trained landmark network (``model.embed``, unit vectors). With
``L`` the embeddings of known landmark photos and ``N`` those of non-landmark photos:

- report 7.4 (``penalty_k = 1``): ``score = max_j cos(q, L_j) - max_j cos(q, N_j)``, i.e. the
  nearest photo of the two databases decides (threshold 0), the threshold is fitted on val;
- GLR 2020's non-landmark penalisation (1st place, ``penalty_k = k``): ``score =
  max_j cos(q, L_j) - mean of the k largest cos(q, N_j)``: a query close to many non-landmark
  photos loses more of its landmark similarity;
- ``penalty_k = 0``: ``score = max_j cos(q, L_j)``, no penalty; ``N`` may then be empty (a
  data root without non-landmark photos, `utils.ood.scored`).

``k`` is chosen on the validation split (highest AUROC, `fit`); the databases are the photos of
the train split, never the val or test photos.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from utils.metrics import auroc
from utils.ood.detector import Detector, network_state
from utils.training.checkpoint import model_from_state


def matching_score(
    queries: np.ndarray, landmarks: np.ndarray, non_landmarks: np.ndarray, penalty_k: int = 1
) -> np.ndarray:
    """The score of the module docstring for unit embeddings ``(Q, D)``, ``(L, D)``, ``(N, D)``."""
    queries = np.asarray(queries, np.float32)
    score = (queries @ np.asarray(landmarks, np.float32).T).max(axis=1).astype(np.float64)
    if penalty_k > 0:
        if not len(non_landmarks):
            raise ValueError(f"penalty_k {penalty_k} needs non-landmark embeddings (none given)")
        cos = queries @ np.asarray(non_landmarks, np.float32).T
        k = min(penalty_k, cos.shape[1])
        top = -np.partition(-cos, k - 1, axis=1)[:, :k]
        score -= top.mean(axis=1)
    return score


class MatchingDetector(Detector):
    """Cosine matching of a network's embeddings to the two databases (module docstring)."""

    method = "matching"

    def __init__(
        self,
        model: torch.nn.Module,
        class_ids: Sequence[int],
        config: dict,
        penalty_k: int = 1,
        device: str = "cpu",
    ):
        super().__init__(config["image_size"], config["pipeline"], device)
        self.model = model.to(self.device).eval()
        self.class_ids, self.config = list(class_ids), config
        self.landmarks = np.zeros((0, 0), np.float32)
        self.non_landmarks = np.zeros((0, 0), np.float32)
        self.params = {"penalty_k": int(penalty_k)}

    @classmethod
    def from_state(cls, state: dict, device: str = "cpu", **kwargs) -> MatchingDetector:
        """From a saved detector (network, databases, ``penalty_k``) or a checkpoint."""
        model, class_map, config = model_from_state(state["network"])
        params = {**state.get("params", {}), **kwargs}
        detector = cls(model, class_map.landmark_ids, config, params.get("penalty_k", 1), device)
        if "landmarks" in state:
            detector.landmarks = state["landmarks"].numpy()
            detector.non_landmarks = state["non_landmarks"].numpy()
        return detector

    @torch.no_grad()
    def embed(self, batch) -> np.ndarray:
        """Unit embeddings ``(N, D)`` of images (a list of RGB arrays or a prepared tensor)."""
        if not isinstance(batch, torch.Tensor):
            batch = self.prepare(list(batch))
        out = []
        for i in range(0, len(batch), self.batch_size):
            emb = self.model.embed(batch[i : i + self.batch_size].to(self.device)).float()
            out.append(torch.nn.functional.normalize(emb, dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def set_databases(self, landmarks: np.ndarray, non_landmarks: np.ndarray) -> None:
        """The landmark and non-landmark embedding databases (unit rows).

        The non-landmark one may be empty only with ``penalty_k = 0`` (nothing to subtract).
        """
        if not len(landmarks):
            raise ValueError("the landmark database needs at least one embedding")
        if not len(non_landmarks) and self.params["penalty_k"] > 0:
            raise ValueError(
                f"penalty_k {self.params['penalty_k']} needs non-landmark embeddings; "
                "without any, use penalty_k 0"
            )
        non_landmarks = np.asarray(non_landmarks, np.float32).reshape(-1, landmarks.shape[1])
        self.landmarks = np.ascontiguousarray(landmarks, np.float32)
        self.non_landmarks = np.ascontiguousarray(non_landmarks, np.float32)

    def _score(self, batch) -> np.ndarray:
        if not len(self.landmarks):
            raise ValueError("matching detector without databases (set_databases)")
        queries = batch if isinstance(batch, np.ndarray) else self.embed(batch)
        return matching_score(queries, self.landmarks, self.non_landmarks, self.params["penalty_k"])

    def fit(self, val_embeddings: np.ndarray, val_labels, ks: Sequence[int]) -> dict:
        """Choose ``penalty_k`` among ``ks`` by validation AUROC; returns each k's AUROC."""
        labels = np.asarray(val_labels).astype(bool)
        grid = {
            int(k): auroc(
                matching_score(val_embeddings, self.landmarks, self.non_landmarks, k), labels
            )
            for k in ks
        }
        best = max(grid, key=lambda k: (grid[k], -k))
        self.params = {"penalty_k": best}
        self.validation = {"auroc": grid[best], "grid": {str(k): v for k, v in grid.items()}}
        return grid

    def weights(self) -> dict:
        """The network and both databases."""
        return {
            "network": network_state(self.model, self.class_ids, self.config),
            "landmarks": torch.from_numpy(self.landmarks),
            "non_landmarks": torch.from_numpy(self.non_landmarks),
        }

    def variant(self, penalty_k: int) -> MatchingDetector:
        """A detector sharing this one's network and databases, with another ``penalty_k``."""
        twin = MatchingDetector(self.model, self.class_ids, self.config, penalty_k, "cpu")
        twin.device = self.device
        twin.landmarks, twin.non_landmarks = self.landmarks, self.non_landmarks
        return twin
