"""The gldv2-sample protocol: parts by place, the per-landmark gallery, a run on a tiny folder."""

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import textured, warp
from utils.retrieval import gldv2sample


def test_parts_split_by_place_and_alternate_non_landmarks():
    assert gldv2sample.part_of("Great_Wall_of_China", 5) == "tune"
    assert gldv2sample.part_of("Niagara_Falls", 4) == "check"
    assert gldv2sample.part_of("Golden_Gate_Bridge", 1) == "tune"  # absent from train
    assert gldv2sample.part_of("Leaning_Tower_of_Pisa", 2) == "check"
    assert [gldv2sample.part_of("non_landmark", i) for i in range(3)] == ["tune", "check", "tune"]


def test_first_per_landmark_keeps_the_first_ids():
    labels = ["a", "b", "a", "a", "b"]
    keys = ["z", "c", "b", "a", "d"]
    assert gldv2sample.first_per_landmark(labels, keys, 2).tolist() == [1, 2, 3, 4]
    assert gldv2sample.first_per_landmark(labels, keys, 1).tolist() == [1, 3]
    assert gldv2sample.first_per_landmark(labels, keys, 0).tolist() == [0, 1, 2, 3, 4]


def write_photo(root, split, image_id, image):
    path = root / split / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


@pytest.mark.slow
def test_evaluate_on_a_tiny_competition_folder(tmp_path, capsys):
    root = tmp_path / "sample"
    train, sources, solution = [], [], []
    places = {100: "Stonehenge", 101: "Niagara_Falls"}
    for landmark in (100, 101):
        for view in range(3):
            image_id = f"{landmark}{view}aaaa"
            write_photo(root, "train", image_id, warp(textured(landmark, (240, 320)), view))
            train.append((image_id, landmark))
            sources.append((image_id, places[landmark]))
    for n, (seed, truth, place) in enumerate(
        [(100, "100", "Stonehenge"), (101, "101", "Niagara_Falls"), (7, "", "non_landmark")]
    ):
        image_id = f"f{n}{n}bbbb"
        write_photo(root, "test", image_id, warp(textured(seed, (240, 320)), 9 + n))
        solution.append((image_id, truth))
        sources.append((image_id, place))
    pd.DataFrame(train, columns=["id", "landmark_id"]).to_csv(root / "train.csv", index=False)
    pd.DataFrame(solution, columns=["id", "landmarks"]).to_csv(
        root / "test_solution.csv", index=False
    )
    pd.DataFrame(sources, columns=["id", "place"]).to_csv(root / "sources.csv", index=False)
    queries = gldv2sample.read_queries(root)
    assert queries["part"].tolist() == ["tune", "check", "tune"]
    assert queries["truth"].tolist() == ["100", "101", ""]
    results = gldv2sample.evaluate(
        root, ["default", "nn"], "all", cache=tmp_path / "cache", progress=False
    )
    for result in results.values():
        assert result["queries"] == 3 and result["accuracy_count"] == [2, 2]
        assert np.isfinite(result["gap"]) and result["auroc"] == 1.0
    code = gldv2sample.main(
        [
            "--data-root",
            str(root),
            "--part",
            "tune",
            "--rules",
            "nn",
            "--cache",
            str(tmp_path / "c"),
        ]
    )
    assert code == 0 and "top-1 accuracy 1.000 (1/1" in capsys.readouterr().out
    assert gldv2sample.main(["--data-root", str(root), "--rules", "best"]) == 2


@pytest.mark.realdata
@pytest.mark.notebook
@pytest.mark.slow
def test_08_on_gldv2_sample_writes_one_valid_row_per_test_id(tmp_path, capsys):
    import json

    from conftest import SHARED
    from utils import pipeline
    from utils.data.gldv2 import read_test_ids
    from utils.submission import validate_submission

    root = SHARED / "gldv2-sample"
    if not (root / "test_solution.csv").is_file():
        pytest.skip("../shared/gldv2-sample is not here (team-only material)")
    out = tmp_path / "run"
    small = ["PRETRAINED_SIZE=32", "RERANK_TOP=0", "TUNE=False"]  # the rows, not the score
    args = ["--data-root", str(root), "--only", "08", "--out", str(out)]
    assert pipeline.main(args + [f"--set={s}" for s in small]) == 0
    assert "top 17, adapted from 100" in capsys.readouterr().err
    ids = read_test_ids(root)
    assert len(ids) == 721
    assert validate_submission(out / "08_submission" / "submission.csv", test_ids=ids) == []
    report = json.loads((out / "08_submission" / "submission_report.json").read_text())
    assert report["descriptor"] == "pretrained" and report["checkpoint"] == ""
    assert report["rows"] == 721 and report["unreadable"] == []
    assert report["details"]["gallery"]["images"] == 1142
    assert report["score"]["queries"] == 721 and 0 <= report["score"]["gap"] <= 1
    results = (out / "results.md").read_text()
    assert "top 17, adapted from 100" in results and "(pretrained descriptor)" in results
