"""Models: the backbone factory and local-only pretrained weights."""

from utils.models.backbones import MODELS, LandmarkClassifier, build_model, canonical_name
from utils.models.weights import WeightsError, find_weights, load_state_dict_file

__all__ = [
    "MODELS",
    "LandmarkClassifier",
    "WeightsError",
    "build_model",
    "canonical_name",
    "find_weights",
    "load_state_dict_file",
]
