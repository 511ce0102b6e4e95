"""The numbered notebooks: thin drivers, run through papermill on the tiny profile."""

import ast
import json
from pathlib import Path

import nbformat
import papermill
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from conftest import TINY_OVERRIDES
from utils.pipeline import unfinished_trainings

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def definitions(path: Path) -> list[str]:
    """``def``/``class`` statements in a notebook's code cells (magics are skipped)."""
    found = []
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type != "code":
            continue
        code = "\n".join(
            line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))
        )
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found.append(f"{path.name} cell {index}: {node.name}")
    return found


def test_the_numbered_notebooks_exist():
    names = [p.name for p in NOTEBOOKS]
    assert names[:2] == ["01_eda.ipynb", "02_preprocess.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_defines_no_function_or_class(path):
    assert definitions(path) == []


def test_the_definition_check_catches_def_and_class(tmp_path):
    nb = new_notebook(
        cells=[new_code_cell("def f():\n    return 1"), new_code_cell("%time x = 1\nclass A: pass")]
    )
    nbformat.write(nb, tmp_path / "x.ipynb")
    assert definitions(tmp_path / "x.ipynb") == ["x.ipynb cell 0: f", "x.ipynb cell 1: A"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_is_plain_typed_literals(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    tree = ast.parse(cells[0].source)
    for node in tree.body:
        value = node.value if isinstance(node, ast.AnnAssign) else None
        if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub):
            value = value.operand  # a negative number is a literal too
        assert isinstance(value, ast.Constant), ast.dump(node)
    declared = papermill.inspect_notebook(str(path))
    assert set(declared) == {node.target.id for node in tree.body}, (
        "papermill must parse every line"
    )
    assert "OUTPUT_DIR" in declared and "DATA_ROOT" in declared


@pytest.mark.notebook
@pytest.mark.slow
def test_every_notebook_ran_and_left_its_executed_copy(tiny_run):
    for notebook in NOTEBOOKS:
        assert (tiny_run / notebook.name).is_file(), notebook.name
        assert (tiny_run / f"{notebook.stem}.log").is_file(), notebook.name
    assert unfinished_trainings(tiny_run) == []  # every training wrote its metrics last


@pytest.mark.notebook
@pytest.mark.slow
def test_01_writes_its_figures_and_tables(tiny_run):
    for name in (
        "class_distribution.png",
        "examples.png",
        "image_stats.png",
        "image_stats.csv",
        "summary.json",
    ):
        assert (tiny_run / "01_eda" / name).is_file(), name


@pytest.mark.notebook
@pytest.mark.slow
def test_02_rebuilds_the_committed_manifests(tiny_run, tiny_manifest):
    for name in ("train.csv", "val.csv", "test.csv", "summary.json"):
        built = tiny_run / "02_preprocess" / "manifests" / name
        assert built.read_bytes() == (tiny_manifest / name).read_bytes()
    executed = (tiny_run / "02_preprocess.ipynb").read_text()
    assert "identical to" in executed and ": True" in executed


RECIPE = {"IMAGE_SIZE", "EPOCHS", "BATCH_SIZE", "LR"}  # chosen per backbone on validation


def test_resnet_and_effnet_notebooks_differ_only_in_parameters():
    def code(name):
        cells = nbformat.read(REPO / "notebooks" / name, as_version=4).cells
        return [
            c.source
            for c in cells
            if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])
        ]

    assert code("03_train_resnet.ipynb") == code("04_train_effnet.ipynb")
    params = {
        n: papermill.inspect_notebook(str(REPO / "notebooks" / n))
        for n in ("03_train_resnet.ipynb", "04_train_effnet.ipynb")
    }
    a, b = params.values()
    differ = {k for k in a if a[k]["default"] != b[k]["default"]}
    # each backbone has its own embedded recipe (README, "Training"); the rest is shared
    assert {"MODEL", "OUTPUT_DIR"} <= differ <= {"MODEL", "OUTPUT_DIR", *RECIPE}


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("name", ["03_train_resnet", "04_train_effnet"])
def test_training_notebooks_leave_checkpoints_metrics_and_curves(tiny_run, name):
    for artefact in (
        "best.pt",
        "last.pt",
        "metrics.json",
        "training_curves.png",
        "test_metrics.json",
        "test_predictions.csv",
    ):
        assert (tiny_run / name / artefact).is_file(), artefact


@pytest.mark.notebook
@pytest.mark.slow
def test_the_pipeline_repeats_04_as_lite2_fine_tuned_from_imagenet(tiny_run):
    out = tiny_run / "04_train_effnet-lite2-imagenet"
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "efficientnet-lite2" and config["pretrained"]
    assert config["epochs"] == TINY_OVERRIDES["EPOCHS"]  # the run's parameters win
    summary = json.loads((Path(config["manifest_dir"]) / "summary.json").read_text())
    assert summary["top"] == 0  # every landmark: 02's manifests-all, adopted by the runner
    metrics = json.loads((out / "test_metrics.json").read_text())
    classes = f"all {summary['num_classes']}"
    accuracy = f"{metrics['accuracy']:.3f}"
    line = f"| efficientnet-lite2 | ImageNet | {classes} | 2 | classifier | {accuracy} |"
    text = (tiny_run / "results.md").read_text()
    assert line in text and "classifier, on the top-5 test ids" in text


@pytest.mark.notebook
@pytest.mark.slow
def test_05_reranks_with_the_checkpoint_of_04(tiny_run):
    """The runner's hand-over: 05 finds 04's checkpoint through RUN_DIR."""
    out = tiny_run / "05_delf_rerank"
    results = json.loads((out / "test_results.json").read_text())
    assert set(results) == {
        "retrieval top1",
        "retrieval vote",
        "re-ranked top-3, RootSIFT",
        "re-ranked top-3, DELF",
    }
    for name in ("delf.pt", "gallery.npy", "delf_keypoints.png", "sift_inliers.png"):
        assert (out / name).is_file(), name


@pytest.mark.notebook
@pytest.mark.slow
def test_06_trains_dolg_and_reports_both_evaluations(tiny_run):
    out = tiny_run / "06_dolg"
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert metrics["method"].startswith("DOLG") and 0 <= metrics["gap"] <= 1
    results = json.loads((out / "test_results.json").read_text())
    assert set(results) == {"DOLG retrieval top1", "DOLG retrieval vote"}
    comparison = (out / "comparison.csv").read_text()
    assert "ResNet-50 classifier (notebook 03)" in comparison  # read from RUN_DIR
    assert json.loads((out / "config.json").read_text())["head"] == "subcenter"


def test_runner_finds_every_override_declared_somewhere():
    declared = set().union(*(papermill.inspect_notebook(str(nb)) for nb in NOTEBOOKS))
    assert set(TINY_OVERRIDES) <= declared


@pytest.mark.notebook
@pytest.mark.slow
def test_results_md_is_filled_from_the_run(tiny_run):
    from utils.results import render

    text = (tiny_run / "results.md").read_text()
    assert text == render(tiny_run)
    resnet = json.loads((tiny_run / "03_train_resnet" / "test_metrics.json").read_text())
    rows = text.splitlines()
    row = next(
        line for line in rows if line.startswith("| resnet50 | scratch | 5 | 2 | classifier")
    )
    assert f"| {resnet['accuracy']:.3f} | {resnet['gap']:.3f} |" in row
    assert "re-ranked top-3, RootSIFT" in text and "## Submission" in text
    assert "GAP over the whole test set" in text
    detectors = json.loads((tiny_run / "07_ood" / "detectors.json").read_text())
    for name, report in (("mobilenet", "0.89 / 0.85 / 0.95"), ("odin", "0.54 / 0.54 / 0.55")):
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        kinds = [detectors[name][f"auroc_{kind}_landmarks"] for kind in ("known", "other")]
        cell = " / ".join("—" if v is None else f"{v:.3f}" for v in kinds)
        low, high = detectors[name]["auroc_interval"]
        auroc = f"{detectors[name]['auroc']:.3f} ({low:.2f}-{high:.2f})"
        assert f"| {auroc} | {cell} | {report} |" in row
        assert detectors[name]["known_landmarks"] > 0  # the tiny run's classifier knows some
