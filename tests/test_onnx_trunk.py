"""The frozen trunk in ONNX Runtime: the same maps and vectors as torch, checked, or torch."""

import numpy as np
import pytest
import torch

from utils.models import onnx_trunk
from utils.models.backbones import imagenet_network
from utils.models.onnx_trunk import OnnxTrunk, OnnxUnavailable, choose_engine
from utils.ood.imagenet import ImagenetDetector
from utils.retrieval.descriptor import GlobalDescriptor

pytestmark = pytest.mark.skipif(
    not onnx_trunk.onnx_available(), reason="onnx and onnxruntime are not installed"
)


@pytest.fixture(scope="module")
def lite0():
    return imagenet_network("efficientnet-lite0")


def test_onnx_maps_equal_torch_at_any_batch_and_size(lite0):
    trunk = OnnxTrunk(lite0)
    for shape in [(1, 3, 64, 64), (3, 3, 96, 40), (2, 3, 33, 70)]:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
        with torch.no_grad():
            expected = lite0.eval().extract_features(x)
        got = trunk.extract_features(x)
        assert got.shape == expected.shape and got.dtype == torch.float32
        assert (got - expected).abs().max() <= 1e-4 * expected.abs().max(), shape


def test_export_leaves_the_network_s_mode_and_statistics_alone(lite0):
    lite0.train()
    before = {k: v.clone() for k, v in lite0.state_dict().items()}
    try:
        OnnxTrunk(lite0)
        assert lite0.training  # the exporter's eval mode was undone
        after = lite0.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)  # no BN statistics moved
    finally:
        lite0.eval()


def test_a_session_that_disagrees_with_its_network_is_refused(lite0):
    trunk = OnnxTrunk(lite0)
    other = imagenet_network("efficientnet-lite0")
    with torch.no_grad():
        other._conv_stem.weight.mul_(-1.0)
    with pytest.raises(OnnxUnavailable, match="differs from torch"):
        trunk.check(other)
    assert trunk.check(lite0) <= onnx_trunk.TOLERANCE


def test_choose_engine():
    assert choose_engine("auto", "cpu") == "onnx"
    assert choose_engine("auto", torch.device("cuda")) == "torch"
    assert choose_engine("torch", "cpu") == "torch" and choose_engine("onnx", "cpu") == "onnx"
    with pytest.raises(ValueError, match="on the CPU"):
        choose_engine("onnx", "cuda:0")
    with pytest.raises(ValueError, match="one of auto, torch, onnx"):
        choose_engine("tensorrt", "cpu")


def test_without_the_packages_auto_is_torch_and_onnx_is_named(monkeypatch, lite0):
    monkeypatch.setattr(onnx_trunk, "onnx_available", lambda: False)
    assert choose_engine("auto", "cpu") == "torch"
    with pytest.raises(OnnxUnavailable, match="onnxruntime packages are not installed"):
        OnnxTrunk(lite0)


def test_descriptor_vectors_are_the_same_by_either_engine(lite0):
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in [(60, 80), (90, 50)]]
    by_torch = GlobalDescriptor(lite0, size=64, engine="torch")
    by_onnx = GlobalDescriptor(lite0, size=64, engine="onnx")
    assert by_onnx.settings == by_torch.settings  # a cache serves both
    assert np.allclose(by_onnx(images), by_torch(images), atol=1e-5)
    assert np.allclose(by_onnx.describe(images[0]), by_torch.describe(images[0]), atol=1e-5)
    assert by_onnx.engine == "onnx" and by_onnx.runner.onnx is not None


def test_a_trunk_onnx_cannot_run_falls_back_to_torch_under_auto_only(monkeypatch, lite0):
    def refuse(network, **kwargs):
        raise OnnxUnavailable("exporting EfficientNet to ONNX failed: test")

    monkeypatch.setattr(onnx_trunk, "OnnxTrunk", refuse)
    image = np.random.default_rng(3).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    auto = GlobalDescriptor(lite0, size=48)
    with pytest.warns(UserWarning, match="running it in torch"):
        vector = auto([image])
    assert auto.engine == "torch" and vector.shape == (1, 1280)
    with pytest.raises(OnnxUnavailable, match="failed: test"):
        GlobalDescriptor(lite0, size=48, engine="onnx")([image])


def test_imagenet_detector_scores_are_the_same_by_either_engine(lite0):
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in [(70, 90), (120, 60)]]
    by_torch = ImagenetDetector(network=lite0, engine="torch")
    by_onnx = ImagenetDetector(network=lite0, engine="onnx")
    assert np.allclose(by_onnx.score(images), by_torch.score(images), atol=1e-6)
    assert by_onnx.runner.onnx.method == "forward" and by_torch.runner.onnx is None


class _Constant(torch.nn.Module):
    """Logits that ignore the image: the exporter traces the input away."""

    def forward(self, x):
        return torch.zeros(len(x), 1000)


def test_a_network_that_ignores_its_input_runs_in_torch_under_auto():
    detector = ImagenetDetector(network=_Constant())
    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.warns(UserWarning, match="ImageNet detector: ONNX Runtime cannot run"):
        score = detector.score([image])
    assert detector.runner.engine == "torch" and np.allclose(score, len(detector.ids) / 1000)


class _Classifier(torch.nn.Module):
    """A small classifier with the ``logits`` method ODIN calls."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3),
            torch.nn.BatchNorm2d(8),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(8, 4),
        )

    def logits(self, x):
        return self.body(x)


def test_odin_scores_and_its_grid_are_the_same_by_either_engine():
    from utils.ood.odin import OdinDetector

    config = {"image_size": 24, "pipeline": 2}
    batch = torch.randn(12, 3, 24, 24, generator=torch.Generator().manual_seed(5))
    labels = np.arange(12) % 2
    detectors = {
        e: OdinDetector(_Classifier(), [1, 2, 3, 4], config, engine=e) for e in ("torch", "onnx")
    }
    grids = {e: d.fit(batch, labels, (1, 100), (0, 0.002)) for e, d in detectors.items()}
    assert grids["onnx"] == pytest.approx(grids["torch"], abs=1e-6)
    assert np.allclose(detectors["onnx"].score(batch), detectors["torch"].score(batch), atol=1e-6)
    assert detectors["onnx"].logits.onnx is not None and detectors["torch"].logits.onnx is None
