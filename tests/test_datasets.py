import numpy as np
import pandas as pd
import pytest
import torch

from utils.data import augment, manifests
from utils.data.datasets import ClassMap, FolderDataset, ManifestDataset, make_loader
from utils.data.images import ImageLoadError


def test_class_map_roundtrip(tmp_path):
    cmap = ClassMap([30, 10, 20, 10])
    assert len(cmap) == 3 and cmap.index(20) == 1 and cmap.landmark(2) == 30
    again = ClassMap.load(cmap.save(tmp_path / "class_map.json"))
    assert again.landmark_ids == [10, 20, 30]
    with pytest.raises(KeyError, match="landmark 99 is not one of the 3 classes"):
        cmap.index(99)
    with pytest.raises(ValueError):
        ClassMap([])


def test_manifest_dataset_items(tiny_root, tiny_manifest):
    split = manifests.read_manifests(tiny_manifest)
    cmap = ClassMap.from_manifest(split.train)
    data = ManifestDataset(split.val, tiny_root, cmap, augment.eval_transform(64, 2), min_side=72)
    image, label = data[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert label == cmap.index(split.val.landmark_id.iloc[0])
    assert len(data) == len(split.val)
    from_csv = ManifestDataset(tiny_manifest / "val.csv", tiny_root, cmap)
    assert from_csv.ids == data.ids and from_csv[0][0].dtype == np.uint8


def test_missing_file_names_id_and_path(tiny_root):
    frame = pd.DataFrame({"id": ["ffff000011112222"], "landmark_id": [1]})
    with pytest.raises(FileNotFoundError) as info:
        ManifestDataset(frame, tiny_root, ClassMap([1]))
    message = str(info.value)
    assert "ffff000011112222" in message and "train/f/f/f/ffff000011112222.jpg" in message


def test_broken_file_names_the_id(tmp_path):
    path = tmp_path / "train" / "a" / "b" / "c" / "abc.jpg"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a jpeg")
    data = ManifestDataset(
        pd.DataFrame({"id": ["abc"], "landmark_id": [5]}), tmp_path, ClassMap([5])
    )
    with pytest.raises(ImageLoadError, match="image id abc"):
        data[0]


def test_folder_dataset(tiny_root, tmp_path):
    data = FolderDataset(tiny_root / "non_landmark", label=1, transform=augment.eval_transform(32))
    assert len(data) == 24 and data[0][1] == 1 and data[0][0].shape == (3, 32, 32)
    assert len(FolderDataset(data.paths[:3])) == 3
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        FolderDataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        FolderDataset(tmp_path / "empty")
    (tmp_path / "empty" / "broken.jpg").write_bytes(b"")
    files = [*data.paths[:2], tmp_path / "empty" / "broken.jpg"]
    dropping = FolderDataset(files, transform=augment.eval_transform(32), on_broken="drop")
    assert dropping[1][2] == 1
    with pytest.warns(UserWarning, match="broken.jpg"):
        assert dropping[2] is None


def batches(loader, count=2):
    out = []
    for images, labels in loader:
        out.append((images.clone(), labels.clone()))
        if len(out) == count:
            break
    return out


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_seeded_loader_is_deterministic(tiny_root, tiny_manifest, workers):
    split = manifests.read_manifests(tiny_manifest)
    cmap = ClassMap.from_manifest(split.train)

    def run():
        data = ManifestDataset(split.train, tiny_root, cmap, augment.pipeline2(48), min_side=54)
        return batches(make_loader(data, batch_size=8, shuffle=True, workers=workers, seed=3))

    first, second = run(), run()
    for (a, la), (b, lb) in zip(first, second, strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)
    assert first[0][0].shape == (8, 3, 48, 48)


def test_loader_settings(tiny_root):
    data = FolderDataset(tiny_root / "non_landmark", transform=augment.eval_transform(32))
    loader = make_loader(data, batch_size=4, workers=2, pin_memory=False)
    assert loader.persistent_workers and loader.num_workers == 2 and not loader.pin_memory
    assert make_loader(data, workers=0).pin_memory == torch.cuda.is_available()


def test_replace_broken_reports_once_and_goes_on(tmp_path):
    import warnings

    from PIL import Image

    good = tmp_path / "train" / "g" / "o" / "o" / "good.jpg"
    bad = tmp_path / "train" / "b" / "a" / "d" / "bad.jpg"
    good.parent.mkdir(parents=True)
    bad.parent.mkdir(parents=True)
    Image.new("RGB", (8, 8), (255, 0, 0)).save(good)
    bad.write_bytes(b"not a jpeg")
    frame = pd.DataFrame({"id": ["bad", "good"], "landmark_id": [1, 2]})
    data = ManifestDataset(frame, tmp_path, ClassMap([1, 2]), on_broken="replace")
    with pytest.warns(UserWarning, match="bad.jpg: cannot read image .image id bad.*next readable"):
        image, label = data[0]
    assert label == 1 and image[0, 0, 0] > 200  # the next readable row: "good", landmark 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once, not at every epoch
        data[0]
    all_bad = ManifestDataset(frame.iloc[:1], tmp_path, ClassMap([1]), on_broken="replace")
    with (
        pytest.warns(UserWarning),
        pytest.raises(ImageLoadError, match="no image of this manifest"),
    ):
        all_bad[0]


def test_drop_broken_keeps_rows_aligned(tmp_path):
    from PIL import Image

    from utils.data.datasets import drop_broken_collate

    for name, colour in (("aaa", (255, 0, 0)), ("ccc", (0, 0, 255))):
        path = tmp_path / "train" / name[0] / name[1] / name[2] / f"{name}.jpg"
        path.parent.mkdir(parents=True)
        Image.new("RGB", (8, 8), colour).save(path)
    bad = tmp_path / "train" / "b" / "b" / "b" / "bbb.jpg"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"")
    frame = pd.DataFrame({"id": ["aaa", "bbb", "ccc"], "landmark_id": [1, 2, 3]})
    data = ManifestDataset(frame, tmp_path, ClassMap([1, 2, 3]), on_broken="drop")
    with pytest.warns(UserWarning, match="bbb.jpg.*left out of the evaluation"):
        items = [data[i] for i in range(3)]
    assert items[1] is None
    batch = drop_broken_collate(items)
    assert batch[1].tolist() == [0, 2] and batch[2].tolist() == [0, 2]  # labels and rows
    assert batch[0][1, 0, 0, 2] > 200  # row 2 is the blue image, not a neighbour's
    assert drop_broken_collate([None, None]) is None
    with pytest.raises(ValueError, match="on_broken must be one of"):
        ManifestDataset(frame, tmp_path, ClassMap([1, 2, 3]), on_broken="skip")
