"""``python -m utils kernels build|dataset|dryrun|params|push|status|output``: Kaggle kernels.

``build`` writes ``kernels/NN_name/`` for every numbered notebook; ``dataset`` builds the
package dataset folder (``build/kaggle-dataset``); ``dryrun`` runs the committed kernels here
as Kaggle would (`utils.kernels.dryrun`); ``params`` prints a kernel's Kaggle values as JSON,
which papermill's ``-f`` reads (its ``-p`` alone replaces the whole injected cell). ``push``,
``status`` and ``output`` run ``kaggle kernels push/status/output`` on one kernel, named by
number (``05``), folder (``05_delf_rerank``) or slug, with the owner replaced by yours
(``KAGGLE_USERNAME``, kaggle.json or ``--owner``) when the committed placeholder is there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from utils import minigld
from utils.kernels import build, dataset, dryrun
from utils.kernels.table import (
    PACKAGE_DATASET,
    PLACEHOLDER_OWNER,
    WEIGHTS_DATASET,
    check_owner,
    default_owner,
)
from utils.pipeline import parse_assignment

REPO = Path(__file__).resolve().parents[3]
PROG = "python -m utils kernels"


def parser() -> argparse.ArgumentParser:
    """Options of the command and of its subcommands."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="The numbered notebooks as Kaggle kernels: build them, build the package "
        "dataset, push a kernel, check its status, fetch its output.",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", help="what to do")
    sub.required = True

    b = sub.add_parser("build", help="write kernels/NN_name/ for every numbered notebook")
    b.add_argument("--owner", default=None, help="Kaggle user (default: yours, else placeholder)")
    b.add_argument("--out", type=Path, default=REPO / "kernels", help="kernels folder")
    b.add_argument(
        "--notebooks", type=Path, default=REPO / "notebooks", help="folder of NN_*.ipynb"
    )
    b.add_argument(
        "--package-dataset", default=PACKAGE_DATASET, help="[owner/]slug of the wheels dataset"
    )
    b.add_argument(
        "--weights-dataset", default=WEIGHTS_DATASET, help="[owner/]slug of the weights dataset"
    )

    d = sub.add_parser("dataset", help="build the package and its wheels as a Kaggle dataset")
    d.add_argument("--owner", default=None, help="Kaggle user (default: yours, else placeholder)")
    d.add_argument(
        "--out", type=Path, default=REPO / "build" / "kaggle-dataset", help="dataset folder"
    )
    d.add_argument("--slug", default=PACKAGE_DATASET, help="slug of the dataset")
    d.add_argument(
        "--python",
        action="append",
        default=None,
        help="CPython version of the compiled wheels (repeatable; default 3.11 and 3.12)",
    )
    d.add_argument(
        "--package-only",
        action="store_true",
        help="only this package's wheel (offline; no wheels from PyPI)",
    )

    r = sub.add_parser(
        "dryrun",
        help="run the committed kernels here as Kaggle runs them (emulated /kaggle, CPU)",
    )
    r.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="the competition folder, or a mini dataset (default: the tiny profile's)",
    )
    r.add_argument("--root", type=Path, default=REPO / "outputs" / "dryrun", help="emulated roots")
    r.add_argument("--kernels", type=Path, default=REPO / "kernels", help="kernels folder")
    r.add_argument("--only", default="", help="comma-separated numbers; the others' outputs kept")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one parameter; every other Kaggle value stays (default: CPU, 1 epoch)",
    )
    r.add_argument("--wheels", type=Path, default=None, help="package dataset folder to check")
    r.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="REF=PATH",
        help="mount PATH as the declared dataset REF (owner/slug)",
    )
    r.add_argument(
        "--detach",
        action="append",
        default=[],
        metavar="REF",
        help="run as if the metadata did not list REF (e.g. no non-landmark dataset)",
    )
    r.add_argument("--no-rerun", action="store_true", help="skip 08's re-run on another test set")

    v = sub.add_parser(
        "params",
        help="a kernel's Kaggle values for papermill -f (JSON, which is YAML), with --set",
    )
    v.add_argument("name", help="kernel: number (05), folder (05_delf_rerank) or slug")
    v.add_argument("--kernels", type=Path, default=REPO / "kernels", help="kernels folder")
    v.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="override one value"
    )

    for name, help_ in (
        ("push", "upload a kernel and run it on Kaggle (kaggle kernels push)"),
        ("status", "the state of a kernel's latest run (kaggle kernels status)"),
        ("output", "download a kernel's output files (kaggle kernels output)"),
    ):
        s = sub.add_parser(name, help=help_)
        s.add_argument("name", help="kernel: number (05), folder (05_delf_rerank) or slug")
        s.add_argument("--owner", default=None, help="Kaggle user (default: KAGGLE_USERNAME)")
        s.add_argument("--kernels", type=Path, default=REPO / "kernels", help="kernels folder")
        if name == "push":
            s.add_argument(
                "--accelerator",
                default=None,
                help="machine shape, e.g. NvidiaTeslaT4 (default: the metadata's)",
            )
        if name == "output":
            s.add_argument(
                "--path", type=Path, default=None, help="default: outputs/kaggle/NN_name"
            )
            s.add_argument("--force", action="store_true", help="overwrite existing files")
    return p


def find_kernel(name: str, kernels: Path) -> Path:
    """The folder of the kernel called ``name`` (number, folder name or slug)."""
    folders = sorted(p for p in kernels.glob("[0-9][0-9]_*") if (p / build.METADATA_FILE).is_file())
    for folder in folders:
        slug = json.loads((folder / build.METADATA_FILE).read_text())["id"].split("/")[-1]
        if name in (folder.name, folder.name[:2], slug):
            return folder
    known = ", ".join(f.name for f in folders) or "none (run: python -m utils kernels build)"
    raise ValueError(f"no kernel {name!r} in {kernels}; known: {known}")


def with_owner(meta: dict, owner: str) -> dict:
    """``meta`` with its owner, and the sources that owner owns, moved to ``owner``."""
    old = meta["id"].split("/")[0]

    def move(ref: str) -> str:
        head, _, rest = ref.partition("/")
        return f"{owner}/{rest}" if head == old else ref

    moved = {**meta, "id": move(meta["id"])}
    for key in ("dataset_sources", "kernel_sources"):
        moved[key] = [move(ref) for ref in meta.get(key, [])]
    return moved


def _owner(args: argparse.Namespace) -> str:
    owner = check_owner(args.owner, "--owner") if args.owner else default_owner()
    if owner == PLACEHOLDER_OWNER:
        raise ValueError(
            "no Kaggle user: set KAGGLE_USERNAME, put kaggle.json in ~/.kaggle or pass --owner"
        )
    return owner


def _kaggle(arguments: list[str]) -> int:
    """Run the kaggle CLI of this interpreter; 1 when it fails or reports an error."""
    done = subprocess.run(
        [sys.executable, "-m", "kaggle", *arguments], capture_output=True, text=True
    )
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    failed = done.returncode != 0 or "push error" in done.stdout.lower()
    return 1 if failed else 0


def _push(args: argparse.Namespace) -> int:
    folder = find_kernel(args.name, args.kernels)
    meta = with_owner(json.loads((folder / build.METADATA_FILE).read_text()), _owner(args))
    with tempfile.TemporaryDirectory(prefix="kernel-push-") as tmp:
        staged = Path(tmp) / folder.name
        shutil.copytree(folder, staged)
        (staged / build.METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        print(f"pushing {folder.name} as {meta['id']}", flush=True)
        accelerator = ["--accelerator", args.accelerator] if args.accelerator else []
        return _kaggle(["kernels", "push", "-p", str(staged), *accelerator])


def _dryrun(args: argparse.Namespace) -> int:
    data_root = args.data_root
    if data_root is None:
        data_root = REPO / "data" / "minigld-tiny"
        minigld.ensure(data_root, "tiny")
    overrides = {**dryrun.CPU_OVERRIDES, **dict(parse_assignment(item) for item in args.set)}
    datasets = {}
    for item in args.dataset:
        ref, sep, path = item.partition("=")
        if not sep:
            raise ValueError(f"--dataset {item!r}: expected REF=PATH")
        datasets[ref] = Path(path)
    only = [n.strip().zfill(2) for n in args.only.split(",") if n.strip()]
    runs = dryrun.dry_run(
        args.kernels,
        data_root,
        args.root,
        overrides,
        only or None,
        args.wheels,
        datasets,
        tuple(args.detach),
        rerun=not args.no_rerun,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(dryrun.table(runs))
    return 0 if runs and all(run.ok for run in runs) else 1


def _ref(args: argparse.Namespace) -> tuple[Path, str]:
    folder = find_kernel(args.name, args.kernels)
    meta = with_owner(json.loads((folder / build.METADATA_FILE).read_text()), _owner(args))
    return folder, meta["id"]


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; 2 on bad input (a message names the file or notebook)."""
    args = parser().parse_args(argv)
    try:
        if args.action == "build":
            folders = build.build_kernels(
                args.out,
                args.owner,
                args.notebooks,
                args.package_dataset,
                args.weights_dataset,
                warn=lambda line: print(line, file=sys.stderr),
            )
            print(
                f"wrote {len(folders)} kernels in {args.out}: {', '.join(f.name for f in folders)}"
            )
            return 0
        if args.action == "dataset":
            owner = check_owner(args.owner, "--owner") if args.owner else default_owner()
            pythons = tuple(args.python) if args.python else dataset.PYTHONS
            wheels = dataset.build_dataset(args.out, owner, args.slug, pythons, args.package_only)
            print(f"wrote {args.out}: {dataset.METADATA_FILE} and {len(wheels)} wheels")
            for wheel in wheels:
                print(f"  {wheel.name}")
            return 0
        if args.action == "push":
            return _push(args)
        if args.action == "dryrun":
            return _dryrun(args)
        if args.action == "params":
            folder = find_kernel(args.name, args.kernels)
            values = dryrun.injected_values(folder / f"{folder.name}.ipynb")
            values.update(parse_assignment(item) for item in args.set)
            print(json.dumps(values, indent=2))  # JSON is YAML: papermill -f reads it
            return 0
        folder, ref = _ref(args)
        if args.action == "status":
            return _kaggle(["kernels", "status", ref])
        path = args.path or REPO / "outputs" / "kaggle" / folder.name
        force = ["--force"] if args.force else []
        return _kaggle(["kernels", "output", ref, "--path", str(path), *force])
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
