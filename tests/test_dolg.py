"""GeM, margin heads and DOLG: shapes, closed forms, gradients, edge cases."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils.models.dolg import Dolg, orthogonal_fusion
from utils.models.heads import CosineHead, arcface_logits, arcface_loss, dynamic_margins
from utils.models.pooling import GeM, gem


def test_gem_closed_forms():
    x = torch.rand(2, 3, 5, 4) + 0.1
    assert torch.allclose(gem(x, 1.0), x.mean(dim=(2, 3)), atol=1e-6)
    peak, high = x.amax(dim=(2, 3)), gem(x, 50.0)  # max * (1/20) ** (1/50) <= GeM_50 <= max
    assert (high <= peak + 1e-5).all() and (high >= peak * (1 / 20) ** (1 / 50) - 1e-5).all()
    cubic = (x.pow(3).mean(dim=(2, 3))) ** (1 / 3)
    assert torch.allclose(GeM()(x), cubic, atol=1e-6) and GeM()(x).shape == (2, 3)
    assert torch.isfinite(gem(torch.zeros(1, 2, 3, 3), 3.0)).all()  # clamped at eps


def test_gem_gradient_reaches_p():
    x = torch.rand(1, 2, 3, 3, dtype=torch.float64) + 0.1
    p = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)

    def f(x, p):
        return (x.clamp(min=1e-6).pow(p).mean(dim=(2, 3))).pow(1.0 / p)

    assert torch.autograd.gradcheck(f, (x.requires_grad_(), p))
    module = GeM()
    module(torch.rand(1, 2, 3, 3) + 0.1).sum().backward()
    assert module.p.grad is not None and module.p.grad != 0


def test_arcface_adds_the_margin_to_the_target_only():
    theta = torch.tensor([[0.5, 1.0, 2.0]])
    cos = torch.cos(theta)
    s, m = 10.0, 0.3
    logits = arcface_logits(cos, torch.tensor([1]), s, m)
    expected = s * torch.cos(torch.tensor([[0.5, 1.0 + m, 2.0]]))
    assert torch.allclose(logits, expected, atol=1e-5)


def test_arcface_falls_back_past_pi():
    theta, m = 3.0, 0.3  # theta + m > pi
    cos = torch.tensor([[math.cos(theta), 0.2]])
    logits = arcface_logits(cos, torch.tensor([0]), 1.0, m)
    assert logits[0, 0].item() == pytest.approx(math.cos(theta) - m * math.sin(m), abs=1e-6)


def test_arcface_is_float16_safe_and_takes_per_sample_margins():
    cos = torch.tensor([[1.0, -1.0], [0.3, 0.9]], dtype=torch.float16)
    labels = torch.tensor([0, 1])
    logits = arcface_logits(cos, labels, 30.0, torch.tensor([0.1, 0.5]))
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    target = math.cos(math.acos(0.9) + 0.5) * 30
    assert logits[1, 1].item() == pytest.approx(target, abs=0.05)
    loss = arcface_loss(cos.float().requires_grad_(), labels)
    loss.backward()
    assert loss.item() > 0


def test_dynamic_margins():
    margins = dynamic_margins([1, 16, 10000], a=0.4, b=0.05)
    assert margins[0] == pytest.approx(0.45) and margins[-1] == pytest.approx(0.05)
    v = np.array([1, 16, 10000], float) ** -0.25
    assert margins[1] == pytest.approx(0.4 * (v[1] - v[2]) / (v[0] - v[2]) + 0.05, rel=1e-5)
    assert np.allclose(dynamic_margins([5, 5]), 0.45 / 2 + 0.05)
    with pytest.raises(ValueError, match="at least one image"):
        dynamic_margins([0, 3])


def test_subcenter_head_takes_the_best_centre():
    head = CosineHead(4, num_classes=2, subcenters=3)
    with torch.no_grad():
        head.weight.copy_(torch.eye(4).repeat(2, 1)[:6])
    cos = head(torch.tensor([[0.0, 0.0, 0.0, 2.0]]))
    assert cos.shape == (1, 2) and cos[0, 1].item() == pytest.approx(1.0)  # row 3 is class 1
    with pytest.raises(ValueError, match="subcenters"):
        CosineHead(4, 2, 0)


def test_orthogonal_fusion_removes_the_global_direction():
    f_local, f_global = torch.randn(2, 8, 3, 4), torch.randn(2, 8)
    fused = orthogonal_fusion(f_local, f_global)
    dots = torch.einsum("bchw,bc->bhw", fused, f_global)
    assert fused.shape == f_local.shape and dots.abs().max() < 1e-4
    parallel = f_global[:, :, None, None].expand(2, 8, 3, 4) * 2.5
    assert orthogonal_fusion(parallel, f_global).abs().max() < 1e-4


@pytest.mark.slow
def test_dolg_embeds_any_size_and_layout():
    torch.manual_seed(0)
    model = Dolg(num_classes=5, subcenters=3).eval()
    with torch.no_grad():
        for size in (64, 96):
            x = torch.randn(2, 3, size, size + 32)
            emb, cos = model.embed(x), model(x)
            assert emb.shape == (2, 512) and cos.shape == (2, 5)
            assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
            assert cos.abs().max() <= 1 + 1e-5
        x = torch.randn(2, 3, 64, 64)
        last = model.to(memory_format=torch.channels_last)
        assert torch.allclose(
            last(x.to(memory_format=torch.channels_last)), model(x.contiguous()), atol=1e-4
        )
    model.train()
    loss = arcface_loss(model(torch.randn(2, 3, 64, 64)), torch.tensor([0, 4]))
    loss.backward()
    assert model.gem.p.grad is not None and model.attention.score[0].weight.grad is not None
    assert F.normalize(model.head.weight, dim=1).shape == (15, 512)


def test_fusion_gradcheck_and_monotone_margins():
    f_local = torch.randn(1, 4, 2, 3, dtype=torch.float64, requires_grad=True)
    f_global = torch.randn(1, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(orthogonal_fusion, (f_local, f_global))
    margins = dynamic_margins([1, 2, 5, 50, 500])
    assert (np.diff(margins) < 0).all()  # rarer class, larger margin


def test_arcface_gradients_are_finite_under_float16_autocast():
    head = CosineHead(16, 4)
    emb = torch.randn(8, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.float16):
        loss = arcface_loss(head(emb), torch.arange(8) % 4, 30.0, 0.5)
    loss.backward()
    assert torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()
