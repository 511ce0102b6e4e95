import warnings

import numpy as np
import pytest
import torch

from utils.data import augment


@pytest.fixture
def photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)


def build_all(size):
    return {
        "pipeline1": augment.pipeline1(size, seed=0),
        "pipeline2": augment.pipeline2(size, seed=0),
        "eval1": augment.eval_transform(size, 1),
        "eval2": augment.eval_transform(size, 2),
    }


def test_no_deprecated_or_ignored_arguments():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_all(256)
        build_all(64)


@pytest.mark.parametrize("size", [64, 256])
def test_shape_dtype(photo, size):
    for name, transform in build_all(size).items():
        out = transform(image=photo)["image"]
        assert isinstance(out, torch.Tensor), name
        assert out.shape == (3, size, size) and out.dtype == torch.float32, name


def test_normalisation_statistics():
    grey = np.full((300, 300, 3), 128, np.uint8)
    expected = (128 / 255 - np.array(augment.IMAGENET_MEAN)) / np.array(augment.IMAGENET_STD)
    for pipeline in (1, 2):
        out = augment.eval_transform(64, pipeline)(image=grey)["image"]
        np.testing.assert_allclose(out.mean(dim=(1, 2)).numpy(), expected, atol=1e-4)
    # on random images the train pipelines keep each channel near the ImageNet-normalised mean
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (200, 260, 3), dtype=np.uint8) for _ in range(16)]
    for transform in (augment.pipeline1(64, seed=3), augment.pipeline2(64, seed=3)):
        means = torch.stack([transform(image=im)["image"].mean(dim=(1, 2)) for im in images])
        mid = (0.5 - np.array(augment.IMAGENET_MEAN)) / np.array(augment.IMAGENET_STD)
        np.testing.assert_allclose(means.mean(0).numpy(), mid, atol=0.25)


def test_pipeline_contents_follow_table_1():
    names1 = [type(t).__name__ for t in augment.pipeline1(256)]
    names2 = [type(t).__name__ for t in augment.pipeline2(256)]
    assert names1[:3] == ["RandomResizedCrop", "ImageCompression", "RandomBrightnessContrast"]
    assert names2[:4] == ["SmallestMaxSize", "RandomCrop", "RandomBrightnessContrast", "Sharpen"]
    shared = ["HorizontalFlip", "VerticalFlip", "HueSaturationValue", "CLAHE", "Blur", "Normalize"]
    for names in (names1, names2):
        assert all(n in names for n in shared) and names[-1] == "ToTensorV2"
    p1, p2 = list(augment.pipeline1(256)), list(augment.pipeline2(256))
    assert p1[0].size == (256, 256) and p1[1].quality_range == (99, 100) and p1[2].p == 0.2
    assert p2[0].max_size == 288 and (p2[1].height, p2[1].width) == (256, 256)
    assert p2[2].p == 0.3 and p2[3].alpha == (0.1, 0.3) and p2[3].p == 0.2
    vflip = next(t for t in p1 if type(t).__name__ == "VerticalFlip")
    assert vflip.p < 0.1
    assert augment.resize_side(256) == 288 and augment.resize_side(512) == 576


def test_seeded_determinism(photo):
    for make in (augment.pipeline1, augment.pipeline2):
        a = [make(96, seed=7)(image=photo)["image"] for _ in range(2)]
        t1, t2 = make(96, seed=7), make(96, seed=7)
        first = [t1(image=photo)["image"] for _ in range(5)]
        second = [t2(image=photo)["image"] for _ in range(5)]
        assert all(torch.equal(x, y) for x, y in zip(first, second, strict=True))
        assert not all(torch.equal(first[0], x) for x in first[1:])  # it does augment
        assert torch.equal(a[0], a[1])


@pytest.mark.parametrize("kind", ["grey", "palette", "rgba", "tiny"])
def test_odd_inputs_through_load_image(tmp_path, kind):
    from PIL import Image

    from utils.data.images import load_image

    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    image = {
        "grey": base.convert("L"),
        "palette": base.convert("P"),
        "rgba": base.convert("RGBA"),
        "tiny": base.resize((7, 5)),
    }[kind]
    path = tmp_path / f"{kind}.png"
    image.save(path)
    array = load_image(path)
    for name, transform in build_all(64).items():
        out = transform(image=array)["image"]
        assert out.shape == (3, 64, 64) and torch.isfinite(out).all(), name


def test_bad_arguments():
    with pytest.raises(ValueError, match="pipeline must be 1 or 2"):
        augment.train_transform(256, 3)
    with pytest.raises(ValueError, match="image size"):
        augment.pipeline1(4)
    assert augment.decode_side(256, 1) == 256
    assert augment.decode_side(256, 2) == 288 == augment.decode_side(256, 1, train=False)


def test_denormalize_inverts_eval_transform():
    image = np.random.default_rng(2).integers(0, 256, (72, 72, 3), dtype=np.uint8)
    out = augment.denormalize(augment.eval_transform(64, 2)(image=image)["image"])
    centre = image[4:68, 4:68].astype(int)  # 72 is already 1.125 * 64: only the crop acts
    assert out.dtype == np.uint8 and np.abs(out.astype(int) - centre).max() <= 1
