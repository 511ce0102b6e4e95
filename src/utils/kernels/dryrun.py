"""``python -m utils kernels dryrun``: the committed kernels, run here as Kaggle runs them.

Each kernel of ``kernels/`` runs in dependency order (its ``kernel_sources``) in an emulated
``/kaggle`` of its own, ``ROOT/NN_name/kaggle/``:

- ``input/`` holds only the sources its ``kernel-metadata.json`` declares, each under its slug:
  the competition folder stripped to the four entries Kaggle ships (`COMPETITION_ENTRIES`), the
  package dataset (``--wheels``, else an empty folder and the install cell is not run), a
  weights dataset of randomly initialised files under the expected names (`weights_dataset`),
  the non-landmark dataset (the data root's ``non_landmark/`` photos in CelebA's layout, or
  ``--dataset REF=PATH``) and the working folder of every kernel it reads. A declared source
  that is missing stops the kernel with a message naming both. Inputs are read-only on Kaggle;
  here a kernel that changes a file under ``input/`` fails (a snapshot before and after).
- ``working/`` starts empty and is the kernel's current folder; what the kernel leaves there is
  what its dependents get.

The kernel's parameters are the values of its injected cell with ``/kaggle`` moved to the
emulated root (papermill replaces the whole injected cell, so every value is passed again),
then ``overrides`` for the parameters it declares (CPU, one epoch: `CPU_OVERRIDES`; on a mini
dataset also its profile's ``TOP``, since Kaggle's 100 exceeds its landmarks). The kernel
process sees ``KAGGLE_KERNEL_RUN_TYPE=Batch`` and ``$LANDMARK_KAGGLE_ROOT`` (`utils.kaggle_paths`),
so code that looks in Kaggle's folders looks in the emulated ones. After the chain, 08 runs once
more on another test set and a train set that lists a subset of the rows, the other files gone
(`rerun_competition`), and its submission is checked against the new test ids. Not emulated:
the network (the kernels must not need it; nothing here blocks it) and Kaggle's image (the
kernels run in this environment).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pandas as pd
import papermill

from utils import minigld
from utils.data.gldv2 import image_path, read_test_ids
from utils.data.images import image_files
from utils.kaggle_paths import KAGGLE, ROOT_ENV
from utils.kernels.build import INSTALL_CELL_ID, METADATA_FILE
from utils.kernels.table import (
    COMPETITION,
    KAGGLE_INPUT,
    NON_LANDMARK_DATASET,
    PACKAGE_DATASET,
    WEIGHTS_DATASET,
)
from utils.models.weights import KNOWN_FILES
from utils.pipeline import PROFILE_TOP, NotebookFailure, Step, run_notebook
from utils.submission import validate_submission

COMPETITION_ENTRIES = ("train.csv", "sample_submission.csv", "train", "test")
# one epoch on the CPU at a small size; every other value stays the kernel's own
CPU_OVERRIDES = {
    "DEVICE": "cpu",
    "WORKERS": 0,
    "EPOCHS": 1,
    "ATTENTION_EPOCHS": 1,
    "IMAGE_SIZE": 64,
    "BATCH_SIZE": 16,
    "WANDB_MODE": "disabled",
}
RERUN = "08_submission-rerun"


class DryRunError(RuntimeError):
    """A kernel could not run as on Kaggle; the message names the kernel and the cause."""


@dataclass(frozen=True)
class Kernel:
    """One committed kernel: its folder, notebook, metadata and injected Kaggle values."""

    folder: Path
    notebook: Path
    meta: dict
    values: dict

    @property
    def stem(self) -> str:
        """The kernel's folder name, ``NN_name``."""
        return self.folder.name

    @property
    def slug(self) -> str:
        """The slug of its ``id`` (what readers mount it as)."""
        return self.meta["id"].split("/")[-1]

    def sources(self) -> list[str]:
        """Every declared source: competitions, datasets (``owner/slug``), kernels."""
        meta = self.meta
        return [
            *meta.get("competition_sources", []),
            *meta.get("dataset_sources", []),
            *meta.get("kernel_sources", []),
        ]


@dataclass
class KernelRun:
    """What one kernel did in the dry run (a row of `table`)."""

    stem: str
    ran: bool = False
    seconds: float = 0.0
    wrote: str = ""
    expected: list[tuple[str, str, bool]] = field(default_factory=list)  # (reader, path, found)
    error: str = ""

    @property
    def ok(self) -> bool:
        """Ran, no error, and every path its readers expect is there."""
        return self.ran and not self.error and all(found for *_, found in self.expected)


def injected_values(notebook: Path) -> dict:
    """The assignments of the notebook's ``injected-parameters`` cell (plain literals)."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            values = {}
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                    values[node.targets[0].id] = ast.literal_eval(node.value)
            return values
    raise DryRunError(
        f"{notebook}: no injected-parameters cell (run: python -m utils kernels build)"
    )


def read_kernels(kernels_dir: Path) -> list[Kernel]:
    """The committed kernels of ``kernels_dir``, in dependency order (readers after sources)."""
    found = {}
    for folder in sorted(kernels_dir.glob("[0-9][0-9]_*")):
        if not (folder / METADATA_FILE).is_file():
            continue
        meta = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
        notebook = folder / meta["code_file"]
        found[meta["id"]] = Kernel(folder, notebook, meta, injected_values(notebook))
    if not found:
        raise DryRunError(f"no kernels in {kernels_dir} (run: python -m utils kernels build)")
    ordered: list[Kernel] = []
    while len(ordered) < len(found):
        done = {k.meta["id"] for k in ordered}
        ready = [
            k
            for k in found.values()
            if k not in ordered and all(s in done for s in k.meta["kernel_sources"] if s in found)
        ]
        if not ready:
            raise DryRunError(f"kernels in {kernels_dir} read each other in a circle")
        ordered.append(min(ready, key=lambda k: k.stem))
    return ordered


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source.resolve(), target_is_directory=source.is_dir())


def competition_folder(data_root: Path, target: Path) -> Path:
    """``target`` holding only the entries of `COMPETITION_ENTRIES` of ``data_root`` (links)."""
    missing = [name for name in COMPETITION_ENTRIES if not (data_root / name).exists()]
    if missing:
        raise DryRunError(
            f"{data_root}: not in the competition's layout, missing {', '.join(missing)}"
        )
    target.mkdir(parents=True, exist_ok=True)
    for name in COMPETITION_ENTRIES:
        _link(data_root / name, target / name)
    return target


def _kept(image_id: str, salt: str, one_in: int) -> bool:
    digest = hashlib.sha256(f"{salt}:{image_id}".encode()).digest()
    return digest[0] % one_in != 0


def rerun_competition(data_root: Path, target: Path, gone: int = 2) -> tuple[Path, list[str]]:
    """Another test set and a smaller train set, as in a hidden re-run; returns the new ids.

    ``train.csv`` lists about three rows in four (fixed by a hash of the id); the files of the
    other rows are gone, and so are the files of ``gone`` listed rows (a re-run's train set
    need not be complete). The test set is every other test photo under a new id.
    """
    train = pd.read_csv(data_root / "train.csv", dtype={"id": str})
    listed = train[[_kept(i, "rerun-train", 4) for i in train["id"]]]
    target.mkdir(parents=True, exist_ok=True)
    listed.to_csv(target / "train.csv", index=False)
    for image_id in listed["id"].iloc[gone:]:
        _link(image_path(data_root, image_id), image_path(target, image_id))
    (target / "train").mkdir(exist_ok=True)
    new_ids = []
    for image_id in read_test_ids(data_root)[::2]:
        new_id = hashlib.sha256(f"rerun-test:{image_id}".encode()).hexdigest()[:16]
        _link(image_path(data_root, image_id, "test"), image_path(target, new_id, "test"))
        new_ids.append(new_id)
    pd.DataFrame({"id": new_ids, "landmarks": ""}).to_csv(
        target / "sample_submission.csv", index=False
    )
    return target, new_ids


def weights_dataset(target: Path) -> Path:
    """``target`` with randomly initialised weights under each backbone's expected file name.

    The loading code runs as on Kaggle (file names, ``weights_only=True``); the numbers are not
    ImageNet's, which nothing in a dry run needs.
    """
    import torch
    import torchvision
    from efficientnet_pytorch import EfficientNet

    target.mkdir(parents=True, exist_ok=True)
    makers = {
        "resnet50": lambda: torchvision.models.resnet50(weights=None),
        "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(weights=None),
        "efficientnet-b2": lambda: EfficientNet.from_name("efficientnet-b2"),
    }
    for name, make in makers.items():
        path = target / KNOWN_FILES[name][0]
        if not path.is_file():
            torch.manual_seed(0)
            torch.save(make().state_dict(), path)
    return target


def non_landmark_dataset(data_root: Path, target: Path) -> Path | None:
    """The data root's ``non_landmark/`` photos in CelebA's Kaggle layout; None without any."""
    photos = (
        image_files(data_root / "non_landmark") if (data_root / "non_landmark").is_dir() else []
    )
    if not photos:
        return None
    folder = target / "img_align_celeba" / "img_align_celeba"
    for number, photo in enumerate(photos, 1):
        _link(photo, folder / f"{number:06d}{photo.suffix.lower()}")
    return target


def _slug(ref: str) -> str:
    return ref.split("/")[-1]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime_ns)}`` of every file under ``folder`` (links followed)."""
    shot = {}
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            shot[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns)
    return shot


def _rewrite(value: object, kaggle: Path) -> object:
    if isinstance(value, str) and (value == str(KAGGLE) or value.startswith(f"{KAGGLE}/")):
        return str(kaggle) + value[len(str(KAGGLE)) :]
    return value


def _describe(folder: Path) -> str:
    files = [p for p in folder.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    tops = sorted({p.relative_to(folder).parts[0] for p in files})
    shown = ", ".join(tops[:4]) + (", ..." if len(tops) > 4 else "")
    return f"{len(files)} files, {size / 1e6:.1f} MB ({shown or 'nothing'})"


@contextmanager
def _kaggle_environment(kaggle: Path) -> Iterator[None]:
    """The kernel process's environment: Kaggle's run type and the emulated root."""
    saved = {name: os.environ.get(name) for name in ("KAGGLE_KERNEL_RUN_TYPE", ROOT_ENV)}
    os.environ.update({"KAGGLE_KERNEL_RUN_TYPE": "Batch", ROOT_ENV: str(kaggle)})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _without_install(kernel: Kernel, target: Path, wheels: Path | None, kaggle: Path) -> Path:
    """The kernel's notebook with its install cell checked, not run (``pip --dry-run``)."""
    nb = nbformat.read(kernel.notebook, as_version=4)
    for cell in nb.cells:
        if cell.get("id") == INSTALL_CELL_ID:
            line = next(line for line in cell.source.splitlines() if line.startswith("!pip"))
            if wheels is None:
                cell.source = f"# dry run without --wheels: not run\n# {line}"
            else:
                line = line.replace(f"{KAGGLE}/", f"{kaggle}/").replace(
                    " install ", " install --dry-run ", 1
                )
                cell.source = f"# dry run: the wheels must resolve, nothing is installed\n{line}"
    nbformat.write(nb, target)
    return target


def expected_paths(kernels: list[Kernel]) -> dict[str, list[tuple[str, str, str]]]:
    """``{slug: [(reader stem, parameter, path inside that kernel's output)]}``."""
    expected: dict[str, list[tuple[str, str, str]]] = {}
    mounts = f"{KAGGLE_INPUT}/"
    for reader in kernels:
        for name, value in reader.values.items():
            if not isinstance(value, str) or not value.startswith(mounts):
                continue
            slug, _, inside = value[len(mounts) :].partition("/")
            if inside and any(_slug(s) == slug for s in reader.meta["kernel_sources"]):
                expected.setdefault(slug, []).append((reader.stem, name, inside))
    return expected


def run_kernel(
    kernel: Kernel,
    kaggle: Path,
    provided: Mapping[str, Path],
    overrides: Mapping[str, object],
    wheels: Path | None = None,
    detach: tuple[str, ...] = (),
    log: Callable[[str], None] = print,
) -> float:
    """Run one kernel in the emulated ``kaggle`` folder; return its seconds.

    Raises:
        DryRunError: a declared source is missing, the kernel changed its input, or a cell
            failed (the message names the kernel, and the cell and error).
    """
    if kaggle.exists():
        shutil.rmtree(kaggle)
    inputs, working = kaggle / "input", kaggle / "working"
    working.mkdir(parents=True)
    for ref in kernel.sources():
        if ref in detach:
            continue
        source = provided.get(ref) or provided.get(_slug(ref))
        if source is None or not source.exists():
            raise DryRunError(
                f"{kernel.stem}: declared source {ref} is missing (a kernel source runs before "
                "its readers; a dataset needs --dataset REF=PATH)"
            )
        _link(source, inputs / _slug(ref))
    inputs.mkdir(exist_ok=True)
    declared = papermill.inspect_notebook(str(kernel.notebook))
    values = {name: _rewrite(value, kaggle) for name, value in kernel.values.items()}
    values.update({k: v for k, v in overrides.items() if k in declared})
    notebook = _without_install(kernel, kaggle.parent / kernel.notebook.name, wheels, kaggle)
    before = {p.name: _snapshot(p) for p in inputs.iterdir()}
    step = Step(
        notebook,
        kaggle.parent / f"{kernel.stem}.executed.ipynb",
        kaggle.parent / f"{kernel.stem}.log",
        Path(values.get("OUTPUT_DIR", working)),
    )
    log(f"{kernel.stem}: running in {kaggle}")
    started = time.perf_counter()
    try:
        with _kaggle_environment(kaggle):
            run_notebook(step, values, progress=False, cwd=working)
    except NotebookFailure as err:
        raise DryRunError(str(err)) from err  # names the notebook, the cell and the error
    seconds = time.perf_counter() - started
    changed = [name for name, shot in before.items() if _snapshot(inputs / name) != shot]
    if changed:
        raise DryRunError(f"{kernel.stem}: changed its read-only input {', '.join(changed)}")
    return seconds


def dry_run(
    kernels_dir: Path,
    data_root: Path,
    root: Path,
    overrides: Mapping[str, object] = CPU_OVERRIDES,
    only: list[str] | None = None,
    wheels: Path | None = None,
    datasets: Mapping[str, Path] | None = None,
    detach: tuple[str, ...] = (),
    rerun: bool = True,
    log: Callable[[str], None] = print,
) -> list[KernelRun]:
    """Run the kernels (``only``: these numbers; the others' outputs already under ``root``).

    Stops at the first kernel that fails (its row says why); returns a row per kernel tried.
    """
    data_root, root = Path(data_root), Path(root)
    profile = minigld.profile_of(data_root)
    if profile and "TOP" not in overrides:  # Kaggle's top-100 exceeds a mini dataset
        overrides = {**overrides, "TOP": PROFILE_TOP[profile]}
    kernels = read_kernels(kernels_dir)
    unknown = sorted(set(only or ()) - {k.stem[:2] for k in kernels})
    if unknown:
        raise ValueError(f"--only names no kernel in {kernels_dir}: {', '.join(unknown)}")
    chosen = [k for k in kernels if not only or k.stem[:2] in only]
    root.mkdir(parents=True, exist_ok=True)
    shared = root / "datasets"
    for stale in ("competition", "competition-rerun", "non-landmarks"):  # links of a former run
        if (shared / stale).is_dir():
            shutil.rmtree(shared / stale)  # removes the links, never what they point to
    provided: dict[str, Path] = {
        COMPETITION: competition_folder(data_root, shared / "competition"),
        PACKAGE_DATASET: wheels or (shared / "wheels"),
        WEIGHTS_DATASET: weights_dataset(shared / "weights"),
    }
    (shared / "wheels").mkdir(exist_ok=True)
    celeba = non_landmark_dataset(data_root, shared / "non-landmarks")
    if celeba is not None:
        provided[NON_LANDMARK_DATASET] = celeba
    provided.update({ref: Path(path) for ref, path in (datasets or {}).items()})
    for kernel in kernels:  # every kernel's output, run now or before
        provided[kernel.slug] = root / kernel.stem / "kaggle" / "working"
    expected = expected_paths(kernels)
    runs = []
    for kernel in chosen:
        row = KernelRun(kernel.stem)
        runs.append(row)
        kaggle = root / kernel.stem / "kaggle"
        if not _attempt(row, kernel, kaggle, provided, overrides, wheels, detach, log):
            return runs
        working = provided[kernel.slug]
        for reader, name, inside in expected.get(kernel.slug, []):
            row.expected.append((reader, f"{name}={inside}", (working / inside).exists()))
    last = chosen[-1] if chosen else None
    if rerun and last is not None and last.stem.startswith("08"):
        runs.append(_rerun(last, data_root, root, provided, overrides, wheels, detach, log))
    return runs


def _attempt(row, kernel, kaggle, provided, overrides, wheels, detach, log) -> bool:
    """Run ``kernel`` in the emulated ``kaggle`` folder, filling ``row``; False if it failed."""
    try:
        row.seconds = run_kernel(kernel, kaggle, provided, overrides, wheels, detach, log)
    except DryRunError as err:
        row.error = str(err)
        return False
    row.ran = True
    row.wrote = _describe(kaggle / "working")
    return True


def _rerun(kernel, data_root, root, provided, overrides, wheels, detach, log) -> KernelRun:
    """08 again on another test set and a smaller train set; its submission checked."""
    row = KernelRun(RERUN)
    folder, new_ids = rerun_competition(data_root, root / "datasets" / "competition-rerun")
    kaggle = root / RERUN / "kaggle"
    rerun_inputs = {**provided, COMPETITION: folder}
    if not _attempt(row, kernel, kaggle, rerun_inputs, overrides, wheels, detach, log):
        return row
    submission = kaggle / "working" / "submission.csv"
    problems = validate_submission(submission, test_ids=new_ids) if submission.is_file() else []
    row.expected.append(("Kaggle", "submission.csv", submission.is_file()))
    if problems:
        row.error = f"{submission}: " + "; ".join(problems)
    return row


def table(runs: list[KernelRun]) -> str:
    """The dry run as a Markdown table: kernel, ran, seconds, wrote, what readers expect."""
    lines = [
        "| kernel | ran | seconds | wrote | expected by its readers |",
        "|---|---|---|---|---|",
    ]
    for row in runs:
        expected = "; ".join(
            f"{reader}: {path} {'found' if found else 'MISSING'}"
            for reader, path, found in row.expected
        )
        ran = "yes" if row.ran else "FAILED"
        lines.append(
            f"| {row.stem} | {ran} | {row.seconds:.0f} | {row.wrote or '-'} | {expected or '-'} |"
        )
    for row in runs:
        if row.error:
            lines += ["", f"{row.stem}: {row.error}"]
    return "\n".join(lines)
