import os
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from utils import pipeline


def write_notebook(path: Path, *sources: str, parameters: str = 'OUTPUT_DIR: str = "."') -> Path:
    cell = new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[cell, *(new_code_cell(s) for s in sources)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_discover_orders_and_filters(tmp_path):
    for name in ("02_b.ipynb", "01_a.ipynb", "10_c.ipynb", "notes.ipynb"):
        write_notebook(tmp_path / name)
    assert [p.name for p in pipeline.discover(tmp_path)] == [
        "01_a.ipynb",
        "02_b.ipynb",
        "10_c.ipynb",
    ]
    assert [p.name for p in pipeline.discover(tmp_path, ["2", "10"])] == [
        "02_b.ipynb",
        "10_c.ipynb",
    ]
    with pytest.raises(ValueError, match="--only names no notebook.*: 07"):
        pipeline.discover(tmp_path, ["07"])
    with pytest.raises(ValueError, match="no numbered notebooks"):
        pipeline.discover(tmp_path / "empty")


@pytest.mark.notebook
def test_runner_passes_declared_parameters_and_writes_outputs(tmp_path, capfd):
    folder = tmp_path / "nbs"
    write_notebook(
        folder / "01_write.ipynb",
        "from pathlib import Path\nPath(OUTPUT_DIR, 'seen.txt').write_text(f'{TOP} {DATA_ROOT}')",
        parameters='OUTPUT_DIR: str = "."\nTOP: int = 1\nDATA_ROOT: str = ""',
    )
    out = tmp_path / "run"
    params = {"DATA_ROOT": "/data", "TOP": 7, "MANIFEST_DIR": "", "PROFILE": "tiny"}
    steps = pipeline.run_pipeline(pipeline.discover(folder), params, out, progress=False)
    assert (out / "01_write" / "seen.txt").read_text() == "7 /data"
    assert steps[0].executed.is_file() and steps[0].log.is_file()
    assert "without encryption" not in capfd.readouterr().err  # the kernel talks over IPC


@pytest.mark.notebook
def test_a_stopped_training_is_named_before_a_run_that_would_read_it(tmp_path, capsys):
    out = tmp_path / "run"
    for name, order in (
        ("03_train_resnet", ("best.pt", "test_metrics.json")),
        ("04_train_effnet", ("test_metrics.json", "best.pt")),
        ("06_dolg", ("best.pt",)),
    ):
        (out / name).mkdir(parents=True)
        for age, file in enumerate(order):  # written in this order, a second apart
            (out / name / file).write_text("{}")
            os.utime(out / name / file, (1_000_000 + age, 1_000_000 + age))
    assert pipeline.unfinished_trainings(out) == [out / "04_train_effnet", out / "06_dolg"]
    folder = tmp_path / "nbs"
    write_notebook(folder / "06_dolg.ipynb", "x = 1", parameters="OUTPUT_DIR: str = '.'")
    pipeline.run_pipeline(pipeline.discover(folder), {"PROFILE": "tiny"}, out, progress=False)
    printed = capsys.readouterr().out
    assert "04_train_effnet: best.pt is newer than test_metrics.json" in printed
    assert "rerun it with --only 04" in printed and "06_dolg: best.pt" not in printed


def test_plan_runs_a_repeat_after_its_notebook_with_its_parameters(tmp_path):
    notebooks = [tmp_path / "03_a.ipynb", tmp_path / "04_b.ipynb"]
    repeats = {"04_b": (("-x", {"LR": 0.1}),)}
    steps = pipeline.plan_steps(notebooks, tmp_path / "run", repeats)
    assert [(s.notebook.name, s.executed.name, s.output_dir.name) for s in steps] == [
        ("03_a.ipynb", "03_a.ipynb", "03_a"),
        ("04_b.ipynb", "04_b.ipynb", "04_b"),
        ("04_b.ipynb", "04_b-x.ipynb", "04_b-x"),
    ]
    assert [s.overrides for s in steps] == [{}, {}, {"LR": 0.1}]
    assert steps[2].log == tmp_path / "run" / "04_b-x.log"


def test_an_all_landmark_repeat_gets_top_0_and_the_all_landmark_manifest(tmp_path):
    step = pipeline.Step(
        tmp_path / "04_b.ipynb",
        tmp_path / "x.ipynb",
        tmp_path / "x.log",
        tmp_path / "x",
        {"LR": 0.1, "MANIFEST_DIR": pipeline.ALL_LANDMARKS},
    )
    run = {"MANIFEST_DIR": "top30", "ALL_MANIFEST_DIR": "every", "TOP": 30, "LR": 0.5}
    assert pipeline.step_parameters(step, run) == {
        "MANIFEST_DIR": "every",
        "ALL_MANIFEST_DIR": "every",
        "TOP": 0,
        "LR": 0.5,
    }
    built_here = pipeline.step_parameters(step, {"MANIFEST_DIR": "top30", "TOP": 100})
    assert built_here["MANIFEST_DIR"] == "" and built_here["TOP"] == 0
    plain = pipeline.Step(step.notebook, step.executed, step.log, step.output_dir, {"LR": 0.1})
    assert pipeline.step_parameters(plain, run) == run


def test_default_parameters_offer_the_committed_all_landmark_manifest(tiny_root, monkeypatch):
    assert pipeline.default_parameters(tiny_root, "tiny", None)["ALL_MANIFEST_DIR"] == ""
    monkeypatch.setattr(pipeline.minigld, "profile_of", lambda root: "default")
    params = pipeline.default_parameters(tiny_root, "default", None)
    assert params["ALL_MANIFEST_DIR"].endswith("data_manifests/minigld-default-all")


def test_the_repeats_name_notebooks_and_parameters_they_declare():
    notebooks = {p.stem: p for p in (pipeline.REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    for stem, runs in pipeline.repeats_for("").items():
        declared = papermill.inspect_notebook(str(notebooks[stem]))
        for suffix, overrides in runs:
            assert suffix and set(overrides) <= set(declared), (stem, suffix)
    for stem, changes in pipeline.REAL_PHOTO_REPEATS.items():
        assert set(changes) <= {suffix for suffix, _ in pipeline.REPEATS[stem]}, stem


def test_real_photos_get_the_leaderboard_recipe_chosen_on_them(tmp_path):
    notebooks = [tmp_path / "04_train_effnet.ipynb"]
    generated = pipeline.plan_steps(notebooks, tmp_path, pipeline.repeats_for("default"))
    real = pipeline.plan_steps(notebooks, tmp_path, pipeline.repeats_for(""))
    assert generated[1].overrides == dict(pipeline.REPEATS["04_train_effnet"][0][1])
    assert real[1].overrides == {
        **generated[1].overrides,
        **pipeline.REAL_PHOTO_REPEATS["04_train_effnet"]["-lite2-imagenet"],
    }
    assert "IMAGE_SIZE" not in generated[1].overrides and real[1].overrides["IMAGE_SIZE"] > 96
    assert real[0].overrides == generated[0].overrides == {}


@pytest.mark.notebook
def test_a_repeat_gets_its_parameters_under_the_run_s_own(tmp_path):
    folder = tmp_path / "nbs"
    write_notebook(
        folder / "01_write.ipynb",
        "from pathlib import Path\nPath(OUTPUT_DIR, 'seen.txt').write_text(f'{LR} {EPOCHS}')",
        parameters='OUTPUT_DIR: str = "."\nLR: float = 1.0\nEPOCHS: int = 8',
    )
    out = tmp_path / "run"
    repeats = {"01_write": (("-x", {"LR": 0.5, "EPOCHS": 4}),)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "REPEATS", repeats)
        pipeline.run_pipeline(pipeline.discover(folder), {"EPOCHS": 1}, out, progress=False)
    assert (out / "01_write" / "seen.txt").read_text() == "1.0 1"
    assert (out / "01_write-x" / "seen.txt").read_text() == "0.5 1"  # the run's EPOCHS wins
    assert (out / "01_write-x.ipynb").is_file() and (out / "results.md").is_file()


@pytest.mark.notebook
def test_failing_cell_is_named(tmp_path, capsys):
    folder = tmp_path / "nbs"
    write_notebook(folder / "01_ok.ipynb", "x = 1")
    write_notebook(folder / "02_bad.ipynb", "y = 2", "raise ValueError('boom in cell')")
    write_notebook(folder / "03_never.ipynb", "z = 3")
    (tmp_path / "train.csv").write_text("id,landmark_id\nabc,1\n")
    code = pipeline.main(
        ["--data-root", str(tmp_path), "--notebooks", str(folder), "--out", str(tmp_path / "run")]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "02_bad.ipynb failed at cell 2" in err and "ValueError: boom in cell" in err
    assert "raise ValueError" in err
    assert not (tmp_path / "run" / "03_never.ipynb").exists()


@pytest.mark.notebook
def test_cell_timeout_is_named(tmp_path):
    folder = tmp_path / "nbs"
    write_notebook(folder / "01_slow.ipynb", "import time\ntime.sleep(30)")
    with pytest.raises(pipeline.NotebookFailure) as info:
        pipeline.run_pipeline(
            pipeline.discover(folder), {}, tmp_path / "run", cell_timeout=2, progress=False
        )
    assert "CellTimeoutError" in str(info.value) and "time.sleep(30)" in str(info.value)
    assert info.value.cell == 1  # index in the source notebook


def test_default_parameters_for_a_mini_dataset(tiny_root):
    params = pipeline.default_parameters(tiny_root, "default", None)
    assert params["DATA_ROOT"] == str(tiny_root.resolve())
    assert params["TOP"] == pipeline.PROFILE_TOP["tiny"] and params["PROFILE"] == "tiny"
    assert params["MANIFEST_DIR"].endswith("data_manifests/minigld-tiny-top5")


def test_default_parameters_for_another_root(tmp_path):
    params = pipeline.default_parameters(tmp_path, "default", None)
    assert params["TOP"] == pipeline.REAL_TOP and params["MANIFEST_DIR"] == ""


def test_a_data_root_s_run_is_named_for_its_folder_as_make_pipeline_names_it(tmp_path):
    """So that ``--only 08`` after a whole run finds that run's networks, not an empty folder."""
    root = tmp_path / "gldv2-sample"
    root.mkdir()
    assert pipeline.default_run_name(root / ".." / "gldv2-sample", "default") == "gldv2-sample"
    assert pipeline.default_run_name(None, "tiny") == "tiny"
    makefile = (pipeline.REPO / "Makefile").read_text()
    assert "RUN ?= $(if $(DATA),$(notdir $(abspath $(DATA))),$(PROFILE))" in makefile


def test_main_reports_a_folder_that_is_not_a_data_root(tmp_path, capsys):
    assert pipeline.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    expected = "file not found (expected a CSV with columns id,landmark_id)"
    assert err == f"error: {tmp_path / 'train.csv'}: {expected}"


def test_main_reports_bad_only(tmp_path, capsys):
    assert pipeline.main(["--data-root", str(tmp_path), "--only", "99"]) == 2
    assert "--only names no notebook" in capsys.readouterr().err


def test_set_parses_literals_and_strings():
    assert pipeline.parse_assignment("EPOCHS=1") == ("EPOCHS", 1)
    assert pipeline.parse_assignment("LR=0.003") == ("LR", 0.003)
    assert pipeline.parse_assignment("DEVICE=cpu") == ("DEVICE", "cpu")
    assert pipeline.parse_assignment("RESUME=True") == ("RESUME", True)
    with pytest.raises(ValueError, match="NAME=VALUE"):
        pipeline.parse_assignment("EPOCHS")


def test_the_manifests_02_writes_become_the_run_s_when_it_has_none(tmp_path):
    step_out = tmp_path / "02_preprocess"
    for folder in ("manifests", "manifests-all"):
        (step_out / folder).mkdir(parents=True)
        (step_out / folder / "train.csv").write_text("id,landmark_id\n")
    adopted = pipeline.adopt_manifests({"MANIFEST_DIR": "", "TOP": 100}, step_out)
    assert adopted["MANIFEST_DIR"] == str(step_out / "manifests")
    assert adopted["ALL_MANIFEST_DIR"] == str(step_out / "manifests-all")
    kept = pipeline.adopt_manifests({"MANIFEST_DIR": "mine", "ALL_MANIFEST_DIR": "all"}, step_out)
    assert kept == {"MANIFEST_DIR": "mine", "ALL_MANIFEST_DIR": "all"}
    assert pipeline.adopt_manifests({"MANIFEST_DIR": ""}, tmp_path / "01_eda") == {
        "MANIFEST_DIR": ""
    }


def test_default_parameters_adapt_top_to_a_small_real_folder(tmp_path, capsys):
    # 12 landmarks of 4 photos and one of 2 (too few to split): TOP 12, and the log says so
    rows = [(f"{lm:02d}{i}abc", lm) for lm in range(12) for i in range(4)]
    rows += [("99aabc", 99), ("99babc", 99)]
    pd.DataFrame(rows, columns=["id", "landmark_id"]).to_csv(tmp_path / "train.csv", index=False)
    params = pipeline.default_parameters(tmp_path, "default", None)
    assert params["TOP"] == 12 and params["MANIFEST_DIR"] == ""
    err = capsys.readouterr().err
    assert "top 12, adapted from 100: the data has 13 landmarks, 12 of them with the 3" in err


@pytest.mark.notebook
@pytest.mark.slow
def test_02_runs_on_a_folder_of_12_landmarks_with_the_default_top(tmp_path, capsys):
    import json

    import cv2

    from conftest import textured

    root, rows = tmp_path / "comp", []
    for landmark in range(12):
        for view in range(5):
            image_id = f"{landmark:02d}{view}{'abcdef'[view]}0000"
            path = root / "train" / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), textured(landmark * 10 + view, (96, 128)))
            rows.append((image_id, 1000 + landmark))
    pd.DataFrame(rows, columns=["id", "landmark_id"]).to_csv(root / "train.csv", index=False)
    out = tmp_path / "out"
    assert pipeline.main(["--data-root", str(root), "--only", "02", "--out", str(out)]) == 0
    assert "top 12, adapted from 100" in capsys.readouterr().err
    summary = json.loads((out / "02_preprocess" / "manifests" / "summary.json").read_text())
    assert summary["top"] == 12 and summary["num_classes"] == 12
    results = (out / "results.md").read_text()
    assert "top 12, adapted from 100: the data has 12 landmarks" in results
