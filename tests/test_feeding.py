"""Feeding training: seeded batches, uint8 batches normalised on the device, worker counts."""

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from utils.data import augment, manifests
from utils.data.batches import SeededBatches, batch_seed
from utils.data.datasets import ClassMap, ManifestDataset
from utils.training.feeding import resolve_workers, training_loader


def tiny_train_set(tiny_root, tiny_manifest) -> ManifestDataset:
    split = manifests.read_manifests(tiny_manifest)
    cmap = ClassMap.from_manifest(split.train)
    transform = augment.pipeline2(48, normalize=False)
    return ManifestDataset(split.train, tiny_root, cmap, transform, min_side=54)


def indices(batch) -> list[int]:
    """A `SeededBatches` batch's indices: the first key carries the batch seed."""
    return [batch[0][1], *batch[1:]]


def epochs_of(loader, batches, epochs) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    out = []
    for epoch in epochs:
        batches.set_epoch(epoch)
        out.append(list(loader))
    return out


def test_batches_cover_the_items_once_per_epoch_in_an_order_drawn_from_seed_and_epoch():
    batches = SeededBatches(10, 4, seed=7)
    orders = []
    for epoch in (0, 1):
        batches.set_epoch(epoch)
        drawn = list(batches)
        assert [len(b) for b in drawn] == [4, 4, 2] and len(batches) == 3
        assert sorted(i for batch in drawn for i in indices(batch)) == list(range(10))
        # each batch opens with its seed, the other keys are plain indices
        assert all(not any(isinstance(k, tuple) for k in batch[1:]) for batch in drawn)
        assert len({batch[0][0] for batch in drawn}) == 3
        orders.append([i for batch in drawn for i in indices(batch)])
    assert orders[0] != orders[1]
    batches.set_epoch(0)
    assert [i for batch in batches for i in indices(batch)] == orders[0]
    assert len(SeededBatches(10, 4, seed=7, drop_last=True)) == 2
    assert batch_seed(7, 0, 0) != batch_seed(7, 0, 1) != batch_seed(7, 1, 0)


def test_a_distributed_sampler_gets_the_epoch_through_the_batches():
    sampler = DistributedSampler(range(10), num_replicas=2, rank=1, shuffle=True, seed=0)
    batches = SeededBatches(10, 2, seed=1, sampler=sampler)
    batches.set_epoch(3)
    assert sampler.epoch == 3 and len(batches) == 3
    assert [i for batch in batches for i in indices(batch)] == list(sampler)


@pytest.mark.slow
def test_augmentation_depends_on_the_batch_not_on_workers_or_persistence(tiny_root, tiny_manifest):
    data = tiny_train_set(tiny_root, tiny_manifest)
    runs = []
    for workers in (0, 2):
        loader, batches = training_loader(data, 8, workers, seed=5)
        assert loader.persistent_workers == (workers > 0)
        runs.append(epochs_of(loader, batches, (0, 1)))
    fresh, batches = training_loader(data, 8, 2, seed=5)  # a resumed run starts at epoch 1
    runs.append([runs[0][0], *epochs_of(fresh, batches, (1,))])
    for run in runs[1:]:
        for epoch_a, epoch_b in zip(runs[0], run, strict=True):
            for (a, la), (b, lb) in zip(epoch_a, epoch_b, strict=True):
                assert torch.equal(a, b) and torch.equal(la, lb)
    first, second = runs[0]
    assert first[0][0].dtype == torch.uint8 and first[0][0].shape == (8, 3, 48, 48)
    assert not torch.equal(first[0][0], second[0][0])  # each epoch draws anew


def test_a_batch_is_reseeded_even_when_drawn_twice_in_a_row(tiny_root, tiny_manifest):
    data = tiny_train_set(tiny_root, tiny_manifest)
    loader, batches = training_loader(data, len(data), 0, seed=5)  # one batch an epoch
    batches.set_epoch(0)
    (first, _), (again, _) = next(iter(loader)), next(iter(loader))
    assert torch.equal(first, again)


def test_normalising_on_the_device_matches_the_pipelines(rgb):
    for pipeline in (1, 2):
        normalised = augment.train_transform(32, pipeline, seed=4)(image=rgb)["image"]
        raw = augment.train_transform(32, pipeline, seed=4, normalize=False)(image=rgb)["image"]
        assert raw.dtype == torch.uint8
        later = augment.normalize_batch(raw[None])[0]
        np.testing.assert_allclose(later.numpy(), normalised.numpy(), atol=1e-5)
    floats = torch.rand(2, 3, 8, 8)
    assert augment.normalize_batch(floats) is floats  # already normalised: unchanged


def test_normalising_keeps_channels_last():
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    images = images.to(memory_format=torch.channels_last)
    out = augment.normalize_batch(images)
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)


def test_workers_chosen_for_the_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_workers(3, cuda, cache=True, cores=16) == 3  # asked for: kept
    assert resolve_workers(-1, cuda, cache=False, cores=16) == 15
    assert resolve_workers(-1, cuda, cache=True, cores=16, world=2) == 7  # per process
    assert resolve_workers(-1, cuda, cache=False, cores=64) == 16  # capped
    assert resolve_workers(-1, cuda, cache=False, cores=1) == 1
    assert resolve_workers(-1, cpu, cache=True, cores=2) == 0  # the cores train instead
    assert resolve_workers(-1, cpu, cache=False, cores=2) == 2
    assert resolve_workers(-1, cpu, cache=False, cores=2, world=2) == 1  # gloo DDP shares them
