"""Training-throughput benchmark: each backbone's step rate per precision, and end to end.

``step``: images/s of forward + backward + training's AdamW on random batches already on the
device, for every precision the device has (CPU: fp32, bfloat16 autocast where oneDNN has it;
CUDA: fp32 (TF32 where the card uses it), float16 AMP with a GradScaler, bfloat16 AMP where
supported), each with and without channels_last; ``ratio`` is each rate over plain fp32 from
the same run. ``end_to_end``: images/s of real training steps fed by training's own loader
(`utils.training.feeding.training_loader` over the manifest's train split: pipeline 2 in uint8,
reduced-size decoding or the memory cache, persistent workers, epochs restarting as in
training) in the fastest step setting, so ``end_to_end / step`` says how much of the time the
device waits for data. Both rates include the normalisation on the device.

See `utils.bench.cli` for the command.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from utils.data.augment import normalize_batch
from utils.data.datasets import ClassMap
from utils.data.manifests import read_manifests
from utils.models import build_model
from utils.training.devices import DTYPES, cpu_has_bf16, resolve_device
from utils.training.evaluate import split_dataset
from utils.training.feeding import resolve_workers, training_loader
from utils.training.train import make_optimizer, train_step


def precisions(device: torch.device) -> list[str]:
    """The precisions worth timing on ``device``."""
    if device.type == "cuda":
        return ["fp32", "fp16", "bf16"] if torch.cuda.is_bf16_supported() else ["fp32", "fp16"]
    return ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]


def _timed(step, steps: int, device: torch.device, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _prepare(name: str, classes: int, device, precision: str, channels_last: bool):
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(name, classes).to(device, memory_format=memory).train()
    optimizer = make_optimizer(model.parameters(), 1e-4, 0.01, device)
    dtype = DTYPES[precision]
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    def step(images, labels):
        images = normalize_batch(images.to(device, non_blocking=True, memory_format=memory))
        train_step(
            model,
            images,
            labels.to(device),
            optimizer,
            scaler,
            dtype is not None,
            None,
            dtype or torch.float32,
        )

    return step


def step_rate(name, device, size, batch, steps, precision="fp32", channels_last=False) -> float:
    """Training images/s of ``name`` on random uint8 batches already on ``device``."""
    step = _prepare(name, 10, device, precision, channels_last)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    return batch * steps / _timed(lambda: step(images, labels), steps, device)


def end_to_end_rate(
    name,
    device,
    size,
    batch,
    steps,
    precision,
    channels_last,
    data_root,
    manifest_dir,
    workers=-1,
    cache=False,
) -> float:
    """Training images/s fed by training's loader (manifest train split, pipeline 2)."""
    config = {
        "manifest_dir": str(manifest_dir),
        "data_root": str(data_root),
        "image_size": size,
        "pipeline": 2,
        "max_images": 0,
        "seed": 0,
    }
    classes = ClassMap.from_manifest(read_manifests(manifest_dir).train)
    data = split_dataset(config, classes, "train", train=True, cache=cache)
    data.fill_cache()  # a no-op without the cache
    workers = resolve_workers(workers, device, cache)
    loader, batches = training_loader(data, batch, workers, seed=0, drop_last=True)
    if len(loader) == 0:
        raise ValueError(f"{manifest_dir}: the train split has {len(data)} images, under a batch")
    step = _prepare(name, len(classes), device, precision, channels_last)
    epoch, stream = 0, iter(loader)

    def one():
        nonlocal epoch, stream
        try:
            images, labels = next(stream)
        except StopIteration:  # the next epoch, as training starts it
            epoch += 1
            batches.set_epoch(epoch)
            stream = iter(loader)
            images, labels = next(stream)
        step(images, labels)

    return batch * steps / _timed(one, steps, device)


def bench_train(
    models: list[str],
    size: int,
    batch: int,
    steps: int,
    device: str,
    data_root: str | Path | None = None,
    manifest_dir: str | Path | None = None,
    workers: int = -1,
    cache: bool = False,
) -> dict:
    """Step rates per precision and layout, and (with a data root) the end-to-end rate."""
    dev = resolve_device(device)
    rows = []
    for name in models:
        rates = {}
        for precision in precisions(dev):
            for channels_last in (False, True):
                key = f"{precision}{' channels_last' if channels_last else ''}"
                rates[key] = step_rate(name, dev, size, batch, steps, precision, channels_last)
        base = rates["fp32"]
        best = max(rates, key=rates.get)
        row = {
            "model": name,
            "step": {k: round(v, 1) for k, v in rates.items()},
            "ratio": {k: round(v / base, 2) for k, v in rates.items()},
            "fastest": best,
        }
        if data_root and manifest_dir and Path(manifest_dir, "train.csv").is_file():
            precision, _, layout = best.partition(" ")
            e2e = end_to_end_rate(
                name,
                dev,
                size,
                batch,
                steps,
                precision,
                bool(layout),
                data_root,
                manifest_dir,
                workers,
                cache,
            )
            row["end_to_end"] = round(e2e, 1)
            row["end_to_end_over_step"] = round(e2e / rates[best], 2)
        rows.append(row)
    card = (
        torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    )
    return {"device": card, "size": size, "batch": batch, "steps": steps, "rows": rows}


def print_train(result: dict) -> None:
    """Print `bench_train`'s result, one block per backbone."""
    print(
        f"training throughput on {result['device']}: {result['size']} px, batch "
        f"{result['batch']}, {result['steps']} timed steps (images/s; ratio to fp32)"
    )
    for row in result["rows"]:
        cells = ", ".join(f"{k} {v:.1f} ({row['ratio'][k]:.2f}x)" for k, v in row["step"].items())
        print(f"  {row['model']:<16} {cells}; fastest: {row['fastest']}")
        if "end_to_end" in row:
            print(
                f"  {'':<16} end to end with the loader: {row['end_to_end']:.1f} "
                f"({row['end_to_end_over_step']:.0%} of the step rate)"
            )
