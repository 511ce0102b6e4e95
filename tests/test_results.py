import json
from pathlib import Path

from utils.results import render, table3_rows


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
    assert [row[:4] for row in rows] == [
        ["resnet50", "scratch", "2", "classifier"],
        ["efficientnet-b2", "scratch", "2", "classifier"],
        ["efficientnet-lite2", "ImageNet", "2", "classifier"],
        ["efficientnet-b2", "scratch", "2", "retrieval top1"],  # 04's own network, not the repeat
        ["dolg", "—", "2", "classifier"],
    ]
    assert rows[2][4:] == ["0.900", "0.800", "—"]
    assert rows[3][4:] == ["0.800", "—", "—"]
    text = render(tmp_path)
    assert "| model | weights | pipeline | method |" in text
    assert "| efficientnet-lite2 | ImageNet | 2 | classifier | 0.900 | 0.800 | — | — |" in text


def test_table3_of_an_empty_run(tmp_path):
    assert table3_rows(tmp_path) == []
    assert "Not measured in this run." in render(tmp_path)
