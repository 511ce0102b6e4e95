"""kNN voting, the ranking confidence, whitening and query expansion on hand-worked cases."""

import numpy as np
import pytest

from utils.retrieval import knn
from utils.retrieval.voting import VoteGallery, VoteRule


def test_vote_sums_the_cosines_of_the_top_k_per_landmark():
    similarity = np.array([[0.9, 0.2, 0.8, 0.7], [0.1, 0.6, 0.3, 0.5]], np.float32)
    labels = np.array([0, 1, 1, 2])
    # k=1: the nearest photo alone
    np.testing.assert_allclose(knn.vote(similarity, labels, 3, 1), [[0.9, 0, 0], [0, 0.6, 0]])
    # k=3: query 0 sees photos 0, 2, 3; query 1 sees 1, 3, 2
    np.testing.assert_allclose(
        knn.vote(similarity, labels, 3, 3), [[0.9, 0.8, 0.7], [0, 0.9, 0.5]], rtol=1e-6
    )
    # k above the gallery's size: every photo votes
    np.testing.assert_allclose(knn.vote(similarity, labels, 3, 10)[0], [0.9, 1.0, 0.7], rtol=1e-6)


def test_vote_ignores_photos_a_query_may_not_see():
    similarity = np.array([[0.9, -np.inf, 0.4]], np.float32)
    votes = knn.vote(similarity, np.array([0, 1, 1]), 2, k=3)
    np.testing.assert_allclose(votes, [[0.9, 0.4]])
    assert np.isfinite(votes).all()


def test_vote_with_an_empty_gallery_or_no_query():
    assert knn.vote(np.zeros((2, 0)), np.zeros(0, int), 3, 5).shape == (2, 3)
    assert knn.vote(np.zeros((0, 4)), np.zeros(4, int), 3, 5).shape == (0, 3)


def test_margin_confidence_ranks_a_split_vote_below_a_clear_one():
    votes = np.array([[2.4, 0.3, 0.0], [1.3, 1.2, 0.1], [0.0, 0.0, 0.0]], np.float32)
    best, margin = knn.confidence_from_votes(votes, "margin")
    np.testing.assert_array_equal(best, [0, 0, 0])
    np.testing.assert_allclose(margin, [2.1, 0.1, 0.0], rtol=1e-6)
    _, first = knn.confidence_from_votes(votes, "best")
    np.testing.assert_allclose(first, [2.4, 1.3, 0.0])
    # one landmark only: the margin is the vote itself
    _, alone = knn.confidence_from_votes(np.array([[0.7]]), "margin")
    np.testing.assert_allclose(alone, [0.7])
    with pytest.raises(ValueError, match="confidence must be one of"):
        knn.confidence_from_votes(votes, "ratio")


def test_whitening_decorrelates_and_equalises_the_gallery():
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(32, 32)) * np.linspace(3, 0.1, 32)
    x = knn.normalize(rng.normal(size=(400, 32)) @ mixing + 5.0)
    white, note = knn.fit_whitening(x, dim=16, shrinkage=0.0)
    assert white is not None and white.dim == 16 and "16 dimensions" in note
    projected = (x - white.mean) @ white.projection
    covariance = projected.T @ projected / len(x)
    np.testing.assert_allclose(covariance, np.eye(16), atol=1e-4)
    out = white.apply(x)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_whitening_on_a_gallery_too_small_cuts_dimensions_then_declines():
    rng = np.random.default_rng(1)
    # 40 photos of 64 dimensions cannot give 32 directions at 2 photos each: cut to 20
    cut, note = knn.fit_whitening(
        rng.normal(size=(40, 64)), dim=32, shrinkage=0.1, min_photos_per_dim=2
    )
    assert cut is not None and cut.dim == 20 and "cut from 32" in note
    # fewer photos than directions worth fitting: no whitening, and the reason
    none, reason = knn.fit_whitening(rng.normal(size=(12, 1280)), dim=256)
    assert none is None
    expected = "no whitening: 12 gallery photos estimate at most 11 directions (fewer than 16)"
    assert reason == expected


def test_query_expansion_and_dba_pull_towards_the_nearest_rows():
    base = knn.normalize(np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]))
    query = knn.normalize(np.array([[1.0, 0.1]]))
    assert np.array_equal(knn.query_expand(query, base, 0), query)  # k = 0: unchanged
    # alpha 1: q' = normalize(q + cos(q, b0) b0 + cos(q, b1) b1), its two nearest rows
    cos = query @ base.T
    expected = knn.normalize(query + cos[0, 0] * base[0] + cos[0, 1] * base[1])
    np.testing.assert_allclose(knn.query_expand(query, base, 2, alpha=1.0), expected, rtol=1e-5)
    # DBA: a row is expanded by its nearest other row, never by itself twice
    augmented = knn.database_augment(base, 1, alpha=1.0)
    c01 = float(base[0] @ base[1])
    np.testing.assert_allclose(augmented[0], knn.normalize(base[0] + c01 * base[1]), rtol=1e-5)


def test_vote_gallery_answers_and_calibrates_from_the_gallery():
    rng = np.random.default_rng(2)
    centres = knn.normalize(rng.random((4, 24)))  # non-negative, as GeM features are
    labels = np.repeat(["a", "b", "c", "d"], 6)
    codes = [ord(x) - 97 for x in labels]
    photos = knn.normalize(centres[codes] + 0.1 * rng.random((24, 24)))
    gallery = VoteGallery(photos, labels, VoteRule(k=3, whiten_dim=0))
    assert gallery.whitening is None and "no whitening" in gallery.note
    query = knn.normalize(centres[2] + 0.05 * rng.random(24))
    answer = gallery.answer(query)
    assert answer.best == "c" and answer.scores.shape == (4,)
    # the confidence is the plain cosine of the answer's most similar photo
    assert answer.confidence == pytest.approx(float((photos[labels == "c"] @ query).max()))
    unknown = gallery.calibrate()
    level = gallery.rule.tau_quantile
    assert len(unknown) == 24 and gallery.tau == pytest.approx(np.quantile(unknown, level))
    assert answer.confidence > gallery.tau  # a photo of a known landmark is accepted


def test_vote_gallery_inliers_change_the_answer_above_the_floor():
    photos = knn.normalize(np.array([[1.0, 0.1], [1.0, 0.12], [0.2, 1.0]]))
    rule = VoteRule(k=1, whiten_dim=0, inlier_vote=1.0, inlier_confidence=0.5, cap=20)
    gallery = VoteGallery(photos, ["near", "near", "far"], rule)
    gallery.floor = 5.0
    query = knn.normalize(np.array([1.0, 0.3]))
    assert gallery.answer(query).best == "near"
    # 25 inliers with the "far" photo: V(far) = min(25 - 5, 20) / 20 = 1 outvotes the cosine
    verified = gallery.answer(query, {2: 25})
    assert verified.best == "far"
    assert verified.confidence == pytest.approx(float(photos[2] @ query) + 0.5)
    # inliers at the floor count nothing
    assert gallery.answer(query, {2: 5}).best == "near"
