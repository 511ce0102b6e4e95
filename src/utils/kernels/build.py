"""``kernels/NN_name/``: a numbered notebook prepared for Kaggle and its ``kernel-metadata.json``.

The notebook gets its Kaggle parameters (`utils.kernels.table`) by papermill's prepare-only
mode (an ``injected-parameters`` cell, nothing executed) and an install cell at its top (the
offline ``pip install`` of `utils.kernels.dataset.install_line`). The output is deterministic
(fixed cell ids, no outputs, no papermill run metadata), so the committed kernels can be
compared byte for byte with a rebuild.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import nbformat
import papermill

from utils.kernels.dataset import install_line
from utils.kernels.table import (
    COMPETITION,
    GPU_SHAPE,
    KAGGLE_INPUT,
    PACKAGE_DATASET,
    WEIGHTS_DATASET,
    Mount,
    Output,
    check_owner,
    common_parameters,
    default_owner,
    kernel_slug,
    kernel_title,
    spec_of,
)
from utils.pipeline import discover

REPO = Path(__file__).resolve().parents[3]
METADATA_FILE = "kernel-metadata.json"
INSTALL_CELL_ID = "kaggle-install"
PARAMETERS_CELL_ID = "injected-parameters"
_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


def _fits(value: object, type_name: str) -> bool:
    """Whether ``value`` suits a parameter papermill inferred as ``type_name``."""
    expected = _TYPES.get(type_name)
    if expected is None:  # no annotation papermill understood: anything goes
        return True
    return isinstance(value, bool) == (type_name == "bool") and isinstance(value, expected)


def _owner_of(source: str, owner: str) -> str:
    """``owner/slug`` for a bare slug, ``source`` unchanged when it names its owner."""
    return source if "/" in source else f"{owner}/{source}"


def _resolve(value: object, stems: dict[str, str], notebook: str) -> tuple[object, str | None]:
    """A table value as the kernel sees it, and the number of the kernel it reads, if any."""
    if not isinstance(value, Output | Mount):
        return value, None
    if value.number not in stems:
        raise ValueError(
            f"kernels table: {notebook} reads the output of notebook {value.number}, "
            f"but there is no {value.number}_*.ipynb"
        )
    stem = stems[value.number]
    mount = f"{KAGGLE_INPUT}/{kernel_slug(stem)}"
    if isinstance(value, Mount):
        return mount, value.number
    return "/".join(p for p in (mount, stem, value.path) if p), value.number


def kaggle_parameters(notebook: Path, stems: dict[str, str]) -> tuple[dict, list[str], bool]:
    """``(parameters, numbers of the kernels read, weights needed)`` of one notebook.

    Only parameters that the notebook declares are kept; a value whose type differs from the
    declared one is a ValueError naming the notebook.
    """
    spec = spec_of(notebook.name[:2])
    declared = papermill.inspect_notebook(str(notebook))
    offered = {**common_parameters(notebook.stem, spec.gpu), **spec.parameters}
    given, reads = {}, []
    for name, value in offered.items():
        if name not in declared:
            continue
        value, read = _resolve(value, stems, notebook.name)
        if not _fits(value, declared[name]["inferred_type_name"]):
            raise ValueError(
                f"{notebook}: parameter {name} is declared "
                f"{declared[name]['inferred_type_name']}, the kernels table gives {value!r}"
            )
        given[name] = value
        if read and read not in reads:
            reads.append(read)
    return given, sorted(reads), "PRETRAINED" in declared


def local_defaults_left(notebook: Path, given: dict) -> list[str]:
    """Declared parameters that keep a repository path (``../...``) as their value on Kaggle."""
    declared = papermill.inspect_notebook(str(notebook))
    return [
        name
        for name, info in declared.items()
        if name not in given and str(info["default"]).strip("\"'").startswith("../")
    ]


def metadata(
    stem: str,
    owner: str,
    gpu: bool,
    reads: list[str],
    stems: dict[str, str],
    weights: bool,
    package_dataset: str = PACKAGE_DATASET,
    weights_dataset: str = WEIGHTS_DATASET,
    extra: tuple[str, ...] = (),
) -> dict:
    """The ``kernel-metadata.json`` of the kernel of notebook ``stem`` (``extra``: datasets)."""
    slug = kernel_slug(stem)
    datasets = [package_dataset] + ([weights_dataset] if weights else []) + list(extra)
    meta = {
        "id": f"{owner}/{slug}",
        "title": kernel_title(slug),
        "code_file": f"{stem}.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": True,
        "enable_gpu": gpu,
        "enable_tpu": False,
        "enable_internet": False,
        "competition_sources": [COMPETITION],
        "dataset_sources": [_owner_of(d, owner) for d in datasets],
        "kernel_sources": [f"{owner}/{kernel_slug(stems[n])}" for n in reads],
        "model_sources": [],
    }
    if gpu:
        meta["machine_shape"] = GPU_SHAPE
    return meta


def prepare_notebook(notebook: Path, target: Path, parameters: dict, install: str) -> None:
    """Write ``notebook`` with ``parameters`` injected and the install cell first."""
    with tempfile.TemporaryDirectory(prefix="kernel-") as tmp:
        prepared = Path(tmp) / notebook.name
        logging.getLogger("papermill").setLevel(logging.WARNING)
        papermill.execute_notebook(
            str(notebook),
            str(prepared),
            parameters=parameters,
            prepare_only=True,
            progress_bar=False,
            log_output=False,
        )
        nb = nbformat.read(prepared, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        if not cell.metadata.get("tags", True):
            del cell.metadata["tags"]
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = PARAMETERS_CELL_ID
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    header = (
        f"# Generated by `python -m utils kernels build` from notebooks/{notebook.name}: "
        "edit that notebook, then rebuild.\n"
        "# Kaggle kernels run offline: install the package and the wheels the image lacks "
        "from the package dataset.\n"
    )
    cell = nbformat.v4.new_code_cell(header + install, id=INSTALL_CELL_ID)
    cell.metadata["tags"] = ["kaggle-install"]
    nb.cells.insert(0, cell)
    nbformat.validate(nb)
    nbformat.write(nb, target)


def build_kernels(
    out: Path = REPO / "kernels",
    owner: str | None = None,
    notebooks_dir: Path = REPO / "notebooks",
    package_dataset: str = PACKAGE_DATASET,
    weights_dataset: str = WEIGHTS_DATASET,
    warn=print,
) -> list[Path]:
    """Write ``out/NN_name/`` for every numbered notebook; return the kernel folders.

    Generated folders of notebooks that no longer exist are removed; other files in ``out``
    (its README) are left alone.
    """
    owner = check_owner(owner, "--owner") if owner else default_owner()
    notebooks = discover(notebooks_dir)
    stems = {nb.name[:2]: nb.stem for nb in notebooks}
    dataset_slug = package_dataset.rsplit("/", 1)[-1]
    install = install_line(dataset_slug)
    out.mkdir(parents=True, exist_ok=True)
    folders = []
    for notebook in notebooks:
        spec = spec_of(notebook.name[:2])
        parameters, reads, weights = kaggle_parameters(notebook, stems)
        left = local_defaults_left(notebook, parameters)
        if left:
            warn(f"note: {notebook.name}: {', '.join(left)} keep their local defaults on Kaggle")
        folder = out / notebook.stem
        folder.mkdir(exist_ok=True)
        prepare_notebook(notebook, folder / notebook.name, parameters, install)
        meta = metadata(
            notebook.stem,
            owner,
            spec.gpu,
            reads,
            stems,
            weights,
            package_dataset,
            weights_dataset,
            spec.datasets,
        )
        text = json.dumps(meta, indent=2) + "\n"
        (folder / METADATA_FILE).write_text(text, encoding="utf-8")
        for stale in folder.iterdir():
            if stale.name not in (METADATA_FILE, notebook.name):
                stale.unlink() if stale.is_file() else shutil.rmtree(stale)
        folders.append(folder)
    for old in out.glob("[0-9][0-9]_*"):
        if old.is_dir() and (old / METADATA_FILE).is_file() and old not in folders:
            shutil.rmtree(old)
    return folders
