"""Project wiring: pins agree, CI calls the README's test command, no import-time work."""

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_environment_yml_carries_the_same_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    pins = set(project["dependencies"]) | set(extras["dev"]) | set(extras["demo"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip) == pins
    assert "python=3.11" in env["dependencies"]
    assert all("==" in pin for pin in pins)


def test_ci_runs_make_test_and_readme_documents_it():
    assert "make test" in (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    head = readme[:2500]
    assert "make test" in head and "make pipeline" in head


def test_importing_the_package_does_no_work():
    code = (
        "import sys, utils, utils.cli, utils.data.gldv2, utils.data.images, utils.data.eda, "
        "utils.data.manifests, utils.minigld, utils.pipeline, utils.metrics, utils.submission\n"
        "assert 'torch' not in sys.modules, 'torch imported at import time'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_the_wheel_does_not_require_gradio():
    """Only the demo needs it: a Kaggle kernel's ``pip check`` must not ask for it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.lower().startswith("gradio")]
    assert project["optional-dependencies"]["demo"] == ["gradio==6.31.0"]
