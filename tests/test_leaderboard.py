"""The leaderboard job's parts: the non-landmark penalty, the tuning split, the gallery."""

import numpy as np
import pandas as pd
import pytest
import torch

from utils.data.augment import eval_transform
from utils.inference import tuning
from utils.inference.gallery import embed_gallery, gallery_bytes, read_gallery_list
from utils.inference.ranking import (
    RankSettings,
    non_landmark_penalty,
    rank,
    ranked_confidence,
    sorted_penalties,
)
from utils.metrics import NO_LANDMARK


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
    part = tuning.tune_part(ids)
    assert 150 < part.sum() < 250  # about half
    assert tuning.tune_part(ids[::-1]).tolist() == part[::-1].tolist()
    assert tuning.tune_part(ids[:7]).tolist() == part[:7].tolist()


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
    from utils.data.gldv2 import image_path

    gone, broken = listing["id"].iloc[0], listing["id"].iloc[1]
    image_path(root, gone).unlink()
    image_path(root, broken).write_bytes(b"not a jpeg")
    gallery = embed_gallery(
        MeanEmbed(),
        root,
        listing,
        eval_transform(32, 2),
        torch.device("cpu"),
        workers=0,
        batch_size=4,
        progress=False,
    )
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
