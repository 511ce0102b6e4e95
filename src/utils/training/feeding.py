"""Feeding the training step: how many loader workers, and the training loader itself.

Per image at 224 px, one core of the team's CPU (measured, 2026-11-30): decoding a mini-dataset
JPEG at reduced scale 1.0 ms, pipeline 2 in uint8 0.44 ms (1.16 ms with ``Normalize`` and the
float tensor), collating 0.15 ms (0.43 ms as float32). With 2 workers on 2 cores this loader
delivers about 1,400 images/s from files and 2,400 from the memory cache, the former one (float
batches, new workers each epoch) 800 and 1,100 (`python -m utils bench feed`). An H200 steps
ResNet-50 at 224 px at about 2,300 images/s (AMP, channels_last, batch 64; issue 9's
measurement), so it needs several workers, not the former default of 2.

`training_loader` ships uint8 batches (normalised on the device by
`utils.data.augment.normalize_batch`), draws `SeededBatches` so that augmentation depends on
the batch and not on the worker, and keeps its workers for the whole run. A fresh start each
epoch (fork the workers, wait for a first batch) took 0.24 s on the team's CPU for the mini
dataset's 1,088-image epoch, which that H200 steps through in 0.47 s.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from utils.data.batches import SeededBatches
from utils.data.datasets import make_loader

MAX_WORKERS = 16  # beyond this the main process (collation, pinning, the step) is the limit


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def resolve_workers(
    workers: int, device: torch.device, cache: bool, world: int = 1, cores: int | None = None
) -> int:
    """Loader processes per training process: ``workers`` when >= 0, else chosen (``-1``).

    Chosen: on CUDA, the cores left after one per training process, shared among the
    ``world`` processes (at most `MAX_WORKERS` each); on the CPU, none with the memory cache
    (the training threads use the cores better than workers would) and otherwise 2, or fewer
    when the ``world`` processes would not have a core each for them.
    """
    if workers >= 0:
        return workers
    cores = cores or available_cores()
    if device.type == "cuda":
        return max(1, min(MAX_WORKERS, (cores - world) // world))
    return 0 if cache else min(2, cores // world)


def training_loader(
    dataset: Dataset,
    batch_size: int,
    workers: int,
    seed: int,
    sampler: Sampler[int] | None = None,
    drop_last: bool = False,
) -> tuple[DataLoader, SeededBatches]:
    """A loader for the whole run and its batch sampler (call ``set_epoch`` before each epoch).

    ``sampler``: e.g. DDP's ``DistributedSampler`` (its ``set_epoch`` is called through the
    batch sampler); without it the order is shuffled from ``(seed, epoch)``.
    """
    batches = SeededBatches(len(dataset), batch_size, seed, True, drop_last, sampler)
    loader = make_loader(dataset, workers=workers, seed=seed, batch_sampler=batches)
    return loader, batches
