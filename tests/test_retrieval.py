import numpy as np
import pytest
import torch

from utils.data import augment, manifests
from utils.data.datasets import ClassMap, ManifestDataset, make_loader
from utils.models import build_model
from utils.models.delf import Delf, attention_pool, efficientnet_stride16, train_attention
from utils.retrieval import index as retrieval
from utils.retrieval.delf_features import DelfExtractor, save_delf


def unit(rows: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["exact", "ivf", "hnsw"])
def test_an_indexed_image_finds_itself_first(kind):
    gallery = unit(2000)
    index = retrieval.EmbeddingIndex(gallery, kind=kind, nlist=16, nprobe=16)
    scores, indices = index.search(gallery[:50], k=5)
    assert (indices[:, 0] == np.arange(50)).all()
    np.testing.assert_allclose(scores[:, 0], 1.0, rtol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_faiss_and_brute_force_agree():
    gallery, queries = unit(500, seed=1), unit(40, seed=2)
    s1, i1 = retrieval.EmbeddingIndex(gallery).search(queries, 10)
    s2, i2 = retrieval.brute_force(gallery, queries, 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, rtol=1e-5)
    assert retrieval.recall_at_1(i1, i2) == 1.0


def test_aggregate_top1_vote_sum():
    labels = np.array([7, 7, 8, 9])
    scores = np.array([[0.9, 0.5, 0.45], [0.6, 0.55, 0.5]])
    indices = np.array([[2, 0, 1], [3, 2, 0]])
    assert retrieval.aggregate(scores, indices, labels, "top1")[0].tolist() == [8, 9]
    vote, conf = retrieval.aggregate(scores, indices, labels, "vote")
    assert vote.tolist() == [7, 9] and conf[0] == pytest.approx(0.95 / 3)
    total, _ = retrieval.aggregate(scores, indices, labels, "sum")
    assert total.tolist() == [7, 9]
    with pytest.raises(ValueError, match="aggregation"):
        retrieval.aggregate(scores, indices, labels, "median")


def test_non_landmark_hook():
    out = retrieval.apply_non_landmark(np.array([3, 4, 5]), np.array([0.1, 0.9, 0.5]), 0.5)
    assert out.tolist() == [3, -1, 5]


def test_embeddings_save_load_and_extract(tmp_path, tiny_root, tiny_manifest):
    split = manifests.read_manifests(tiny_manifest)
    cmap = ClassMap.from_manifest(split.train)
    data = ManifestDataset(split.val, tiny_root, cmap, augment.eval_transform(32))
    model = build_model("mobilenet_v2", len(cmap))
    emb = retrieval.extract_embeddings(model, make_loader(data, 4, workers=0), "cpu", False)
    assert emb.shape == (len(data), 1280)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    retrieval.save_embeddings(tmp_path, "val", emb, data.ids)
    again, ids = retrieval.load_embeddings(tmp_path, "val")
    np.testing.assert_array_equal(again, emb)
    assert ids == data.ids


def test_attention_pool_by_hand():
    fmap = torch.tensor([[[[3.0, 0.0]], [[4.0, 2.0]]]])  # (1, 2, 1, 2): vectors (3,4), (0,2)
    att = torch.tensor([[[[1.0, 0.5]]]])
    torch.testing.assert_close(attention_pool(fmap, att), torch.tensor([[0.6, 0.8 + 0.5]]))


@pytest.mark.parametrize("size", [(64, 64), (37, 53), (100, 71)])
def test_efficientnet_stride16_map_is_extract_endpoints_reduction_4(size):
    torch.manual_seed(0)
    net = build_model("efficientnet-b2", 5).eval().body.net
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected = net.extract_endpoints(x)["reduction_4"]
        got = efficientnet_stride16(net, x)
        got_channels_last = efficientnet_stride16(
            net.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )
    assert got.shape == (2, 120, -(-size[0] // 16), -(-size[1] // 16))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(got_channels_last, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet-b2"])
def test_delf_trains_on_a_frozen_backbone_and_extracts(tmp_path, tiny_root, tiny_manifest, name):
    split = manifests.read_manifests(tiny_manifest)
    cmap = ClassMap.from_manifest(split.train)
    data = ManifestDataset(split.train, tiny_root, cmap, augment.eval_transform(64))
    backbone = build_model(name, len(cmap))
    frozen = {k: v.clone() for k, v in backbone.state_dict().items()}
    delf = Delf(backbone, len(cmap))
    assert delf.stride == 16
    history = train_attention(delf, make_loader(data, 16, workers=0), 1, "cpu", progress=False)
    assert len(history) == 1 and history[0]["loss"] > 0
    for key, value in backbone.state_dict().items():
        torch.testing.assert_close(value, frozen[key], msg=key)  # the backbone is not trained
    state = {
        "model": backbone.state_dict(),
        "config": {"model": name},
        "class_ids": cmap.landmark_ids,
    }
    path = save_delf(delf, state, tmp_path / "delf.pt")
    extractor = DelfExtractor.from_checkpoint(path, max_side=128, max_features=50)
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    features = extractor.extract(image)
    assert len(features) == 50 and features.descriptors.shape[1] == delf.channels
    assert (features.keypoints[:, 0] <= 160 + 16).all() and (
        features.keypoints[:, 1] <= 120 + 16
    ).all()
    np.testing.assert_allclose(np.linalg.norm(features.descriptors, axis=1), 1.0, rtol=1e-4)
