"""The visual-word shortlist index (`utils.retrieval.vocabulary`) and its use by `recognize`."""

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import textured, warp
from utils.cli import recognize as recognize_cli
from utils.retrieval import recognize
from utils.retrieval.calibration import FLOOR_QUANTILE
from utils.retrieval.local_features import RootSift
from utils.retrieval.recognize import Recognizer
from utils.retrieval.vocabulary import ShortlistIndex, Vocabulary, file_key

SHARED = Path(__file__).resolve().parents[2] / "shared" / "real-photos"


class CountingSift(RootSift):
    """RootSIFT that counts its extractions (class-wide, so its settings stay the same)."""

    calls: list = []

    def extract(self, image):
        CountingSift.calls.append(image.shape)
        return super().extract(image)


def write_photos(folder: Path, count: int, views: int = 2) -> list[Path]:
    """``count`` photos: ``views`` warped views of each of ``count // views`` textures."""
    paths = []
    for i in range(count):
        path = folder / f"l{i // views}" / f"v{i % views}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image = warp(textured(i // views, size=(240, 320)), seed=i % views)
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def small_index(folder: Path, extractor=None) -> ShortlistIndex:
    return ShortlistIndex(
        folder, extractor or RootSift(max_features=300), words=64, iterations=4, progress=False
    )


def test_vocabulary_assigns_centroids_to_themselves():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2000, 16)).astype(np.float32)
    vocabulary = Vocabulary.train(data, words=32, iterations=3)
    assert len(vocabulary) == 32
    assert (vocabulary.assign(vocabulary.centroids) == np.arange(32)).all()
    words, counts = vocabulary.histogram(data[:50])
    assert counts.sum() == 50 and (np.diff(words) > 0).all()
    with pytest.raises(ValueError, match="too few"):
        Vocabulary.train(data[:10], words=32)


def test_index_save_load_same_shortlist_and_self_first(tmp_path):
    paths = write_photos(tmp_path / "gallery", 12)
    index = small_index(tmp_path / "index")
    assert index.update(paths) == list(range(12))
    query = RootSift(max_features=300).extract(cv2.imread(str(paths[5]))[:, :, ::-1].copy())
    found, scores = index.search(query, 5)
    assert found[0] == 5 and scores[0] == pytest.approx(1.0)  # a gallery photo ranks first
    assert 4 in found  # the other view of the same texture is on the shortlist
    reloaded = small_index(tmp_path / "index")
    reloaded.update(paths)
    again, again_scores = reloaded.search(query, 5)
    assert (again == found).all() and np.allclose(again_scores, scores)
    for i in range(12):
        assert (reloaded.search_gallery(i, 3)[0] == index.search_gallery(i, 3)[0]).all()
        assert i not in index.search_gallery(i, 3)[0]
    with pytest.raises(ValueError, match="index.json: built with other settings"):
        ShortlistIndex(tmp_path / "index", RootSift(max_features=301), words=64)


def test_adding_a_photo_extracts_only_it(tmp_path):
    paths = write_photos(tmp_path / "gallery", 14)
    index = small_index(tmp_path / "index", CountingSift(max_features=300))
    CountingSift.calls.clear()
    index.update(paths[:13])
    assert len(CountingSift.calls) == 13
    stored = [index.feature_path(file_key(p)) for p in paths[:13]]
    before = [os.stat(p).st_mtime_ns for p in stored]
    vocabulary = index.vocabulary.centroids.copy()
    time.sleep(0.01)
    CountingSift.calls.clear()
    index = small_index(tmp_path / "index", CountingSift(max_features=300))
    index.update(paths)  # one new photo
    assert len(CountingSift.calls) == 1
    assert [os.stat(p).st_mtime_ns for p in stored] == before
    assert (index.vocabulary.centroids == vocabulary).all() and len(index.keys) == 14
    assert 12 in index.search_gallery(13, 3)[0]  # the new photo finds its sibling view


def test_recognizer_with_the_shortlist(tmp_path):
    paths = write_photos(tmp_path / "gallery", 16, views=4)
    labels = [p.parent.name for p in paths]
    index = small_index(tmp_path / "index")
    index.update(paths)
    recognizer = Recognizer(
        RootSift(max_features=300), shortlist=index, shortlist_size=4, progress=False
    )
    recognizer.fit_described(index.features(), None, labels)
    candidates = recognizer.calibration_candidates()
    assert (candidates.sum(axis=1) == 4).all() and not candidates.diagonal().any()
    assert len(index.pairs) > 0  # calibration's verified pairs are cached in the index
    # the floor: random photos of other landmarks, not the shortlist's most similar ones
    noise = recognizer.floor_pairs(candidates)
    names = np.array(labels)
    assert (noise.sum(axis=1) == min(recognize.FLOOR_PAIRS, 12)).all()
    assert not (noise & (names[:, None] == names[None, :])).any()
    measured = [
        index.pairs[index.pair_key(i, j, recognizer.settings)]
        for i, j in zip(*np.nonzero(noise), strict=True)
    ]
    assert recognizer.floor == float(np.quantile(measured, FLOOR_QUANTILE))
    assert Recognizer(RootSift(), progress=False).floor_pairs(candidates) is None
    query = warp(textured(2, size=(240, 320)), seed=9)
    result = recognizer.recognize(query)
    assert result.landmark == "l2" and len(result.candidates) == 4
    sampled = Recognizer(
        RootSift(max_features=300),
        shortlist=index,
        shortlist_size=4,
        calibration_queries=5,
        progress=False,
    )
    sampled.fit_described(index.features(), None, labels)
    assert (sampled.calibration_candidates().any(axis=1)).sum() == 5


def test_cli_builds_and_reuses_the_index(tmp_path, capsys):
    gallery = tmp_path / "gallery"
    write_photos(gallery, 12, views=3)
    queries = tmp_path / "queries"
    queries.mkdir()
    image = warp(textured(1, size=(240, 320)), seed=7)
    cv2.imwrite(str(queries / "q.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (gallery / "l0" / "broken.jpg").write_bytes(b"not a jpeg")
    args = ["--gallery", str(gallery), "--queries", str(queries), "--out", str(tmp_path / "p.csv")]
    args += ["--global", "none", "--shortlist-above", "0", "--shortlist", "4", "--words", "64"]
    assert recognize_cli.main(args) == 0
    assert (tmp_path / "gallery.index" / "index.json").is_file()
    assert "broken.jpg" in capsys.readouterr().err
    table = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert table.loc[0, "landmark"] == "l1"
    assert recognize_cli.main(args) == 0  # reused: nothing extracted again
    (tmp_path / "bad.index").write_text("x")
    bad = [*args, "--index", str(tmp_path / "bad.index")]
    assert recognize_cli.main(bad) == 2
    assert "bad.index: not a folder" in capsys.readouterr().err


@pytest.mark.realdata
@pytest.mark.slow
def test_shortlist_keeps_the_exhaustive_winner_in_a_200_photo_gallery(tmp_path):
    """Dev set (the tune part), fold 0: real gallery photos padded to 200 with distractors.

    For every known-landmark query whose exhaustive winner (the gallery photo with most
    verified inliers) shows its landmark, the shortlist of `recognize.SHORTLIST` holds it.
    Fewer, smaller features than `recognize` uses, to stay well under a minute.
    """
    if not (SHARED / "manifest.csv").is_file():
        pytest.skip("../shared/real-photos is not here (team-only material)")
    from utils.bench.recognize import make_distractors
    from utils.data.images import load_image
    from utils.retrieval.realphotos import assign_folds, select_part
    from utils.retrieval.rerank import match_pair

    manifest = pd.read_csv(SHARED / "manifest.csv")[["file", "label"]]
    frame = assign_folds(select_part(manifest, "tune"))
    real = frame[frame["in_gallery"] & (frame["fold"] != 0)]
    queries = frame[frame["in_gallery"] & (frame["fold"] == 0)]
    padding = make_distractors(tmp_path / "d", 200 - len(real), size=(480, 360), progress=False)
    paths = [SHARED / f for f in real["file"]] + padding
    labels = list(real["label"]) + [p.parent.name for p in padding]
    extractor = RootSift(max_features=300, max_side=512)
    index = ShortlistIndex(tmp_path / "index", extractor, progress=False)
    index.update(paths)
    gallery = list(index.features())
    checked = 0
    for file, label in zip(queries["file"], queries["label"], strict=True):
        query = extractor.extract(load_image(SHARED / file))
        inliers = [match_pair(query, photo).inliers for photo in gallery]
        winner = int(np.argmax(inliers))
        if labels[winner] != label:
            continue  # exhaustive matching gets it wrong: nothing to keep
        found, _ = index.search(query, recognize.SHORTLIST)
        assert winner in found, (file, winner, found)
        checked += 1
    assert checked >= len(queries) - 1
