"""Non-landmark detection: data, the three detectors, thresholds on validation, notebook 07."""

import json
import math
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from utils.data.gldv2 import image_path
from utils.models import build_model
from utils.ood import choose_threshold, load_detector
from utils.ood import data as ood_data
from utils.ood import evaluate as ood_eval
from utils.ood.binary import BinaryDetector
from utils.ood.detector import ThresholdError
from utils.ood.matching import MatchingDetector, matching_score
from utils.ood.odin import OdinDetector, odin_score
from utils.training import train as trainer


class Toy(nn.Module):
    """A small classifier with the `LandmarkClassifier` methods the detectors use."""

    def __init__(self, classes: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(8, classes)

    def embed(self, x):
        return self.body(x).flatten(1)

    def logits(self, x):
        return self.head(self.embed(x))

    forward = logits


def test_odin_with_temperature_1_and_epsilon_0_is_the_max_softmax():
    model, x = Toy().eval(), torch.randn(5, 3, 16, 16)
    expected = model.logits(x).softmax(1).max(1).values.detach().numpy()
    assert np.allclose(odin_score(model, x, 1.0, 0.0), expected, atol=1e-6)


def test_odin_perturbation_raises_the_score_of_an_in_distribution_input():
    model = Toy().eval()
    x = torch.randn(6, 3, 16, 16)
    for temperature in (1.0, 1000.0):
        plain = odin_score(model, x, temperature, 0.0)
        moved = odin_score(model, x, temperature, 0.002)
        assert (moved > plain).all(), temperature


def test_threshold_choice_on_validation():
    scores, labels = np.array([0.1, 0.2, 0.6, 0.9]), np.array([0, 0, 1, 1])
    assert choose_threshold(scores, labels) == pytest.approx(0.4)
    assert choose_threshold(np.linspace(0, 1, 21), np.ones(21), "tpr95") == pytest.approx(0.05)
    with pytest.raises(ValueError, match="rule must be one of"):
        choose_threshold(scores, labels, "f1")


CONFIG = {"model": "mobilenet_v2", "image_size": 32, "pipeline": 2}


def _network():
    torch.manual_seed(0)
    return build_model("mobilenet_v2", 4)


def _matching(landmarks, non_landmarks, k=1):
    detector = MatchingDetector(_network(), [1, 2, 3, 4], CONFIG, penalty_k=k)
    detector.set_databases(landmarks, non_landmarks)
    return detector


def _unit(rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_matching_scores_landmarks_higher():
    landmarks, others = _unit([[1, 0, 0], [0.9, 0.1, 0]]), _unit([[0, 0, 1], [0, 0.2, 1]])
    detector = _matching(landmarks, others)
    near_landmark, near_other = _unit([[1, 0.05, 0]]), _unit([[0.05, 0, 1]])
    assert detector.score(near_landmark)[0] > detector.score(near_other)[0]


def test_glr_penalty_lowers_the_score_of_a_query_close_to_non_landmarks():
    landmarks = _unit([[1, 0, 0, 0]])
    others = _unit([[0, 1, 0, 0], [0, 1, 0.1, 0], [0, 1, 0, 0.1]])
    close, far = _unit([[1, 1, 0, 0]]), _unit([[1, 0, 0, 1]])  # same cosine to the landmark
    plain = {
        q: matching_score(v, landmarks, others, 0)[0] for q, v in (("close", close), ("far", far))
    }
    penal = {
        q: matching_score(v, landmarks, others, 3)[0] for q, v in (("close", close), ("far", far))
    }
    assert plain["close"] == pytest.approx(plain["far"])
    assert penal["close"] < plain["close"]
    assert plain["close"] - penal["close"] > plain["far"] - penal["far"]
    assert penal["close"] < penal["far"]


def test_a_frozen_threshold_is_never_fitted_again_and_the_test_split_stays_sealed(tmp_path):
    detector = _matching(_unit([[1, 0]]), _unit([[0, 1]]))
    with pytest.raises(ThresholdError, match="no threshold"):
        detector.accepts(_unit([[1, 0]]))
    frame = pd.DataFrame(
        {"id": ["a"], "landmark_id": [1], "path": ["x.jpg"], "label": [1], "source": ["gldv2"]}
    )
    for split in ("train", "val", "test"):
        frame.to_csv(tmp_path / f"{split}.csv", index=False)
    splits = ood_eval.SealedSplits(tmp_path, tmp_path)
    splits.frame("val")
    with pytest.raises(ood_eval.SealedSplitError, match="sealed"):
        splits.frame("test")
    with pytest.raises(ood_eval.SealedSplitError, match="not chosen yet: m"):
        splits.unseal({"m": detector})
    detector.fit_threshold([0.9, -0.5], [1, 0])
    with pytest.raises(ThresholdError, match="frozen"):
        detector.fit_threshold([0.9, -0.5], [1, 0])
    splits.unseal({"m": detector})
    assert len(splits.frame("test")) == 1
    events = splits.log
    assert [e["event"] for e in events] == ["read", "threshold", "read"]


def test_saved_detectors_load_with_weights_only_and_score_alike(tmp_path):
    rng = np.random.default_rng(0)
    landmarks, others = _unit(rng.normal(size=(5, 1280))), _unit(rng.normal(size=(3, 1280)))
    detector = _matching(landmarks, others, k=2)
    detector.fit_threshold(detector.score(landmarks), np.ones(5), "tpr95")
    path = detector.save(tmp_path / "m.pt")
    torch.load(path, weights_only=True)
    loaded = load_detector(path)
    queries = _unit(rng.normal(size=(4, 1280)))
    assert loaded.threshold == detector.threshold and loaded.params == {"penalty_k": 2}
    assert np.allclose(loaded.score(queries), detector.score(queries))
    images = [np.full((20, 24, 3), v, np.uint8) for v in (10, 200)]
    assert np.allclose(loaded.score(images), detector.score(images), atol=1e-6)
    odin = OdinDetector(_network(), [1, 2, 3, 4], CONFIG, 10.0, 0.001)
    odin.fit_threshold(odin.score(images), [1, 0])
    again = load_detector(odin.save(tmp_path / "o.pt"))
    assert np.allclose(again.score(images), odin.score(images), atol=1e-6)
    assert again.params == {"temperature": 10.0, "epsilon": 0.001}


def _toy_binary_set(root, count=32):
    """Striped "landmarks" against flat "non-landmarks", in a binary manifest folder."""
    rng = np.random.default_rng(0)
    rows = []
    stripes = np.tile(((np.arange(40) // 5) % 2 * 255)[None, :, None], (40, 1, 3))
    for label in (1, 0):
        for i in range(count):
            base = stripes if label else np.full((40, 40, 3), rng.integers(60, 200))
            image = np.clip(base + rng.normal(0, 10, (40, 40, 3)), 0, 255)
            path = root / "img" / f"{label}_{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), image.astype(np.uint8)[:, :, ::-1])
            split = "train" if i < count - 8 else "val" if i < count - 4 else "test"
            rows.append((f"{label}_{i}", label or -1, f"img/{label}_{i}.jpg", label, "toy", split))
    frame = pd.DataFrame(rows, columns=["id", "landmark_id", "path", "label", "source", "split"])
    return ood_data.write_split(frame, root / "manifests")


@pytest.mark.slow
def test_the_binary_classifier_trained_by_train_separates_a_toy_set(tmp_path):
    manifests = _toy_binary_set(tmp_path)
    config = trainer.TrainConfig(
        data_root=str(tmp_path),
        manifest_dir=str(manifests),
        output_dir=str(tmp_path / "run"),
        model="mobilenet_v2",
        task="binary",
        image_size=32,
        epochs=4,
        batch_size=8,
        bn_recalibration=4,  # eval-mode BN statistics of a network trained from scratch
        lr=1e-3,
        workers=0,
        wandb_mode="disabled",
        device="cpu",
    )
    result = trainer.train(config, progress=False)
    assert result.best_gap == pytest.approx(1.0)  # the binary task selects by val AUROC
    # the trained network, not best.pt: 8 val images reach AUROC 1 after one epoch, so best.pt
    # is the first epoch's (it separated the test images by -0.4 to +4.9 over threads/epochs)
    detector = BinaryDetector.from_checkpoint(tmp_path / "run" / "last.pt")
    test = ood_data.read_split(manifests, "test")
    images = [cv2.imread(str(tmp_path / p))[:, :, ::-1].copy() for p in test["path"]]
    scores = detector.score(images)
    landmark = test["label"].to_numpy() == 1
    assert scores[landmark].min() > scores[~landmark].max()  # higher means landmark


def test_binary_task_uses_bce_and_keeps_the_landmark_task(tmp_path):
    common = {"data_root": "d", "manifest_dir": "m", "output_dir": "o"}
    binary = trainer.criterion_for(trainer.TrainConfig(**common, task="binary"), np.ones(2))
    logits, labels = torch.tensor([[2.0], [-1.0]]), torch.tensor([1, 0])
    expected = nn.BCEWithLogitsLoss()(logits[:, 0], labels.float())
    assert binary(logits, labels) == pytest.approx(float(expected))
    plain = trainer.criterion_for(trainer.TrainConfig(**common), np.ones(3))
    assert plain(torch.eye(3), torch.arange(3)) == pytest.approx(
        float(nn.functional.cross_entropy(torch.eye(3), torch.arange(3)))
    )
    with pytest.raises(ValueError, match="task must be one of"):
        trainer.TrainConfig(**common, task="multi")


def test_sources_are_found_inside_kaggle_dataset_mounts_and_not_too_deep(tiny_root, tmp_path):
    kaggle_input = tmp_path / "input"  # /kaggle/input: one folder per attached dataset
    blank = np.full((24, 24, 3), 90, np.uint8)
    for folder in (
        "celeba-dataset/img_align_celeba/img_align_celeba",  # CelebA as Kaggle nests it
        "caltech/a/b/c/101_ObjectCategories/chair",  # four levels down: not looked at
    ):
        (kaggle_input / folder).mkdir(parents=True)
        cv2.imwrite(str(kaggle_input / folder / "000001.jpg"), blank)
    sources = ood_data.non_landmark_sources(tiny_root, kaggle_input)
    assert set(sources) == {"embedded", "celeba"}
    assert sources["celeba"][0].parent.name == "img_align_celeba"
    assert ood_data.non_landmark_sources(tmp_path / "no-such-root", tmp_path / "none") == {}


def test_sources_and_the_balanced_split(tiny_root, tmp_path):
    extra = tmp_path / "extra"
    blank = np.full((24, 24, 3), 90, np.uint8)
    for folder in (
        "101_ObjectCategories/chair",
        "img_align_celeba",
        "SUN397/s/street",
        "SUN397/t/tower",  # not one of the report's categories
    ):
        (extra / folder).mkdir(parents=True)
        cv2.imwrite(str(extra / folder / "000001.jpg"), blank)
    sources = ood_data.non_landmark_sources(tiny_root, extra)
    assert set(sources) == {"embedded", "caltech101", "celeba", "sun397"}
    assert [p.parent.name for p in sources["sun397"]] == ["street"]
    excluded = {str(i) for i in pd.read_csv(tiny_root / "train.csv")["id"][:30]}
    split = ood_data.build_split(tiny_root, extra, per_landmark=70, exclude=excluded, seed=0)
    counts = split.groupby(["split", "label"]).size()
    for name in ("train", "val", "test"):
        assert counts[name, 0] == counts[name, 1], name
    held = split[(split.label == 1) & split.split.isin(["val", "test"])]
    assert not set(held["id"]) & excluded
    assert set(split.loc[split.label == 0, "source"]) == set(sources)
    assert (tiny_root / split.loc[split.label == 1, "path"].iloc[0]).is_file()
    assert image_path(tiny_root, held["id"].iloc[0]).is_file()


def test_recognize_files_gives_a_rejected_photo_an_empty_row(tmp_path):
    from utils.retrieval.recognize import recognize_files

    path = tmp_path / "q.jpg"
    cv2.imwrite(str(path), np.full((32, 32, 3), 50, np.uint8))
    recognizer = SimpleNamespace(labels=[])
    table, details = recognize_files(
        recognizer, [path], progress=False, gate=lambda im: (False, -1.0)
    )
    assert table.loc[0, "landmark"] == "" and details["q"]["rejected"] == "not a landmark"


# --- notebook 07 in the tiny pipeline ---------------------------------------------------------


@pytest.mark.notebook
@pytest.mark.slow
def test_07_measures_every_detector_and_saves_the_chosen_one(tiny_run):
    out = tiny_run / "07_ood"
    results = json.loads((out / "detectors.json").read_text())
    assert set(results) == {"mobilenet", "odin", "matching", "matching_glr", "imagenet"}
    for name, values in results.items():
        assert math.isfinite(values["auroc"]), name
        assert values["tp"] + values["fp"] + values["tn"] + values["fn"] == (
            values["landmarks"] + values["non_landmarks"]
        )
        assert 0 <= values["accuracy"] <= 1
    for name in ("roc_curves.png", "examples.png", "detector.pt", "manifests/test.csv"):
        assert (out / name).is_file(), name
    for name in results:
        torch.load(out / f"detector_{name}.pt", weights_only=True)
    assert load_detector(out / "detector.pt").frozen


@pytest.mark.notebook
@pytest.mark.slow
def test_07_read_the_test_split_only_after_every_threshold_was_frozen(tiny_run):
    log = json.loads((tiny_run / "07_ood" / "protocol.json").read_text())["log"]
    frozen = [e["order"] for e in log if e["event"] == "threshold"]
    test_reads = [e["order"] for e in log if e["event"] == "read" and e["split"] == "test"]
    assert len(frozen) == 5 and len(test_reads) == 1
    assert max(frozen) < min(test_reads)


@pytest.mark.notebook
@pytest.mark.slow
def test_07_val_and_test_hold_no_image_the_classifier_was_trained_on(tiny_run, tiny_manifest):
    trained = set(pd.read_csv(tiny_manifest / "train.csv", dtype={"id": str})["id"])
    for split in ("val", "test"):
        frame = ood_data.read_split(tiny_run / "07_ood" / "manifests", split)
        assert not set(frame["id"]) & trained, split


def test_auroc_per_kind_of_landmark_photo():
    # non-landmarks score 0.5; known landmarks above them, the other landmarks below
    scores = np.array([0.9, 0.8, 0.1, 0.2, 0.5, 0.5, 0.5])
    labels = np.array([1, 1, 1, 1, 0, 0, 0])
    known = np.array([True, True, False, False, False, False, False])
    kinds = ood_eval.auroc_by_landmark_kind(scores, labels, known)
    assert kinds == {
        "auroc_known_landmarks": 1.0,
        "known_landmarks": 2,
        "auroc_other_landmarks": 0.0,
        "other_landmarks": 2,
    }
    none_other = ood_eval.auroc_by_landmark_kind(scores, labels, labels.astype(bool))
    assert none_other["auroc_other_landmarks"] is None and none_other["other_landmarks"] == 0
