import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import copy_real_gallery, textured, warp, write_gallery
from utils.cli import recognize as recognize_cli
from utils.retrieval import calibration, recognize
from utils.retrieval.calibration import calibrate
from utils.retrieval.gallery import read_competition_gallery, read_gallery
from utils.retrieval.local_features import RootSift
from utils.retrieval.recognize import Recognizer

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "real-photos" / "images"


def test_recognizer_on_synthetic_views(tmp_path):
    paths, labels = read_gallery(write_gallery(tmp_path))
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    recognizer = Recognizer(RootSift(max_features=800), progress=False).fit(images, labels)
    calibration = recognizer.calibration
    assert calibration.suspects == () and recognizer.floor > 0
    # each landmark's threshold is the 75th percentile of what the other photos gather for it
    assert set(calibration.thresholds) == {f"landmark_{i}" for i in range(3)}
    assert recognizer.tau == max(1.0, float(np.quantile(calibration.negatives, 0.75)))
    hit = recognizer.recognize(warp(textured(1), seed=9))
    assert hit.landmark == "landmark_1" and hit.confidence > 0.5
    assert hit.candidates[0].landmark == "landmark_1" and len(hit.candidates) == 5
    assert hit.candidates[0].match.pairs.shape[1] == 4
    miss = recognizer.recognize(textured(7))
    assert miss.landmark is None and miss.confidence < 0.5
    sampled = Recognizer(RootSift(max_features=800), calibration_pairs=2, progress=False)
    sampled.fit(images, labels)  # calibration on a seeded sample of cross-landmark pairs
    assert sampled.recognize(warp(textured(1), seed=9)).landmark == "landmark_1"


# A worked example: five gallery photos (a, a, b, b, c), inliers of each pair (symmetric).
LABELS = ["a", "a", "b", "b", "c"]
INLIERS = np.array(
    [
        [0, 50, 2, 4, 0],
        [50, 0, 6, 2, 10],
        [2, 6, 0, 40, 3],
        [4, 2, 40, 0, 1],
        [0, 10, 3, 1, 0],
    ],
    np.float64,
)
EVERY_OTHER = ~np.eye(5, dtype=bool)


def test_calibration_worked_example():
    # cross-landmark inliers 0 1 2 2 3 4 6 10 (each twice): median floor 2.5; excess over it
    # (0,3) 1.5, (1,2) 3.5, (1,4) 7.5, (2,4) 0.5. Largest wrong evidence per photo:
    # 0: b 1.5; 1: c 7.5; 2: a 3.5; 3: a 1.5; 4: a 7.5 -> median 3.5, maximum 7.5.
    # per landmark: a from photos 2, 3, 4: 3.5 1.5 7.5 -> 3.5; b from 0, 1, 4: 1.5 3.5 0.5
    # -> 1.5; c from 0..3: 0 7.5 0.5 0 -> 0.25, raised to the minimum 1.
    kw = {"floor_quantile": 0.5, "tau_quantile": 0.5, "set_aside": False}
    one = calibrate(INLIERS, LABELS, EVERY_OTHER, rule="landmark", **kw)
    assert one.floor == 2.5 and one.tau == 3.5 and one.suspects == ()
    assert one.thresholds == {"a": 3.5, "b": 1.5, "c": 1.0}
    np.testing.assert_allclose(one.negatives, [1.5, 7.5, 3.5, 1.5, 7.5])
    assert calibrate(INLIERS, LABELS, EVERY_OTHER, rule="max", **kw).tau == 7.5
    assert calibrate(INLIERS, LABELS, EVERY_OTHER, rule="quantile", **kw).thresholds == {}
    # photo 4 (c) is accepted as a (7.5 > 3.5, and c gives it nothing): set aside, then
    # inliers 2 2 4 6 (twice) -> floor 3; excess (0,3) 1, (1,2) 3; negatives 1 3 3 1 -> tau 2;
    # a from photos 2, 3: 3 1 -> 2; b from 0, 1: 1 3 -> 2; c (no photo left) falls back on tau.
    two = calibrate(INLIERS, LABELS, EVERY_OTHER, **{**kw, "set_aside": True})
    assert two.suspects == (4,) and two.floor == 3.0 and two.tau == 2.0
    assert two.thresholds == {"a": 2.0, "b": 2.0} and two.threshold("c") == 2.0
    with pytest.raises(ValueError, match="rule"):
        calibrate(INLIERS, LABELS, EVERY_OTHER, rule="mean")


def test_fused_evidence_gets_the_higher_threshold_quantile():
    # five single-photo landmarks, no inliers: the evidence for a is only the cosine term,
    # 40 x (cos - 0.5) over the four others: 0.4 0.8 1.2 4.0. Their 75th percentile, 1.9, lets
    # one unrelated photo in four through by construction; the 95th, 3.58, is the fused default.
    labels = ["a", "b", "c", "d", "e"]
    cosine = np.full((5, 5), 0.3)
    cosine[1:, 0] = cosine[0, 1:] = [0.51, 0.52, 0.53, 0.6]
    zeros, every = np.zeros((5, 5)), ~np.eye(5, dtype=bool)
    kw = {"cosine": cosine, "cosine_weight": 40.0, "cos_floor": 0.5, "set_aside": False}
    low = calibrate(zeros, labels, every, tau_quantile=calibration.TAU_QUANTILE, **kw)
    high = calibrate(zeros, labels, every, tau_quantile=calibration.FUSED_TAU_QUANTILE, **kw)
    assert low.threshold("a") == pytest.approx(1.9) and high.threshold("a") == pytest.approx(3.58)
    assert Recognizer(RootSift()).tau_quantile == calibration.TAU_QUANTILE == 0.75
    fused = Recognizer(RootSift(), cosine_weight=40.0)
    assert fused.tau_quantile == calibration.FUSED_TAU_QUANTILE == 0.95
    assert Recognizer(RootSift(), cosine_weight=40.0, tau_quantile=0.5).tau_quantile == 0.5


def test_calibration_floor_from_noise_pairs():
    # the candidates are a shortlist: photo 1's pair with photo 4 (10 inliers) is one of the
    # most similar; the floor comes from the random pairs given as noise, (0,2) 2 and (1,3) 2
    noise = np.zeros((5, 5), bool)
    noise[0, 2] = noise[1, 3] = noise[0, 1] = True  # (0,1): same landmark, never noise
    kw = {"floor_quantile": 0.5, "tau_quantile": 0.5, "set_aside": False}
    shortlisted = calibrate(INLIERS, LABELS, EVERY_OTHER, noise=noise, **kw)
    assert shortlisted.floor == 2.0
    # excess over 2: (0,3) 2, (1,2) 4, (1,4) 8, (2,4) 1 -> negatives 2 8 4 2 8 -> tau 4
    assert shortlisted.tau == 4.0
    assert calibrate(INLIERS, LABELS, EVERY_OTHER, **kw).floor == 2.5  # without: candidates


def test_calibration_reads_only_measured_pairs():
    # photo 4's row and column unmeasured (NaN): the same rule as a gallery without photo 4
    measured = EVERY_OTHER.copy()
    measured[4, :] = measured[:, 4] = False
    holes = INLIERS.copy()
    holes[4, :] = holes[:, 4] = np.nan
    kw = {"floor_quantile": 0.5, "tau_quantile": 0.5}
    sparse = calibrate(holes, LABELS, measured, **kw)
    dense = calibrate(INLIERS[:4, :4], LABELS[:4], EVERY_OTHER[:4, :4], **kw)
    assert (sparse.floor, sparse.tau, sparse.thresholds) == (3.0, 2.0, {"a": 2, "b": 2})
    assert (dense.floor, dense.tau, dense.thresholds) == (
        sparse.floor,
        sparse.tau,
        {"a": 2, "b": 2},
    )


def test_calibration_candidates_of_a_large_gallery():
    recognizer = Recognizer(RootSift(), calibration_pairs=7, progress=False)
    recognizer.labels = [f"L{i // 3}" for i in range(30)]  # 10 landmarks of 3 photos
    candidates = recognizer.calibration_candidates()
    labels = np.array(recognizer.labels)
    assert not candidates.diagonal().any()
    for i in range(30):
        seen = labels[candidates[i]]
        own = seen == labels[i]
        assert own.sum() == 2  # the other photos of its own landmark
        wrong, counts = np.unique(seen[~own], return_counts=True)
        assert len(wrong) == 2 and (counts == 3).all()  # two whole landmarks: 6 <= 7 photos
    assert len({tuple(np.flatnonzero(row)) for row in candidates}) > 3  # drawn, not fixed
    again = recognizer.calibration_candidates()
    assert (again == candidates).all()  # seeded
    recognizer.embeddings = np.eye(30)[:, :30] + 0.1  # with an embedder: the top-k shortlist
    recognizer.embedder, recognizer.top_k = (lambda images: None), 4
    shortlist = recognizer.calibration_candidates()
    assert (shortlist.sum(axis=1) == 4).all() and not shortlist.diagonal().any()


def test_gallery_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="gallery folder not found"):
        read_gallery(tmp_path / "none")
    (tmp_path / "g" / "only").mkdir(parents=True)
    with pytest.raises(ValueError, match="at least two landmarks"):
        read_gallery(tmp_path / "g")
    with pytest.raises(ValueError, match="--local delf needs --checkpoint"):
        recognize.build_recognizer("delf")


@pytest.mark.realdata
@pytest.mark.slow
def test_recognize_cli_on_real_photos(tmp_path, capsys):
    if not PHOTOS.is_dir():
        pytest.skip("../shared/real-photos is not here (team-only material)")
    gallery = copy_real_gallery(PHOTOS, tmp_path / "gallery")
    queries = tmp_path / "queries"
    queries.mkdir()
    shutil.copy(PHOTOS / "sacre_coeur_07.jpg", queries / "held_out.jpg")
    shutil.copy(PHOTOS / "non_landmark_01.jpg", queries / "not_a_landmark.jpg")
    shutil.copy(PHOTOS / "tower_bridge_04.jpg", queries / "other_place.jpg")
    (queries / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    Image.open(PHOTOS / "sacre_coeur_06.jpg").convert("P").save(queries / "as_gif.gif")
    (queries / "notes.txt").write_text("not an image")
    out = tmp_path / "predictions.csv"
    with pytest.warns(UserWarning, match="broken.jpg"):
        code = recognize_cli.main(
            [
                "--gallery",
                str(gallery),
                "--queries",
                str(queries),
                "--out",
                str(out),
                "--details",
                str(tmp_path / "details.json"),
            ]
        )
    assert code == 0
    table = pd.read_csv(out, keep_default_na=False).set_index("id")
    assert list(table.columns) == ["landmark", "confidence"]
    assert table.loc["held_out", "landmark"] == "sacre_coeur"
    assert table.loc["not_a_landmark", "landmark"] == ""
    assert table.loc["broken", "landmark"] == "" and len(table) == 5
    assert table.loc["as_gif", "landmark"] == "sacre_coeur"  # every format Pillow opens
    err = capsys.readouterr().err
    assert "skipped (not an image format): " in err and "notes.txt" in err
    assert np.isfinite(table["confidence"]).all()
    details = json.loads((tmp_path / "details.json").read_text())
    similar = details["held_out"]["similar"]
    assert len(similar) == 5 and similar[0]["landmark"] == "sacre_coeur"
    assert similar[0]["photo"].endswith(".jpg") and similar[0]["inliers"] > 0
    assert "error" in details["broken"]
    # the three cases: a known landmark, a landmark the gallery lacks, no landmark
    assert details["held_out"]["verdict"] == recognize.KNOWN_LANDMARK
    assert table.loc["other_place", "landmark"] == ""
    assert details["other_place"]["verdict"] == recognize.UNKNOWN_LANDMARK
    assert details["not_a_landmark"]["verdict"] == recognize.NO_LANDMARK


def fake_checkpoint(path: Path, model_name: str = "mobilenet_v2") -> Path:
    """A checkpoint in `utils.train`'s format around an untrained network."""
    import torch

    from utils.models import build_model
    from utils.training.checkpoint import save_atomic

    model = build_model(model_name, 3, head="subcenter" if model_name == "dolg" else "")
    config = {"model": model_name, "image_size": 64, "pipeline": 2, "amp": False}
    if model_name == "dolg":
        config.update(head="subcenter", subcenters=3, scale=30.0)
    torch.manual_seed(0)
    return save_atomic(
        {"model": model.state_dict(), "config": config, "class_ids": [1, 2, 3]}, path
    )


def test_global_embeddings_with_a_checkpoint(tmp_path):
    from utils.retrieval.index import checkpoint_embedder

    embed = checkpoint_embedder(fake_checkpoint(tmp_path / "m.pt"))
    images = [warp(textured(i), seed=0) for i in range(3)]
    vectors = embed(images)
    assert vectors.shape == (3, 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    global_only = Recognizer(None, embedder=embed, top_k=2, progress=False).fit(
        images, ["a", "b", "c"]
    )
    assert global_only.recognize(images[1]).best == "b"  # an image is nearest to itself
    both = recognize.build_recognizer("sift", str(tmp_path / "m.pt"), top_k=2, progress=False)
    both.fit(images, ["a", "b", "c"])
    result = both.recognize(images[2])
    assert result.best == "c" and len(result.candidates) == 2


@pytest.mark.slow
def test_dolg_checkpoint_serves_recognition(tmp_path):
    embed = recognize.build_recognizer(
        "none", str(fake_checkpoint(tmp_path / "dolg.pt", "dolg")), top_k=2, progress=False
    )
    images = [warp(textured(i), seed=0) for i in range(3)]
    assert embed.embedder(images).shape == (3, 512)  # DOLG's embedding
    embed.fit(images, ["a", "b", "c"])
    assert embed.recognize(images[0]).best == "a"


@pytest.mark.slow
def test_delf_local_features_from_a_checkpoint(tmp_path):
    from utils.models import build_model
    from utils.models.delf import Delf
    from utils.retrieval.delf_features import save_delf
    from utils.training.checkpoint import load

    state = load(fake_checkpoint(tmp_path / "m.pt"))
    model = build_model("mobilenet_v2", 3)
    model.load_state_dict(state["model"])
    save_delf(Delf(model, 3), state, tmp_path / "delf.pt")
    recognizer = recognize.build_recognizer("delf", str(tmp_path / "delf.pt"), progress=False)
    assert recognizer.extractor.name == "delf"
    images = [textured(i, size=(240, 320)) for i in range(3)]
    recognizer.fit(images, ["a", "b", "c"])
    assert recognizer.recognize(images[0]).best == "a"


def write_competition_gallery(root: Path) -> Path:
    """A competition folder: 3 landmark ids of 3 views, 1 listed photo missing, 1 unreadable.

    Two of the ids have names in ``train_label_to_category.csv``.
    """
    rows = []
    for landmark in range(3):
        for view in range(3):
            image_id = f"{landmark}{view}{'abcdef'[landmark]}0000{view}"
            path = root / "train" / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            image = warp(textured(landmark), seed=view)
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            rows.append((image_id, 100 + landmark))
    rows.append(("fff00000missing", 101))  # listed, no file
    broken = root / "train" / "e" / "e" / "e" / "eee0000broken.jpg"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    rows.append(("eee0000broken", 102))
    pd.DataFrame(rows, columns=["id", "landmark_id"]).to_csv(root / "train.csv", index=False)
    pd.DataFrame(
        {"landmark_id": [100, 101], "category": ["Tower_Bridge", "Category:Big_Ben"]}
    ).to_csv(root / "train_label_to_category.csv", index=False)
    return root


def test_read_competition_gallery_counts_missing_photos(tmp_path):
    found = read_competition_gallery(write_competition_gallery(tmp_path / "comp"))
    assert len(found.paths) == 10 and found.missing == ["fff00000missing"]
    assert sorted(set(found.labels)) == ["100", "101", "102"]
    assert found.names == {"100": "Tower Bridge", "101": "Big Ben"}
    with pytest.raises(FileNotFoundError, match="competition folder not found"):
        read_competition_gallery(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="expected a CSV with columns id,landmark_id"):
        read_competition_gallery(tmp_path)


def test_cli_reads_a_competition_folder_as_gallery(tmp_path, capsys):
    root = write_competition_gallery(tmp_path / "comp")
    queries = tmp_path / "queries"
    queries.mkdir()
    cv2.imwrite(str(queries / "q1.jpg"), cv2.cvtColor(warp(textured(1), 7), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(queries / "q0.jpg"), cv2.cvtColor(warp(textured(0), 8), cv2.COLOR_RGB2BGR))
    out = tmp_path / "predictions.csv"
    argv = ["--gallery-data-root", str(root), "--queries", str(queries), "--out", str(out)]
    code = recognize_cli.main([*argv, "--global", "none", "--index", str(tmp_path / "index")])
    assert code == 0
    err = capsys.readouterr().err
    assert "1 photos listed in" in err and "are missing and left out" in err
    assert "eee0000broken.jpg" in err and "1 gallery photos could not be read" in err
    table = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("id")
    assert list(table.columns) == ["landmark", "confidence", "name"]
    assert table.loc["q1", "landmark"] == "101" and table.loc["q1", "name"] == "Big Ben"
    assert table.loc["q0", "name"] == "Tower Bridge"
