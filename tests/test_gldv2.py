from pathlib import Path

import pandas as pd
import pytest

from utils.data import gldv2
from utils.data.gldv2 import DataContractError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_read_train_kaggle_and_gldv2_layouts(tmp_path):
    write(tmp_path / "k" / "train.csv", "id,landmark_id\n00a1,5\n00b2,7\n")
    write(tmp_path / "g" / "train.csv", "id,url,landmark_id\n00a1,http://x/1.jpg,5\n")
    kaggle = gldv2.read_train(tmp_path / "k")
    assert kaggle["id"].tolist() == ["00a1", "00b2"]  # ids stay strings (leading zeros)
    assert kaggle["landmark_id"].dtype == "int64"
    assert gldv2.read_train(tmp_path / "g").columns.tolist() == ["id", "landmark_id"]


def test_missing_train_csv_names_file_and_columns(tmp_path):
    with pytest.raises(DataContractError) as info:
        gldv2.read_train(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "train.csv") in message and "id,landmark_id" in message
    assert "\n" not in message


def test_wrong_columns_names_file_expected_and_found(tmp_path):
    write(tmp_path / "train.csv", "image,label\na,1\n")
    with pytest.raises(
        DataContractError, match=r"train.csv: expected columns id,landmark_id, found image,label"
    ):
        gldv2.read_train(tmp_path)


def test_non_integer_landmark_id(tmp_path):
    write(tmp_path / "train.csv", "id,landmark_id\nabc,1\nabd,x\n")
    with pytest.raises(DataContractError, match="integer .line 3"):
        gldv2.read_train(tmp_path)


def test_empty_csv(tmp_path):
    write(tmp_path / "train.csv", "")
    with pytest.raises(DataContractError, match="unreadable CSV"):
        gldv2.read_train(tmp_path)


def test_read_train_clean_explodes_ids(tmp_path):
    write(tmp_path / "train_clean.csv", "landmark_id,images\n1,aaa bbb ccc\n2,ddd\n")
    clean = gldv2.read_train_clean(tmp_path)
    assert clean.values.tolist() == [["aaa", 1], ["bbb", 1], ["ccc", 1], ["ddd", 2]]


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("http://commons.wikimedia.org/wiki/Category:Eiffel_Tower", "Eiffel Tower"),
        (
            "https://commons.wikimedia.org/wiki/Category:Sacr%C3%A9-C%C5%93ur,_Paris",
            "Sacré-Cœur, Paris",
        ),
        ("Category:Tower_Bridge/", "Tower Bridge"),
        ("Big_Ben", "Big Ben"),
    ],
)
def test_category_to_name(url, name):
    assert gldv2.category_to_name(url) == name


def test_landmark_names(tmp_path):
    assert gldv2.landmark_names(tmp_path) == {}
    write(
        tmp_path / "train_label_to_category.csv",
        "landmark_id,category\n7,http://commons.wikimedia.org/wiki/Category:Big_Ben\n",
    )
    assert gldv2.landmark_names(tmp_path) == {7: "Big Ben"}


def test_image_path_layout():
    path = gldv2.image_path("/data", "abcdef0123456789")
    assert path == Path("/data/train/a/b/c/abcdef0123456789.jpg")
    assert gldv2.image_path("/d", "f00ba4", "test") == Path("/d/test/f/0/0/f00ba4.jpg")
    with pytest.raises(ValueError, match="shorter"):
        gldv2.image_path("/d", "ab")


def test_test_ids_from_sample_or_folder(tmp_path):
    write(tmp_path / "test" / "0" / "1" / "2" / "012x.jpg", "")
    write(tmp_path / "test" / "a" / "b" / "c" / "abcx.jpg", "")
    assert gldv2.read_test_ids(tmp_path) == ["012x", "abcx"]
    write(tmp_path / "sample_submission.csv", "id,landmarks\nzz9,\n012x,\n")
    assert gldv2.read_test_ids(tmp_path) == ["zz9", "012x"]
    with pytest.raises(DataContractError, match="neither"):
        gldv2.read_test_ids(tmp_path / "empty")


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.setattr(gldv2, "KAGGLE_ROOT", tmp_path / "missing")
    assert gldv2.default_data_root("x") == Path("x")
    monkeypatch.setattr(gldv2, "KAGGLE_ROOT", tmp_path)
    assert gldv2.default_data_root("x") == tmp_path


def test_read_source_prefers_clean(tmp_path):
    write(tmp_path / "train.csv", "id,landmark_id\naaa,1\nbbb,2\n")
    frame, path = gldv2.read_source(tmp_path)
    assert path.name == "train.csv" and len(frame) == 2
    write(tmp_path / "train_clean.csv", "landmark_id,images\n1,aaa\n")
    frame, path = gldv2.read_source(tmp_path)
    assert path.name == "train_clean.csv" and frame["id"].tolist() == ["aaa"]
    assert gldv2.read_source(tmp_path, "train")[1].name == "train.csv"
    with pytest.raises(ValueError, match="source must be"):
        gldv2.read_source(tmp_path, "dirty")


def test_mini_dataset_satisfies_the_contract(tiny_root):
    train = gldv2.read_train(tiny_root)
    assert all(gldv2.image_path(tiny_root, i).is_file() for i in train["id"])
    assert all(
        gldv2.image_path(tiny_root, i, "test").is_file() for i in gldv2.read_test_ids(tiny_root)
    )
    names = gldv2.landmark_names(tiny_root)
    assert set(names) == set(train["landmark_id"])
    assert isinstance(gldv2.read_categories(tiny_root), pd.DataFrame)
