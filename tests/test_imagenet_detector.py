"""The ImageNet-class detector (`utils.ood.imagenet`) and the detectors' registry."""

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from utils.data.images import load_image
from utils.inference.submit import _detector_scores
from utils.ood import BUILT_IN, KINDS, load_detector
from utils.ood import imagenet as im
from utils.ood import realphotos as ood_photos
from utils.ood.detector import Detector, ThresholdError

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "real-photos"


class FixedLogits(nn.Module):
    """A stand-in network: the same logits (``log p``) for every image."""

    def __init__(self, probabilities: torch.Tensor):
        super().__init__()
        self.register_buffer("logits", probabilities.log())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


def _probabilities(**mass: float) -> torch.Tensor:
    """A 1000-class probability vector with ``mass`` on named classes, the rest spread evenly."""
    p = torch.full((1000,), (1 - sum(mass.values())) / (1000 - len(mass)), dtype=torch.float64)
    for name, value in mass.items():
        p[im.class_ids([name.replace("_", " ")])[0]] = value
    return p.float()


def test_every_group_names_imagenet_classes():
    assert len(im.categories()) == 1000
    for group, names in im.GROUPS.items():
        assert len(im.class_ids(names)) == len(set(names)) == len(names), group
    every = [n for names in im.GROUPS.values() for n in names]
    assert len(every) == len(set(every))  # a class in one group only
    assert set(im.DEFAULT_GROUPS) <= set(im.GROUPS)
    with pytest.raises(KeyError, match="not ImageNet classes"):
        im.class_ids(["church", "cathedral"])
    with pytest.raises(KeyError, match="unknown class groups"):
        im.class_names(["religious", "skyscrapers"])


def test_the_score_is_the_mass_of_the_chosen_classes():
    p = _probabilities(church=0.3, suspension_bridge=0.2, washbasin=0.4)
    rest = (1 - 0.9) / 997
    detector = im.ImagenetDetector(("religious", "bridges"), network=FixedLogits(p), engine="torch")
    images = [np.zeros((30, 40, 3), np.uint8), np.full((50, 20, 3), 90, np.uint8)]
    expected = 0.3 + 0.2 + rest * (len(detector.ids) - 2)
    assert np.allclose(detector.score(images), expected, atol=1e-5)
    assert np.allclose(im.landmark_mass(p[None], im.class_ids(["washbasin"])), 0.4)
    assert "church" in detector.names and "palace" not in detector.names


def test_saved_imagenet_detector_holds_no_weights_and_loads_alike(tmp_path):
    detector = im.ImagenetDetector(("palaces", "nature"))
    images = [np.full((40, 60, 3), v, np.uint8) for v in (30, 220)]
    detector.fit_threshold(detector.score(images), [1, 0], "accuracy")
    path = detector.save(tmp_path / "imagenet.pt")
    state = torch.load(path, weights_only=True)
    assert not any(isinstance(v, torch.Tensor) or isinstance(v, dict) and "model" in v
                   for v in state.values())  # fmt: skip
    assert path.stat().st_size < 10_000  # class names and a threshold, no network
    loaded = load_detector(path)
    assert isinstance(loaded, im.ImagenetDetector) and loaded.frozen
    assert loaded.groups == ["palaces", "nature"] and loaded.threshold == detector.threshold
    assert np.allclose(loaded.score(images), detector.score(images), atol=1e-6)


def test_the_built_in_detector_needs_no_file():
    assert set(BUILT_IN) == {"imagenet"}
    detector = load_detector("imagenet")
    assert isinstance(detector, im.ImagenetDetector) and detector.frozen
    assert detector.threshold == im.DEFAULT_THRESHOLD
    assert detector.groups == list(im.DEFAULT_GROUPS)
    with pytest.raises(FileNotFoundError):
        load_detector(Path("imagenet"))  # a path is always a file


def test_the_registry_holds_every_detector_and_loads_a_new_kind(tmp_path):
    assert set(KINDS) == {"binary", "odin", "matching", "imagenet"}
    tree = ast.parse((Path(im.__file__).parent / "detector.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {f"utils.ood.{kind}" for kind in KINDS} & imported  # the base names none

    class Constant(Detector):
        method = "test-constant"

        @classmethod
        def from_state(cls, state, device="cpu"):
            return cls(state["image_size"], state["pipeline"], device)

        def _score(self, batch):
            return np.ones(len(batch))

    try:
        assert KINDS["test-constant"] is Constant
        detector = Constant(32)
        detector.fit_threshold([0.0, 1.0], [0, 1])
        loaded = load_detector(detector.save(tmp_path / "c.pt"))
        assert type(loaded) is Constant and loaded.threshold == detector.threshold
        with pytest.raises(ValueError, match="two detectors named"):
            type("Other", (Detector,), {"method": "test-constant"})
    finally:
        KINDS.pop("test-constant")


@pytest.mark.realdata
@pytest.mark.slow
def test_packaged_weights_name_a_real_photo_and_rank_tune_landmarks_higher():
    if not (PHOTOS / "manifest.csv").is_file():
        pytest.skip("../shared/real-photos is not here (team-only material)")
    torch.set_num_threads(1)
    detector = im.default_detector()
    p = detector.probabilities([load_image(PHOTOS / "images" / "tower_bridge_01.jpg")])[0]
    top3 = [im.categories()[i] for i in p.argsort(descending=True)[:3]]
    assert "suspension bridge" in top3
    table = ood_photos.imagenet_scores(PHOTOS, "tune", detector=detector)
    landmark = table["landmark"].to_numpy()
    assert table["score"][landmark].mean() > table["score"][~landmark].mean() + 0.3
    summary = ood_photos.detection_summary(table, detector.threshold)
    assert summary["accepted_landmarks"] >= 0.95  # the tpr95 rule it was chosen by
    assert summary["auroc"] > 0.9


class CountingLogits(FixedLogits):
    """`FixedLogits` that counts the images it was given."""

    seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += len(x)
        return super().forward(x)


def test_08_scores_the_test_photos_once_per_imagenet_detector(tmp_path):
    paths = []
    for i, value in enumerate((20, 120, 240)):
        paths.append(tmp_path / f"{i}.jpg")
        Image.fromarray(np.full((40, 50, 3), value, np.uint8)).save(paths[-1])
    network = CountingLogits(_probabilities(church=0.3, palace=0.2))
    penalty = im.ImagenetDetector(("religious", "palaces"), network=network, engine="torch")
    gate = im.ImagenetDetector(("religious", "palaces"), network=network, engine="torch")
    seen: dict = {}
    mass = _detector_scores(penalty, paths, seen)
    assert network.seen == 3 and mass.shape == (3,)
    assert _detector_scores(gate, paths, seen) is mass and network.seen == 3  # read once
    other = im.ImagenetDetector(("palaces",), network=network, engine="torch")
    assert not np.allclose(_detector_scores(other, paths, seen), mass) and network.seen == 6
    with pytest.raises(ThresholdError, match="no threshold"):
        gate.above(mass)
    gate.freeze(float(mass[0]) - 1e-3, "test")
    images = [load_image(p) for p in paths]
    assert (gate.above(mass) == gate.accepts(images)).all()
    assert gate.above(mass, float(mass[0]) + 1.0).sum() == 0
