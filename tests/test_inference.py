"""Competition inference: run modes, the time budget, and notebook 08's submission."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from utils.data.gldv2 import image_path, read_test_ids
from utils.data.images import load_image
from utils.inference import submit
from utils.inference.budget import TimeBudget
from utils.inference.gallery import read_gallery_list
from utils.inference.testset import run_mode
from utils.metrics import gap
from utils.retrieval.descriptor import GlobalDescriptor
from utils.submission import read_submission, validate_submission


def test_run_mode_tells_the_interactive_run_by_its_size():
    assert run_mode(10345, 10345) == "interactive"
    assert run_mode(120000, 10345) == "full"
    assert run_mode(10345, 10345, "full") == "full"
    with pytest.raises(ValueError, match="mode must be one of"):
        run_mode(1, 1, "fast")


def test_time_budget_estimates_and_stops():
    budget = TimeBudget(10.0, start=0.0)  # started long ago: 10 s are spent
    assert not budget.allows(5, 5) and TimeBudget(0.0, start=0.0).allows(5, 10**9)
    fresh = TimeBudget(3600.0)
    assert fresh.allows(0, 100) and fresh.estimate(0, 10) == float("inf")
    assert fresh.estimate(10, 20) == pytest.approx(2 * fresh.elapsed(), rel=0.5)
    with pytest.raises(ValueError, match=">= 0 seconds"):
        TimeBudget(-1)


def test_config_rejects_what_is_not_built():
    with pytest.raises(ValueError, match="path of a detector saved by notebook 07"):
        submit.SubmissionConfig("d", "c.pt", "s.csv", detector="odin")
    with pytest.raises(ValueError, match="method must be one of"):
        submit.SubmissionConfig("d", "c.pt", "s.csv", method="dolg-knn")


@pytest.fixture(scope="module")
def broken_root(tiny_root, tmp_path_factory):
    """A copy of the tiny dataset with one test image truncated to nothing."""
    root = tmp_path_factory.mktemp("broken") / "tiny"
    shutil.copytree(tiny_root, root)
    victim = read_test_ids(root)[3]
    image_path(root, victim, "test").write_bytes(b"")
    return root, victim


@pytest.mark.notebook
@pytest.mark.slow
def test_08_writes_a_valid_submission_with_every_test_id(tiny_run, tiny_root):
    path = tiny_run / "08_submission" / "submission.csv"
    ids = read_test_ids(tiny_root)
    assert validate_submission(path, test_ids=ids) == []
    frame = read_submission(path)
    report = pd.read_json(tiny_run / "08_submission" / "submission_report.json", typ="series")
    assert report["mode"] == "full" and 0 <= report["score"]["gap"] <= 1
    # the run's defaults: the all-landmark Lite2, retrieval, 07's detector as a gate to tune
    assert report["checkpoint"].endswith("04_train_effnet-lite2-imagenet/best.pt")
    assert report["method"] == "retrieval" and report["detector"].endswith("07_ood/detector.pt")
    details = report["details"]
    listed = pd.read_csv(tiny_root / "train.csv")["id"].nunique()
    assert details["gallery"]["images"] == details["gallery"]["listed"] == listed
    assert set(details["tuning"]["parts"]) == {"tune", "check", "whole"}
    predicted = int((frame["landmark_id"] >= 0).sum())
    assert len(frame) == len(ids) and predicted + report["rejected"] == len(ids)


def test_run_defaults_fall_back(tmp_path):
    empty = tmp_path / "run"
    checkpoint, detector = submit.run_defaults(empty)
    assert checkpoint.endswith("04_train_effnet/best.pt") and detector == "none"
    leaderboard = empty / "04_train_effnet-lite2-imagenet" / "best.pt"
    leaderboard.parent.mkdir(parents=True)
    leaderboard.write_bytes(b"")
    assert submit.run_defaults(empty)[0] == str(leaderboard)
    assert submit.run_defaults(empty, "mine.pt", "none") == ("mine.pt", "none")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["classifier", "retrieval"])
def test_a_broken_test_image_gets_an_empty_row(tiny_run, broken_root, tmp_path, method):
    root, victim = broken_root
    config = submit.SubmissionConfig(
        data_root=str(root),
        checkpoint=str(tiny_run / "04_train_effnet" / "best.pt"),
        output=str(tmp_path / "submission.csv"),
        method=method,
        rerank_top=2 if method == "retrieval" else 0,
        workers=0,
        device="cpu",
    )
    with pytest.warns(UserWarning, match=f"{victim}.jpg"):
        report = submit.make_submission(config, progress=False)
    ids = read_test_ids(root)
    assert report.problems == [] and report.unreadable == [victim]
    frame = read_submission(report.path).set_index("id")
    assert list(frame.index) == ids
    assert frame.loc[victim, "landmark_id"] == -1
    assert report.predicted == len(ids) - 1
    assert "unreadable images: 1 (" in report.summary()
    if method == "retrieval":  # the tiny set has a solution: verification kept if tune gains
        details = report.details
        gaps = details["verification"]["tune_gap"]
        kept = gaps["with"] > gaps["without"]
        assert details["tuning"]["chosen"]["rerank_top"] == (2 if kept else 0)
        assert (details["settings"]["verify"] > 0) == kept


@pytest.mark.slow
def test_budget_and_interactive_limit_leave_rows_empty_but_present(tiny_run, tiny_root, tmp_path):
    config = submit.SubmissionConfig(
        data_root=str(tiny_root),
        checkpoint=str(tiny_run / "03_train_resnet" / "best.pt"),
        output=str(tmp_path / "submission.csv"),
        mode="interactive",
        interactive_limit=10,
        batch_size=4,
        workers=0,
        device="cpu",
    )
    report = submit.make_submission(config, progress=False)
    ids = read_test_ids(tiny_root)
    assert report.mode == "interactive" and report.not_attempted == len(ids) - 10
    assert report.predicted == 10 and report.problems == []
    tight = submit.SubmissionConfig(**{**config.__dict__, "time_budget_s": 1e-9, "mode": "full"})
    report = submit.make_submission(tight, progress=False)
    assert report.out_of_budget > 0 and report.problems == []
    assert report.predicted + report.out_of_budget == len(ids)
    assert len(read_submission(report.path)) == len(ids)


@pytest.mark.notebook
@pytest.mark.slow
def test_08_with_a_saved_detector_writes_empty_rows_for_rejected_images(
    tiny_run, tiny_root, tmp_path
):
    from utils.data.images import load_image
    from utils.ood import load_detector

    # the binary detector's logits: the tiny run's chosen detector may be ODIN at T 1000, whose
    # scores on a one-epoch network tie to within 1e-7
    detector_path = tiny_run / "07_ood" / "detector_mobilenet.pt"
    common = {
        "data_root": str(tiny_root),
        "checkpoint": str(tiny_run / "04_train_effnet" / "best.pt"),
        "workers": 0,
        "device": "cpu",
    }
    plain = submit.make_submission(
        submit.SubmissionConfig(output=str(tmp_path / "plain.csv"), **common), progress=False
    )
    ids = read_test_ids(tiny_root)
    detector = load_detector(detector_path)
    scores = detector.score([load_image(image_path(tiny_root, i, "test")) for i in ids])
    threshold = float(np.median(scores))  # about half the photos rejected
    gated = submit.make_submission(
        submit.SubmissionConfig(
            output=str(tmp_path / "gated.csv"),
            detector=str(detector_path),
            detector_threshold=threshold,
            **common,
        ),
        progress=False,
    )
    assert gated.problems == [] and gated.rejected == int((scores < threshold).sum()) > 0
    before = pd.read_csv(plain.path, dtype=str).fillna("").set_index("id")["landmarks"]
    after = pd.read_csv(gated.path, dtype=str).fillna("").set_index("id")["landmarks"]
    rejected = [i for i, s in zip(ids, scores, strict=True) if s < threshold]
    kept = [i for i in ids if i not in rejected]
    assert (after[rejected] == "").all()
    assert (after[kept] == before[kept]).all()


@pytest.fixture(scope="module")
def rerun_root(tiny_root, tmp_path_factory):
    """The hidden re-run: another test set, a train.csv listing a subset, some files gone."""
    root = tmp_path_factory.mktemp("rerun") / "tiny"
    shutil.copytree(tiny_root, root)
    train = pd.read_csv(root / "train.csv", dtype={"id": str})
    kept = train.iloc[::2]
    kept.to_csv(root / "train.csv", index=False)
    gone = kept["id"].iloc[:3].tolist()
    for image_id in gone:
        image_path(root, image_id).unlink()
    for image_id in train["id"].iloc[1::2]:  # the rows no longer listed: their files go too
        image_path(root, image_id).unlink()
    ids = read_test_ids(root)[::3]  # another, smaller test set
    pd.DataFrame({"id": ids, "landmarks": ""}).to_csv(root / "sample_submission.csv", index=False)
    (root / "test_solution.csv").unlink()
    return root, len(kept), gone


@pytest.mark.slow
def test_a_rerun_with_another_test_set_and_a_smaller_train_set_writes_every_row(
    tiny_run, rerun_root, tmp_path
):
    root, listed, gone = rerun_root
    config = submit.SubmissionConfig(
        data_root=str(root),
        checkpoint=str(tiny_run / "04_train_effnet-lite2-imagenet" / "best.pt"),
        output=str(tmp_path / "submission.csv"),
        method="retrieval",
        workers=0,
        device="cpu",
    )
    report = submit.make_submission(config, progress=False)
    ids = read_test_ids(root)
    assert report.problems == [] and report.test_ids == len(ids)
    assert report.predicted == len(ids)  # nothing gated, every photo ranked
    assert list(read_submission(report.path)["id"]) == ids
    gallery = report.details["gallery"]
    assert gallery == {
        "source": "train",
        "images": listed - len(gone),
        "listed": listed,
        "missing": len(gone),
        "unreadable": 0,
        "out_of_budget": 0,
    }
    assert f"{listed - len(gone)} of {listed} listed images embedded; 3 missing" in report.summary()
    assert "tuning" not in report.details  # no solution: the given settings


@pytest.mark.slow
def test_an_empty_gallery_writes_a_valid_submission_of_empty_rows(tiny_run, tiny_root, tmp_path):
    root = tmp_path / "tiny"
    shutil.copytree(tiny_root, root)
    shutil.rmtree(root / "train")
    report = submit.make_submission(
        submit.SubmissionConfig(
            data_root=str(root),
            checkpoint=str(tiny_run / "04_train_effnet" / "best.pt"),
            output=str(tmp_path / "submission.csv"),
            method="retrieval",
            workers=0,
            device="cpu",
        ),
        progress=False,
    )
    ids = read_test_ids(root)
    assert report.problems == [] and report.predicted == 0
    assert len(read_submission(report.path)) == len(ids)
    assert "no gallery image could be read: every row is written empty" in report.summary()


def test_inside_kaggle_is_read_from_the_environment_not_the_folder(tmp_path):
    from utils.inference import submit

    SUBMISSION = "submission.csv"
    (tmp_path / "working").mkdir()  # an emulated /kaggle/working exists, but no kernel runs
    emulated = {"LANDMARK_KAGGLE_ROOT": str(tmp_path)}
    assert not submit.inside_kaggle(emulated)
    expected = tmp_path / "run" / SUBMISSION
    assert submit.default_output(tmp_path / "run", emulated) == expected
    kernel = {"KAGGLE_KERNEL_RUN_TYPE": "Batch"}
    assert submit.inside_kaggle(kernel)
    assert submit.default_output(tmp_path / "run", kernel) == Path("/kaggle/working") / SUBMISSION
    kernel["LANDMARK_KAGGLE_ROOT"] = str(tmp_path)  # the dry run's emulated /kaggle
    assert submit.default_output(tmp_path / "run", kernel) == tmp_path / "working" / SUBMISSION


@pytest.mark.slow
def test_retrieval_searching_both_descriptors_writes_every_row(tiny_run, tiny_root, tmp_path):
    config = submit.SubmissionConfig(
        data_root=str(tiny_root),
        checkpoint=str(tiny_run / "04_train_effnet-lite2-imagenet" / "best.pt"),
        output=str(tmp_path / "submission.csv"),
        method="retrieval",
        descriptor="both",
        pretrained_weight=0.85,
        pretrained_size=64,
        whiten=256,
        rerank_top=5,
        workers=0,
        device="cpu",
    )
    report = submit.make_submission(config, progress=False)
    ids = read_test_ids(tiny_root)
    assert report.problems == [] and report.predicted == len(ids)
    details = report.details
    assert details["descriptor"] == "both" and details["pretrained_weight"] == 0.85
    assert details["pretrained_flip"] is True  # the default
    assert details["gallery"]["images"] == details["gallery"]["listed"]
    assert details["verification"]["queries"] == len(ids)
    assert any(note.startswith("whitening: PCA whitening") for note in report.notes)
    chosen = details["tuning"]["chosen"]
    assert chosen["confidence"] in ("score", "nearest") and isinstance(chosen["whiten"], bool)
    # the baseline beside it: the frozen descriptor's nearest gallery photo, recomputed by hand
    listing = read_gallery_list(tiny_root, "train")
    frozen = GlobalDescriptor(size=64, flip=config.pretrained_flip)
    gallery = frozen([load_image(image_path(tiny_root, i)) for i in listing["id"]])
    queries = frozen([load_image(image_path(tiny_root, i, "test")) for i in ids])
    cosines = queries @ gallery.T
    nearest = cosines.argmax(axis=1)
    landmarks = listing["landmark_id"].to_numpy()[nearest]
    truth = submit._read_truth(str(tiny_root), ids)
    expected = gap(landmarks, cosines.max(axis=1), truth)
    assert details["baseline"]["parts"]["whole"]["gap"] == pytest.approx(expected, abs=1e-6)
    assert sum(details["baseline"]["parts"][p]["queries"] for p in ("tune", "check")) == len(ids)
    assert any(note.startswith("baseline, the frozen descriptor") for note in report.notes)
    for name, d in details["baseline"]["difference"].items():  # 08's GAP minus the baseline's
        ours, theirs = details["tuning"]["parts"][name], details["baseline"]["parts"][name]
        assert d["gap"] == pytest.approx(ours["gap"] - theirs["gap"], abs=1e-9)
        assert d["interval"][0] <= d["interval"][1]
