import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from utils import minigld
from utils.data import gldv2
from utils.data.images import load_image
from utils.minigld.render import KINDS, LandmarkSpec, landmark_layers


def tree_digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "minigld.json"
    }


def test_layout(tiny_root):
    for name in (
        "train.csv",
        "train_clean.csv",
        "train_label_to_category.csv",
        "sample_submission.csv",
        "test_solution.csv",
        "minigld.json",
    ):
        assert (tiny_root / name).is_file(), name
    assert any((tiny_root / "non_landmark").glob("*.jpg"))
    summary = json.loads((tiny_root / "minigld.json").read_text())
    assert summary["profile"] == "tiny" and summary["counts"]["train"] > 0


def test_same_seed_gives_identical_bytes_whatever_the_workers(tmp_path, tiny_root):
    again = tmp_path / "again"
    minigld.generate(again, "tiny", seed=0, workers=2, progress=False)
    assert tree_digest(again) == tree_digest(tiny_root)


def test_other_seed_differs(tmp_path, tiny_root):
    other = tmp_path / "other"
    minigld.generate(other, "tiny", seed=1, progress=False)
    assert (other / "train.csv").read_bytes() != (tiny_root / "train.csv").read_bytes()


def test_every_image_is_readable(tiny_root):
    paths = sorted(tiny_root.rglob("*.jpg"))
    shapes = {load_image(p).shape[:2] for p in paths}
    assert len(paths) == 136 and len(shapes) > 10  # mixed sizes and aspect ratios


@pytest.mark.parametrize("profile", ["tiny", "default"])
def test_plan_has_gldv2_hard_properties(profile):
    settings = minigld.PROFILES[profile]
    specs, photos = minigld.plan(settings, seed=0)
    train = photos[photos.split == "train"]
    sizes = train.groupby("landmark_id").size().sort_values(ascending=False).to_numpy()
    assert sizes[0] >= 3 * sizes[-1]  # long tail
    noise = (train.label != train.landmark_id).mean()
    assert 0.01 <= noise <= 0.03  # about 2% wrong labels
    test = photos[photos.split == "test"]
    seen = set(train.landmark_id)
    hard = (test.landmark_id < 0) | ~test.landmark_id.isin(seen)
    assert hard.mean() > 0.5  # most test photos: no landmark, or one absent from train
    assert (~test.landmark_id.isin(seen) & (test.landmark_id > 0)).any()
    assert len({s.name for s in specs}) == len(specs)
    assert photos.id.is_unique and photos.id.str.fullmatch(r"[0-9a-f]{16}").all()


def test_default_profile_size():
    _, photos = minigld.plan(minigld.PROFILES["default"], seed=0)
    assert 2000 <= len(photos) <= 5000
    assert photos[photos.split == "train"].landmark_id.nunique() >= 30


def test_clean_subset_drops_exactly_the_noisy_labels(tiny_root):
    train = gldv2.read_train(tiny_root)
    clean = gldv2.read_train_clean(tiny_root)
    _, photos = minigld.plan(minigld.PROFILES["tiny"], seed=0)
    truth = photos.set_index("id").landmark_id
    assert (clean.landmark_id.to_numpy() == truth[clean.id].to_numpy()).all()
    noisy = train[train.landmark_id.to_numpy() != truth[train.id].to_numpy()]
    assert set(train.id) - set(clean.id) == set(noisy.id)


def test_solution_marks_non_landmarks_and_unseen(tiny_root):
    solution = pd.read_csv(tiny_root / "test_solution.csv", dtype=str, keep_default_na=False)
    sample = pd.read_csv(tiny_root / "sample_submission.csv", dtype=str, keep_default_na=False)
    assert solution.id.tolist() == sample.id.tolist()
    train_ids = set(gldv2.read_train(tiny_root).landmark_id.astype(str))
    empty = solution.landmarks == ""
    assert 0 < empty.sum() < len(solution)
    assert (~solution.landmarks[~empty].isin(train_ids)).any()


def test_names_read_like_names():
    rng = np.random.default_rng(3)
    for kind in KINDS:
        name = minigld.synthetic_name(rng, kind)
        assert name[0].isupper() and len(name.split()) >= 2


def test_landmarks_differ_and_photos_vary():
    a = landmark_layers(LandmarkSpec(1, "A", "tower", 11))
    b = landmark_layers(LandmarkSpec(2, "B", "tower", 12))
    assert a.body.shape == (512, 512, 3) and a.alpha.max() == 1.0
    assert np.abs(a.body.astype(int) - b.body.astype(int)).mean() > 5


def test_bad_profile():
    with pytest.raises(ValueError, match="profile must be one of"):
        minigld.generate("unused", "huge")


def test_ensure_and_if_missing(tmp_path, capsys):
    out = tmp_path / "d"
    assert not minigld.is_complete(out, "tiny", 0)
    assert minigld.main(["--out", str(out), "--profile", "tiny", "--workers", "1"]) == 0
    assert minigld.profile_of(out) == "tiny" and minigld.profile_of(tmp_path) is None
    assert minigld.main(["--out", str(out), "--profile", "tiny", "--if-missing"]) == 0
    assert "already holds" in capsys.readouterr().out
