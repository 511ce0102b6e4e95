"""Write a competition ``submission.csv`` from a trained checkpoint (notebook 08).

`make_submission` reads the test ids (``sample_submission.csv``, else ``test/``), decides the
kind of run (`utils.inference.testset.run_mode`: an interactive run predicts at most
``interactive_limit`` ids), predicts with the chosen method inside the time budget
(`utils.inference.predict`), gates the predictions with the chosen non-landmark detector, and
writes one row per test id: ``id,landmarks`` with ``"<landmark> <confidence>"`` or empty (an
unreadable image, a row the budget or the interactive limit left out, a rejected one). With
``detector`` (a file saved by notebook 07, `utils.ood.load_detector`) every predicted row whose
image the detector scores below its threshold (the saved one, or ``detector_threshold``) gets an
empty prediction. The file is validated against the test ids before the report is returned.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils.data.augment import eval_transform
from utils.data.datasets import FolderDataset
from utils.data.gldv2 import image_path, read_test_ids
from utils.data.images import load_image
from utils.data.manifests import read_manifests
from utils.inference.budget import TimeBudget
from utils.inference.predict import (
    METHODS,
    TestPredictions,
    embed,
    predict_classifier,
    predict_retrieval,
)
from utils.inference.testset import run_mode, test_dataset
from utils.metrics import NO_LANDMARK
from utils.ood import load_detector
from utils.submission import (
    read_solution,
    read_submission,
    score,
    validate_submission,
    write_submission,
)
from utils.training.checkpoint import load_trained
from utils.training.devices import autocast_dtype, resolve_device

DETECTORS = ("none", "binary", "odin", "matching")  # "none", or a file saved by notebook 07
KAGGLE_WORKING = Path("/kaggle/working")


@dataclass(frozen=True)
class SubmissionConfig:
    """What `make_submission` needs; notebook 08's parameters map onto it one to one."""

    data_root: str
    checkpoint: str
    output: str  # the submission.csv to write
    method: str = "classifier"  # classifier | retrieval
    manifest_dir: str = ""  # retrieval gallery (its train split); empty: the checkpoint's
    k: int = 10  # neighbours per query (retrieval)
    aggregation: str = "vote"  # top1 | vote | sum (retrieval)
    rerank_top: int = 0  # shortlist re-ranked with RootSIFT + RANSAC (retrieval; 0: off)
    detector: str = "none"  # none, or the path of a detector saved by notebook 07
    detector_threshold: float = float("nan")  # the detector's threshold; nan: the saved one
    time_budget_s: float = 0.0  # wall-clock for the whole job; 0: unlimited
    mode: str = "auto"  # auto | interactive | full
    public_rows: int = 10345  # test ids of the public (interactive) run
    interactive_limit: int = 2000  # ids predicted in an interactive run
    batch_size: int = 64
    workers: int = 2
    device: str = "auto"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")
        if self.detector != "none" and not Path(self.detector).is_file():
            raise ValueError(
                f"detector must be 'none' or the path of a detector saved by notebook 07 "
                f"(methods: {', '.join(DETECTORS[1:])}), not {self.detector!r}"
            )
        if self.k < 1 or self.batch_size < 1 or self.interactive_limit < 0:
            raise ValueError("k and batch_size must be >= 1, interactive_limit >= 0")


@dataclass
class SubmissionReport:
    """What was written, and every row that got no prediction, by reason."""

    path: Path
    mode: str
    test_ids: int
    predicted: int
    unreadable: list[str] = field(default_factory=list)  # ids whose image could not be read
    out_of_budget: int = 0  # ids the time budget left out
    rejected: int = 0  # predictions the non-landmark detector blanked
    not_attempted: int = 0  # ids beyond the interactive limit
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # validation (empty: valid)

    def summary(self) -> str:
        """A few lines for a person."""
        lines = [
            f"{self.path}: {self.test_ids} rows ({self.mode} run), {self.predicted} with a "
            f"prediction, in {self.seconds:.1f} s",
            f"unreadable images: {len(self.unreadable)}"
            + (
                f" ({', '.join(self.unreadable[:10])}{' ...' if len(self.unreadable) > 10 else ''})"
                if self.unreadable
                else ""
            ),
            f"rejected by the non-landmark detector: {self.rejected}; "
            f"left out by the time budget: {self.out_of_budget}; "
            f"beyond the interactive limit: {self.not_attempted}",
            "valid" if not self.problems else "INVALID: " + "; ".join(self.problems),
        ]
        return "\n".join(lines)


def _retrieval(cfg, model, config, dataset, device, budget, progress) -> TestPredictions:
    """Embed the manifest's train split (the gallery) and the test set; kNN (+ re-rank)."""
    manifest_dir = cfg.manifest_dir or config["manifest_dir"]
    train = read_manifests(manifest_dir).train
    paths = [image_path(cfg.data_root, i) for i in train["id"].astype(str)]
    gallery = FolderDataset(
        paths,
        transform=eval_transform(config["image_size"], config["pipeline"]),
        on_broken="drop",
    )
    gallery_emb, gallery_rows, _ = embed(
        model, gallery, device, TimeBudget(), cfg.batch_size, cfg.workers, progress
    )
    labels = train["landmark_id"].to_numpy()[gallery_rows]
    query_emb, query_rows, pred = embed(
        model, dataset, device, budget, cfg.batch_size, cfg.workers, progress
    )
    return predict_retrieval(
        query_emb,
        query_rows,
        pred,
        gallery_emb,
        labels,
        cfg.k,
        cfg.aggregation,
        cfg.rerank_top,
        dataset.paths,
        [paths[r] for r in gallery_rows],
        budget,
        progress=progress,
    )


def gate(
    pred: TestPredictions,
    paths,
    detector_path: str,
    threshold: float = float("nan"),
    device: str = "cpu",
    batch_size: int = 32,
) -> int:
    """Blank the predictions whose image the detector rejects; returns how many it blanked.

    Only rows with a prediction are scored; ``threshold`` nan keeps the saved one.
    """
    detector = load_detector(detector_path, device)
    limit = None if math.isnan(threshold) else threshold
    rows = np.flatnonzero(pred.landmarks != NO_LANDMARK)
    rejected = 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        keep = detector.accepts([load_image(paths[r]) for r in chunk], limit)
        pred.landmarks[chunk[~keep]] = NO_LANDMARK
        pred.confidences[chunk[~keep]] = 0.0
        rejected += int((~keep).sum())
    return rejected


def make_submission(cfg: SubmissionConfig, progress: bool = True) -> SubmissionReport:
    """Predict the test set and write the submission (see the module docstring)."""
    budget = TimeBudget(cfg.time_budget_s)
    ids = read_test_ids(cfg.data_root)
    mode = run_mode(len(ids), cfg.public_rows, cfg.mode)
    attempt = ids if mode == "full" else ids[: cfg.interactive_limit]
    device = resolve_device(cfg.device)
    model, class_map, config = load_trained(cfg.checkpoint, device)
    precision = config.get("precision", "auto")
    dtype = autocast_dtype(device, bool(config.get("amp")), precision, config["model"])
    dataset = test_dataset(cfg.data_root, attempt, config["image_size"], config["pipeline"])
    if cfg.method == "classifier":
        pred = predict_classifier(
            model, class_map, dataset, device, budget, cfg.batch_size, cfg.workers, dtype, progress
        )
    else:
        pred = _retrieval(cfg, model, config, dataset, device, budget, progress)
    rejected = 0
    if cfg.detector != "none":
        rejected = gate(pred, dataset.paths, cfg.detector, cfg.detector_threshold, cfg.device)
    full = TestPredictions.empty(len(ids))
    full.landmarks[: len(attempt)] = pred.landmarks
    full.confidences[: len(attempt)] = pred.confidences
    path = write_submission(cfg.output, ids, full.landmarks.tolist(), full.confidences.tolist())
    return SubmissionReport(
        path=path,
        mode=mode,
        test_ids=len(ids),
        predicted=full.predicted,
        unreadable=[attempt[r] for r in pred.unreadable],
        out_of_budget=pred.out_of_budget,
        rejected=rejected,
        not_attempted=len(ids) - len(attempt),
        seconds=round(budget.elapsed(), 2),
        problems=validate_submission(path, test_ids=ids),
    )


def inside_kaggle(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs in a Kaggle kernel: Kaggle sets ``KAGGLE_KERNEL_RUN_TYPE``.

    Decided from Kaggle's own environment variable, never from a ``/kaggle`` folder existing
    (an emulation or another run on the machine may have made one).
    """
    return bool((os.environ if environ is None else environ).get("KAGGLE_KERNEL_RUN_TYPE"))


def default_output(output_dir: str | Path, environ: Mapping[str, str] | None = None) -> Path:
    """``/kaggle/working/submission.csv`` inside a Kaggle kernel, else ``OUTPUT_DIR/...``.

    Kaggle scores the ``submission.csv`` in its working folder (`inside_kaggle`).
    """
    base = KAGGLE_WORKING if inside_kaggle(environ) else Path(output_dir)
    return base / "submission.csv"


def score_locally(data_root: str | Path, path: str | Path) -> dict | None:
    """GAP and accuracy against the data root's ``test_solution.csv``; None without one.

    The embedded dataset has the file; Kaggle's data does not.
    """
    solution = Path(data_root) / "test_solution.csv"
    if not solution.is_file():
        return None
    return score(read_solution(solution), read_submission(path))


def run_defaults(
    run_dir: str | Path, checkpoint: str = "", detector: str = "auto"
) -> tuple[str, str]:
    """``(checkpoint, detector)`` of notebook 08 when left to the run folder.

    An empty ``checkpoint`` takes the run's best network for retrieval by the embedded run's
    Table 3: DOLG (``06_dolg/best.pt``), else EfficientNet-B2 (``04_train_effnet/best.pt``);
    ``detector="auto"`` takes the detector notebook 07 chose on validation
    (``07_ood/detector.pt``) when the run has one, else ``none``.
    """
    run = Path(run_dir)
    if not checkpoint:
        found = [run / "06_dolg" / "best.pt", run / "04_train_effnet" / "best.pt"]
        checkpoint = str(next((p for p in found if p.is_file()), found[-1]))
    if detector == "auto":
        saved = run / "07_ood" / "detector.pt"
        detector = str(saved) if saved.is_file() else "none"
    return checkpoint, detector
