"""What each numbered notebook gets as a Kaggle kernel; Kaggle's names for kernels and owner.

On Kaggle a kernel writes to ``/kaggle/working``; a kernel that lists another in its
``kernel_sources`` sees that kernel's output read-only under ``/kaggle/input/<its slug>/``.
Every notebook here writes under ``OUTPUT_DIR = /kaggle/working/<NN_name>``, so the mount of
a kernel looks like a pipeline run folder (``RUN_DIR``) holding that one notebook: notebook
04's checkpoint is ``/kaggle/input/gldv2-04-train-effnet/04_train_effnet/best.pt``.

`TABLE` maps a notebook number to its `KernelSpec`; a number missing from it gets `DEFAULT`
(GPU, manifests from 02), so a new notebook gets a kernel as soon as it exists. Only the
parameters that a notebook's ``parameters`` cell declares are passed to it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from utils.kaggle_paths import KAGGLE

KAGGLE_INPUT = f"{KAGGLE}/input"
KAGGLE_WORKING = f"{KAGGLE}/working"
COMPETITION = "landmark-recognition-2021"
# T4 x2 ("NvidiaTeslaT4" is Kaggle's shape name for two T4s); the P100 is retired.
GPU_SHAPE = "NvidiaTeslaT4"
# Written into the committed kernels; `python -m utils kernels push` replaces it by your name.
PLACEHOLDER_OWNER = "your-kaggle-username"
SLUG_PREFIX = "gldv2"
PACKAGE_DATASET = "landmark-recognition-wheels"  # python -m utils kernels dataset
WEIGHTS_DATASET = "gldv2-imagenet-weights"  # ImageNet .pth files at its root (see README)
# Non-landmark photos for notebook 07 (the competition has none): CelebA's aligned faces, as
# Kaggle's public copy nests them (img_align_celeba/img_align_celeba/*.jpg). A Kaggle copy of
# Caltech101 (101_ObjectCategories/) or SUN397 (SUN397/) is found the same way when attached.
NON_LANDMARK_DATASET = "jessicali9530/celeba-dataset"

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Output:
    """``path`` in the output of notebook ``number``'s kernel (under its ``OUTPUT_DIR``)."""

    number: str
    path: str = ""


@dataclass(frozen=True)
class Mount:
    """The folder where notebook ``number``'s kernel output is mounted (a ``RUN_DIR``)."""

    number: str


@dataclass(frozen=True)
class KernelSpec:
    """One notebook on Kaggle: GPU or not, and its parameters beyond the common ones.

    A parameter value that is an `Output` or a `Mount` makes the kernel read that notebook's
    kernel output (``kernel_sources``). A notebook that declares ``PRETRAINED`` also gets the
    weights dataset; ``datasets`` are public Kaggle datasets the kernel attaches as well.
    """

    gpu: bool
    parameters: Mapping[str, object] = field(default_factory=dict)
    datasets: tuple[str, ...] = ()  # public datasets (owner/slug) attached besides ours


MANIFESTS = Output("02", "manifests")  # notebook 02 writes OUTPUT_DIR/manifests
# the report's recipe for pretrained backbones on a T4 (the notebooks default to the embedded
# dataset's from-scratch CPU recipe)
TRAINING = {
    "MANIFEST_DIR": MANIFESTS,
    "PRETRAINED": True,
    "EPOCHS": 15,
    "LR": 1e-4,
    "BATCH_SIZE": 32,
    "WARMUP_EPOCHS": 0.0,
    "LABEL_SMOOTHING": 0.0,
    "CACHE": False,
    "THREADS": 0,
}
# a notebook that reads 04's checkpoint (and the run folder around it)
AFTER_04 = {
    "MANIFEST_DIR": MANIFESTS,
    "RUN_DIR": Mount("04"),
    "CHECKPOINT": Output("04", "best.pt"),
}

TABLE: dict[str, KernelSpec] = {
    "01": KernelSpec(gpu=False),
    "02": KernelSpec(gpu=False, parameters={"TOP": 100}),
    "03": KernelSpec(gpu=True, parameters={**TRAINING, "IMAGE_SIZE": 224}),
    "04": KernelSpec(gpu=True, parameters={**TRAINING, "IMAGE_SIZE": 260}),
    "05": KernelSpec(gpu=True, parameters=AFTER_04),
    # 06 trains the leaderboard model: DOLG, sub-centre ArcFace, dynamic margins (the GLR
    # winners' recipe) on every landmark of GLDv2-clean (02's all-landmark manifest)
    "06": KernelSpec(
        gpu=True,
        parameters={
            **TRAINING,
            "MANIFEST_DIR": Output("02", "manifests-all"),
            "IMAGE_SIZE": 256,
            "RUN_DIR": Mount("03"),
        },
    ),
    # 07 reads 04's classifier (ODIN, matching) and trains its binary classifier on a T4; its
    # non-landmark photos come from the attached datasets, found anywhere under /kaggle/input
    # (without any, it saves the ImageNet detector only: utils.ood.fallback)
    "07": KernelSpec(
        gpu=True,
        parameters={
            "RUN_DIR": Mount("04"),
            "CHECKPOINT": Output("04", "best.pt"),
            "NON_LANDMARK_ROOT": KAGGLE_INPUT,
            "IMAGE_SIZE": 224,
            "EPOCHS": 10,
            "MAX_PER_SOURCE": 20000,  # CelebA has 202,599 faces; the split needs about 7,000
            "CACHE": False,
            "THREADS": 0,
        },
        datasets=(NON_LANDMARK_DATASET,),
    ),
    "08": KernelSpec(
        gpu=True,
        parameters={
            # the gallery is the competition's train.csv at run time, not a manifest
            "CHECKPOINT": Output("06", "best.pt"),  # DOLG on every landmark (06's kernel)
            # the frozen descriptor reads one photo at a time at 400 px: hours for 1.58M photos
            "DESCRIPTOR": "trained",
            "DETECTOR": Output("07", "detector.pt"),
            "RUN_DIR": KAGGLE_WORKING,  # both set above: no repository path on Kaggle
            "TIME_BUDGET_S": 8 * 3600.0,  # well inside Kaggle's run-time limit
        },
    ),
}
DEFAULT = KernelSpec(gpu=True, parameters={"MANIFEST_DIR": MANIFESTS, "PRETRAINED": True})


def spec_of(number: str) -> KernelSpec:
    """The table's entry for notebook ``number``, else `DEFAULT`."""
    return TABLE.get(number, DEFAULT)


def common_parameters(stem: str, gpu: bool) -> dict[str, object]:
    """Parameters every kernel is offered: the data, its output folder, device, workers."""
    return {
        "DATA_ROOT": f"{KAGGLE_INPUT}/{COMPETITION}",
        "OUTPUT_DIR": f"{KAGGLE_WORKING}/{stem}",
        "DEVICE": "cuda" if gpu else "cpu",
        "WORKERS": 4,
    }


def kernel_slug(stem: str) -> str:
    """``03_train_resnet`` -> ``gldv2-03-train-resnet`` (lowercase, digits, hyphens)."""
    slug = f"{SLUG_PREFIX}-" + re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    check_slug(slug, f"notebook {stem}")
    return slug


def kernel_title(slug: str) -> str:
    """A title Kaggle resolves to ``slug``: ``gldv2-03-train-resnet`` -> ``GLDv2 03 train resnet``.

    Kaggle derives a kernel's slug from its title (lowercase, runs of other characters to one
    hyphen; the kaggle client checks it with python-slugify); words of ASCII letters and
    digits separated by spaces map back to exactly the slug.
    """
    words = slug.split("-")
    if words[0] == SLUG_PREFIX:
        words[0] = "GLDv2"
    return " ".join(words)


def check_slug(slug: str, what: str) -> None:
    """Raise ValueError unless ``slug`` is 5-50 characters of lowercase words and hyphens."""
    if not _SLUG.match(slug) or not 5 <= len(slug) <= 50:
        raise ValueError(
            f"{what}: slug {slug!r} is not 5 to 50 lowercase letters, digits and single hyphens"
        )


def check_owner(owner: str, where: str) -> str:
    """``owner`` if it can be a Kaggle user name, else ValueError naming ``where`` it came from."""
    if not _OWNER.match(owner or ""):
        raise ValueError(f"{where}: {owner!r} is not a Kaggle user name (letters, digits, - or _)")
    return owner


def kaggle_config_file(env: Mapping[str, str] | None = None) -> Path:
    """Where the kaggle client keeps ``kaggle.json``: ``$KAGGLE_CONFIG_DIR`` or ``~/.kaggle``."""
    env = os.environ if env is None else env
    folder = env.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle"
    return Path(folder) / "kaggle.json"


def default_owner(env: Mapping[str, str] | None = None) -> str:
    """``$KAGGLE_USERNAME``, else the ``username`` of kaggle.json, else `PLACEHOLDER_OWNER`."""
    env = os.environ if env is None else env
    if env.get("KAGGLE_USERNAME"):
        return check_owner(env["KAGGLE_USERNAME"], "KAGGLE_USERNAME")
    config = kaggle_config_file(env)
    if not config.is_file():
        return PLACEHOLDER_OWNER
    try:
        username = json.loads(config.read_text(encoding="utf-8")).get("username", "")
    except (ValueError, AttributeError) as err:
        raise ValueError(f"{config}: not a JSON object with a username ({err})") from err
    return check_owner(username, str(config)) if username else PLACEHOLDER_OWNER
