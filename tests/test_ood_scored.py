"""Notebook 07 on a competition folder with a scored test set and no non-landmark photo."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from utils.metrics import auroc
from utils.models import build_model
from utils.ood import evaluate as ood_eval
from utils.ood import scored
from utils.ood.matching import MatchingDetector, matching_score
from utils.results import render
from utils.retrieval.realphotos import bootstrap_interval
from utils.submission import tune_part

CONFIG = {"model": "mobilenet_v2", "image_size": 32, "pipeline": 2}


def _matching(penalty_k: int) -> MatchingDetector:
    torch.manual_seed(0)
    return MatchingDetector(build_model("mobilenet_v2", 4), [1, 2, 3, 4], CONFIG, penalty_k)


def _unit(rows) -> np.ndarray:
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _competition_copy(root: Path, out: Path, drop=("non_landmark",)) -> Path:
    """``root`` linked file by file into ``out``, without the entries named in ``drop``."""
    out.mkdir()
    for entry in root.iterdir():
        if entry.name not in drop:
            os.symlink(entry, out / entry.name)
    return out


def test_mode_follows_what_the_folder_holds(tiny_root, tmp_path):
    assert scored.mode(tiny_root) == "trained"  # the generated set ships non_landmark/
    bare = _competition_copy(tiny_root, tmp_path / "scored")
    assert scored.mode(bare) == "scored"
    kaggle = _competition_copy(
        tiny_root, tmp_path / "kaggle", ("non_landmark", "test_solution.csv")
    )
    assert scored.mode(kaggle) == "untrained"


def test_scored_split_takes_08s_parts_and_the_truth(tiny_root):
    split = scored.build_split(tiny_root, per_landmark=3, seed=0)
    solution = pd.read_csv(tiny_root / "test_solution.csv", dtype=str, keep_default_na=False)
    test = split[split.split != "train"].set_index("id")
    assert sorted(test.index) == sorted(solution["id"])
    tuned = dict(zip(solution["id"], tune_part(solution["id"].tolist()), strict=True))
    assert all((test.loc[i, "split"] == "val") == tuned[i] for i in test.index)
    for image_id, landmarks in zip(solution["id"], solution["landmarks"], strict=True):
        row = test.loc[image_id]
        assert row.label == int(bool(landmarks))
        assert row.landmark_id == (min(int(t) for t in landmarks.split()) if landmarks else -1)
        assert (tiny_root / row.path).is_file()
    train = split[split.split == "train"]
    assert (train.label == 1).all() and train.groupby("landmark_id").size().max() <= 3
    assert train.landmark_id.nunique() == pd.read_csv(tiny_root / "train.csv").landmark_id.nunique()
    assert not split.id.duplicated().any()


def test_scored_split_refuses_a_test_id_without_truth(tiny_root, tmp_path):
    root = _competition_copy(tiny_root, tmp_path / "partial", ("test_solution.csv",))
    solution = pd.read_csv(tiny_root / "test_solution.csv", dtype=str, keep_default_na=False)
    solution.iloc[1:].to_csv(root / "test_solution.csv", index=False)
    with pytest.raises(ValueError, match=f"no truth for 1 test ids \\(first: {solution.id[0]}\\)"):
        scored.build_split(root)


def test_matching_without_non_landmarks_is_the_nearest_landmark_cosine():
    landmarks = _unit([[1, 0, 0], [0, 1, 0]])
    queries = _unit([[1, 0.2, 0], [0.1, 0.1, 1]])
    detector = _matching(penalty_k=0)
    detector.set_databases(landmarks, np.zeros((0, 3), np.float32))
    np.testing.assert_allclose(detector.score(queries), (queries @ landmarks.T).max(1), rtol=1e-6)
    with pytest.raises(ValueError, match="penalty_k 2 needs non-landmark embeddings"):
        matching_score(queries, landmarks, np.zeros((0, 3), np.float32), 2)
    penalised = _matching(penalty_k=1)
    with pytest.raises(ValueError, match="without any, use penalty_k 0"):
        penalised.set_databases(landmarks, np.zeros((0, 3), np.float32))


def test_auroc_interval_matches_a_plain_bootstrap_and_holds_the_estimate():
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(60), np.zeros(12)].astype(bool)
    scores = np.round(rng.normal(size=72) + labels, 1)  # ties too
    low, high = ood_eval.auroc_interval(scores, labels)
    plain = bootstrap_interval(lambda i: auroc(scores[i], labels[i]), labels)
    assert low < auroc(scores, labels) < high
    assert low == pytest.approx(plain[0], abs=0.03) and high == pytest.approx(plain[1], abs=0.03)
    assert np.isnan(ood_eval.auroc_interval(scores, np.ones(72))).all()


def test_results_say_where_a_scored_table_4_comes_from(tmp_path):
    folder = tmp_path / "run" / "07_ood"
    folder.mkdir(parents=True)
    result = {"accuracy": 0.9, "precision": 0.95, "recall": 0.93, "auroc": 0.81}
    (folder / "detectors.json").write_text(
        pd.Series({"odin": {**result, "auroc_interval": [0.7, 0.9]}}).to_json()
    )
    (folder / "protocol.json").write_text('{"mode": "scored", "log": []}')
    text = render(tmp_path / "run")
    assert "| odin | 0.900 | 0.950 | 0.930 | 0.810 (0.70-0.90) |" in text
    assert "tuned on 08's tune part of the test set and measured on its check part" in text
    (folder / "protocol.json").write_text('{"log": []}')
    assert "08's tune part" not in render(tmp_path / "run")
