"""What only a CUDA machine can show: training, notebooks 03-05 and DDP on the GPU.

Every test here is skipped, with the reason, where CUDA is absent (the team's machines, CI).
On a lent GPU machine `scripts/device_check.sh` runs them with the benchmarks.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, TINY_OVERRIDES, free_port, train_config
from utils import pipeline
from utils.data.manifests import read_manifests
from utils.models import build_model
from utils.models.delf import Delf
from utils.training import train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA; this machine has none"),
]


def tiny_config(root, manifest, out, **changes):
    """`train_config` for a few epochs of a real backbone on the GPU, workers as chosen there."""
    gpu = dict(model="resnet50", image_size=64, epochs=4, batch_size=8, lr=2e-3)
    gpu.update(warmup_epochs=1.0, device="cuda", workers=-1)
    return train_config(root, manifest, out, **{**gpu, **changes})


@pytest.mark.parametrize("model", ["resnet50", "efficientnet-b2"])
def test_training_on_cuda_lowers_the_loss(tiny_root, tiny_manifest, tmp_path, model):
    config = tiny_config(tiny_root, tiny_manifest, tmp_path / model, model=model)
    result = train.train(config, progress=False)
    losses = [row["train_loss"] for row in result.history]
    assert np.isfinite(losses).all() and min(losses[1:]) < losses[0], losses
    saved = json.loads((tmp_path / model / "config.json").read_text())
    assert saved["device"] == "cuda" and saved["channels_last"]


def test_delf_follows_a_backbone_already_on_cuda(tiny_manifest):
    """Notebook 05 on Kaggle: the probe of the backbone's stride must run where it lives."""
    classes = read_manifests(tiny_manifest).train.landmark_id.nunique()
    backbone = build_model("resnet50", classes).to("cuda").eval()
    delf = Delf(backbone, classes).to("cuda")
    maps, attention = delf.maps(torch.rand(2, 3, 64, 64, device="cuda"))
    assert maps.is_cuda and attention.is_cuda and delf.stride == 16


def test_notebooks_03_to_05_run_on_cuda(tiny_root, tiny_manifest, tmp_path):
    parameters = pipeline.default_parameters(tiny_root, "tiny", tiny_manifest)
    overrides = {**TINY_OVERRIDES, "DEVICE": "cuda", "WORKERS": 2}
    notebooks = pipeline.discover(REPO / "notebooks", only=["03", "04", "05"])
    pipeline.run_pipeline(notebooks, {**parameters, **overrides}, tmp_path, progress=False)
    for name in ("03_train_resnet", "04_train_effnet"):
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert config["device"] == "cuda" and config["channels_last"], name
        assert (tmp_path / name / "test_metrics.json").is_file(), name
    results = json.loads((tmp_path / "05_delf_rerank" / "test_results.json").read_text())
    assert "re-ranked top-3, DELF" in results


def torchrun(root, manifest, out, processes: int, device: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}"]
    command += [f"--master_port={free_port()}", "-m", "utils", "train"]
    command += ["--data-root", str(root), "--manifest-dir", str(manifest)]
    command += ["--output-dir", str(out), "--model", "mobilenet_v2", "--image-size", "32"]
    command += ["--epochs", "1", "--batch-size", "8", "--workers", "0"]
    command += ["--wandb-mode", "disabled", "--device", device]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def test_ddp_with_device_cpu_on_a_gpu_machine_uses_gloo(tiny_root, tiny_manifest, tmp_path):
    done = torchrun(tiny_root, tiny_manifest, tmp_path / "cpu", 2, "cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "cpu" / "last.pt").is_file()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL DDP needs two CUDA devices")
def test_ddp_with_nccl_on_two_gpus(tiny_root, tiny_manifest, tmp_path):
    done = torchrun(tiny_root, tiny_manifest, tmp_path / "nccl", 2, "cuda")
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads((tmp_path / "nccl" / "metrics.json").read_text())["history"]
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])


def test_bench_train_reports_the_end_to_end_share_on_cuda(tiny_root, tiny_manifest):
    from utils.bench.train import bench_train

    result = bench_train(["resnet50"], 64, 8, 3, "cuda", tiny_root, tiny_manifest)
    row = result["rows"][0]
    assert {"fp32", "fp16", "fp32 channels_last"} <= set(row["step"])
    assert row["end_to_end"] > 0 and 0 < row["end_to_end_over_step"]
    assert "CPU" not in result["device"]  # the card's name
