"""Non-landmark detection (the report's section 7): data, four detectors, one evaluation.

- `utils.ood.data`: non-landmark sources (Caltech101, CelebA, SUN397's selection, the embedded
  ``non_landmark/``) and the balanced landmark / non-landmark split, written as manifests;
- `utils.ood.detector`: the interface ``score(batch) -> higher means landmark``, thresholds
  chosen on validation and frozen, saving and `load_detector` (``weights_only=True``);
- `utils.ood.binary`: a binary classifier trained by `utils.training.train` (``task=binary``);
- `utils.ood.odin`: ODIN on a trained landmark classifier;
- `utils.ood.matching`: cosine matching to landmark / non-landmark databases, with GLR 2020's
  non-landmark penalisation;
- `utils.ood.imagenet`: the mass of a frozen ImageNet classifier's landmark-like classes, no
  training (built in: ``load_detector("imagenet")``);
- `utils.ood.evaluate`: the sealed test split and the metrics (Table 4, AUROC, FPR95).
"""

from utils.ood import binary, imagenet, matching, odin  # each registers its detector
from utils.ood.detector import BUILT_IN, KINDS, Detector, choose_threshold, load_detector

__all__ = [
    "BUILT_IN",
    "KINDS",
    "Detector",
    "binary",
    "choose_threshold",
    "imagenet",
    "load_detector",
    "matching",
    "odin",
]
