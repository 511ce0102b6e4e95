"""Training-throughput benchmark: images per second of each backbone, fp32 vs AMP.

See `utils.bench` for the command.
"""

from __future__ import annotations

import os
import time


def train_step_rate(model, device, size: int, batch: int, steps: int, fast: bool) -> float:
    """Training images/s of ``model`` on random data; ``fast``: AMP + channels_last (CUDA)."""
    import torch

    from utils.training.train import train_step

    memory = torch.channels_last if fast else torch.contiguous_format
    model = model.to(device, memory_format=memory).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=fast)
    images = torch.randn(batch, 3, size, size, device=device).to(memory_format=memory)
    labels = torch.randint(0, 10, (batch,), device=device)

    def step():
        train_step(model, images, labels, optimizer, scaler, fast)

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batch * steps / (time.perf_counter() - start)


def bench_train(models: list[str], size: int, batch: int, steps: int, device: str) -> dict:
    """fp32 (and on CUDA, AMP + channels_last) training throughput of each backbone."""
    from utils.models import build_model
    from utils.training.devices import resolve_device

    dev = resolve_device(device)
    rows = []
    for name in models:
        row = {
            "model": name,
            "fp32": round(
                train_step_rate(build_model(name, 10), dev, size, batch, steps, False), 1
            ),
        }
        if dev.type == "cuda":
            row["amp_channels_last"] = round(
                train_step_rate(build_model(name, 10), dev, size, batch, steps, True), 1
            )
            row["ratio"] = round(row["amp_channels_last"] / row["fp32"], 2)
        rows.append(row)
    import torch

    card = (
        torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    )
    return {"device": card, "size": size, "batch": batch, "steps": steps, "rows": rows}


def print_train(result: dict) -> None:
    """Print `bench_train`'s result, one line per backbone."""
    print(
        f"training throughput on {result['device']}: {result['size']} px, batch "
        f"{result['batch']}, {result['steps']} timed steps (images/s)"
    )
    for row in result["rows"]:
        extra = (
            f", AMP + channels_last {row['amp_channels_last']:.1f} ({row['ratio']:.2f}x)"
            if "ratio" in row
            else ""
        )
        print(f"  {row['model']:<16} fp32 {row['fp32']:.1f}{extra}")
