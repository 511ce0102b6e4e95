"""The one command line: ``python -m utils COMMAND [options]`` (``--help`` lists the commands).

Each command is a module with ``parser() -> argparse.ArgumentParser`` and
``main(argv) -> int`` (0: success, 1: the work found problems, 2: bad input). The table below
names the module and its one-line help; a module is imported only when its command runs, so
``python -m utils --help`` starts in well under a second.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

# command -> (module with parser() and main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "minigld": ("utils.minigld.generator", "generate the embedded mini dataset (Kaggle layout)"),
    "manifest": ("utils.cli.manifest", "write train/val/test manifests of the top-N landmarks"),
    "import-folders": (
        "utils.cli.import_folders",
        "one folder of photos per landmark -> a folder in the competition's layout",
    ),
    "resize": ("utils.cli.resize", "mirror an image tree at a smaller size (resumable)"),
    "train": ("utils.training.train", "train a classifier (resumable; also under torchrun)"),
    "evaluate": ("utils.training.evaluate", "accuracy and GAP of a checkpoint on a split"),
    "recognize": ("utils.cli.recognize", "recognise photos against a gallery folder"),
    "realphotos": ("utils.retrieval.realphotos", "evaluate recognize on real photos"),
    "gldv2sample": (
        "utils.retrieval.gldv2sample",
        "evaluate recognize's rules on a competition folder of real photos (tune/check)",
    ),
    "nonlandmark": (
        "utils.ood.realphotos",
        "landmark vs non-landmark AUROC on real photos (local verification)",
    ),
    "gap": ("utils.cli.gap", "score a submission against a solution (GAP, accuracy)"),
    "validate": ("utils.cli.validate", "check a submission.csv"),
    "bench": ("utils.bench.cli", "benchmarks: a ratio against a baseline in one run"),
    "pipeline": ("utils.pipeline", "run the numbered notebooks in order with papermill"),
    "results": ("utils.results", "write RUN/results.md from a run folder's metrics files"),
    "demo": ("utils.demo.cli", "Gradio demo: upload a photo, get the landmark and the top 5"),
    "kernels": (
        "utils.kernels.cli",
        "Kaggle kernels: build, package dataset, push, status, output",
    ),
}


def command_module(name: str) -> ModuleType:
    """The module behind command ``name``; KeyError names the known commands."""
    if name not in COMMANDS:
        raise KeyError(f"unknown command {name!r}; choose one of {', '.join(COMMANDS)}")
    return importlib.import_module(COMMANDS[name][0])


def _top_parser() -> argparse.ArgumentParser:
    lines = [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    return argparse.ArgumentParser(
        prog="python -m utils",
        description="Landmark recognition workflow (GLDv2). Commands:\n" + "\n".join(lines),
        epilog="python -m utils COMMAND --help shows the options of a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="python -m utils COMMAND [options]",
    )


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv[0]`` to its command's ``main(argv[1:])``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        top.print_usage(sys.stderr)
        print(
            f"error: unknown command {argv[0]!r}; choose one of {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    return command_module(argv[0]).main(argv[1:])
