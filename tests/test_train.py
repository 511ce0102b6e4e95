import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from utils.training import checkpoint, devices, evaluate, train
from utils.training.train import TrainConfig


def free_port() -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def config(tiny_root, tiny_manifest, out, **overrides) -> TrainConfig:
    base = dict(
        data_root=str(tiny_root),
        manifest_dir=str(tiny_manifest),
        output_dir=str(out),
        model="mobilenet_v2",
        image_size=32,
        epochs=1,
        batch_size=16,
        workers=0,
        wandb_mode="disabled",
        seed=3,
    )
    return TrainConfig(**{**base, **overrides})


@pytest.mark.slow
def test_one_epoch_on_cpu_writes_checkpoints_and_metrics(tiny_root, tiny_manifest, tmp_path):
    out = tmp_path / "run"
    result = train.train(
        config(tiny_root, tiny_manifest, out, wandb_mode="offline"), progress=False
    )
    for name in (
        "best.pt",
        "last.pt",
        "metrics.json",
        "metrics.csv",
        "config.json",
        "class_map.json",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 1 and metrics["best_epoch"] == 1
    row = metrics["history"][0]
    assert 0 <= row["val_accuracy"] <= 1 and 0 <= row["val_gap"] <= 1 and row["train_loss"] > 0
    assert result.best_gap == row["val_gap"]
    assert list((out / "wandb").glob("offline-run-*"))  # W&B offline, no network, no key
    state = checkpoint.load(out / "last.pt")
    assert state["epoch"] == 1 and len(state["class_ids"]) == 5
    assert not list(out.glob(".*.tmp"))
    metrics, table = evaluate.evaluate(
        out / "best.pt", "test", device="cpu", workers=0, progress=False
    )
    assert metrics["images"] == len(table) == 6 and 0 <= metrics["gap"] <= 1
    assert metrics["dropped"] == 0
    assert set(table.columns) == {"id", "landmark_id", "predicted", "confidence"}

    # an unreadable test image is dropped and counted; every prediction keeps its own id
    broken_root = tmp_path / "broken"
    shutil.copytree(tiny_root, broken_root)
    model, class_map, run_config = checkpoint.load_trained(out / "best.pt")
    run_config = {**run_config, "data_root": str(broken_root)}
    data = evaluate.split_dataset(run_config, class_map, "test")
    data.paths[2].write_bytes(b"")
    with pytest.warns(UserWarning, match=f"image id {data.ids[2]}"):
        pred = evaluate.predict(model, evaluate.split_loader(data, 4, 0), torch.device("cpu"))
    assert pred["row"].tolist() == [0, 1, 3, 4, 5]
    assert [class_map.index(i) for i in table["landmark_id"].drop(index=2)] == pred[
        "label"
    ].tolist()
    assert table["predicted"].drop(index=2).tolist() == [
        class_map.landmark(i) for i in pred["predicted"]
    ]
    assert evaluate.summarize(pred, len(data))["dropped"] == 1


@pytest.mark.slow
def test_interrupt_and_resume_ends_where_an_uninterrupted_run_does(
    tiny_root, tiny_manifest, tmp_path
):
    full = train.train(config(tiny_root, tiny_manifest, tmp_path / "full", epochs=2), False)
    first = config(tiny_root, tiny_manifest, tmp_path / "cut", epochs=2, stop_after=1)
    assert len(train.train(first, False).history) == 1
    assert checkpoint.load(tmp_path / "cut" / "last.pt")["epoch"] == 1
    resumed = train.train(
        config(tiny_root, tiny_manifest, tmp_path / "cut", epochs=2, resume=True), False
    )
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    a = checkpoint.load(tmp_path / "full" / "last.pt")
    b = checkpoint.load(tmp_path / "cut" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, msg=key)
    assert [r["val_gap"] for r in full.history] == [r["val_gap"] for r in resumed.history]


def test_config_validation(tmp_path):
    with pytest.raises(ValueError, match="pipeline must be 1 or 2"):
        TrainConfig("d", "m", "o", pipeline=3)
    with pytest.raises(ValueError, match="wandb_mode"):
        TrainConfig("d", "m", "o", wandb_mode="cloud")


def test_cuda_asked_for_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        devices.resolve_device("cuda")
    assert devices.resolve_device("auto").type == "cpu"
    assert devices.ddp_backend(torch.device("cpu")) == "gloo"  # even where CUDA exists


def test_cli_reports_bad_input(tmp_path, capsys):
    code = train.main(
        [
            "--data-root",
            str(tmp_path),
            "--manifest-dir",
            str(tmp_path / "none"),
            "--output-dir",
            str(tmp_path / "o"),
            "--wandb-mode",
            "disabled",
        ]
    )
    assert code == 2 and "train.csv: file not found" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(tiny_root, tiny_manifest, tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        "-m",
        "utils",
        "train",
        "--data-root",
        str(tiny_root),
        "--manifest-dir",
        str(tiny_manifest),
        "--output-dir",
        str(out),
        "--model",
        "mobilenet_v2",
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--wandb-mode",
        "disabled",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert len(history) == 1 and (out / "last.pt").is_file()
