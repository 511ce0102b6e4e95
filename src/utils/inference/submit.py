"""Write a competition ``submission.csv`` from a trained checkpoint (notebook 08).

`make_submission` reads the test ids (``sample_submission.csv``, else ``test/``), decides the
kind of run (`utils.inference.testset.run_mode`: an interactive run predicts at most
``interactive_limit`` ids), predicts with the chosen method inside the time budget and writes
one row per test id: ``id,landmarks`` with ``"<landmark> <confidence>"`` or empty (an
unreadable image, a row the budget or the interactive limit left out, a gated one). The file
is validated against the test ids before the report is returned.

``retrieval`` (the leaderboard job): the gallery is every image the data root's ``train.csv``
(or ``train_clean.csv``) lists when the job runs (`utils.inference.gallery`; ``manifest``: the
checkpoint's train split, as before), described by the trained network, the frozen ImageNet
descriptor or both (`utils.inference.descriptors`) and searched with faiss, plain and, with
``whiten``, in a space whitened on the gallery; every test photo keeps its best landmark, the
shortlist may be verified with RootSIFT (`utils.inference.verification`), and its confidence may
be lowered by its similarity to known non-landmark photos (`utils.inference.ranking`). Where the
data root ships ``test_solution.csv`` and ``tune`` is on, k, aggregation, confidence,
whitening, penalty, gate and the local votes are chosen on the tune part of the test ids and
reported on the check part and on the whole (`utils.inference.tuning`), beside the simplest
baseline where the frozen descriptor was searched: its nearest gallery photo alone
(`_frozen_baseline`, ``details["baseline"]``). With ``detector`` (a
file saved by notebook 07, `utils.ood.load_detector`) the gate is an option the tuning may take;
without a solution to tune on, ``gate`` says whether to use it.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from utils import minigld
from utils.data.augment import eval_transform
from utils.data.gldv2 import read_test_ids
from utils.data.images import load_image
from utils.data.manifests import read_manifests
from utils.inference import tuning
from utils.inference.budget import TimeBudget
from utils.inference.descriptors import (
    DESCRIPTORS,
    both_vectors,
    frozen_part,
    pretrained_vectors,
    trained_vectors,
)
from utils.inference.gallery import describe_gallery, read_gallery_list
from utils.inference.predict import METHODS, TestPredictions, predict_classifier
from utils.inference.ranking import (
    RankSettings,
    local_votes,
    rank,
    sorted_penalties,
)
from utils.inference.testset import run_mode, test_dataset
from utils.inference.verification import noise_floor, shortlist_inliers
from utils.kaggle_paths import kaggle_path
from utils.metrics import NO_LANDMARK
from utils.ood import load_detector
from utils.ood.data import non_landmark_sources
from utils.ood.detector import Detector
from utils.ood.imagenet import ImagenetDetector
from utils.retrieval.index import INDEX_KINDS, EmbeddingIndex
from utils.retrieval.knn import fit_whitening
from utils.retrieval.local_features import RootSift
from utils.retrieval.voting import VoteRule
from utils.submission import (
    read_solution,
    read_submission,
    score,
    tune_part,
    validate_submission,
    write_submission,
)
from utils.training.checkpoint import load_trained
from utils.training.devices import autocast_dtype, resolve_device

DETECTORS = ("none", "binary", "odin", "matching")  # "none", or a file saved by notebook 07
GALLERIES = ("train", "clean", "manifest")
VOTE_RULE = VoteRule()  # `recognize`'s whitening shrinkage and photos per dimension
VERIFY_WEIGHT = 1.0  # weight of the local votes when verification is on (`recognize`'s)


@dataclass(frozen=True)
class SubmissionConfig:
    """What `make_submission` needs; notebook 08's parameters map onto it one to one."""

    data_root: str
    checkpoint: str  # trained network; "" for the retrieval with the pretrained descriptor
    output: str  # the submission.csv to write
    method: str = "classifier"  # classifier | retrieval
    descriptor: str = "trained"  # retrieval: trained | pretrained | both (inference.descriptors)
    pretrained_weight: float = 0.5  # both: share a of the pretrained cosine
    pretrained_size: int = 400  # pretrained: longer side of the photo at scale 1
    pretrained_flip: bool = True  # pretrained: also read each photo mirrored (twice the time)
    whiten: int = 0  # retrieval: dimensions of the PCA whitening fitted on the gallery; 0: off
    confidence: str = "score"  # score | nearest (utils.inference.ranking), when not tuned
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
    rerank_top: int = 0  # shortlist verified with RootSIFT + RANSAC (retrieval; 0: off)
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
        if self.descriptor not in DESCRIPTORS:
            raise ValueError(f"descriptor must be one of {DESCRIPTORS}, not {self.descriptor!r}")
        if not self.checkpoint and not self.pretrained_only:
            raise ValueError(
                "checkpoint: a trained network is needed, unless method is 'retrieval' with "
                "descriptor 'pretrained'"
            )
        if self.pretrained_only and self.gallery == "manifest" and not self.manifest_dir:
            raise ValueError("gallery 'manifest' without a checkpoint needs manifest_dir")
        if self.whiten < 0 or self.pretrained_size < 32:
            raise ValueError("whiten must be >= 0 and pretrained_size >= 32")
        self.settings  # noqa: B018 (validates the ranking settings)

    @property
    def pretrained_only(self) -> bool:
        """Whether the job needs no trained network (retrieval with the pretrained descriptor)."""
        return self.method == "retrieval" and self.descriptor == "pretrained"

    @property
    def settings(self) -> RankSettings:
        """The ranking settings given (used when the run is not tuned)."""
        return RankSettings(
            self.k,
            self.aggregation,
            self.penalty_k,
            self.penalty_weight,
            self.gate,
            bool(self.whiten),
            self.confidence,
            VERIFY_WEIGHT if self.rerank_top else 0.0,
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


def _detector_scores(detector: Detector, paths: list[Path], seen: dict) -> np.ndarray:
    """``(N,)`` `Detector.score` of the photos at ``paths``, 32 at a time.

    An ImageNet detector holds no weights of its own, so two with the same ``params`` score
    alike: ``seen`` keeps their scores, and the penalty's landmark mass and the gate of 07's
    ImageNet detector share one pass over the test photos (a trained detector is always run).
    """
    key = (detector.method, tuple(sorted(detector.params.items())))
    cached = isinstance(detector, ImagenetDetector)
    if cached and key in seen:
        return seen[key]
    scores = np.concatenate(
        [
            detector.score([load_image(p) for p in paths[i : i + 32]])
            for i in range(0, len(paths), 32)
        ]
        or [np.zeros(0)]
    )
    if cached:
        seen[key] = scores
    return scores


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


def _vectors(cfg, model, config, device, progress):
    """``(Vectors, frozen_dim)``: ``cfg.descriptor``'s `utils.inference.descriptors.Vectors`.

    ``frozen_dim``: how many leading columns of its rows hold the frozen descriptor
    (`frozen_part`; 0: none).
    """
    descriptor, frozen_dim = None, 0
    if cfg.descriptor != "trained":
        from utils.retrieval.descriptor import GlobalDescriptor

        frozen = GlobalDescriptor(size=cfg.pretrained_size, flip=cfg.pretrained_flip, device=device)
        descriptor, frozen_dim = pretrained_vectors(frozen, progress), frozen.dim
        if cfg.descriptor == "pretrained":
            return descriptor, frozen_dim
    size = cfg.image_size or config["image_size"]
    transform = eval_transform(size, config["pipeline"])
    trained = trained_vectors(model, transform, device, cfg.batch_size, cfg.workers, progress)
    if cfg.descriptor == "trained":
        return trained, 0
    return both_vectors(descriptor, trained, cfg.pretrained_weight), frozen_dim


def _frozen_baseline(cfg, gallery, query_emb, frozen_dim, truth, known, tune, ours) -> dict:
    """The simplest baseline's scores on 08's parts (``{"name", "parts", "difference"}``).

    Each test photo is given its nearest gallery photo's landmark by the frozen descriptor
    alone and ranked by that cosine (nothing trained, nothing tuned), read from the vectors 08
    searched (`frozen_part`). ``ours``: 08's ``(landmarks, confidence)``; ``difference`` is 08's
    GAP minus the baseline's on each part, with a paired interval (`tuning.paired_differences`).
    """
    frozen = frozen_part(gallery.embeddings, frozen_dim)
    cosines, where = EmbeddingIndex(frozen, cfg.index).search(frozen_part(query_emb, frozen_dim), 1)
    landmarks = np.asarray(gallery.labels)[where[:, 0]]
    return {
        "name": "frozen ImageNet descriptor, nearest gallery photo",
        "parts": tuning.part_scores(landmarks, cosines[:, 0], truth, known, tune),
        "difference": tuning.paired_differences(ours, (landmarks, cosines[:, 0]), truth, tune),
    }


def _searches(cfg, gallery, query_emb, deepest, kinds):
    """``{whiten: (cosines, indices, plain)}`` of the kNN searches the settings ask for.

    ``kinds``: the ``whiten`` values of the settings that may be used. The whitened search
    (``cfg.whiten`` dimensions, fitted on the gallery alone) runs when the gallery is large
    enough to fit it (`utils.retrieval.knn.fit_whitening`); ``plain`` holds the unwhitened
    cosines of the same neighbours. The plain search runs when a setting asks for it or the
    whitening declined (an exact search of GLDv2's gallery takes most of an hour: never twice
    for nothing). Returns the note of the whitening too.
    """
    searches, note = {}, "no whitening (WHITEN 0)"
    if cfg.whiten and True in kinds:
        whitening, note = fit_whitening(
            gallery.embeddings, cfg.whiten, VOTE_RULE.shrinkage, VOTE_RULE.min_photos_per_dim
        )
        if whitening is not None:
            found, where = EmbeddingIndex(whitening.apply(gallery.embeddings), cfg.index).search(
                whitening.apply(query_emb), deepest
            )
            plain = np.einsum("qd,qkd->qk", query_emb, gallery.embeddings[where])
            searches[True] = (found, where, plain)
    if False in kinds or True not in searches:
        index = EmbeddingIndex(gallery.embeddings, cfg.index)
        cosines, indices = index.search(query_emb, deepest)
        searches[False] = (cosines, indices, cosines)
    return searches, note


def _retrieval(cfg, model, config, dataset, device, budget, progress):
    """The leaderboard job of the module docstring: ``(predictions, gated, notes, details)``."""
    vectors, frozen_dim = _vectors(cfg, model, config, device, progress)
    photos = _non_landmark_photos(cfg) if cfg.penalty_k or cfg.tune else []
    listing = _gallery_listing(cfg, config)  # read once: 1.58M rows on Kaggle
    listed = len(listing) if cfg.gallery != "manifest" else 0
    share = listed / max(1, listed + len(dataset) + len(photos)) if listed else 0.5
    gallery = describe_gallery(vectors, cfg.data_root, listing, _stage_budget(cfg, budget, share))
    notes = [gallery.skips.summary()]
    details = {
        "descriptor": cfg.descriptor,
        "gallery": {
            "source": cfg.gallery,
            "images": len(gallery),
            "listed": gallery.skips.listed,
            "missing": len(gallery.skips.missing),
            "unreadable": len(gallery.skips.unreadable),
            "out_of_budget": gallery.skips.out_of_budget,
        },
    }
    if cfg.descriptor != "pretrained":
        details["image_size"] = cfg.image_size or config["image_size"]
    if cfg.descriptor != "trained":
        details["pretrained_size"] = cfg.pretrained_size
        details["pretrained_flip"] = cfg.pretrained_flip
    if cfg.descriptor == "both":
        details["pretrained_weight"] = cfg.pretrained_weight
    pred = TestPredictions.empty(len(dataset))
    query_emb, query_rows, pred.unreadable, pred.out_of_budget = vectors(
        dataset.paths, budget, "test"
    )
    for row in pred.unreadable:
        warnings.warn(f"{dataset.paths[row]}: unreadable; its row is written empty", stacklevel=2)
    if not len(gallery):
        notes.append("no gallery image could be read: every row is written empty")
        return pred, 0, notes, details
    if not len(query_rows):
        return pred, 0, notes, details
    whitens = (False, True) if cfg.whiten else (False,)
    grid = tuning.settings_grid(
        gates=(False, True) if cfg.detector != "none" else (False,), whitens=whitens
    )
    grid = grid if cfg.tune else [cfg.settings]
    deepest = max([cfg.k, cfg.rerank_top] + [s.k for s in grid])
    searches, note = _searches(cfg, gallery, query_emb, deepest, {s.whiten for s in grid})
    notes.append(f"whitening: {note}")
    most = max([cfg.penalty_k] + [s.penalty_k for s in grid])
    query_paths = [dataset.paths[r] for r in query_rows]
    scored: dict = {}  # an ImageNet detector's scores of the test photos, read once
    if photos:
        nl_emb, _, _, _ = vectors(photos, TimeBudget(), "non-landmark photos")
        top = sorted_penalties(query_emb, nl_emb, most)

        def penalty_of(k: int) -> np.ndarray:
            return top[:, : min(k, top.shape[1])].mean(axis=1) if k else np.zeros(len(top))

        notes.append(f"non-landmark penalty: {len(nl_emb)} known non-landmark photos")
        details["non_landmark_photos"] = len(nl_emb)
    elif most > 0:
        mass = _detector_scores(load_detector("imagenet", cfg.device), query_paths, scored)

        def penalty_of(k: int) -> np.ndarray:
            return (1.0 - mass) if k else np.zeros(len(mass))

        notes.append("non-landmark penalty: no non-landmark photos; 1 - the ImageNet landmark mass")
        details["non_landmark_photos"] = 0
    else:

        def penalty_of(k: int) -> np.ndarray:
            return np.zeros(len(query_rows))

    truth = _read_truth(cfg.data_root, [str(p.stem) for p in query_paths])
    tuned = cfg.tune and truth is not None
    accepted = None
    if cfg.detector != "none" and (cfg.gate or tuned):  # the gate may be used
        limit = None if math.isnan(cfg.detector_threshold) else cfg.detector_threshold
        detector = load_detector(cfg.detector, cfg.device)
        accepted = detector.above(_detector_scores(detector, query_paths, scored), limit)
    verified: dict[bool, np.ndarray] = {}

    def searched(settings: RankSettings) -> bool:  # whitened search, where there is one
        return settings.whiten and True in searches

    def predict(settings: RankSettings):
        cosines, indices, plain = searches[searched(settings)]
        penalty = penalty_of(settings.penalty_k)
        verify = verified.get(searched(settings))
        return rank(cosines, indices, gallery.labels, penalty, settings, accepted, plain, verify)

    settings = cfg.settings
    tune = None
    if tuned:
        tune = tune_part([p.stem for p in query_paths])
        settings, table = tuning.choose(grid, predict, truth, tune)
    if cfg.rerank_top > 0:
        whitened = searched(settings)
        extractor, cache = RootSift(), {}
        inliers, done = shortlist_inliers(
            query_paths,
            gallery.paths,
            searches[whitened][1],
            cfg.rerank_top,
            extractor,
            _stage_budget(cfg, budget, 1.0),
            progress,
            cache,
        )
        floor = noise_floor(gallery.paths, gallery.labels, extractor, cache)
        verified[whitened] = local_votes(inliers, floor)
        details["verification"] = {"shortlist": cfg.rerank_top, "floor": floor, "queries": done}
        if tuned:  # local votes are kept only where they gain on the tune part
            same = [replace(s, verify=VERIFY_WEIGHT) for s in grid if s.whiten == settings.whiten]
            best, more = tuning.choose([settings, *same], predict, truth, tune)
            without, with_ = more[0][1], max(g for _, g in more[1:])
            details["verification"]["tune_gap"] = {"without": without, "with": with_}
            notes.append(
                f"RootSIFT verification of the top {cfg.rerank_top} (inlier floor {floor:.0f}): "
                f"tune GAP {without:.3f} -> {with_:.3f}, {'kept' if best.verify else 'dropped'}"
            )
            settings, table = best, table + more[1:]
    landmarks, confidence = predict(settings)
    details["settings"] = settings.as_dict()
    if tuned:
        known = np.isin(truth, gallery.labels)
        details["tuning"] = {
            "chosen": {**settings.as_dict(), "rerank_top": cfg.rerank_top * bool(settings.verify)},
            "grid": len(table),
            "parts": tuning.part_scores(landmarks, confidence, truth, known, tune),
        }
        check = details["tuning"]["parts"]["check"]
        notes.append(
            f"tuned on {int(tune.sum())} test ids: {settings}; check part "
            f"({int((~tune).sum())} ids) GAP {check['gap']:.3f}"
        )
        if frozen_dim:
            details["baseline"] = _frozen_baseline(
                cfg, gallery, query_emb, frozen_dim, truth, known, tune, (landmarks, confidence)
            )
            base = details["baseline"]["parts"]
            lead = details["baseline"]["difference"]["check"]
            notes.append(
                f"baseline, the frozen descriptor's nearest gallery photo: check part GAP "
                f"{base['check']['gap']:.3f}, whole {base['whole']['gap']:.3f}; 08 minus it on "
                f"the check part {lead['gap']:+.3f} ({lead['interval'][0]:+.3f} to "
                f"{lead['interval'][1]:+.3f}, paired bootstrap)"
            )
    gated = int((~accepted).sum()) if accepted is not None and settings.gate else 0
    pred.landmarks[query_rows], pred.confidences[query_rows] = landmarks, confidence
    return pred, gated, notes, details


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
    if cfg.pretrained_only:  # the frozen descriptor reads the photos itself
        model, class_map, config = None, None, {"image_size": 0, "pipeline": 2}
    else:
        model, class_map, config = load_trained(cfg.checkpoint, device)
    dataset = test_dataset(cfg.data_root, attempt, config["image_size"] or 64, config["pipeline"])
    notes, details, rejected = [], {}, 0
    if cfg.method == "classifier":
        precision = config.get("precision", "auto")
        dtype = autocast_dtype(device, bool(config.get("amp")), precision, config["model"])
        pred = predict_classifier(
            model, class_map, dataset, device, budget, cfg.batch_size, cfg.workers, dtype, progress
        )
        if cfg.detector != "none":
            rejected = gate(pred, dataset.paths, cfg.detector, cfg.detector_threshold, cfg.device)
    else:
        pred, rejected, notes, details = _retrieval(
            cfg, model, config, dataset, device, budget, progress
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


def default_descriptor(descriptor: str, checkpoint: str, data_root: str | Path = "") -> str:
    """``descriptor``, or what ``"auto"`` means for this run.

    ``pretrained`` without a trained network (``checkpoint`` not a file); with one, ``both`` (on
    real photos the two together beat either, docs/submission.md), except on a generated mini
    dataset, where ``trained``: the frozen descriptor reads each photo at 400 px, minutes for
    its 2,600 photos that would take the default ``make pipeline`` past its 20 minutes, and it
    was not measured on drawn landmarks.
    """
    if descriptor != "auto":
        return descriptor
    if not checkpoint or not Path(checkpoint).is_file():
        return "pretrained"
    return "trained" if data_root and minigld.profile_of(Path(data_root)) else "both"
