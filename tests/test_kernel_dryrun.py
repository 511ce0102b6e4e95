"""The committed kernels, run as Kaggle runs them (`utils.kernels.dryrun`) on the tiny profile.

One dry run of the whole chain (each kernel in its own emulated ``/kaggle``, seeing only its
declared sources, the competition stripped to its four entries), then 07 again without
the non-landmark dataset, as a user who attached none would run them.
"""

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import DRYRUN_OVERRIDES as OVERRIDES
from utils.data.gldv2 import image_path, read_test_ids
from utils.kernels import cli, dryrun
from utils.kernels.table import NON_LANDMARK_DATASET
from utils.ood import load_detector
from utils.submission import read_submission, validate_submission

REPO = Path(__file__).resolve().parents[1]
KERNELS = REPO / "kernels"


@pytest.fixture(scope="module")
def chain(kernel_dryrun):
    return kernel_dryrun


def test_every_kernel_runs_as_on_kaggle_and_leaves_what_its_readers_expect(chain):
    root, runs = chain
    print(dryrun.table(runs))
    stems = sorted(p.name for p in KERNELS.glob("[0-9][0-9]_*") if p.is_dir())
    assert [run.stem for run in runs] == [*stems, dryrun.RERUN]
    assert all(run.ok for run in runs), dryrun.table(runs)
    expected = {(reader, path) for run in runs for reader, path, _ in run.expected}
    assert ("05_delf_rerank", "CHECKPOINT=04_train_effnet/best.pt") in expected
    assert ("08_submission", "DETECTOR=07_ood/detector.pt") in expected
    competition = root / "08_submission" / "kaggle" / "input" / "landmark-recognition-2021"
    assert sorted(p.name for p in competition.iterdir()) == sorted(dryrun.COMPETITION_ENTRIES)
    # 07 found the attached non-landmark dataset and trained every detector
    detectors = json.loads((root / "07_ood/kaggle/working/07_ood/detectors.json").read_text())
    assert {"mobilenet", "odin", "matching", "imagenet"} <= set(detectors)
    # Kaggle scores /kaggle/working/submission.csv: 08 wrote it there, one row per test id
    first = root / "08_submission" / "kaggle" / "working" / "submission.csv"
    assert validate_submission(first, test_ids=read_test_ids(competition)) == []


def test_the_rerun_gets_a_row_per_new_test_id_from_the_train_set_present(chain, tiny_root):
    root, _ = chain
    rerun = root / "datasets" / "competition-rerun"
    new_ids = read_test_ids(rerun)
    assert not set(new_ids) & set(read_test_ids(tiny_root))
    submission = read_submission(root / dryrun.RERUN / "kaggle" / "working" / "submission.csv")
    assert sorted(submission["id"]) == sorted(new_ids)
    listed = pd.read_csv(rerun / "train.csv", dtype={"id": str})
    assert 0 < len(listed) < len(pd.read_csv(tiny_root / "train.csv"))
    report = json.loads(
        (root / dryrun.RERUN / "kaggle/working/08_submission/submission_report.json").read_text()
    )
    gone = [i for i in listed["id"] if not image_path(rerun, i).exists()]
    gallery = report["details"]["gallery"]  # listed, file gone: skipped and counted, not fatal
    assert (gallery["listed"], gallery["missing"], len(gone)) == (len(listed), 2, 2)
    assert gallery["images"] == len(listed) - 2


def test_without_a_non_landmark_dataset_07_saves_the_imagenet_detector(chain, tiny_root):
    root, _ = chain
    runs = dryrun.dry_run(
        KERNELS,
        tiny_root,  # its non_landmark/ stays outside the stripped competition folder
        root,
        OVERRIDES,
        only=["07"],  # 08 loads whatever detector.pt 07 wrote (asserted below)
        detach=(NON_LANDMARK_DATASET,),
        rerun=False,
        log=lambda line: None,
    )
    assert all(run.ok for run in runs), dryrun.table(runs)
    out = root / "07_ood" / "kaggle" / "working" / "07_ood"
    assert load_detector(out / "detector.pt").method == "imagenet"
    detectors = json.loads((out / "detectors.json").read_text())
    assert list(detectors) == ["imagenet"] and detectors["imagenet"]["evaluated"] is False
    assert "no non-landmark photos" in detectors["imagenet"]["note"]


def test_a_missing_declared_source_names_the_source_and_the_kernel(tiny_root, tmp_path):
    runs = dryrun.dry_run(KERNELS, tiny_root, tmp_path, OVERRIDES, only=["08"], log=print)
    assert len(runs) == 1 and not runs[0].ran
    assert "08_submission: declared source" in runs[0].error
    assert "gldv2-06-dolg is missing" in runs[0].error


def test_a_number_with_no_kernel_is_named_before_anything_runs(tiny_root, tmp_path):
    with pytest.raises(ValueError, match="--only names no kernel in .*: 09"):
        dryrun.dry_run(KERNELS, tiny_root, tmp_path / "root", OVERRIDES, only=["08", "09"])
    assert not (tmp_path / "root").exists()


def test_the_competition_layout_is_checked_and_stripped(tiny_root, tmp_path):
    stripped = dryrun.competition_folder(tiny_root, tmp_path / "competition")
    assert sorted(p.name for p in stripped.iterdir()) == sorted(dryrun.COMPETITION_ENTRIES)
    with pytest.raises(dryrun.DryRunError, match="missing sample_submission.csv, train, test"):
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "train.csv").write_text("id,landmark_id\n")
        dryrun.competition_folder(tmp_path / "other", tmp_path / "x")


def test_params_prints_every_kaggle_value_with_the_override(capsys):
    assert cli.main(["params", "07", "--set", "DEVICE=cpu"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert values["DEVICE"] == "cpu"  # the override
    assert values["DATA_ROOT"] == "/kaggle/input/landmark-recognition-2021"  # kept
    assert values["NON_LANDMARK_ROOT"] == "/kaggle/input"
