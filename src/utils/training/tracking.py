"""Experiment tracking: metrics files beside the checkpoints, and Weights & Biases.

`MetricsLog` keeps one row per epoch and rewrites ``metrics.json`` (config, history, best)
and ``metrics.csv`` after each epoch. `start_wandb` opens a W&B run in ``offline`` mode by
default: it needs no network and no key, writes under ``OUTPUT/wandb/``, and can be uploaded
later with ``wandb sync OUTPUT/wandb/offline-run-*``. ``disabled`` turns W&B off.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pandas as pd

WANDB_MODES = ("offline", "online", "disabled")


class MetricsLog:
    """Per-epoch metrics written as JSON and CSV into ``folder``."""

    def __init__(self, folder: str | Path, config: dict, history: list[dict] | None = None):
        self.folder = Path(folder)
        self.config = config
        self.history: list[dict] = list(history or [])
        self.extra: dict = {}

    def append(self, row: dict) -> None:
        """Add one epoch's metrics and rewrite the files."""
        self.history.append(row)
        self.write()

    def write(self) -> None:
        """Rewrite ``metrics.json`` and ``metrics.csv``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        body = {"config": self.config, "history": self.history, **self.extra}
        tmp = self.folder / ".metrics.json.tmp"
        tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.folder / "metrics.json")
        pd.DataFrame(self.history).to_csv(self.folder / "metrics.csv", index=False)


def start_wandb(mode: str, project: str, folder: str | Path, config: dict, name: str | None):
    """A W&B run (``offline`` by default), or None when ``disabled``.

    The run id is kept in ``folder/wandb_id.txt`` so that a resumed training continues the
    same run.
    """
    if mode not in WANDB_MODES:
        raise ValueError(f"wandb mode must be one of {WANDB_MODES}, not {mode!r}")
    if mode == "disabled":
        return None
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    id_file = folder / "wandb_id.txt"
    run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:8]
    id_file.write_text(run_id)
    return wandb.init(
        project=project,
        dir=str(folder),
        mode=mode,
        config=config,
        id=run_id,
        name=name,
        resume="allow",
    )
