"""Run the numbered notebooks in order with papermill.

``python -m utils pipeline [--data-root DIR] [--profile tiny|default] [--only 01,02]
[--out outputs/RUN]`` executes every ``notebooks/NN_*.ipynb`` (whatever numbered notebooks
exist), writing the executed copy ``OUT/NN_name.ipynb``, its log ``OUT/NN_name.log`` and its
artefacts under ``OUT/NN_name/``. Without ``--data-root`` the embedded mini dataset of the
profile is used (generated under ``data/`` when missing). ``OUT`` defaults to
``outputs/<data root's folder name>``, else ``outputs/<profile>`` (as ``make pipeline``), so a
later ``--only 08`` on the same data root finds the networks of the earlier run.

Each notebook receives, among ``DATA_ROOT``, ``MANIFEST_DIR``, ``OUTPUT_DIR``, ``RUN_DIR``
(the run folder, where earlier notebooks' artefacts are), ``TOP`` and ``PROFILE``, those that
its ``parameters`` cell declares; ``--set NAME=VALUE`` (repeatable; VALUE a Python literal,
else a string) passes more, e.g. ``--set EPOCHS=1 --set DEVICE=cpu``, to every notebook that
declares NAME. On a failing cell the run stops and prints the notebook, the cell and the
error. Kernels talk to the runner over local IPC sockets, not TCP.

A notebook named in `REPEATS` runs again right after itself with other parameters, under its own
name plus a suffix (``OUT/04_train_effnet-lite2-imagenet/``): one driver, two rows of Table 3.
A repeat whose ``MANIFEST_DIR`` is `ALL_LANDMARKS` trains on every landmark of the data root:
it gets ``TOP=0`` and the committed all-landmark manifest of a mini dataset
(``data_manifests/minigld-<profile>-all``), else an empty ``MANIFEST_DIR`` (the notebook builds
the top-0 manifest itself); these two win over the run's own ``MANIFEST_DIR`` and ``TOP``.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import papermill
import traitlets
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError
from papermill.exceptions import PapermillExecutionError

from utils import minigld
from utils.data.gldv2 import (
    KAGGLE_ROOT,
    TRAIN_COLUMNS,
    default_data_root,
    read_csv_checked,
    read_source,
)
from utils.data.manifests import adapted_top
from utils.results import RUN_FILE, write_results

REPO = Path(__file__).resolve().parents[2]
# Top-N landmarks per data source: the report's 100 on GLDv2; fewer on the mini datasets.
PROFILE_TOP = {"tiny": 5, "default": 30}
REAL_TOP = 100
# Notebooks run a second time: stem -> ((suffix of the run's name, its parameters), ...). The
# run's own parameters (``--set``, a test's overrides) take precedence over these, except the
# data of an `ALL_LANDMARKS` repeat (module docstring). 04 again: EfficientNet-Lite2 fine-tuned
# from ImageNet on every landmark, 04's embedded recipe otherwise (the learning rate chosen on
# validation: README, "Table 3"); notebook 08's leaderboard model.
ALL_LANDMARKS = "@all-landmarks"
REPEATS = {
    "04_train_effnet": (
        (
            "-lite2-imagenet",
            {
                "MODEL": "efficientnet-lite2",
                "PRETRAINED": True,
                "LR": 0.001,
                "MANIFEST_DIR": ALL_LANDMARKS,
            },
        ),
    ),
}


# What a repeat changes on real photos (a data root that is no mini dataset): the leaderboard
# model's recipe chosen on gldv2-sample's validation split and 08's tune part (docs/training.md,
# "The leaderboard recipe on real photos"); the generated set keeps the repeat as it is above.
REAL_PHOTO_REPEATS = {"04_train_effnet": {"-lite2-imagenet": {"IMAGE_SIZE": 128}}}


def repeats_for(profile: str) -> dict:
    """`REPEATS` of a run on ``profile``'s mini dataset, with `REAL_PHOTO_REPEATS` on real data.

    ``profile`` is the run's ``PROFILE``: a mini dataset's profile, or empty for any other data
    root (real photos).
    """
    if profile:
        return REPEATS
    return {
        stem: tuple(
            (suffix, {**overrides, **REAL_PHOTO_REPEATS.get(stem, {}).get(suffix, {})})
            for suffix, overrides in runs
        )
        for stem, runs in REPEATS.items()
    }


class IPCKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels listen on IPC sockets beside their connection file."""

    transport = traitlets.CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)


class NotebookFailure(RuntimeError):
    """A notebook stopped on a cell; the message names the notebook, the cell and the error."""

    def __init__(self, notebook: Path, cell: int | None, source: str, error: str, executed: Path):
        self.notebook, self.cell, self.source, self.error = notebook, cell, source, error
        self.executed = executed
        preview = "\n".join(f"    {line}" for line in source.strip().splitlines()[:8])
        where = f"cell {cell}" if cell is not None else "an unknown cell"
        super().__init__(
            f"{notebook.name} failed at {where}:\n{preview}\n{error}\nexecuted copy: {executed}"
        )


@dataclass(frozen=True)
class Step:
    """One notebook to run: its source, where its outputs go, the parameters it adds."""

    notebook: Path
    executed: Path
    log: Path
    output_dir: Path
    overrides: dict = field(default_factory=dict)


def discover(folder: Path, only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` in ``folder``, in order; ``only`` keeps prefixes."""
    notebooks = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if p.is_file())
    if only:
        wanted = {prefix.strip().zfill(2) for prefix in only if prefix.strip()}
        unknown = wanted - {p.name[:2] for p in notebooks}
        if unknown:
            raise ValueError(f"--only names no notebook in {folder}: {', '.join(sorted(unknown))}")
        notebooks = [p for p in notebooks if p.name[:2] in wanted]
    if not notebooks:
        raise ValueError(f"no numbered notebooks (NN_*.ipynb) in {folder}")
    return notebooks


_ADDED_TAGS = ("injected-parameters", "papermill-error-cell-tag")  # cells papermill adds


def _failing_cell(executed: Path) -> tuple[int | None, str]:
    """Index in the source notebook and source of the cell that failed in the executed copy.

    The cell papermill marked with an exception; for a timeout, which it does not mark, the
    last cell that started. Cells papermill added (parameters, error banners) are not counted.
    """
    if not executed.is_file():
        return None, ""
    cells = [
        cell
        for cell in nbformat.read(executed, as_version=4).cells
        if not set(cell.get("metadata", {}).get("tags", [])) & set(_ADDED_TAGS)
    ]
    marks = [cell.get("metadata", {}).get("papermill", {}) for cell in cells]
    failed = [i for i, mark in enumerate(marks) if mark.get("exception")]
    started = [i for i, mark in enumerate(marks) if mark.get("status", "pending") != "pending"]
    index = (failed or started or [None])[-1]
    return (None, "") if index is None else (index, cells[index].source)


def run_notebook(
    step: Step,
    parameters: dict,
    cell_timeout: float | None = None,
    kernel_name: str | None = None,
    progress: bool = True,
    cwd: Path | None = None,
) -> None:
    """Execute one notebook; raise `NotebookFailure` on a failing or timed-out cell.

    The kernel starts in ``cwd`` (default: the notebook's folder).
    """
    declared = papermill.inspect_notebook(str(step.notebook))
    given = {k: v for k, v in parameters.items() if k in declared}
    given["OUTPUT_DIR"] = str(step.output_dir) if "OUTPUT_DIR" in declared else None
    given = {k: v for k, v in given.items() if v is not None}
    step.output_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(step.log, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger = logging.getLogger("papermill")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        papermill.execute_notebook(
            str(step.notebook),
            str(step.executed),
            parameters=given,
            kernel_name=kernel_name,
            kernel_manager_class=IPCKernelManager,
            progress_bar=progress,
            log_output=True,
            cwd=str(cwd or step.notebook.parent),
            execution_timeout=cell_timeout,
        )
    except PapermillExecutionError as err:
        cell, _ = _failing_cell(step.executed)
        raise NotebookFailure(
            step.notebook, cell, err.source, f"{err.ename}: {err.evalue}", step.executed
        ) from err
    except CellTimeoutError as err:
        cell, source = _failing_cell(step.executed)
        raise NotebookFailure(
            step.notebook,
            cell,
            source,
            f"CellTimeoutError: no result after {cell_timeout} s",
            step.executed,
        ) from err
    finally:
        logger.removeHandler(handler)
        handler.close()


def step_parameters(step: Step, parameters: dict) -> dict:
    """What one step runs with: its repeat's overrides under the run's parameters.

    An `ALL_LANDMARKS` manifest resolves to the run's ``ALL_MANIFEST_DIR`` with ``TOP=0``.
    """
    merged = {**step.overrides, **parameters}
    if step.overrides.get("MANIFEST_DIR") == ALL_LANDMARKS:
        merged.update(MANIFEST_DIR=parameters.get("ALL_MANIFEST_DIR", ""), TOP=0)
    return merged


def adopt_manifests(parameters: dict, output_dir: Path) -> dict:
    """The run's parameters, with the manifests a step wrote where the run had none.

    A data root that is no mini dataset (the competition's folder) has no committed manifests:
    the ``manifests`` (and ``manifests-all``) that notebook 02 writes become ``MANIFEST_DIR``
    (and ``ALL_MANIFEST_DIR``) of the notebooks after it.
    """
    adopted = dict(parameters)
    for name, folder in (("MANIFEST_DIR", "manifests"), ("ALL_MANIFEST_DIR", "manifests-all")):
        if not adopted.get(name) and (output_dir / folder / "train.csv").is_file():
            adopted[name] = str(output_dir / folder)
    return adopted


def plan_steps(notebooks: list[Path], out: Path, repeats: dict | None = None) -> list[Step]:
    """Where each notebook's executed copy, log and artefacts go; its `REPEATS` after it."""
    repeats = REPEATS if repeats is None else repeats
    steps = []
    for nb in notebooks:
        runs = [(nb.stem, {})] + [(nb.stem + sfx, o) for sfx, o in repeats.get(nb.stem, ())]
        steps += [Step(nb, out / f"{n}.ipynb", out / f"{n}.log", out / n, o) for n, o in runs]
    return steps


def run_pipeline(
    notebooks: list[Path],
    parameters: dict,
    out: Path,
    cell_timeout: float | None = None,
    kernel_name: str | None = None,
    progress: bool = True,
) -> list[Step]:
    """Run the notebooks in order, stopping at the first failure; then write ``results.md``.

    The parameters offered to every notebook are kept in ``OUT/run.json`` (`RUN_FILE`) for the
    report (the data root, the top-N and how it was chosen).
    """
    out.mkdir(parents=True, exist_ok=True)
    parameters = {**parameters, "RUN_DIR": str(out)}  # where earlier notebooks left artefacts
    (out / RUN_FILE).write_text(json.dumps(parameters, indent=2, default=str), encoding="utf-8")
    steps = plan_steps(notebooks, out, repeats_for(parameters.get("PROFILE", "")))
    rerun = {step.output_dir for step in steps}
    for folder in unfinished_trainings(out):
        if folder not in rerun:
            print(
                f"warning: {folder}: best.pt is newer than test_metrics.json, so its training "
                f"did not finish (a stopped run); later notebooks would read an unfinished "
                f"network: rerun it with --only {folder.name[:2]}",
                flush=True,
            )
    for number, step in enumerate(steps, start=1):
        print(f"[{number}/{len(steps)}] {step.executed.name}", flush=True)
        start = time.perf_counter()
        run_notebook(step, step_parameters(step, parameters), cell_timeout, kernel_name, progress)
        parameters = adopt_manifests(parameters, step.output_dir)
        print(
            f"[{number}/{len(steps)}] {step.executed.name} done in "
            f"{time.perf_counter() - start:.1f} s -> {step.executed}",
            flush=True,
        )
    print(f"results: {write_results(out)}", flush=True)
    return steps


def unfinished_trainings(out: Path) -> list[Path]:
    """Training folders of a run whose ``best.pt`` is newer than their ``test_metrics.json``.

    A training writes ``best.pt`` at each better epoch and ``test_metrics.json`` once it has
    finished, so a later ``best.pt`` (or none of the metrics) means it was stopped midway.
    """
    found = []
    for best in sorted(Path(out).glob("*/best.pt")):
        metrics = best.with_name("test_metrics.json")
        if not metrics.is_file() or metrics.stat().st_mtime < best.stat().st_mtime:
            found.append(best.parent)
    return found


def parse_assignment(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` -> ``(NAME, value)``: VALUE as a Python literal, else the string."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip().isidentifier():
        raise ValueError(f"--set expects NAME=VALUE, not {text!r}")
    try:
        return name.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name.strip(), value


def default_parameters(data_root: Path | None, profile: str, manifest: Path | None) -> dict:
    """The parameters the runner offers every notebook (absolute paths).

    Without ``data_root``: Kaggle's competition folder inside a Kaggle kernel, else the
    embedded dataset of ``profile`` (generated when missing). A mini dataset gets its
    profile's top-N and committed manifest; any other data root the report's top-100, or every
    landmark that can be split when it has fewer (`utils.data.manifests.adapted_top`, logged).
    """
    if data_root is None:
        data_root = default_data_root(REPO / "data" / f"minigld-{profile}")
        if data_root != KAGGLE_ROOT:
            minigld.ensure(data_root, profile)
    mini_profile = minigld.profile_of(data_root)
    top = PROFILE_TOP[mini_profile] if mini_profile else REAL_TOP
    note = f"the {mini_profile} profile's top {top}" if mini_profile else f"top {top}"
    if not mini_profile and (data_root / "train.csv").is_file():
        try:
            top, note = adapted_top(read_source(data_root)[0], REAL_TOP)
        except ValueError as err:  # 02 will stop on it; notebooks without TOP may not need it
            note = f"{err}; TOP left at {top}"
        print(f"pipeline: {data_root}: {note} (TOP={top})", file=sys.stderr)
    if manifest is None and mini_profile:
        candidate = REPO / "data_manifests" / f"minigld-{mini_profile}-top{top}"
        manifest = candidate if candidate.is_dir() else None
    every = REPO / "data_manifests" / f"minigld-{mini_profile}-all" if mini_profile else None
    return {
        "DATA_ROOT": str(data_root.resolve()),
        "MANIFEST_DIR": str(manifest.resolve()) if manifest else "",
        "ALL_MANIFEST_DIR": str(every.resolve()) if every and every.is_dir() else "",
        "TOP": top,
        "TOP_NOTE": note,  # declared by no notebook: for the run's results.md
        "PROFILE": mini_profile or "",
    }


def default_run_name(data_root: Path | None, profile: str) -> str:
    """The run folder's name under ``outputs/``: the data root's folder name, else the profile."""
    return data_root.resolve().name if data_root is not None else profile


def parser() -> argparse.ArgumentParser:
    """Options of the command."""
    parser = argparse.ArgumentParser(
        prog="python -m utils pipeline", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="dataset folder (default: Kaggle's, else the embedded profile)",
    )
    parser.add_argument(
        "--profile",
        choices=sorted(minigld.PROFILES),
        default="default",
        help="embedded dataset profile (when no data root is given)",
    )
    parser.add_argument("--manifest", type=Path, default=None, help="manifest folder to use")
    parser.add_argument("--only", default="", help="comma-separated prefixes, e.g. 01,02")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default: outputs/<data root folder name>, else outputs/<profile>",
    )
    parser.add_argument(
        "--notebooks", type=Path, default=REPO / "notebooks", help="folder of NN_*.ipynb"
    )
    parser.add_argument("--cell-timeout", type=float, default=None, help="seconds per cell")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel (default: the notebook's)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another parameter for the notebooks that declare NAME (repeatable)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parser().parse_args(argv)
    out = (args.out or REPO / "outputs" / default_run_name(args.data_root, args.profile)).resolve()
    try:
        notebooks = discover(args.notebooks, args.only.split(",") if args.only else None)
        parameters = default_parameters(args.data_root, args.profile, args.manifest)
        parameters.update(parse_assignment(item) for item in args.set)
        # fail in one line, before any kernel starts, on a folder that is not a data root
        read_csv_checked(Path(parameters["DATA_ROOT"]) / "train.csv", TRAIN_COLUMNS, nrows=5)
        run_pipeline(notebooks, parameters, out, args.cell_timeout, args.kernel)
    except NotebookFailure as err:
        print(f"pipeline stopped: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"all notebooks ran; outputs in {out}")
    return 0
