import json
from pathlib import Path

import pandas as pd
import pytest

from utils.cli import main as cli_main
from utils.data import manifests

REPO = Path(__file__).resolve().parents[1]


def make_root(tmp_path: Path, counts: dict[int, int]) -> Path:
    rows = [(f"{lm:03d}{i:05d}", lm) for lm, n in counts.items() for i in range(n)]
    pd.DataFrame(rows, columns=["id", "landmark_id"]).to_csv(tmp_path / "train.csv", index=False)
    return tmp_path


def test_top_classes_ranks_by_count_then_id():
    labels = pd.DataFrame({"id": list("abcdefg"), "landmark_id": [5, 5, 3, 3, 9, 9, 9]})
    assert manifests.top_classes(labels, 2) == [9, 3]
    with pytest.raises(ValueError, match="larger than the 3 classes"):
        manifests.top_classes(labels, 4)
    assert manifests.top_classes(labels, 0) == [9, 3, 5]  # 0: every landmark, same order
    with pytest.raises(ValueError, match="at least 1, or 0"):
        manifests.top_classes(labels, -1)


@pytest.mark.parametrize(
    ("n", "expected"), [(3, (1, 1, 1)), (10, (8, 1, 1)), (25, (19, 3, 3)), (100, (80, 10, 10))]
)
def test_split_class_sizes(n, expected):
    parts = manifests.split_class([f"id{i}" for i in range(n)], 7, seed=1)
    assert tuple(len(parts[s]) for s in manifests.SPLITS) == expected
    assert sorted(sum(parts.values(), [])) == sorted(f"id{i}" for i in range(n))


def test_split_class_too_small():
    with pytest.raises(ValueError, match="landmark 4 has 2 image"):
        manifests.split_class(["a", "b"], 4, seed=0)


def test_split_is_independent_of_input_order_and_other_classes():
    ids = [f"x{i}" for i in range(20)]
    assert manifests.split_class(ids, 3, 42) == manifests.split_class(ids[::-1], 3, 42)
    assert manifests.split_class(ids, 3, 42) != manifests.split_class(ids, 3, 43)


def test_build_manifests_every_class_in_every_split(tmp_path):
    root = make_root(tmp_path, {1: 30, 2: 12, 3: 50, 4: 3, 5: 2})
    built = manifests.build_manifests(root, top=4, seed=42)
    assert built.summary["classes"] == [3, 1, 2, 4]
    for name in manifests.SPLITS:
        assert set(built.split(name)["landmark_id"]) == {1, 2, 3, 4}
    ids = pd.concat([built.split(s) for s in manifests.SPLITS])["id"]
    assert ids.is_unique and len(ids) == 95
    assert built.summary["counts"] == {"train": 75, "val": 10, "test": 10}
    assert built.summary["source_sha256"] == manifests.sha256_file(root / "train.csv")


def test_all_landmarks_keep_their_top_n_split_and_small_ones_train_only(tmp_path):
    root = make_root(tmp_path, {1: 30, 2: 12, 3: 50, 4: 3, 5: 2, 6: 1})
    top = manifests.build_manifests(root, top=3, seed=42)
    every = manifests.build_manifests(root, top=0, seed=42)
    assert every.summary["num_classes"] == 6 and every.summary["top"] == 0
    assert every.summary["train_only_classes"] == [5, 6]
    for name in manifests.SPLITS:
        mine = every.split(name)
        assert (
            mine[mine["landmark_id"].isin([1, 2, 3])].reset_index(drop=True).equals(top.split(name))
        )
    assert set(every.val["landmark_id"]) == set(every.test["landmark_id"]) == {1, 2, 3, 4}
    assert (every.train["landmark_id"] == 5).sum() == 2 and (every.train["landmark_id"] == 6).sum()
    with pytest.raises(ValueError, match="landmark 5 has 2 image"):
        manifests.build_manifests(root, top=5)  # a top-N still needs every class in all splits


def test_committed_all_landmark_manifest_holds_the_top_30_test_ids():
    every = manifests.read_manifests(REPO / "data_manifests" / "minigld-default-all")
    top = manifests.read_manifests(REPO / "data_manifests" / "minigld-default-top30")
    assert every.summary["top"] == 0 and every.summary["num_classes"] == 48
    for name in manifests.SPLITS:
        assert set(top.split(name)["id"]) <= set(every.split(name)["id"])


def test_top_larger_than_classes_is_a_clear_error(tmp_path):
    root = make_root(tmp_path, {1: 5, 2: 5})
    with pytest.raises(ValueError, match="--top 3 is larger than the 2 classes"):
        manifests.build_manifests(root, top=3)


def test_write_read_roundtrip_and_determinism(tmp_path, tiny_root):
    first = manifests.write_manifests(manifests.build_manifests(tiny_root, 5, 42), tmp_path / "a")
    second = manifests.write_manifests(manifests.build_manifests(tiny_root, 5, 42), tmp_path / "b")
    for name in ("train.csv", "val.csv", "test.csv", "summary.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    back = manifests.read_manifests(first)
    assert back.train.equals(manifests.build_manifests(tiny_root, 5, 42).train)
    assert json.loads((first / "summary.json").read_text())["seed"] == 42


def test_committed_tiny_manifest_matches_regeneration(tiny_manifest):
    """The manifest in data_manifests/ is what the generator and splitter give today."""
    committed = REPO / "data_manifests" / "minigld-tiny-top5"
    for name in ("train.csv", "val.csv", "test.csv", "summary.json"):
        assert (committed / name).read_bytes() == (tiny_manifest / name).read_bytes(), name


def test_split_table(tiny_manifest):
    table = manifests.split_table(manifests.read_manifests(tiny_manifest))
    assert (table.drop(index="all")[["train", "val", "test"]] > 0).all().all()
    assert table.loc["all", "total"] == sum(
        len(manifests.read_manifests(tiny_manifest).split(s)) for s in manifests.SPLITS
    )


def test_cli(tmp_path, tiny_root, capsys):
    out = tmp_path / "m"
    assert (
        cli_main(["manifest", "--data-root", str(tiny_root), "--top", "3", "--out", str(out)]) == 0
    )
    assert "3 classes" in capsys.readouterr().out
    assert (out / "summary.json").is_file()
    assert (
        cli_main(["manifest", "--data-root", str(tiny_root), "--top", "999", "--out", str(out)])
        == 2
    )
    assert "larger than the 6 classes" in capsys.readouterr().err
    assert cli_main(["manifest", "--data-root", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "train.csv" in capsys.readouterr().err


def test_adapted_top_keeps_the_wanted_number_when_the_data_has_it():
    labels = pd.DataFrame({"landmark_id": [1, 1, 1, 2, 2, 2, 3]})
    assert manifests.adapted_top(labels, 1) == (1, "top 1 of 3 landmarks")
    top, note = manifests.adapted_top(labels, 100)
    assert top == 2 and note.startswith("top 2, adapted from 100")
    with pytest.raises(ValueError, match="no landmark has the 3 images"):
        manifests.adapted_top(pd.DataFrame({"landmark_id": [1, 2]}), 100)
