import csv

import numpy as np
from PIL import Image

from utils.cli import main as cli_main
from utils.data.images import load_image
from utils.data.resize import resize_tree, shrink


def make_tree(root, count=6):
    rng = np.random.default_rng(0)
    for i in range(count):
        path = root / "a" / "b" / f"{i}" / f"img{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        shape = (400 + 10 * i, 600, 3) if i % 2 else (600, 300 + 10 * i, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path, quality=90)
    small = root / "small.png"
    Image.fromarray(np.zeros((50, 80, 3), np.uint8)).save(small)
    return root


def test_shrink_never_enlarges():
    assert shrink(np.zeros((100, 50, 3), np.uint8), 200).shape == (100, 50, 3)
    assert shrink(np.zeros((400, 800, 3), np.uint8), 100).shape == (100, 200, 3)


def test_resize_tree_layout_sizes_and_resume(tmp_path):
    src, dst = make_tree(tmp_path / "src"), tmp_path / "dst"
    report = resize_tree(src, dst, short_side=128, workers=2, progress=False)
    assert (report.written, report.already_done, len(report.broken)) == (7, 0, 0)
    out = dst / "a" / "b" / "1" / "img1.jpg"
    assert min(load_image(out).shape[:2]) == 128
    assert load_image(dst / "small.jpg").shape[:2] == (50, 80)
    # an interrupted run: one output is gone, no temporary files are left behind
    out.unlink()
    assert not list(dst.rglob("*.part"))
    (out.parent / ".img1.jpg.999.part").write_bytes(b"half an image")
    again = resize_tree(src, dst, short_side=128, workers=1, progress=False)
    assert (again.written, again.already_done) == (1, 6)
    assert out.is_file() and not list(dst.rglob("*.part"))


def test_broken_files_are_skipped_and_reported(tmp_path, capsys):
    src = make_tree(tmp_path / "src", count=2)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff truncated")
    (src / "empty.jpg").write_bytes(b"")
    dst = tmp_path / "dst"
    assert cli_main(["resize", "--src", str(src), "--dst", str(dst), "--short-side", "64"]) == 0
    out = capsys.readouterr().out
    assert "resized 3, already done 0, broken 2" in out and "broken.jpg" in out
    with open(dst / "resize_broken.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in rows) == ["broken.jpg", "empty.jpg"]


def test_missing_source(tmp_path, capsys):
    assert cli_main(["resize", "--src", str(tmp_path / "x"), "--dst", str(tmp_path)]) == 2
    assert "source folder not found" in capsys.readouterr().err
