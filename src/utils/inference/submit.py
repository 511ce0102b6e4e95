"""Write a competition ``submission.csv`` from a trained checkpoint (notebook 08).

`make_submission` reads the test ids (``sample_submission.csv``, else ``test/``), decides the
kind of run (`utils.inference.testset.run_mode`: an interactive run predicts at most
``interactive_limit`` ids), predicts with the chosen method inside the time budget and writes
one row per test id: ``id,landmarks`` with ``"<landmark> <confidence>"`` or empty (an
unreadable image, a row the budget or the interactive limit left out, a gated one). The file
is validated against the test ids before the report is returned.

``retrieval`` (the leaderboard job): the gallery is every image the data root's ``train.csv``
(or ``train_clean.csv``) lists when the job runs (`utils.inference.gallery`; ``manifest``: the
checkpoint's train split, as before), searched with faiss; every test photo keeps its nearest
landmark, and its confidence is lowered by its similarity to known non-landmark photos
(`utils.inference.ranking`). Where the data root ships ``test_solution.csv`` and ``tune`` is
on, k, aggregation, penalty and gate are chosen on the tune part of the test ids and reported
on the check part and on the whole (`utils.inference.tuning`). With ``detector`` (a file saved
by notebook 07, `utils.ood.load_detector`) the gate is an option the tuning may take; without a
solution to tune on, ``gate`` says whether to use it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from utils.data.augment import eval_transform
from utils.data.datasets import FolderDataset
from utils.data.gldv2 import read_test_ids
from utils.data.images import load_image
from utils.data.manifests import read_manifests
from utils.inference import tuning
from utils.inference.budget import TimeBudget
from utils.inference.gallery import embed_gallery, read_gallery_list
from utils.inference.predict import METHODS, TestPredictions, embed, predict_classifier
from utils.inference.ranking import RankSettings, rank, sorted_penalties
from utils.inference.testset import run_mode, test_dataset
from utils.kaggle_paths import kaggle_path
from utils.metrics import NO_LANDMARK, gap
from utils.ood import load_detector
from utils.ood.data import non_landmark_sources
from utils.retrieval.index import INDEX_KINDS, EmbeddingIndex
from utils.retrieval.local_features import RootSift
from utils.retrieval.shortlist import rerank_retrieval
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
GALLERIES = ("train", "clean", "manifest")


@dataclass(frozen=True)
class SubmissionConfig:
    """What `make_submission` needs; notebook 08's parameters map onto it one to one."""

    data_root: str
    checkpoint: str
    output: str  # the submission.csv to write
    method: str = "classifier"  # classifier | retrieval
    gallery: str = "train"  # retrieval: train.csv | train_clean.csv at run time | manifest
    manifest_dir: str = ""  # gallery "manifest": its train split; empty: the checkpoint's
    image_size: int = 0  # retrieval: side of the embedded images; 0: the checkpoint's
    index: str = "exact"  # retrieval: faiss index, exact | ivf | hnsw
    k: int = 1  # neighbours per query (retrieval)
    aggregation: str = "top1"  # top1 | vote | sum (retrieval)
    penalty_k: int = 10  # non-landmark penalty: mean cosine to this many photos; 0: off
    penalty_weight: float = 1.0  # confidence = score - weight * penalty
    non_landmark_root: str = ""  # more non-landmark photos (Caltech101, CelebA, SUN397)
    max_non_landmarks: int = 5000  # photos embedded for the penalty, at most
    tune: bool = True  # choose k, aggregation, penalty, gate on the tune part (with a solution)
    gate: bool = False  # retrieval: blank the photos the detector rejects (when not tuned)
    rerank_top: int = 0  # shortlist re-ranked with RootSIFT + RANSAC (retrieval; 0: off)
    detector: str = "none"  # none, imagenet, or the path of a detector saved by notebook 07
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
        if self.detector not in ("none", "imagenet") and not Path(self.detector).is_file():
            raise ValueError(
                "detector must be 'none', 'imagenet' or the path of a detector saved by "
                f"notebook 07 "
                f"(methods: {', '.join(DETECTORS[1:])}), not {self.detector!r}"
            )
        if self.k < 1 or self.batch_size < 1 or self.interactive_limit < 0:
            raise ValueError("k and batch_size must be >= 1, interactive_limit >= 0")
        if self.gallery not in GALLERIES:
            raise ValueError(f"gallery must be one of {GALLERIES}, not {self.gallery!r}")
        if self.index not in INDEX_KINDS:
            raise ValueError(f"index must be one of {INDEX_KINDS}, not {self.index!r}")
        RankSettings(self.k, self.aggregation, self.penalty_k, self.penalty_weight, self.gate)

    @property
    def settings(self) -> RankSettings:
        """The ranking settings given (used when the run is not tuned)."""
        return RankSettings(
            self.k, self.aggregation, self.penalty_k, self.penalty_weight, self.gate
        )


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
    notes: list[str] = field(default_factory=list)  # gallery, penalty, tuning, in words
    details: dict = field(default_factory=dict)  # retrieval: settings, gallery, tuning scores

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
            *self.notes,
            "valid" if not self.problems else "INVALID: " + "; ".join(self.problems),
        ]
        return "\n".join(lines)


def _non_landmark_photos(cfg: SubmissionConfig) -> list[Path]:
    """Known non-landmark photos: the data root's ``non_landmark/`` and ``non_landmark_root``.

    At most ``max_non_landmarks``, spread evenly over each source's sorted files.
    """
    sources = non_landmark_sources(cfg.data_root, cfg.non_landmark_root or None)
    paths = [p for name in sorted(sources) for p in sources[name]]
    if len(paths) > cfg.max_non_landmarks > 0:
        step = len(paths) / cfg.max_non_landmarks
        paths = [paths[int(i * step)] for i in range(cfg.max_non_landmarks)]
    return paths


def _read_truth(data_root: str, ids: list[str]) -> np.ndarray | None:
    """``(N,)`` each id's landmark (``NO_LANDMARK``: none) from ``test_solution.csv``, or None."""
    path = Path(data_root) / "test_solution.csv"
    if not path.is_file():
        return None
    solution = read_solution(path).set_index("id")["truth"]
    return np.array(
        [min(solution[i]) if i in solution.index and solution[i] else NO_LANDMARK for i in ids],
        np.int64,
    )


def _gallery_listing(cfg, config) -> pd.DataFrame:
    """``id, landmark_id`` of the gallery of ``cfg.gallery`` (module docstring)."""
    if cfg.gallery == "manifest":
        return read_manifests(cfg.manifest_dir or config["manifest_dir"]).train
    return read_gallery_list(cfg.data_root, cfg.gallery)


def _stage_budget(cfg: SubmissionConfig, budget: TimeBudget, share: float) -> TimeBudget:
    """``share`` of what is left of the job's budget (unlimited stays unlimited)."""
    if not cfg.time_budget_s:
        return TimeBudget()
    return TimeBudget(max(0.0, (cfg.time_budget_s - budget.elapsed()) * share))


def _retrieval(cfg, model, config, dataset, device, dtype, budget, progress):
    """The leaderboard job of the module docstring: ``(predictions, gated, notes, details)``."""
    size = cfg.image_size or config["image_size"]
    transform = eval_transform(size, config["pipeline"])
    photos = _non_landmark_photos(cfg) if cfg.penalty_k or cfg.tune else []
    listing = _gallery_listing(cfg, config)  # read once: 1.58M rows on Kaggle
    listed = len(listing) if cfg.gallery != "manifest" else 0
    share = listed / max(1, listed + len(dataset) + len(photos)) if listed else 0.5
    gallery = embed_gallery(
        model,
        cfg.data_root,
        listing,
        transform,
        device,
        _stage_budget(cfg, budget, share),
        cfg.batch_size,
        cfg.workers,
        dtype,
        progress,
    )
    notes = [gallery.skips.summary()]
    details = {
        "gallery": {
            "source": cfg.gallery,
            "images": len(gallery),
            "listed": gallery.skips.listed,
            "missing": len(gallery.skips.missing),
            "unreadable": len(gallery.skips.unreadable),
            "out_of_budget": gallery.skips.out_of_budget,
        },
        "image_size": size,
    }
    queries = FolderDataset(dataset.paths, transform=transform, on_broken="drop")
    query_emb, query_rows, pred = embed(
        model, queries, device, budget, cfg.batch_size, cfg.workers, progress
    )
    if not len(gallery):
        notes.append("no gallery image could be read: every row is written empty")
        return pred, 0, notes, details
    if not len(query_rows):
        return pred, 0, notes, details
    grid = tuning.settings_grid(gates=(False, True) if cfg.detector != "none" else (False,))
    grid = grid if cfg.tune else [cfg.settings]
    deepest = max([cfg.k, cfg.rerank_top] + [s.k for s in grid])
    cosines, indices = EmbeddingIndex(gallery.embeddings, cfg.index).search(query_emb, deepest)
    most = max([cfg.penalty_k] + [s.penalty_k for s in grid])
    if photos:
        nl_set = FolderDataset(photos, transform=transform, on_broken="drop", warn=False)
        nl_emb, _, _ = embed(
            model, nl_set, device, TimeBudget(), cfg.batch_size, cfg.workers, progress
        )
        top = sorted_penalties(query_emb, nl_emb, most)

        def penalty_of(k: int) -> np.ndarray:
            return top[:, : min(k, top.shape[1])].mean(axis=1) if k else np.zeros(len(top))

        notes.append(f"non-landmark penalty: {len(nl_emb)} known non-landmark photos")
        details["non_landmark_photos"] = len(nl_emb)
    elif most > 0:
        mass = load_detector("imagenet", cfg.device).score(
            [load_image(dataset.paths[r]) for r in query_rows]
        )

        def penalty_of(k: int) -> np.ndarray:
            return (1.0 - mass) if k else np.zeros(len(mass))

        notes.append("non-landmark penalty: no non-landmark photos; 1 - the ImageNet landmark mass")
        details["non_landmark_photos"] = 0
    else:

        def penalty_of(k: int) -> np.ndarray:
            return np.zeros(len(query_rows))

    truth = _read_truth(cfg.data_root, [str(dataset.paths[r].stem) for r in query_rows])
    tuned = cfg.tune and truth is not None
    accepted = None
    if cfg.detector != "none" and (cfg.gate or tuned):  # the gate may be used
        limit = None if math.isnan(cfg.detector_threshold) else cfg.detector_threshold
        detector = load_detector(cfg.detector, cfg.device)
        accepted = np.concatenate(
            [
                detector.accepts(
                    [load_image(dataset.paths[r]) for r in query_rows[i : i + 32]], limit
                )
                for i in range(0, len(query_rows), 32)
            ]
        )

    def predict(settings: RankSettings):
        return rank(
            cosines, indices, gallery.labels, penalty_of(settings.penalty_k), settings, accepted
        )

    settings = cfg.settings
    if tuned:
        tune = tuning.tune_part([dataset.paths[r].stem for r in query_rows])
        settings, table = tuning.choose(grid, predict, truth, tune)
    landmarks, confidence = predict(settings)
    details["settings"] = settings.as_dict()
    if cfg.rerank_top > 0:
        reranked = _rerank(
            cfg,
            budget,
            [dataset.paths[r] for r in query_rows],
            gallery,
            (cosines, indices),
            (landmarks, confidence),
            penalty_of(settings.penalty_k) * settings.weight,
            progress,
        )
        details["rerank_top"] = cfg.rerank_top
        if tuned:  # kept only where it gains on the tune part
            without = gap(landmarks[tune], confidence[tune], truth[tune])
            with_ = gap(reranked[0][tune], reranked[1][tune], truth[tune])
            details["rerank_tune_gap"] = {"without": without, "with": with_}
            if not with_ > without:
                details["rerank_top"] = 0
            notes.append(
                f"RootSIFT re-ranking of the top {cfg.rerank_top}: tune GAP {without:.3f} -> "
                f"{with_:.3f}, {'kept' if details['rerank_top'] else 'dropped'}"
            )
        if details["rerank_top"]:
            landmarks, confidence = reranked
    if tuned:
        known = np.isin(truth, gallery.labels)
        details["tuning"] = {
            "chosen": {**settings.as_dict(), "rerank_top": details.get("rerank_top", 0)},
            "grid": len(table),
            "parts": {
                name: tuning.scores(landmarks[m], confidence[m], truth[m], known[m])
                for name, m in (("tune", tune), ("check", ~tune), ("whole", np.ones_like(tune)))
            },
        }
        check = details["tuning"]["parts"]["check"]
        notes.append(
            f"tuned on {int(tune.sum())} test ids: {settings}; check part "
            f"({int((~tune).sum())} ids) GAP {check['gap']:.3f}"
        )
    gated = int((~accepted).sum()) if accepted is not None and settings.gate else 0
    pred.landmarks[query_rows], pred.confidences[query_rows] = landmarks, confidence
    return pred, gated, notes, details


def _rerank(cfg, budget, query_paths, gallery, neighbours, answers, penalty, progress):
    """``answers`` with each query's top ``cfg.rerank_top`` re-ranked by RootSIFT + RANSAC.

    Returns new ``(landmarks, confidence)``, computed in chunks of 32 queries; ``answers``, the
    retrieval ``(landmarks, confidence)``, ``(Q,)``, stays unchanged. ``neighbours``: the kNN
    ``(cosines, indices)``, ``(Q, k)``. A predicted row takes the re-ranked landmark and
    ``score - penalty`` (``penalty``: ``(Q,)``, already weighted); a blank row stays blank.
    Stops where the job's time budget runs out (later rows keep their answer).
    """
    cosines, indices = neighbours
    landmarks, confidence = answers[0].copy(), answers[1].copy()
    stage = _stage_budget(cfg, budget, 1.0)
    extractor, chunk = RootSift(), 32
    cache = {}  # gallery features, shared by the chunks (a gallery image is extracted once)
    for start in range(0, len(query_paths), chunk):
        part = slice(start, start + chunk)
        if cfg.time_budget_s and not stage.allows(start, len(query_paths[part])):
            break
        labels, score, _ = rerank_retrieval(
            query_paths[part],
            gallery.paths,
            gallery.labels,
            cosines[part],
            indices[part],
            extractor,
            cfg.rerank_top,
            progress=progress,
            cache=cache,
        )
        blank = landmarks[part] == NO_LANDMARK
        landmarks[part] = np.where(blank, NO_LANDMARK, labels)
        confidence[part] = np.where(blank, 0.0, score - penalty[part])
    return landmarks, confidence


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
    notes, details, rejected = [], {}, 0
    if cfg.method == "classifier":
        pred = predict_classifier(
            model, class_map, dataset, device, budget, cfg.batch_size, cfg.workers, dtype, progress
        )
        if cfg.detector != "none":
            rejected = gate(pred, dataset.paths, cfg.detector, cfg.detector_threshold, cfg.device)
    else:
        pred, rejected, notes, details = _retrieval(
            cfg, model, config, dataset, device, dtype, budget, progress
        )
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
        notes=notes,
        details=details,
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
    base = kaggle_path("working", environ) if inside_kaggle(environ) else Path(output_dir)
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
    Table 3: the leaderboard model, EfficientNet-Lite2 fine-tuned from ImageNet on every
    landmark (``04_train_effnet-lite2-imagenet/best.pt``), else DOLG (``06_dolg/best.pt``),
    else EfficientNet-B2 (``04_train_effnet/best.pt``);
    ``detector="auto"`` takes the detector notebook 07 chose on validation
    (``07_ood/detector.pt``) when the run has one, else ``none``.
    """
    run = Path(run_dir)
    if not checkpoint:
        found = [
            run / "04_train_effnet-lite2-imagenet" / "best.pt",
            run / "06_dolg" / "best.pt",
            run / "04_train_effnet" / "best.pt",
        ]
        checkpoint = str(next((p for p in found if p.is_file()), found[-1]))
    if detector == "auto":
        saved = run / "07_ood" / "detector.pt"
        detector = str(saved) if saved.is_file() else "none"
    return checkpoint, detector
