"""The leaderboard job's parts: the non-landmark penalty, the tuning split, the gallery."""

import numpy as np
import pandas as pd
import pytest
import torch

from utils.data.augment import eval_transform
from utils.data.gldv2 import image_path
from utils.inference import submit, tuning
from utils.inference.budget import TimeBudget
from utils.inference.descriptors import combine, frozen_part, trained_vectors
from utils.inference.gallery import (
    describe_gallery,
    gallery_bytes,
    read_gallery_list,
)
from utils.inference.ranking import (
    RankSettings,
    local_votes,
    non_landmark_penalty,
    rank,
    ranked_confidence,
    sorted_penalties,
)
from utils.inference.verification import noise_floor, shortlist_inliers
from utils.metrics import NO_LANDMARK
from utils.retrieval.calibration import random_pairs
from utils.submission import tune_part


def unit(rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_penalty_closed_form_on_a_hand_worked_case():
    # query q = e1; non-landmark photos at cosines 0.8, 0.6, 0.0 and -1 to it
    q = unit([[1, 0, 0]])
    photos = unit([[0.8, 0.6, 0], [0.6, 0, 0.8], [0, 1, 0], [-1, 0, 0]])
    assert non_landmark_penalty(q, photos, 1) == pytest.approx([0.8])
    assert non_landmark_penalty(q, photos, 2) == pytest.approx([0.7])
    assert non_landmark_penalty(q, photos, 10) == pytest.approx([(0.8 + 0.6 + 0 - 1) / 4])
    assert non_landmark_penalty(q, photos, 0) == pytest.approx([0.0])
    top = sorted_penalties(q, photos, 3)
    assert top.shape == (1, 3) and top[0] == pytest.approx([0.8, 0.6, 0.0])
    # a kNN score of 0.9 with weight 2 and k 2: 0.9 - 2 * 0.7 = -0.5
    assert ranked_confidence([0.9], non_landmark_penalty(q, photos, 2), 2.0) == pytest.approx(
        [-0.5]
    )


def test_rank_aggregates_penalises_and_gates():
    cosines = np.array([[0.9, 0.8, 0.7], [0.6, 0.5, 0.4]])
    indices = np.array([[0, 1, 2], [2, 1, 0]])
    labels = np.array([7, 8, 8])
    penalty = np.array([0.1, 0.5])
    top1 = rank(cosines, indices, labels, penalty, RankSettings(1, "top1", 1, 1.0))
    assert top1[0].tolist() == [7, 8] and top1[1] == pytest.approx([0.8, 0.1])
    summed = rank(cosines, indices, labels, penalty, RankSettings(3, "sum", 1, 1.0))
    assert summed[0].tolist() == [8, 8] and summed[1] == pytest.approx([1.4, 0.6])
    accepted = np.array([True, False])
    gated = rank(cosines, indices, labels, penalty, RankSettings(1, "top1", 1, 1.0, True), accepted)
    assert gated[0].tolist() == [7, NO_LANDMARK] and gated[1][1] == 0.0
    with pytest.raises(ValueError, match="aggregation"):
        RankSettings(aggregation="mean")


def test_tune_part_is_fixed_by_the_id_alone():
    ids = [f"{i:016x}" for i in range(400)]
    part = tune_part(ids)
    assert 150 < part.sum() < 250  # about half
    assert tune_part(ids[::-1]).tolist() == part[::-1].tolist()
    assert tune_part(ids[:7]).tolist() == part[:7].tolist()


def test_choose_looks_at_the_tune_part_only():
    truth = np.array([1, 1, 2, 2])
    tune = np.array([True, True, False, False])
    right_on_tune = (np.array([1, 1, 9, 9]), np.ones(4))
    right_on_check = (np.array([9, 9, 2, 2]), np.ones(4))
    grid = [RankSettings(1), RankSettings(3, "sum")]
    answers = dict(zip(grid, (right_on_check, right_on_tune), strict=True))
    chosen, table = tuning.choose(grid, answers.__getitem__, truth, tune)
    assert chosen == grid[1] and [round(g, 3) for _, g in table] == [0.0, 1.0]


def test_scores_count_confident_non_landmarks():
    truth = np.array([5, 6, NO_LANDMARK, NO_LANDMARK])
    landmarks = np.array([5, 7, 5, 6])
    confidence = np.array([0.9, 0.1, 0.8, 0.2])
    known = np.array([True, False, False, False])
    out = tuning.scores(landmarks, confidence, truth, known, intervals=False)
    # ranked 5 (right), 5 (non-landmark), 6, 7: the first M=2 hold one non-landmark
    assert out["confident_non_landmarks"] == 1 and out["correct_known"] == 1
    assert out["gap"] == pytest.approx(0.5) and out["predicted"] == 4


def test_paired_differences_score_both_on_the_same_resampled_ids():
    rng = np.random.default_rng(0)
    truth = np.repeat([1, 2, 3, NO_LANDMARK], 25)
    tune = np.arange(100) % 2 == 0
    confidence = rng.random(100)
    right = np.where(truth == NO_LANDMARK, 1, truth)
    wrong_half = np.where(np.arange(100) % 4 < 2, right, 9)  # half the photos wrong
    same = tuning.paired_differences((right, confidence), (right, confidence), truth, tune)
    assert all(d["gap"] == 0 and tuple(d["interval"]) == (0, 0) for d in same.values())
    better = tuning.paired_differences((right, confidence), (wrong_half, confidence), truth, tune)
    whole = tuning.scores(right, confidence, truth, truth != NO_LANDMARK, intervals=False)["gap"]
    whole -= tuning.scores(wrong_half, confidence, truth, truth != NO_LANDMARK, False)["gap"]
    assert better["whole"]["gap"] == pytest.approx(whole) and whole > 0.2
    for d in better.values():  # every draw favours the right answers: the interval excludes 0
        assert 0 < d["interval"][0] < d["interval"][1]
    worse = tuning.paired_differences((wrong_half, confidence), (right, confidence), truth, tune)
    assert worse["check"]["gap"] == pytest.approx(-better["check"]["gap"])
    assert worse["check"]["interval"][1] < 0


def test_grid_is_simplest_first_and_has_no_duplicates():
    grid = tuning.settings_grid()
    assert grid[0] == RankSettings(1, "top1", 0, 0.0) and len(set(grid)) == len(grid)
    assert all(s.weight == 0.0 for s in grid if s.penalty_k == 0)


class MeanEmbed(torch.nn.Module):
    """An embedding of the mean colour: enough to test the gallery's bookkeeping."""

    def embed(self, x):
        return x.mean(dim=(2, 3)) + 1e-3


def test_gallery_skips_missing_and_unreadable_files_and_counts_them(tiny_root, tmp_path):
    import shutil

    root = tmp_path / "tiny"
    shutil.copytree(tiny_root, root)
    listing = read_gallery_list(root)
    gone, broken = listing["id"].iloc[0], listing["id"].iloc[1]
    image_path(root, gone).unlink()
    image_path(root, broken).write_bytes(b"not a jpeg")
    vectors = trained_vectors(
        MeanEmbed(), eval_transform(32, 2), torch.device("cpu"), 4, workers=0, progress=False
    )
    gallery = describe_gallery(vectors, root, listing)
    assert len(gallery) == len(listing) - 2 and gone not in gallery.ids
    assert broken not in gallery.ids
    assert gallery.skips.missing == [str(image_path(root, gone))]
    assert gallery.skips.unreadable == [str(image_path(root, broken))]
    summary = gallery.skips.summary()
    assert f"{len(listing) - 2} of {len(listing)}" in summary and "1 missing" in summary
    kept = listing.set_index("id").loc[gallery.ids, "landmark_id"].to_numpy()
    assert (gallery.labels == kept).all()
    assert np.allclose(np.linalg.norm(gallery.embeddings, axis=1), 1.0, atol=1e-5)


def test_gallery_list_is_read_at_run_time_and_sized(tiny_root):
    listing = read_gallery_list(tiny_root, "train")
    assert listing["id"].is_unique and set(listing.columns) >= {"id", "landmark_id"}
    assert len(listing) == len(pd.read_csv(tiny_root / "train.csv").drop_duplicates("id"))
    assert gallery_bytes(1_580_470, 1280) == 4 * 1_580_470 * 1280
    with pytest.raises(ValueError, match="gallery source"):
        read_gallery_list(tiny_root, "test")


def test_nearest_confidence_is_the_plain_cosine_of_the_answer_s_best_photo():
    # whitened cosines choose landmark 8 (0.9 + 0.5 summed over k 3); the plain cosines of
    # its photos are 0.7 and 0.6: confidence 0.7 - 1.0 * 0.1
    cosines = np.array([[0.9, 0.6, 0.5]])
    plain = np.array([[0.7, 0.8, 0.6]])
    indices = np.array([[1, 0, 2]])
    labels = np.array([7, 8, 8])
    penalty = np.array([0.1])
    settings = RankSettings(3, "sum", 1, 1.0, confidence="nearest")
    landmarks, confidence = rank(cosines, indices, labels, penalty, settings, None, plain)
    assert landmarks.tolist() == [8] and confidence == pytest.approx([0.6])
    score = rank(cosines, indices, labels, penalty, RankSettings(3, "sum", 1, 1.0), None, plain)
    assert score[0].tolist() == [8] and score[1] == pytest.approx([1.4 - 0.1])
    with pytest.raises(ValueError, match="confidence"):
        RankSettings(confidence="margin")


def test_local_votes_can_change_the_answer_and_raise_the_confidence():
    assert local_votes([0, 4, 14, 30], 4.0, 20) == pytest.approx([0, 0, 0.5, 1.0])
    # top-1 says landmark 7 (0.9); landmark 8's second photo has 24 inliers over a floor of 4:
    # V = 1, so 8 scores 0.8 + 1 = 1.8 against 0.9; confidence: its plain 0.8 + V / 2
    cosines = np.array([[0.9, 0.8]])
    indices = np.array([[0, 1]])
    labels = np.array([7, 8])
    verified = local_votes(np.array([[2, 24]]), 4.0)
    nearest = RankSettings(1, "top1", 0, 0.0, confidence="nearest", verify=1.0)
    landmarks, confidence = rank(
        cosines, indices, labels, np.zeros(1), nearest, None, None, verified
    )
    assert landmarks.tolist() == [8] and confidence == pytest.approx([1.3])
    score = RankSettings(1, "top1", 0, 0.0, verify=1.0)
    landmarks, confidence = rank(cosines, indices, labels, np.zeros(1), score, None, None, verified)
    assert landmarks.tolist() == [8] and confidence == pytest.approx([1.0])  # only V: not top-1
    unverified = rank(cosines, indices, labels, np.zeros(1), RankSettings(1), None, None, verified)
    assert unverified[0].tolist() == [7]  # verify 0: the votes are not used


def test_combined_descriptor_cosine_is_the_weighted_sum_of_the_two():
    rng = np.random.default_rng(0)
    p, t = unit(rng.normal(size=(5, 8))), unit(rng.normal(size=(5, 3)))
    both = combine(p, t, 0.25)
    assert np.allclose(np.linalg.norm(both, axis=1), 1.0, atol=1e-6)
    assert np.allclose(both @ both.T, 0.25 * (p @ p.T) + 0.75 * (t @ t.T), atol=1e-6)
    assert np.allclose(combine(p, t, 1.0)[:, :8], p)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        combine(p, t, 1.5)


def test_frozen_part_gives_the_frozen_rows_back_out_of_the_combined_ones():
    rng = np.random.default_rng(1)
    p, t = unit(rng.normal(size=(4, 6))), unit(rng.normal(size=(4, 3)))
    assert np.allclose(frozen_part(combine(p, t, 0.85), 6), p, atol=1e-6)
    assert np.allclose(frozen_part(p, 6), p, atol=1e-6)  # the frozen descriptor alone
    with pytest.raises(ValueError, match="no 7 frozen columns"):
        frozen_part(p, 7)


def test_grid_adds_whitening_and_the_nearest_confidence_without_repeats():
    plain = tuning.settings_grid(gates=(False,))
    both = tuning.settings_grid(gates=(False,), whitens=(False, True))
    assert len(set(both)) == len(both) and {s.whiten for s in both} == {False, True}
    # nearest repeats score for an unwhitened top1, never added there
    assert not [s for s in plain if s.aggregation == "top1" and s.confidence == "nearest"]
    assert [s for s in both if s.aggregation == "top1" and s.confidence == "nearest"]


def test_describe_gallery_counts_what_it_could_not_read(tiny_root):
    listing = read_gallery_list(tiny_root).head(6).copy()
    listing.loc[0, "id"] = "ffffffffffffffff"  # listed, not on disk

    def vectors(paths, budget, desc):  # the second file unreadable, the last left out
        rows = np.array([0, 2, 3])
        return unit(np.eye(4)[:3] + 0.1), rows, [1], 1

    gallery = describe_gallery(vectors, tiny_root, listing)
    assert gallery.skips.missing == [str(image_path(tiny_root, "ffffffffffffffff"))]
    assert gallery.skips.unreadable == [str(image_path(tiny_root, listing["id"][2]))]
    assert gallery.skips.out_of_budget == 1
    assert gallery.ids == [listing["id"][i] for i in (1, 3, 4)]
    assert gallery.labels.tolist() == listing["landmark_id"].iloc[[1, 3, 4]].tolist()


def test_shortlist_inliers_and_noise_floor_on_textures(tmp_path):
    import cv2

    from conftest import textured
    from utils.retrieval.local_features import RootSift

    paths = []
    for seed in range(4):
        paths.append(tmp_path / f"{seed}.jpg")
        cv2.imwrite(str(paths[-1]), textured(seed, (240, 320)))
    (tmp_path / "bad.jpg").write_bytes(b"")
    gallery = [*paths, tmp_path / "bad.jpg"]
    indices = np.array([[0, 1, 4], [3, 2, 0]])
    inliers, done = shortlist_inliers(
        paths[:1] + paths[3:], gallery, indices, 3, RootSift(), progress=False
    )
    assert done == 2 and inliers.shape == (2, 3)
    assert inliers[0, 0] > 50 and inliers[1, 0] > 50  # each query's own photo
    assert inliers[0, 1] < 10 and inliers[1, 1] < 10 and inliers[0, 2] == 0  # other, unreadable
    labels = np.array([0, 1, 2, 3, 4])
    assert 0 <= noise_floor(gallery, labels, RootSift(), pairs=6) < 10
    stopped, done = shortlist_inliers(
        paths,
        gallery,
        indices.repeat(2, 0),
        2,
        RootSift(),
        TimeBudget(1e-9, start=0.0),
        progress=False,
    )
    assert done == 0 and not stopped.any()


def test_config_needs_a_checkpoint_unless_the_pretrained_descriptor_retrieves():
    assert submit.SubmissionConfig("d", "", "s.csv", "retrieval", "pretrained").pretrained_only
    with pytest.raises(ValueError, match="checkpoint: a trained network is needed"):
        submit.SubmissionConfig("d", "", "s.csv", "retrieval", "both")
    with pytest.raises(ValueError, match="checkpoint: a trained network is needed"):
        submit.SubmissionConfig("d", "", "s.csv", "classifier", "pretrained")
    with pytest.raises(ValueError, match="descriptor must be one of"):
        submit.SubmissionConfig("d", "c.pt", "s.csv", "retrieval", "dolg")


def test_auto_descriptor_takes_both_only_with_a_trained_network(tmp_path, tiny_root):
    assert submit.default_descriptor("auto", str(tmp_path / "absent.pt")) == "pretrained"
    assert submit.default_descriptor("auto", "") == "pretrained"
    (tmp_path / "best.pt").write_bytes(b"")
    assert submit.default_descriptor("auto", str(tmp_path / "best.pt")) == "both"
    assert submit.default_descriptor("trained", "") == "trained"
    assert submit.default_descriptor("auto", str(tmp_path / "best.pt"), tiny_root) == "trained"


def test_random_pairs_are_distinct_pairs_of_two_landmarks():
    labels = ["a", "a", "b", "c", "c", "c"]
    pairs = random_pairs(labels, 5, seed=0)
    assert len(pairs) == 5 and pairs == sorted(set(pairs))
    assert all(i < j and labels[i] != labels[j] for i, j in pairs)
    assert random_pairs(labels, 5, seed=0) == pairs  # seeded
    assert random_pairs(["a", "a", "a"], 5) == [] and random_pairs(["a"], 5) == []


def test_only_the_searches_the_settings_use_are_run():
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    config = submit.SubmissionConfig("d", "", "s.csv", "retrieval", "pretrained", whiten=16)
    big = SimpleNamespace(embeddings=unit(rng.normal(size=(64, 32))))
    queries = unit(rng.normal(size=(3, 32)))
    for kinds in ({True}, {False}, {False, True}):
        searches, _ = submit._searches(config, big, queries, 5, kinds)
        assert set(searches) == kinds
    found, where, plain = submit._searches(config, big, queries, 5, {True})[0][True]
    assert plain == pytest.approx(np.einsum("qd,qkd->qk", queries, big.embeddings[where]))
    small = SimpleNamespace(embeddings=unit(rng.normal(size=(10, 32))))  # too few to whiten
    searches, note = submit._searches(config, small, queries, 3, {True})
    assert set(searches) == {False} and note.startswith("no whitening")
