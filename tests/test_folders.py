"""One folder per landmark -> the competition's layout (`utils.data.folders`)."""

import json

import cv2
import pandas as pd
import pytest

from conftest import textured
from utils.cli import main as cli_main
from utils.data import folders, gldv2
from utils.data.folders import import_folders


def write_tree(root):
    """3 landmarks of 5, 5 and 1 photos, a PNG, a bad file, a duplicate; 2 non-landmarks."""
    for n, (landmark, count) in enumerate((("00.Eiffel_Tower", 5), ("01.Big_Ben", 5), ("02.L", 1))):
        folder = root / "src" / landmark
        folder.mkdir(parents=True)
        for i in range(count):
            suffix = "png" if i == 4 else "jpg"
            image = textured(100 * n + i, (60, 80))
            cv2.imwrite(str(folder / f"p{i}.{suffix}"), image)
    (root / "src" / "01.Big_Ben" / "broken.jpg").write_bytes(b"\xff\xd8 no jpeg")
    again = (root / "src" / "00.Eiffel_Tower" / "p0.jpg").read_bytes()
    (root / "src" / "00.Eiffel_Tower" / "p0_copy.jpg").write_bytes(again)
    others = root / "none"
    others.mkdir()
    for i in range(2):
        cv2.imwrite(str(others / f"n{i}.jpg"), textured(900 + i, (60, 80)))
    return root / "src", others


def test_import_writes_the_competition_layout(tmp_path, capsys):
    src, others = write_tree(tmp_path)
    out = tmp_path / "out"
    code = cli_main(
        ["import-folders", "--src", str(src), "--out", str(out), "--non-landmarks", str(others)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "3 landmarks, train 9 photos, test 4 (2 of them non-landmarks), 2 skipped" in printed
    assert "broken.jpg" in printed and "duplicate of" in printed
    train = gldv2.read_train(out)
    # 5 photos: 1 to test (round(0.2 * 5)); 1 photo: all in train
    assert train["landmark_id"].value_counts().sort_index().tolist() == [4, 4, 1]
    solution = pd.read_csv(out / "test_solution.csv", dtype=str, keep_default_na=False)
    assert sorted(solution["landmarks"]) == ["", "", "0", "1"]
    ids = train["id"].tolist() + solution["id"].tolist()
    assert len(ids) == len(set(ids)) == 13 and all(len(i) == 16 for i in ids)
    assert gldv2.read_test_ids(out) == solution["id"].tolist()
    for image_id in train["id"]:
        assert gldv2.image_path(out, image_id).is_file()
    for image_id in solution["id"]:
        assert gldv2.image_path(out, image_id, "test").is_file()
    assert gldv2.landmark_names(out) == {0: "00.Eiffel Tower", 1: "01.Big Ben", 2: "02.L"}
    report = json.loads((out / "import.json").read_text())
    assert report["train"] == 9 and len(report["skipped"]) == 2
    # the same ids again: ids come from the photos' bytes and the seed
    again = tmp_path / "again"
    import_folders(src, again, non_landmarks=others, progress=False)
    assert gldv2.read_train(again)["id"].tolist() == train["id"].tolist()


def test_import_refuses_what_it_cannot_use(tmp_path, capsys):
    src, _ = write_tree(tmp_path)
    assert cli_main(["import-folders", "--src", str(tmp_path / "x"), "--out", "o"]) == 2
    assert "folder not found" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert cli_main(["import-folders", "--src", str(src), "--out", str(tmp_path / "full")]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least two landmarks"):
        import_folders(src / "02.L", tmp_path / "one")
    assert [folders.test_count(n, 0.5) for n in (1, 2, 3, 10)] == [0, 1, 2, 5]
