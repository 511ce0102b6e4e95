"""Train and evaluate a landmark classifier: resumable, tracked, single process or DDP.

``python -m utils train --data-root DIR --manifest-dir DIR --output-dir DIR [--model resnet50]
[--epochs 3] ...`` (every `TrainConfig` field is a flag), or with several GPUs / machines:
``torchrun --nproc_per_node=2 -m utils train ...`` (same flags; rank 0 validates, logs and
writes checkpoints).

Recipe (the report's, for pretrained backbones, and `TrainConfig`'s defaults): AdamW (lr 1e-4),
cross-entropy, batch 32, cosine schedule over the epochs; AMP (float16) and channels_last on CUDA.
The learning rate is set every optimisation step (`lr_factor`): an optional linear warm-up
(``warmup_epochs``), then the cosine decay. Training from scratch on a CPU (the embedded
profile's notebooks) needs its own settings: a higher lr with warm-up, smaller images, label
smoothing, more epochs and the in-memory image cache (``cache``), see notebooks 03 and 04.

After each epoch: validation accuracy and GAP, ``last.pt`` every epoch and ``best.pt`` at every
GAP improvement (both atomic), and ``metrics.json``/``metrics.csv``. ``resume`` continues from
``last.pt`` with the epoch, optimiser, scaler, scheduler and random states. Every epoch draws
its data order and augmentations from ``(seed, epoch)``, so an interrupted and resumed run ends
where an uninterrupted one does.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from utils.data.augment import normalize_batch
from utils.data.datasets import ClassMap, make_loader
from utils.data.manifests import read_binary_split, read_manifests
from utils.models import build_model, canonical_name
from utils.models.backbones import POOLINGS
from utils.models.heads import HEADS, arcface_loss, dynamic_margins
from utils.training import checkpoint
from utils.training.checkpoint import output_size
from utils.training.devices import PRECISIONS, autocast_dtype, ddp_backend, resolve_device
from utils.training.evaluate import (
    predict,
    predict_binary,
    split_dataset,
    split_loader,
    summarize,
    summarize_binary,
)
from utils.training.feeding import resolve_workers, training_loader
from utils.training.tracking import WANDB_MODES, MetricsLog, start_wandb

TASKS = ("landmark", "binary")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; saved as ``config.json`` beside the checkpoints."""

    data_root: str  # dataset folder in the Kaggle layout
    manifest_dir: str  # folder with train/val/test.csv manifests
    output_dir: str  # checkpoints, metrics, config.json
    model: str = "resnet50"  # resnet50 | efficientnet-b2 | mobilenet_v2 | dolg
    task: str = "landmark"  # landmark: one class per landmark; binary: landmark vs non-landmark
    head: str = ""  # arcface | subcenter margin head; empty: the model's own (DOLG's: arcface)
    pooling: str = "avg"  # avg | gem, the classifiers' global pooling (DOLG has its own GeM)
    subcenters: int = 3  # sub-centres per class of the subcenter head
    scale: float = 30.0  # ArcFace scale s
    margin: float = 0.3  # ArcFace margin m, radians, when margins are not dynamic
    dynamic_margins: bool = True  # per-class m from class frequency, ArcFace heads only
    pretrained: bool = False  # ImageNet weights from a local file (the report: False for ResNet)
    pretrained_path: str = ""  # that file (empty: the torch cache or a Kaggle dataset)
    pipeline: int = 2  # augmentation pipeline 1 or 2
    image_size: int = 224  # training crop, pixels
    epochs: int = 3  # epochs in all
    batch_size: int = 32  # images per step (per process under DDP)
    lr: float = 1e-4  # AdamW learning rate (peak, after the warm-up)
    weight_decay: float = 0.01  # AdamW weight decay
    scheduler: str = "cosine"  # cosine | none, per step after the warm-up (`lr_factor`)
    warmup_epochs: float = 0.0  # linear lr warm-up over this many epochs (fractions allowed)
    label_smoothing: float = 0.0  # cross-entropy label smoothing of training, in [0, 1)
    max_images: int = 0  # cap on the images of each split (0: all)
    workers: int = -1  # data loader processes; -1: chosen for the device (`resolve_workers`)
    cache: bool = False  # keep decoded train/val images in memory (`ManifestDataset` cache)
    threads: int = 0  # torch CPU threads of the training process (0: torch's default)
    bn_recalibration: int = 0  # batches to recompute BN statistics before validation (0: off)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision as precision auto chooses; off: fp32
    precision: str = "auto"  # auto: the fastest measured per model and device | fp32 | fp16 | bf16
    channels_last: bool = True  # channels_last memory layout, CUDA and CPU
    wandb_mode: str = "offline"  # offline | online | disabled
    wandb_project: str = "landmark-recognition"  # W&B project name
    resume: bool = False  # continue from OUTPUT/last.pt when it exists
    stop_after: int = 0  # end this session after N epochs (0: run to `epochs`); resume later
    seed: int = 0  # seed of data order, augmentation and initialisation

    def __post_init__(self):
        checks = [
            (self.pipeline in (1, 2), f"pipeline must be 1 or 2, not {self.pipeline}"),
            (self.task in TASKS, f"task must be one of {TASKS}, not {self.task!r}"),
            (
                self.task == "landmark" or canonical_name(self.model) != "dolg",
                "the binary task needs a classifier (resnet50, efficientnet-b2, mobilenet_v2)",
            ),
            (
                self.head in ("", *HEADS),
                f"head: empty or one of {', '.join(HEADS)}, not {self.head!r}",
            ),
            (
                self.task == "landmark" or not self.head,
                "the binary task needs the model's own head, not a margin head",
            ),
            (
                self.pooling in POOLINGS,
                f"pooling: one of {', '.join(POOLINGS)}, not {self.pooling!r}",
            ),
            (self.scale > 0 and 0 <= self.margin < 1.6, "scale must be > 0, margin in [0, 1.6)"),
            (self.subcenters >= 1, f"subcenters must be >= 1, not {self.subcenters}"),
            (self.precision in PRECISIONS, f"precision: one of {PRECISIONS}"),
            (self.image_size >= 16, f"image_size must be >= 16, not {self.image_size}"),
            (self.epochs >= 1, f"epochs must be >= 1, not {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, not {self.batch_size}"),
            (self.lr > 0, f"lr must be positive, not {self.lr}"),
            (
                self.scheduler in ("cosine", "none"),
                f"scheduler: cosine or none, not {self.scheduler}",
            ),
            (self.wandb_mode in WANDB_MODES, f"wandb_mode: one of {WANDB_MODES}"),
            (self.max_images >= 0, f"max_images must be >= 0, not {self.max_images}"),
            (self.workers >= -1, f"workers must be >= 0, or -1 to choose, not {self.workers}"),
            (self.seed >= 0, f"seed must be >= 0, not {self.seed}"),
            (
                0 <= self.warmup_epochs <= self.epochs,
                f"warmup_epochs must be in [0, epochs], not {self.warmup_epochs}",
            ),
            (
                0 <= self.label_smoothing < 1,
                f"label_smoothing must be in [0, 1), not {self.label_smoothing}",
            ),
            (self.threads >= 0, f"threads must be >= 0, not {self.threads}"),
            (self.bn_recalibration >= 0, "bn_recalibration must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class TrainResult:
    """What `train` leaves behind (``best_gap``: val AUROC for the binary task)."""

    output_dir: Path
    history: list[dict]
    best_gap: float
    best_epoch: int


def _distributed() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment (1 process: 0, 1, 0)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(label_smoothing: float = 0.0) -> Criterion:
    """Cross-entropy of logits; with smoothing ``e`` a target is ``(1 - e) onehot + e / n``."""
    return partial(nn.functional.cross_entropy, label_smoothing=label_smoothing)


def binary_cross_entropy(label_smoothing: float = 0.0) -> Criterion:
    """``BCEWithLogitsLoss`` of one logit ``(B, 1)`` per image against labels 0/1.

    With smoothing ``e`` a target ``y`` becomes ``y (1 - e) + e / 2``.
    """
    loss = nn.BCEWithLogitsLoss()

    def criterion(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        target = labels.float() * (1 - label_smoothing) + label_smoothing / 2
        return loss(logits.reshape(-1), target)

    return criterion


def criterion_for(cfg: TrainConfig, class_counts: np.ndarray) -> Criterion:
    """The loss of a run: cross-entropy, ArcFace on a margin head's cosines, or binary BCE.

    DOLG always has a margin head; a classifier has one when ``cfg.head`` is set.

    ArcFace margins are ``cfg.margin`` for every class, or with ``dynamic_margins``
    `dynamic_margins` of the train split's class counts (each sample gets its class's margin).
    The ``binary`` task (landmark vs non-landmark) has one logit per image and
    `binary_cross_entropy`.
    """
    if cfg.task == "binary":
        return binary_cross_entropy(cfg.label_smoothing)
    if canonical_name(cfg.model) != "dolg" and not cfg.head:
        return cross_entropy(cfg.label_smoothing)
    if cfg.dynamic_margins:
        margins = torch.as_tensor(dynamic_margins(class_counts))
    else:
        margins = torch.full((len(class_counts),), cfg.margin)

    def arcface(cosine: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        m = margins.to(labels.device)[labels]
        return arcface_loss(cosine, labels, cfg.scale, m, cfg.label_smoothing)

    return arcface


def train_step(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    amp: bool,
    criterion: Criterion | None = None,
    dtype: torch.dtype = torch.float16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step, in ``dtype`` autocast when ``amp``.

    ``criterion(outputs, labels)`` is the loss (default: cross-entropy; `criterion_for`).
    Returns the network's outputs ``(B, n)`` (logits, or DOLG's cosines) and the loss.
    """
    criterion = criterion or cross_entropy()
    with torch.autocast(images.device.type, dtype=dtype, enabled=amp):
        logits = net(images)
        loss = criterion(logits.float(), labels)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return logits, loss


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches, device: torch.device | None = None) -> int:
    """Recompute every BatchNorm's running statistics for the current weights ("precise BN").

    The statistics are reset and re-estimated as the plain average over ``batches`` (an
    iterable of images ``(B, 3, H, W)`` or ``(images, labels)``) of forward passes without
    gradients, the BatchNorm layers in train mode and every other layer (dropout, drop-connect)
    in eval mode, as at inference. The model is left in eval mode. Running averages with a
    momentum lag behind weights that change fast, e.g. early in a training from scratch, which
    eval mode then pays for. Returns the number of batches used.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
        norm.train()
    count = 0
    for batch in batches:
        images = batch[0] if isinstance(batch, list | tuple) else batch
        model(normalize_batch(images.to(device) if device is not None else images))
        count += 1
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.eval()
    return count


def predicted_classes(outputs: torch.Tensor) -> torch.Tensor:
    """Class of each row: the argmax, or for one binary logit per row ``logit > 0``."""
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        return (outputs[:, 0] > 0).long()
    return outputs.argmax(1)


def lr_factor(step: int, total: int, warmup: int, cosine: bool = True) -> float:
    """Multiplier of the base lr at optimisation step ``step`` (0-based) of ``total``.

    Linear warm-up ``(step + 1) / warmup`` over the first ``warmup`` steps, then
    ``0.5 (1 + cos(pi (step - warmup) / (total - warmup)))`` when ``cosine``, else 1.
    """
    if step < warmup:
        return (step + 1) / warmup
    if not cosine or total <= warmup:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, total - warmup) / (total - warmup)))


def make_optimizer(
    params, lr: float, weight_decay: float, device: torch.device
) -> torch.optim.AdamW:
    """AdamW over ``params``, fused into one kernel per step where torch has it (CPU and CUDA).

    The update is AdamW's (decoupled weight decay ``w <- w - lr (m_hat / (sqrt(v_hat) + eps) +
    wd w)``); fusing only saves the dozen passes over the weights that the per-tensor loop makes
    (ResNet-50, 2 CPU cores: 24 ms against 63 ms per step, `bench step`).
    """
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


def steps_per_epoch(images: int, batch_size: int) -> int:
    """Optimisation steps of an epoch over ``images``; a last batch of 1 is dropped (BN)."""
    return images // batch_size + (1 if images % batch_size > 1 else 0)


def _scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, per_epoch: int):
    """A per-step `LambdaLR` over `lr_factor` (``scheduler.step()`` after every step)."""
    total, warmup = cfg.epochs * per_epoch, round(cfg.warmup_epochs * per_epoch)
    cosine = cfg.scheduler == "cosine"
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, warmup, cosine)
    )


def train(cfg: TrainConfig, progress: bool = True) -> TrainResult:
    """Run (or resume) a training; see the module docstring.

    ``cfg.threads`` applies to this call only: torch's thread count is restored afterwards.
    """
    previous = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, progress)
    finally:
        torch.set_num_threads(previous)


def _train(cfg: TrainConfig, progress: bool) -> TrainResult:
    rank, world, local_rank = _distributed()
    device = resolve_device(cfg.device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(ddp_backend(device))
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    workers = resolve_workers(cfg.workers, device, cfg.cache, world)
    dtype = autocast_dtype(device, cfg.amp, cfg.precision, canonical_name(cfg.model))
    use_amp = dtype is not None
    memory = torch.channels_last if cfg.channels_last else None
    out = Path(cfg.output_dir)
    lead = rank == 0
    torch.manual_seed(cfg.seed)

    binary = cfg.task == "binary"
    if binary:
        train_frame = read_binary_split(cfg.manifest_dir, "train")
        class_map = ClassMap([0, 1])
        labels = train_frame["label"]
    else:
        train_frame = read_manifests(cfg.manifest_dir).train
        class_map = ClassMap.from_manifest(train_frame)
        labels = train_frame["landmark_id"]
    config = dataclasses.asdict(cfg)
    train_set = split_dataset(config, class_map, "train", train=True, cache=cfg.cache)
    val_set = split_dataset(config, class_map, "val", cache=cfg.cache)
    if cfg.cache:  # decoded once here, before any loader worker forks
        train_set.fill_cache()
        val_set.fill_cache()
    model = build_model(
        cfg.model,
        output_size(config, len(class_map)),
        cfg.pretrained,
        cfg.pretrained_path or None,
        cfg.head,
        cfg.subcenters,
        cfg.scale,
        cfg.pooling,
    )
    counts = labels.map(class_map.index).value_counts()
    criterion = criterion_for(cfg, counts.reindex(range(len(class_map)), fill_value=0).to_numpy())
    model = model.to(device, memory_format=memory) if memory else model.to(device)
    optimizer = make_optimizer(model.parameters(), cfg.lr, cfg.weight_decay, device)
    sampler = (
        DistributedSampler(train_set, world, rank, shuffle=True, seed=cfg.seed)
        if world > 1
        else None
    )
    per_rank = len(sampler) if sampler is not None else len(train_set)
    scheduler = _scheduler(cfg, optimizer, steps_per_epoch(per_rank, cfg.batch_size))
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    start, best_gap, best_epoch, history = 0, -1.0, 0, []

    last = out / "last.pt"
    if cfg.resume and last.is_file():
        state = checkpoint.load(last)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        checkpoint.set_rng_state(state["rng"])
        start, best_gap, best_epoch = state["epoch"], state["best_gap"], state["best_epoch"]
        history = list(state["history"])
        if lead:
            print(f"resuming from {last}: {start} of {cfg.epochs} epochs done")
    if lead:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        class_map.save(out / "class_map.json")
    log = MetricsLog(out, config, history)
    run = start_wandb(cfg.wandb_mode, cfg.wandb_project, out, config, out.name) if lead else None
    net = (
        DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        if world > 1
        else model
    )
    val_loader = split_loader(val_set, cfg.batch_size, workers, cfg.seed)
    loader, batches = training_loader(  # one for the run: batches are drawn from (seed, epoch)
        train_set,
        cfg.batch_size,
        workers,
        seed=cfg.seed * 1000 + 100_000 * rank,
        sampler=sampler,
        drop_last=per_rank % cfg.batch_size == 1,  # no batch of 1 for BatchNorm
    )
    end = cfg.epochs if not cfg.stop_after else min(cfg.epochs, start + cfg.stop_after)

    for epoch in range(start, end):
        batches.set_epoch(epoch)
        net.train()
        tic, seen, loss_sum, hits, lr_sum = time.perf_counter(), 0, 0.0, 0, 0.0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (progress and lead))
        for images, labels in bar:
            images = normalize_batch(  # uint8 from the loader: a quarter of the bytes
                images.to(device, non_blocking=True, memory_format=memory or torch.preserve_format)
            )
            labels = labels.to(device, non_blocking=True)
            lr_sum += optimizer.param_groups[0]["lr"]
            logits, loss = train_step(
                net, images, labels, optimizer, scaler, use_amp, criterion, dtype or torch.float32
            )
            scheduler.step()
            seen += len(labels)
            loss_sum += loss.item() * len(labels)
            hits += int((predicted_classes(logits) == labels).sum())
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{hits / seen:.3f}")
        lr = lr_sum / max(len(loader), 1)  # the epoch's mean lr
        if cfg.bn_recalibration:  # the same batches on every rank: the replicas stay equal
            recalibration = make_loader(
                train_set,
                cfg.batch_size,
                shuffle=True,
                workers=min(workers, 2),  # a few batches: not a second full set of workers
                seed=cfg.seed * 1000 + epoch,
                drop_last=True,
                persistent=False,
            )
            recalibrate_batchnorm(
                model, itertools.islice(recalibration, cfg.bn_recalibration), device
            )
        seconds = time.perf_counter() - tic
        if world > 1:
            dist.barrier()
        if not lead:
            continue
        if binary:
            val = summarize_binary(predict_binary(model, val_loader, device, dtype), len(val_set))
            val["gap"] = val["auroc"]  # the selection metric of the binary task
        else:
            val = summarize(predict(model, val_loader, device, dtype, progress), len(val_set))
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            "train_accuracy": hits / max(seen, 1),
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            **({"val_auroc": val["auroc"]} if binary else {"val_gap": val["gap"]}),
            "val_dropped": val["dropped"],
            "lr": lr,
            "seconds": round(seconds, 2),
            "train_images_per_second": round(seen * world / seconds, 1),
        }
        improved = val["gap"] > best_gap
        if improved:
            best_gap, best_epoch = val["gap"], epoch + 1
        log.append(row)
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": epoch + 1,
            "best_gap": best_gap,
            "best_epoch": best_epoch,
            "history": log.history,
            "config": config,
            "class_ids": class_map.landmark_ids,
            "rng": checkpoint.rng_state(),
        }
        if improved:
            checkpoint.save_atomic(state, out / "best.pt")
        checkpoint.save_atomic(state, last)
        if run is not None:
            run.log(row, step=epoch + 1)
        print(
            f"epoch {epoch + 1}: val accuracy {val['accuracy']:.4f}, "
            f"{'AUROC' if binary else 'GAP'} {val['gap']:.4f}"
            f"{' (best)' if improved else ''}",
            flush=True,
        )
    if lead:
        log.extra = {"best_gap": best_gap, "best_epoch": best_epoch}
        log.write()
    if run is not None:
        run.summary.update({"best_gap": best_gap, "best_epoch": best_epoch})
        run.finish()
    if world > 1:
        dist.barrier()
    return TrainResult(out, log.history, best_gap, best_epoch)


def field_help(cls: type) -> dict[str, str]:
    """The trailing ``# comment`` of each field in ``cls``'s source: one text for code and CLI."""
    lines = inspect.getsource(cls).splitlines()
    found = {}
    for field in dataclasses.fields(cls):
        for line in lines:
            if line.strip().startswith(f"{field.name}:") and "#" in line:
                found[field.name] = line.split("#", 1)[1].strip()
                break
    return found


def parser() -> argparse.ArgumentParser:
    """Options of the command: one flag per `TrainConfig` field, its comment as the help."""
    parser = argparse.ArgumentParser(
        prog="python -m utils train", description=__doc__.split("\n")[0]
    )
    helps = field_help(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        text = helps.get(field.name)
        if field.type in ("bool", bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=field.default, help=text
            )
        elif field.default is dataclasses.MISSING:
            parser.add_argument(flag, required=True, help=text)
        else:
            kind = {"int": int, "float": float}.get(str(field.type), str)
            parser.add_argument(flag, type=kind, default=field.default, help=text)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (also under torchrun)."""
    args = vars(parser().parse_args(argv))
    try:
        cfg = TrainConfig(**args)
        result = train(cfg)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if _distributed()[0] == 0:
        print(
            f"best val GAP {result.best_gap:.4f} at epoch {result.best_epoch}; "
            f"checkpoints in {result.output_dir}"
        )
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0
