"""The package's floors: a module imports only its own floor and the floors below it.

Floors (low to high): the ground (``data/``, ``metrics``, ``submission``, ``kaggle_paths``),
then ``minigld/`` and ``models/``, ``training/``, ``retrieval/``, ``ood/``, ``inference/``, and
the faces (``bench/``, ``pipeline``, ``plots``, ``cli/``, ``kernels``, ``demo``, ``__main__``).
Every import is checked, those inside functions too.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "utils"
FLOORS = {
    "data": 0,
    "metrics": 0,
    "submission": 0,
    "kaggle_paths": 0,
    "minigld": 1,
    "models": 1,
    "training": 2,
    "retrieval": 3,
    "ood": 4,
    "inference": 5,
    "bench": 6,
    "pipeline": 6,
    "plots": 6,
    "results": 6,
    "cli": 6,
    "kernels": 6,
    "demo": 6,
    "__main__": 6,
}


def part_of(module: str) -> str:
    """``utils.data.images`` -> ``data``; ``utils.metrics`` -> ``metrics``."""
    return module.split(".")[1]


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every ``utils.*`` import in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "utils":
                names = [f"utils.{alias.name}" for alias in node.names]
            found += [(node.lineno, name) for name in names if name.startswith("utils.")]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("utils.")]
    return found


def modules() -> list[Path]:
    return sorted(
        p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE
    )


def test_every_module_has_a_floor():
    parts = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in modules()}
    assert parts <= set(FLOORS), f"add a floor for {sorted(parts - set(FLOORS))}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_floor(path):
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    upward = [
        f"line {line}: {name}"
        for line, name in imports_of(path)
        if FLOORS[part_of(name)] > FLOORS[own]
    ]
    assert not upward, f"{path.name} (floor {FLOORS[own]}) imports upward: {upward}"


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from utils.training.train import train\n")
    assert imports_of(bad) == [(2, "utils.training.train")]
    assert FLOORS[part_of("utils.training.train")] > FLOORS["data"]
