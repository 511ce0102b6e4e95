from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import save, textured, warp
from utils.retrieval.local_features import LocalFeatures, RootSift, root_sift
from utils.retrieval.rerank import MatchSettings, landmark_evidence, match_descriptors, match_pair
from utils.retrieval.shortlist import rerank_retrieval


def test_root_sift_is_unit_length_hellinger():
    raw = np.abs(np.random.default_rng(0).normal(size=(5, 128))).astype(np.float32)
    out = root_sift(raw)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    l1 = raw / raw.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out @ out.T, np.sqrt(l1) @ np.sqrt(l1).T, rtol=1e-5)


def test_extractor_output_contract():
    image = textured(0)
    features = RootSift(max_features=500, max_side=400).extract(image)
    assert 100 < len(features) <= 500 and features.descriptors.shape == (len(features), 128)
    assert features.size == (480, 640)
    assert features.keypoints[:, 0].max() <= 640 and features.keypoints[:, 1].max() <= 480
    assert len(RootSift().extract(np.zeros((50, 50, 3), np.uint8))) == 0


def test_match_descriptors_ratio_and_mutual():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 16)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = a[::-1] + 0.01 * rng.normal(size=a.shape).astype(np.float32)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    pairs = match_descriptors(a, b)
    assert len(pairs) == 50 and (pairs[:, 1] == 49 - pairs[:, 0]).all()
    assert len(match_descriptors(a, b[:1])) == 0  # a ratio test needs two neighbours


@pytest.mark.parametrize("method", ["affine", "homography", "fundamental"])
def test_inliers_many_on_a_homography_pair_few_on_unrelated(method):
    extractor = RootSift(max_features=1000)
    a = extractor.extract(textured(1))
    same = extractor.extract(warp(textured(1)))
    other = extractor.extract(textured(2))
    settings = MatchSettings(method=method)
    good, bad = match_pair(a, same, settings), match_pair(a, other, settings)
    assert good.inliers >= 50 and good.pairs.shape == (good.inliers, 4)
    assert bad.inliers <= 15
    assert good.inliers > 5 * max(bad.inliers, 1)


def test_no_features_no_inliers():
    empty = LocalFeatures.empty(128, (10, 10))
    assert match_pair(empty, empty).inliers == 0


def test_landmark_evidence_sums_excess_inliers():
    evidence = landmark_evidence(["a", "a", "b"], np.array([30, 8, 12]), floor=10)
    assert evidence == {"a": 20.0, "b": 2.0}
    fused = landmark_evidence(["a", "b"], np.array([40, 0]), floor=0, cosine=np.array([0.5, 0.9]))
    assert fused == {"a": 40 + 0.5 + 1.0, "b": 0.9}
    with pytest.raises(ValueError, match="method"):
        MatchSettings(method="similarity")


def test_real_photo_pair_if_available():
    photos = Path(__file__).resolve().parents[2] / "shared" / "real-photos" / "images"
    if not photos.is_dir():
        pytest.skip("../shared/real-photos is not here (team-only material)")
    from utils.data.images import load_image

    ex = RootSift()
    a, b = (ex.extract(load_image(photos / f"sacre_coeur_0{i}.jpg")) for i in (1, 2))
    assert match_pair(a, b).inliers > 20


def test_rerank_retrieval_shares_the_gallery_cache_across_parts(tmp_path):
    class Counting(RootSift):
        calls = 0

        def extract(self, image):
            Counting.calls += 1
            return super().extract(image)

    images = [textured(0), warp(textured(0), 1), textured(2), textured(3)]
    paths = [save(Image.fromarray(image), tmp_path / f"{i}.jpg") for i, image in enumerate(images)]
    gallery, labels, queries = paths[:3], np.array([10, 10, 20]), [paths[1], paths[3]]
    indices = np.array([[0, 2], [2, 0]])
    cosines = np.array([[0.9, 0.8], [0.7, 0.6]])
    extractor = Counting(max_features=300, max_side=320)
    whole = rerank_retrieval(
        queries, gallery, labels, cosines, indices, extractor, 2, progress=False
    )
    assert Counting.calls == 2 + 2  # two queries, two distinct gallery images
    Counting.calls, cache, parts = 0, {}, []
    for q in range(2):
        part = slice(q, q + 1)
        parts.append(
            rerank_retrieval(
                queries[part],
                gallery,
                labels,
                cosines[part],
                indices[part],
                extractor,
                2,
                progress=False,
                cache=cache,
            )
        )
    assert Counting.calls == 2 + 2 and sorted(cache) == [0, 2]  # each gallery image once
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), whole[0])
    np.testing.assert_allclose(np.concatenate([p[1] for p in parts]), whole[1])
    assert whole[0][0] == 10  # the warped copy of gallery image 0 keeps its landmark
