import json
from pathlib import Path

from utils.results import render, submission_lines, table3_rows


def write(folder: Path, name: str, value: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(value))


def classifier(run: Path, name: str, model: str, pretrained: bool | None, accuracy: float) -> None:
    config = {"model": model, "pipeline": 2}
    if pretrained is not None:
        config["pretrained"] = pretrained
    write(run / name, "config.json", config)
    write(run / name, "test_metrics.json", {"accuracy": accuracy, "gap": accuracy - 0.1})


def test_table3_names_the_weights_of_each_network_and_the_repeats(tmp_path):
    classifier(tmp_path, "03_train_resnet", "resnet50", False, 0.6)
    classifier(tmp_path, "04_train_effnet", "efficientnet-b2", False, 0.7)
    classifier(tmp_path, "04_train_effnet-lite2-imagenet", "efficientnet-lite2", True, 0.9)
    write(tmp_path / "05_delf_rerank", "test_results.json", {"retrieval top1": {"accuracy": 0.8}})
    classifier(tmp_path, "06_dolg", "dolg", None, 0.5)  # a config without the flag
    rows = table3_rows(tmp_path)
    assert [row[:5] for row in rows] == [
        ["resnet50", "scratch", "—", "2", "classifier"],
        ["efficientnet-b2", "scratch", "—", "2", "classifier"],
        ["efficientnet-lite2", "ImageNet", "—", "2", "classifier"],
        ["efficientnet-b2", "scratch", "—", "2", "retrieval top1"],  # 04's own network
        ["dolg", "—", "—", "2", "classifier"],
    ]
    assert rows[2][5:] == ["0.900", "0.800", "—"]
    assert rows[3][5:] == ["0.800", "—", "—"]
    text = render(tmp_path)
    assert "| model | weights | classes | pipeline | method |" in text
    assert "| efficientnet-lite2 | ImageNet | — | 2 | classifier | 0.900 | 0.800 | — | — |" in text


def manifest(folder: Path, top: int, test_ids: list[str]) -> str:
    write(folder, "summary.json", {"top": top, "num_classes": 3 if top else 5})
    (folder / "test.csv").write_text("id,landmark_id\n" + "".join(f"{i},1\n" for i in test_ids))
    return str(folder)


def test_an_all_landmark_network_is_also_scored_on_the_top_n_test_ids(tmp_path):
    top_n = manifest(tmp_path / "m3", 3, ["a", "b"])
    every = manifest(tmp_path / "mall", 0, ["a", "b", "c", "d"])
    write(
        tmp_path / "run" / "04_train_effnet", "config.json", {"model": "b2", "manifest_dir": top_n}
    )
    repeat = tmp_path / "run" / "04_train_effnet-lite2-imagenet"
    write(repeat, "config.json", {"model": "lite2", "pretrained": True, "manifest_dir": every})
    write(repeat, "test_metrics.json", {"accuracy": 0.5, "gap": 0.4})
    (repeat / "test_predictions.csv").write_text(
        "id,landmark_id,predicted,confidence\na,1,1,0.9\nb,1,2,0.8\nc,1,2,0.7\nd,1,2,0.6\n"
    )
    rows = table3_rows(tmp_path / "run")
    assert rows[0][2] == "all 5" and rows[0][5:7] == ["0.500", "0.400"]
    assert rows[1][4] == "classifier, on the top-3 test ids (2)"
    assert rows[1][5:7] == ["0.500", "0.500"]  # a right, b wrong: GAP (1/1) / 2


def test_table3_of_an_empty_run(tmp_path):
    assert table3_rows(tmp_path) == []
    assert "Not measured in this run." in render(tmp_path)


def part(gap: float) -> dict:
    return {
        "queries": 4,
        "gap": gap,
        "gap_interval": [gap - 0.1, gap + 0.1],
        "correct_known": 2,
        "known_landmark_photos": 3,
        "landmark_photos": 3,
        "accuracy_known": 2 / 3,
        "accuracy_known_interval": [0.2, 0.9],
        "predicted": 4,
        "confident_non_landmarks": 1,
        "non_landmark_photos": 1,
    }


def test_the_submission_table_shows_the_frozen_baseline_beside_each_part():
    parts = {"tune": part(0.8), "check": part(0.7), "whole": part(0.75)}
    report = {
        "method": "retrieval",
        "details": {
            "tuning": {"chosen": {"k": 5}, "grid": 9, "parts": parts},
            "baseline": {"name": "nearest photo", "parts": {"check": part(0.6)}},
        },
    }
    text = "\n".join(submission_lines(report))
    assert "| check | 4 | 0.700 (0.600-0.800) |" in text
    assert "| check: baseline | 4 | 0.600 (0.500-0.700) |" in text
    assert "Baseline rows: nearest photo" in text
    assert "minus the baseline" not in text  # a report from before the paired difference
    difference = {"check": {"gap": 0.1, "interval": [-0.02, 0.2]}}
    report["details"]["baseline"]["difference"] = difference
    text = "\n".join(submission_lines(report))
    assert "GAP of 08 minus the baseline's" in text and "check +0.100 (-0.020 to +0.200)" in text
    del report["details"]["baseline"]
    assert "baseline" not in "\n".join(submission_lines(report))
