import numpy as np
import pandas as pd
import pytest

from utils.retrieval import realphotos


def test_three_fold_protocol():
    files = (
        [f"a_{i}.jpg" for i in range(5)] + ["b_0.jpg", "b_1.jpg"] + [f"n_{i}.jpg" for i in range(4)]
    )
    labels = ["a"] * 5 + ["b"] * 2 + ["non_landmark"] * 4
    frame = realphotos.assign_folds(pd.DataFrame({"file": files, "label": labels}))
    a = frame[frame.label == "a"].sort_values("file")
    assert a.fold.tolist() == [0, 1, 2, 0, 1] and a.in_gallery.all()
    rest = frame[frame.label != "a"]
    assert not rest.in_gallery.any()  # fewer than 3 photos, or no landmark: truth "none"
    assert sorted(rest.fold.value_counts().tolist()) == [2, 2, 2]  # spread over the folds
    for fold in range(3):  # a query is never in its own fold's gallery
        gallery = frame[frame.in_gallery & (frame.fold != fold)]
        queries = frame[frame.fold == fold]
        assert not set(gallery.file) & set(queries.file)


def test_stress_alterations():
    image = np.full((100, 200, 3), 200, np.uint8)
    assert realphotos.stress(image, None) is image
    assert realphotos.stress(image, "far").shape == (40, 80, 3)
    night = realphotos.stress(image, "night")
    assert night.shape == image.shape and night.mean() < 0.5 * image.mean()
    assert night[..., 2].mean() > night[..., 0].mean()  # a blue cast
    with pytest.raises(ValueError, match="night or far"):
        realphotos.stress(image, "fog")


def test_cli_without_photos(tmp_path, capsys):
    assert realphotos.main(["--photos", str(tmp_path)]) == 2
    assert "manifest.csv not found" in capsys.readouterr().err
