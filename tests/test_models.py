import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from torchvision import models as tv

from utils.models import WeightsError, build_model, find_weights, load_state_dict_file
from utils.models.pooling import gem


@pytest.mark.parametrize(
    ("name", "width"), [("resnet50", 2048), ("efficientnet-b2", 1408), ("mobilenet_v2", 1280)]
)
def test_shapes_and_widths(name, width):
    model = build_model(name, num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert model(x).shape == (2, 5)
        emb = model.embed(x)
    assert model.feature_dim == width and emb.shape == (2, width)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))


def test_report_resnet_head():
    head = build_model("resnet50", 9).head
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear"]
    assert (head[0].in_features, head[0].out_features, head[2].p, head[3].out_features) == (
        2048,
        512,
        0.5,
        9,
    )


def test_every_parameter_is_used():
    """DDP needs every parameter to take part in the loss."""
    model = build_model("efficientnet-b2", 3)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_efficientnet_batchnorm_statistics_follow_the_data_in_a_short_run():
    """Torch's BN momentum 0.1, not efficientnet-pytorch's 0.01 (TF's decay 0.99).

    After k train-mode batches of mean m, a running mean is ``(1 - (1 - momentum)**k) m``:
    0.88 m at k = 20 with 0.1, but 0.18 m with 0.01, which leaves eval mode to statistics
    near their initial values after a short training from scratch.
    """
    torch.manual_seed(0)
    model = build_model("efficientnet-b2", 3).train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(m.momentum == 0.1 for m in norms)
    net = model.body.net
    x = torch.randn(4, 3, 32, 32) + 2.0
    with torch.no_grad():
        target = net._conv_stem(x).mean(dim=(0, 2, 3))
        for _ in range(20):
            model(x)
    torch.testing.assert_close(net._bn0.running_mean, (1 - 0.9**20) * target)


def test_names():
    assert build_model("EfficientNet_B2", 2).name == "efficientnet-b2"
    with pytest.raises(ValueError, match="unknown model 'vgg16'"):
        build_model("vgg16", 2)


def test_pretrained_loads_from_a_local_file(tmp_path):
    reference = tv.mobilenet_v2(weights=None)
    path = tmp_path / "mnv2.pth"
    torch.save(reference.state_dict(), path)
    model = build_model("mobilenet_v2", 4, pretrained_path=str(path))
    torch.testing.assert_close(model.body.features[0][0].weight, reference.features[0][0].weight)
    torch.save({"model": reference.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    assert len(load_state_dict_file(tmp_path / "ckpt.pt")) == len(reference.state_dict())


def test_pretrained_found_in_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save(
        tv.mobilenet_v2(weights=None).state_dict(),
        tmp_path / "checkpoints" / "mobilenet_v2-b0353104.pth",
    )
    assert find_weights("mobilenet_v2").name == "mobilenet_v2-b0353104.pth"
    build_model("mobilenet_v2", 3, pretrained=True)


def test_missing_weights_name_the_file_and_places(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setenv("LANDMARK_KAGGLE_ROOT", str(tmp_path / "no-kaggle"))
    with pytest.raises(WeightsError) as info:
        build_model("resnet50", 3, pretrained=True)
    message = str(info.value)
    assert "resnet50-0676ba61.pth" in message and str(tmp_path / "checkpoints") in message
    with pytest.raises(WeightsError, match="not found: .*nope.pth"):
        build_model("resnet50", 3, pretrained_path=str(tmp_path / "nope.pth"))


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_loading_refuses_a_pickled_object(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"weight": Payload()}, handle)
    with pytest.raises(WeightsError, match="weights_only"):
        load_state_dict_file(path)
    torch.save({"weight": [1, 2, 3]}, tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="state dict of tensors"):
        load_state_dict_file(tmp_path / "list.pth")


def test_weights_that_do_not_fit(tmp_path):
    torch.save(tv.mobilenet_v2(weights=None).state_dict(), tmp_path / "mnv2.pth")
    with pytest.raises(WeightsError, match="does not fit resnet50"):
        build_model("resnet50", 3, pretrained_path=str(tmp_path / "mnv2.pth"))


@pytest.mark.parametrize("name", ["resnet50", "efficientnet-b2", "dolg"])
def test_residual_blocks_start_as_the_identity(name):
    """Zero-initialised residual branches: each skip block maps x to x (ResNet: relu(x))."""
    torch.manual_seed(0)
    model = build_model(name, 3).eval()
    if name == "efficientnet-b2":
        blocks = [
            b
            for b in model.body.net._blocks
            if b._block_args.stride == 1
            and b._block_args.input_filters == b._block_args.output_filters
        ]
        assert len(blocks) == 16
        for block in blocks:
            width = block._block_args.input_filters
            inputs = torch.randn(2, width, 8, 8)
            torch.testing.assert_close(block(inputs), inputs)
    else:
        net = model.net if name == "dolg" else model.body
        block = net.layer1[1]  # a bottleneck without a downsample branch: out = relu(x + 0)
        x = torch.randn(2, 256, 8, 8)
        with torch.no_grad():
            torch.testing.assert_close(block(x), torch.relu(x))
        bottlenecks = [m for m in model.modules() if hasattr(m, "bn3")]
        assert len(bottlenecks) == 16
        assert not any(m.bn3.weight.detach().any() for m in bottlenecks)


def test_efficientnet_runs_native_silu_with_the_stock_swish_function_and_gradients():
    from efficientnet_pytorch.utils import MemoryEfficientSwish

    from utils.bench.step import stock_swish

    torch.manual_seed(0)
    model = build_model("efficientnet-b2", 5).eval()  # eval: no dropout, no drop-connect
    kinds = {type(m) for m in model.modules()}
    assert torch.nn.SiLU in kinds and MemoryEfficientSwish not in kinds
    stock = copy.deepcopy(model)
    assert stock_swish(stock) == 24  # the stem's (shared with the head) and one per block
    x = torch.randn(2, 3, 64, 64)
    outputs = []
    for net in (model, stock):
        net.zero_grad()
        out = net(x)
        out.square().sum().backward()
        outputs.append((out.detach(), net.body.net._conv_stem.weight.grad.clone()))
    (out, grad), (stock_out, stock_grad) = outputs
    torch.testing.assert_close(out, stock_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, stock_grad, rtol=1e-4, atol=1e-6)
    assert grad.abs().sum() > 0


def test_lite_networks_keep_relu6():
    model = build_model("efficientnet-lite0", 5)
    kinds = {type(m) for m in model.modules()}
    assert torch.nn.ReLU6 in kinds and torch.nn.SiLU not in kinds


def test_a_margin_head_on_a_classifier_gives_cosines_and_scaled_logits():
    """GeM + sub-centre ArcFace on the Lite2 trunk: cosines for the loss, ``s cos`` at inference."""
    torch.manual_seed(0)
    model = build_model(
        "efficientnet-lite2", 4, head="subcenter", subcenters=3, scale=20.0, pooling="gem"
    ).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        cos, logits, emb = model(x), model.logits(x), model.embed(x)
    assert cos.shape == (2, 4) and cos.abs().max() <= 1.0
    torch.testing.assert_close(logits, 20.0 * cos)
    assert model.head.weight.shape == (4 * 3, 1280) and emb.shape == (2, 1280)
    pooled = gem(model.body.net.extract_features(x), model.body.pool.p.detach())
    torch.testing.assert_close(emb, F.normalize(pooled, dim=1))


def test_gem_pooling_learns_its_exponent_and_avg_adds_no_parameter():
    model = build_model("mobilenet_v2", 3, pooling="gem")
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert model.body.pool.p.grad is not None
    plain = build_model("mobilenet_v2", 3)
    assert len(model.state_dict()) == len(plain.state_dict()) + 1  # body.pool.p
    with pytest.raises(ValueError, match="pooling: one of avg, gem, not 'max'"):
        build_model("resnet50", 3, pooling="max")
    with pytest.raises(ValueError, match="head must be empty or one of arcface, subcenter"):
        build_model("resnet50", 3, head="softmax")
