import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from conftest import free_port
from conftest import train_config as config
from utils.data.datasets import ClassMap, ManifestDataset, make_loader
from utils.models import build_model
from utils.training import checkpoint, devices, evaluate, train
from utils.training.train import TrainConfig


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
    with pytest.raises(ValueError, match="warmup_epochs must be in"):
        TrainConfig("d", "m", "o", epochs=2, warmup_epochs=3)
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        TrainConfig("d", "m", "o", label_smoothing=1.0)
    with pytest.raises(ValueError, match="threads must be >= 0"):
        TrainConfig("d", "m", "o", threads=-1)
    with pytest.raises(ValueError, match="pooling: one of avg, gem"):
        TrainConfig("d", "m", "o", pooling="max")
    with pytest.raises(ValueError, match="the binary task needs the model's own head"):
        TrainConfig("d", "m", "o", task="binary", head="arcface")


def test_a_margin_head_trains_with_arcface_and_reloads_from_its_checkpoint(tmp_path):
    """A classifier with a margin head gets the ArcFace loss; its checkpoint rebuilds it."""
    from utils.training.checkpoint import model_from_state

    cfg = TrainConfig(
        "d",
        "m",
        "o",
        model="efficientnet-lite0",
        head="subcenter",
        pooling="gem",
        margin=0.4,
        dynamic_margins=False,
        scale=10.0,
    )
    cosine = torch.tensor([[0.5, 0.2], [0.1, 0.3]])
    labels = torch.tensor([0, 1])
    expected = F.cross_entropy(
        10.0
        * torch.tensor(
            [[math.cos(math.acos(0.5) + 0.4), 0.2], [0.1, math.cos(math.acos(0.3) + 0.4)]]
        ),
        labels,
    )
    torch.testing.assert_close(train.criterion_for(cfg, np.array([3, 3]))(cosine, labels), expected)
    plain = TrainConfig("d", "m", "o", model="efficientnet-lite0")
    torch.testing.assert_close(
        train.criterion_for(plain, np.array([3, 3]))(cosine, labels),
        F.cross_entropy(cosine, labels),
    )
    model = build_model("efficientnet-lite0", 2, head="subcenter", pooling="gem", scale=10.0)
    state = {"config": dataclasses.asdict(cfg), "class_ids": [7, 9], "model": model.state_dict()}
    loaded, class_map, _ = model_from_state(state)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.logits(x), model.eval().logits(x))
    assert loaded.body.pool.p.item() == pytest.approx(3.0)


def test_lr_warms_up_linearly_then_decays_by_cosine_every_step():
    total, warmup = 100, 10
    factors = [train.lr_factor(step, total, warmup) for step in range(total)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == 1.0 and factors[55] == pytest.approx(0.5) and factors[-1] < 0.001
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False))
    assert train.lr_factor(50, total, warmup, cosine=False) == 1.0
    assert train.lr_factor(0, total, 0) == 1.0
    # a last batch of one image is dropped (BatchNorm), so it is no step
    assert [train.steps_per_epoch(n, 16) for n in (32, 33, 34, 51)] == [2, 2, 3, 4]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["resnet50", "efficientnet-b2", "dolg"])
def test_training_steps_fit_a_batch_and_eval_mode_agrees(tiny_root, tiny_manifest, model):
    """From scratch, 30 steps fit one batch of tiny images, and eval mode predicts as well.

    Eval mode uses BN's running statistics. After these 30 fast-moving steps EfficientNet-B2's
    running averages (momentum 0.01 or 0.1 alike) still make eval mode predict one class (accuracy
    0.25 where train mode had 0.94, measured); `recalibrate_batchnorm` re-estimates them for
    the final weights (0.81). The notebooks' longer runs end on a decayed lr, where momentum
    0.1 suffices (`test_models`).
    """
    torch.manual_seed(0)
    cfg = dataclasses.asdict(config(tiny_root, tiny_manifest, "unused", image_size=64))
    class_map = ClassMap.from_manifest(pd.read_csv(tiny_manifest / "train.csv"))
    data = evaluate.split_dataset(cfg, class_map, "train")  # the eval transform: fixed images
    images, labels = next(iter(make_loader(data, 16, shuffle=True, workers=0, seed=0)))[:2]
    net = build_model(model, len(class_map)).train()
    counts = np.bincount(data.labels, minlength=len(class_map))
    run = config(tiny_root, tiny_manifest, "unused", model=model, label_smoothing=0.1)
    criterion = train.criterion_for(run, counts)  # ArcFace with dynamic margins for DOLG
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the machine's two cores: one made the three cases 141 s, two 91 s
    try:
        losses = [
            train.train_step(net, images, labels, optimizer, scaler, False, criterion)[1].item()
            for _ in range(30)
        ]
        with torch.no_grad():
            fitted = (net(images).argmax(1) == labels).float().mean().item()  # batch statistics
            train.recalibrate_batchnorm(net, [images])
            predicted = net(images).argmax(1)  # eval mode, recalibrated running statistics
    finally:
        torch.set_num_threads(threads)
    assert np.mean(losses[-5:]) < 0.5 * losses[0], losses  # at least half the initial loss
    prior = labels.bincount().max().item() / len(labels)
    accuracy = (predicted == labels).float().mean().item()
    assert fitted > prior + 0.3 and accuracy > prior + 0.3, (fitted, accuracy, prior)
    assert not net.training


def test_warm_up_is_per_step_inside_the_first_epoch(tiny_root, tiny_manifest, tmp_path):
    cfg = config(tiny_root, tiny_manifest, tmp_path, epochs=2, warmup_epochs=1, cache=True)
    history = train.train(cfg, progress=False).history
    steps = train.steps_per_epoch(51, cfg.batch_size)  # 51 training images
    # the mean lr of a linear warm-up over W steps is lr (W + 1) / 2W; then the cosine decays
    assert history[0]["lr"] == pytest.approx(cfg.lr * (steps + 1) / (2 * steps))
    assert history[1]["lr"] < cfg.lr


def test_cache_keeps_decoded_images_and_changes_nothing(tiny_root, tiny_manifest):
    class_map = ClassMap.from_manifest(pd.read_csv(tiny_manifest / "train.csv"))
    frame = pd.read_csv(tiny_manifest / "val.csv", dtype={"id": str})
    plain = ManifestDataset(frame, tiny_root, class_map, min_side=40)
    cached = ManifestDataset(frame, tiny_root, class_map, min_side=40, cache=True)
    assert cached.fill_cache() == len(frame) and plain.fill_cache() == 0
    for index in range(len(frame)):
        image, label = cached[index]
        assert image is cached.cache[index] and label == plain[index][1]
        np.testing.assert_array_equal(image, plain[index][0])


def test_cuda_asked_for_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        devices.resolve_device("cuda")
    assert devices.resolve_device("auto").type == "cpu"
    assert devices.ddp_backend(torch.device("cpu")) == "gloo"  # even where CUDA exists


def test_precision_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert devices.autocast_dtype(cpu, True, "auto") is None  # fp32 on the CPU by default
    assert devices.autocast_dtype(cuda, True, "auto") == torch.float16
    assert devices.autocast_dtype(cuda, False, "auto") is None
    # the fastest measured per model: ResNet-50 in bfloat16 on a CPU that has it, EfficientNet-B2
    # never in float16 AMP on CUDA (slower there)
    resnet_cpu = devices.autocast_dtype(cpu, True, "auto", "resnet50")
    assert resnet_cpu == (torch.bfloat16 if devices.cpu_has_bf16() else None)
    assert devices.autocast_dtype(cpu, True, "auto", "efficientnet-b2") is None
    assert devices.autocast_dtype(cuda, True, "auto", "efficientnet-b2") is None
    assert devices.autocast_dtype(cuda, True, "auto", "mobilenet_v2") == torch.float16
    assert devices.autocast_dtype(cpu, True, "bf16") == torch.bfloat16
    assert devices.autocast_dtype(cuda, True, "fp32") is None
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        devices.autocast_dtype(cpu, True, "fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        devices.autocast_dtype(cpu, True, "int8")


def test_bfloat16_autocast_trains_on_the_cpu(tiny_root, tiny_manifest, tmp_path):
    result = train.train(
        config(tiny_root, tiny_manifest, tmp_path, precision="bf16"), progress=False
    )
    row = result.history[0]
    assert np.isfinite(row["train_loss"]) and 0 <= row["val_gap"] <= 1


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


def test_head_cost_follows_its_formula():
    from utils.models.backbones import build_model
    from utils.training.memory import head_cost, training_bytes

    cost = head_cost(build_model("efficientnet-lite2", 1000))
    assert cost["parameters"] == 1280 * 1000 + 1000
    assert cost["training_bytes"] == 16 * cost["parameters"] == training_bytes(cost["parameters"])


def test_the_fused_optimizer_makes_adamws_update():
    from utils.training.train import make_optimizer

    torch.manual_seed(0)
    weights = [torch.randn(64, 32), torch.randn(7)]
    grads = [torch.randn_like(w) for w in weights]
    fused_params = [torch.nn.Parameter(w.clone()) for w in weights]
    loop_params = [torch.nn.Parameter(w.clone()) for w in weights]
    fused = make_optimizer(fused_params, 1e-2, 0.05, torch.device("cpu"))
    loop = torch.optim.AdamW(loop_params, lr=1e-2, weight_decay=0.05, foreach=False)
    assert fused.param_groups[0]["fused"] is True
    for _ in range(3):
        for params in (fused_params, loop_params):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
        fused.step()
        loop.step()
    for a, b, w in zip(fused_params, loop_params, weights, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)
        assert not torch.equal(a.detach(), w)  # it moved
