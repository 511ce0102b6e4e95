import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import save
from utils.data import eda


def test_constant_image():
    image = np.full((10, 12, 3), (200, 100, 50), np.uint8)
    stats = eda.image_stats(image)
    assert stats["brightness"] == pytest.approx(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    assert stats["contrast"] == pytest.approx(0.0, abs=1e-9)
    assert (stats["mean_r"], stats["mean_g"], stats["mean_b"]) == (200, 100, 50)
    assert stats["laplacian_var"] == pytest.approx(0.0, abs=1e-9)


def test_contrast_and_sharpness_by_hand():
    checker = (np.indices((8, 8)).sum(axis=0) % 2 * 255).astype(np.uint8)
    image = np.repeat(checker[:, :, None], 3, axis=2)
    stats = eda.image_stats(image)
    assert stats["brightness"] == pytest.approx(127.5)
    assert stats["contrast"] == pytest.approx(127.5)
    blurred = eda.image_stats(np.full_like(image, 128))
    assert stats["laplacian_var"] > 1e5 > blurred["laplacian_var"]


def test_luma_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        eda.luma(np.zeros((4, 4)))


def test_collection_stats_skips_bad_files(tmp_path, rgb):
    good = save(Image.fromarray(rgb), tmp_path / "good.png")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    stats, skipped = eda.collection_stats([good, bad], progress=False)
    assert list(stats.index) == [str(good)] and len(skipped) == 1
    assert set(eda.STAT_COLUMNS) <= set(stats.columns)


def test_split_stats_on_mini_dataset(tiny_root):
    labels = pd.read_csv(tiny_root / "train.csv", dtype={"id": str}).head(10)
    stats, skipped = eda.split_stats(tiny_root, labels, progress=False)
    assert len(stats) == 10 and not skipped
    assert stats["landmark_id"].tolist() == labels["landmark_id"].tolist()
    assert (stats["laplacian_var"] > 0).all()


def test_class_distribution_and_summary():
    labels = pd.DataFrame({"id": list("abcdefghij"), "landmark_id": [1] * 6 + [2] * 3 + [3]})
    counts = eda.class_distribution(labels)
    assert counts.values.tolist() == [[1, 6, 1], [2, 3, 2], [3, 1, 3]]
    summary = eda.distribution_summary(counts)
    assert summary == {
        "classes": 3,
        "images": 10,
        "min": 1,
        "median": 3.0,
        "max": 6,
        "head_share": 0.6,
    }
