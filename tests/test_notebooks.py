"""The numbered notebooks: thin drivers, run through papermill on the tiny profile."""

import ast
import json
from pathlib import Path

import nbformat
import papermill
import pytest
from nbformat.v4 import new_code_cell, new_notebook

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
        assert isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Constant), ast.dump(
            node
        )
    declared = papermill.inspect_notebook(str(path))
    assert set(declared) == {node.target.id for node in tree.body}, (
        "papermill must parse every line"
    )
    assert "OUTPUT_DIR" in declared and "DATA_ROOT" in declared


@pytest.mark.notebook
@pytest.mark.slow
def test_01_and_02_run_on_the_tiny_profile(tmp_path, tiny_root, tiny_manifest):
    out = tmp_path / "run"
    common = {"DATA_ROOT": str(tiny_root), "MANIFEST_DIR": str(tiny_manifest)}
    papermill.execute_notebook(
        str(REPO / "notebooks" / "01_eda.ipynb"),
        str(tmp_path / "01.ipynb"),
        parameters={**common, "OUTPUT_DIR": str(out / "01")},
        progress_bar=False,
        cwd=str(REPO / "notebooks"),
    )
    for name in (
        "class_distribution.png",
        "examples.png",
        "image_stats.png",
        "image_stats.csv",
        "summary.json",
    ):
        assert (out / "01" / name).is_file(), name
    papermill.execute_notebook(
        str(REPO / "notebooks" / "02_preprocess.ipynb"),
        str(tmp_path / "02.ipynb"),
        parameters={**common, "OUTPUT_DIR": str(out / "02"), "TOP": 5},
        progress_bar=False,
        cwd=str(REPO / "notebooks"),
    )
    for name in ("train.csv", "val.csv", "test.csv", "summary.json"):
        assert (out / "02" / "manifests" / name).read_bytes() == (tiny_manifest / name).read_bytes()
    assert (
        "identical to" in (tmp_path / "02.ipynb").read_text()
        and ": True" in (tmp_path / "02.ipynb").read_text()
    )


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
    assert differ == {"MODEL", "OUTPUT_DIR"}


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("name", ["03_train_resnet.ipynb", "04_train_effnet.ipynb"])
def test_training_notebooks_run_on_the_tiny_profile(tmp_path, tiny_root, tiny_manifest, name):
    out = tmp_path / "out"
    papermill.execute_notebook(
        str(REPO / "notebooks" / name),
        str(tmp_path / name),
        parameters={
            "DATA_ROOT": str(tiny_root),
            "MANIFEST_DIR": str(tiny_manifest),
            "OUTPUT_DIR": str(out),
            "IMAGE_SIZE": 32,
            "EPOCHS": 1,
            "WORKERS": 0,
            "WANDB_MODE": "disabled",
            "DEVICE": "cpu",
        },
        progress_bar=False,
        cwd=str(REPO / "notebooks"),
    )
    for artefact in (
        "best.pt",
        "last.pt",
        "metrics.json",
        "training_curves.png",
        "test_metrics.json",
        "test_predictions.csv",
    ):
        assert (out / artefact).is_file(), artefact


@pytest.mark.notebook
@pytest.mark.slow
def test_05_runs_on_the_tiny_profile(tmp_path, tiny_root, tiny_manifest):
    from utils import train

    config = train.TrainConfig(
        data_root=str(tiny_root),
        manifest_dir=str(tiny_manifest),
        output_dir=str(tmp_path / "04"),
        model="efficientnet-b2",
        image_size=32,
        epochs=1,
        workers=0,
        wandb_mode="disabled",
    )
    train.train(config, progress=False)
    out = tmp_path / "05"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "05_delf_rerank.ipynb"),
        str(tmp_path / "05.ipynb"),
        parameters={
            "DATA_ROOT": str(tiny_root),
            "MANIFEST_DIR": str(tiny_manifest),
            "OUTPUT_DIR": str(out),
            "RUN_DIR": str(tmp_path),
            "CHECKPOINT": str(tmp_path / "04" / "best.pt"),
            "ATTENTION_EPOCHS": 1,
            "WORKERS": 0,
            "DEVICE": "cpu",
            "K": 5,
        },
        progress_bar=False,
        cwd=str(REPO / "notebooks"),
    )
    results = json.loads((out / "test_results.json").read_text())
    assert set(results) == {
        "retrieval top1",
        "retrieval vote",
        "re-ranked top-3, RootSIFT",
        "re-ranked top-3, DELF",
    }
    for name in ("delf.pt", "gallery.npy", "delf_keypoints.png", "sift_inliers.png"):
        assert (out / name).is_file(), name
