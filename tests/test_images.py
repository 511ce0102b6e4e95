from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import save
from utils.data.images import BadFiles, ImageLoadError, iter_images, load_image


def test_rgb_jpeg_roundtrip_shape_dtype(tmp_path, rgb):
    path = save(Image.fromarray(rgb), tmp_path / "a.jpg", quality=95)
    out = load_image(path)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 4


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [
        ("L", ".png"),
        ("P", ".png"),
        ("1", ".png"),
        ("CMYK", ".jpg"),
        ("LA", ".png"),
        ("RGBA", ".png"),
    ],
)
def test_any_mode_becomes_rgb_uint8(tmp_path, rgb, mode, suffix):
    path = save(Image.fromarray(rgb).convert(mode), tmp_path / f"img_{mode}{suffix}")
    out = load_image(path)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8


def test_transparent_pixels_become_white(tmp_path):
    image = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    image.putpixel((0, 0), (0, 0, 255, 255))
    out = load_image(save(image, tmp_path / "t.png"))
    assert tuple(out[5, 5]) == (255, 255, 255)
    assert tuple(out[0, 0]) == (0, 0, 255)


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (8, 8), 0)
    image.putpalette([10, 20, 30] + [200, 100, 50] * 255)
    image.putpixel((1, 1), 1)
    out = load_image(save(image, tmp_path / "p.png", transparency=0))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[1, 1]) == (200, 100, 50)


def test_16bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    path = save(Image.fromarray(values), tmp_path / "g16.png")
    out = load_image(path)
    assert out[0, :, 0].tolist() == [0, 128, 255]
    assert (out[..., 0] == out[..., 2]).all()


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 10, 20))  # white on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = load_image(save(image, tmp_path / "o.jpg", exif=exif.tobytes(), quality=95))
    assert out.shape[:2] == (40, 20)
    assert out[:10].mean() > 200  # the white left edge is now on top


def test_min_side_decodes_jpeg_at_reduced_scale(tmp_path):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (800, 1200, 3), np.uint8))
    path = save(image, tmp_path / "big.jpg")
    assert load_image(path).shape == (800, 1200, 3)
    small = load_image(path, min_side=200)
    assert small.shape == (200, 300, 3)  # 1/4 DCT scale
    mid = load_image(path, min_side=300)
    assert mid.shape == (300, 450, 3)  # 3/8: libjpeg-turbo scales by k/8
    assert load_image(path, min_side=310).shape == (400, 600, 3)  # 4/8
    assert load_image(path, min_side=5000).shape == (800, 1200, 3)


def test_min_side_on_cmyk_jpeg_uses_power_of_two_draft(tmp_path):
    image = Image.new("CMYK", (1200, 800), (10, 200, 30, 0))
    path = save(image, tmp_path / "cmyk.jpg")
    out = load_image(path, min_side=300)
    assert out.shape == (400, 600, 3)  # Pillow's draft: 1/2 (1/4 would go below 300)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path, orientation):
    base = (np.random.default_rng(0).integers(0, 4, (24, 32, 3)) * 80).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(Image.fromarray(base), tmp_path / "o.jpg", exif=exif.tobytes(), quality=100)
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    np.testing.assert_array_equal(load_image(path), expected)


def test_min_side_ignored_for_png(tmp_path, rgb):
    path = save(Image.fromarray(rgb), tmp_path / "a.png")
    assert load_image(path, min_side=8).shape == (48, 64, 3)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty file"), (b"hello, not an image", "not an image")],
)
def test_empty_or_non_image_names_the_file(tmp_path, content, reason):
    path = tmp_path / "broken.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=reason) as info:
        load_image(path)
    assert str(path) in str(info.value) and info.value.path == str(path)


def test_truncated_jpeg_names_the_file(tmp_path, rgb):
    path = save(Image.fromarray(np.tile(rgb, (8, 8, 1))), tmp_path / "t.jpg")
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(ImageLoadError, match="t.jpg"):
        load_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "nope.jpg")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
@pytest.mark.parametrize("limit", [1000, 6000])  # 10,000 pixels: over 2x the limit, or over 1x
def test_decompression_bomb_guard_is_kept(tmp_path, monkeypatch, suffix, limit):
    path = save(Image.new("RGB", (100, 100)), tmp_path / f"bomb{suffix}")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(path)


def test_iter_images_skips_and_reports_bad_files(tmp_path, rgb):
    good = [save(Image.fromarray(rgb), tmp_path / f"g{i}.jpg") for i in range(3)]
    bad_path = tmp_path / "bad.jpg"
    bad_path.write_bytes(b"junk")
    bad = BadFiles()
    seen = [p for p, _ in iter_images([good[0], bad_path, *good[1:]], bad, progress=False)]
    assert seen == good
    assert len(bad) == 1 and bad.entries[0][0] == str(bad_path)
    assert "skipped 1 unreadable image" in bad.summary() and "bad.jpg" in bad.summary()
    assert BadFiles().summary() == "all images were read"
    assert isinstance(seen[0], Path)
