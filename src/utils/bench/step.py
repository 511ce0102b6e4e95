"""Training-step benchmark: training's kernels against the ones they replaced, in one run.

Per backbone, images/s of forward + backward + AdamW on one random batch already on the device,
channels_last, in the precision training chooses there (`utils.training.devices.autocast_dtype`):

- ``baseline``: efficientnet-pytorch's own swish (``MemoryEfficientSwish``, a Python autograd
  function) and ``torch.optim.AdamW`` looping over the tensors (``foreach=False``), as training
  ran before;
- ``project``: what training runs now: ``nn.SiLU`` (`utils.models.backbones.native_silu`) and
  the fused AdamW (`utils.training.train.make_optimizer`).

Both start from the same weights; their timed rounds alternate, so a loaded machine slows both
alike, and ``ratio`` is project / baseline per round. ``optimizer_ms`` times one AdamW step
alone (gradients of the last step still in place). ResNet-50 has no swish: only its optimiser
differs.

See `utils.bench.cli` for the command.
"""

from __future__ import annotations

import copy
import os
import statistics
import time

import torch
from efficientnet_pytorch.utils import MemoryEfficientSwish
from torch import nn

from utils.data.augment import normalize_batch
from utils.models import build_model, canonical_name
from utils.training.devices import autocast_dtype, resolve_device
from utils.training.train import make_optimizer, train_step


def stock_swish(net: nn.Module) -> int:
    """Put efficientnet-pytorch's ``MemoryEfficientSwish`` back for every ``nn.SiLU``; count."""
    replaced = 0
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.SiLU):
                setattr(module, name, MemoryEfficientSwish())
                replaced += 1
    return replaced


def _train_step(model, optimizer, images, labels, scaler, dtype) -> None:
    """One training step on a uint8 batch, as training takes it (normalised on the device)."""
    x = normalize_batch(images.to(memory_format=torch.channels_last))
    train_step(model, x, labels, optimizer, scaler, dtype is not None, None, dtype or torch.float32)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_step(
    models: list[str],
    size: int = 96,
    batch: int = 16,
    steps: int = 4,
    rounds: int = 4,
    device: str = "auto",
) -> dict:
    """Images/s of the baseline and the project step per backbone, alternating rounds."""
    dev = resolve_device(device)
    rows = []
    for name in models:
        name = canonical_name(name)
        torch.manual_seed(0)
        project = build_model(name, 30)
        baseline = copy.deepcopy(project)
        swapped = stock_swish(baseline)
        dtype = autocast_dtype(dev, True, "auto", name)
        images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=dev)
        labels = torch.randint(0, 30, (batch,), device=dev)
        scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)
        runs = {}
        for key, model in (("baseline", baseline), ("project", project)):
            model = model.to(dev, memory_format=torch.channels_last).train()
            if key == "baseline":
                optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=False)
            else:
                optimizer = make_optimizer(model.parameters(), 1e-4, 0.01, dev)
            runs[key] = (model, optimizer)

        def step(model, optimizer, batch_in=(images, labels, scaler, dtype)):
            _train_step(model, optimizer, *batch_in)

        for model, optimizer in runs.values():  # warm-up: allocator, oneDNN primitives
            step(model, optimizer)
            step(model, optimizer)
        rates = {key: [] for key in runs}
        for _ in range(rounds):
            for key, (model, optimizer) in runs.items():
                _sync(dev)
                tic = time.perf_counter()
                for _ in range(steps):
                    step(model, optimizer)
                _sync(dev)
                rates[key].append(batch * steps / (time.perf_counter() - tic))
        optimizer_ms = {}
        for key, (_, optimizer) in runs.items():
            _sync(dev)
            tic = time.perf_counter()
            for _ in range(steps):
                optimizer.step()
            _sync(dev)
            optimizer_ms[key] = 1000 * (time.perf_counter() - tic) / steps
        ratios = [p / b for p, b in zip(rates["project"], rates["baseline"], strict=True)]
        rows.append(
            {
                "model": name,
                "precision": "fp32" if dtype is None else str(dtype).removeprefix("torch."),
                "swish_modules": swapped,
                "baseline": [round(r, 1) for r in rates["baseline"]],
                "project": [round(r, 1) for r in rates["project"]],
                "ratio": [round(r, 2) for r in ratios],
                "median_ratio": round(statistics.median(ratios), 2),
                "optimizer_ms": {k: round(v, 1) for k, v in optimizer_ms.items()},
            }
        )
    card = (
        torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    )
    return {"device": card, "size": size, "batch": batch, "steps": steps, "rows": rows}


def print_step(result: dict) -> None:
    """Print `bench_step`'s result, one block per backbone."""
    print(
        f"training step on {result['device']}: {result['size']} px, batch {result['batch']}, "
        f"{result['steps']} steps per round, channels_last (images/s per round)"
    )
    for row in result["rows"]:
        base = " ".join(f"{r:.1f}" for r in row["baseline"])
        new = " ".join(f"{r:.1f}" for r in row["project"])
        ms = row["optimizer_ms"]
        print(f"  {row['model']} ({row['precision']}, {row['swish_modules']} swish modules)")
        print(f"    baseline (stock swish, loop AdamW): {base}")
        print(f"    project (nn.SiLU, fused AdamW):     {new}")
        print(
            f"    ratio per round {' '.join(f'{r:.2f}' for r in row['ratio'])}, median "
            f"{row['median_ratio']:.2f}x; AdamW step alone {ms['baseline']:.1f} -> "
            f"{ms['project']:.1f} ms"
        )
