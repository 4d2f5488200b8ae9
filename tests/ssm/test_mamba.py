"""Mamba / BiMamba: mamba-ssm state-dict compatibility, backend parity, (non-)causality."""

from __future__ import annotations

import math

import pytest
import torch

from neurossm.ssm import BiMamba, Mamba

# mamba-ssm's Mamba(d_model=16) with defaults (d_state 16, d_conv 4, expand 2, dt_rank 1),
# written out by hand: d_inner = 32, x_proj out = dt_rank + 2 * d_state = 33.
MAMBA_SSM_KEYS_D16 = {
    "in_proj.weight": (64, 16),
    "conv1d.weight": (32, 1, 4),
    "conv1d.bias": (32,),
    "x_proj.weight": (33, 32),
    "dt_proj.weight": (32, 1),
    "dt_proj.bias": (32,),
    "A_log": (32, 16),
    "D": (32,),
    "out_proj.weight": (16, 32),
}


def seeded_input(batch, length, d_model, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, d_model, generator=g, dtype=torch.float64).to(dtype)


def test_state_dict_has_mamba_ssm_names_and_shapes():
    block = Mamba(16)
    assert {k: tuple(v.shape) for k, v in block.state_dict().items()} == MAMBA_SSM_KEYS_D16


def test_loads_a_mamba_ssm_state_dict():
    g = torch.Generator().manual_seed(0)
    foreign = {k: torch.randn(shape, generator=g) for k, shape in MAMBA_SSM_KEYS_D16.items()}
    block = Mamba(16)
    block.load_state_dict(foreign, strict=True)
    for name, value in block.state_dict().items():
        assert torch.equal(value, foreign[name])
    assert block(seeded_input(2, 9, 16)).shape == (2, 9, 16)


def test_initialisation_follows_mamba_ssm():
    torch.manual_seed(0)
    block = Mamba(32, d_state=8)
    expected_A = torch.arange(1, 9, dtype=torch.float32).repeat(64, 1)
    torch.testing.assert_close(torch.exp(block.A_log), expected_A)
    torch.testing.assert_close(block.D, torch.ones(64))
    assert block.dt_rank == 2
    assert block.dt_proj.weight.abs().max() <= 2 ** -0.5
    dt = torch.nn.functional.softplus(block.dt_proj.bias)
    assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
    assert block.A_log._no_weight_decay and block.D._no_weight_decay
    assert block.in_proj.bias is None and block.out_proj.bias is None
    assert block.conv1d.bias is not None and block.conv1d.padding == (3,)


def test_dt_rank_auto_is_ceil_d_model_over_16():
    for d_model in (8, 16, 17, 64):
        assert Mamba(d_model).dt_rank == math.ceil(d_model / 16)
    assert Mamba(16, dt_rank=4).x_proj.weight.shape == (4 + 32, 32)


def test_reference_and_cpu_backends_agree_float64():
    torch.manual_seed(1)
    ref = Mamba(16, d_state=4, backend="reference").double()
    fast = Mamba(16, d_state=4, backend="cpu").double()
    fast.load_state_dict(ref.state_dict())
    x = seeded_input(2, 37, 16, dtype=torch.float64)
    x_ref = x.clone().requires_grad_(True)
    x_fast = x.clone().requires_grad_(True)
    y_ref, y_fast = ref(x_ref), fast(x_fast)
    torch.testing.assert_close(y_fast, y_ref)
    w = seeded_input(2, 37, 16, seed=1, dtype=torch.float64)
    (y_ref * w).sum().backward()
    (y_fast * w).sum().backward()
    torch.testing.assert_close(x_fast.grad, x_ref.grad)
    for (name, p_ref), p_fast in zip(ref.named_parameters(), fast.parameters()):
        torch.testing.assert_close(p_fast.grad, p_ref.grad, msg=lambda m, n=name: f"{n}: {m}")


def influence(model, x, t):
    """|d y[:, t] / d x[:, s]| summed over batch and channels, per input time s."""
    x = x.clone().requires_grad_(True)
    model(x)[:, t].sum().backward()
    return x.grad.abs().sum(dim=(0, 2))  # (L,)


def test_mamba_is_causal():
    torch.manual_seed(2)
    model = Mamba(8, d_state=4, backend="cpu").double()
    x = seeded_input(2, 20, 8, dtype=torch.float64)
    t = 11
    grad = influence(model, x, t)
    assert torch.all(grad[t + 1:] == 0)
    assert torch.all(grad[: t + 1] > 0)
    # perturbing the future leaves the past untouched
    x2 = x.clone()
    x2[:, t + 1:] += 1.0
    with torch.no_grad():
        torch.testing.assert_close(model(x2)[:, : t + 1], model(x)[:, : t + 1], rtol=0, atol=0)


def test_bimamba_sees_both_sides():
    torch.manual_seed(3)
    model = BiMamba(8, d_state=4, backend="cpu").double()
    x = seeded_input(2, 20, 8, dtype=torch.float64)
    grad = influence(model, x, 11)
    assert grad[:11].sum() > 0 and grad[12:].sum() > 0
    assert torch.all(grad > 0)


def test_bimamba_is_the_sum_of_both_directions():
    torch.manual_seed(4)
    model = BiMamba(8, d_state=4, backend="cpu")
    x = seeded_input(3, 15, 8)
    with torch.no_grad():
        expected = model.forward_mamba(x) + model.backward_mamba(x.flip(1)).flip(1)
        torch.testing.assert_close(model(x), expected)
    assert set(k.split(".")[0] for k in model.state_dict()) == {"forward_mamba", "backward_mamba"}


@pytest.mark.parametrize("cls", [Mamba, BiMamba])
def test_output_shape_and_training_step(cls):
    torch.manual_seed(5)
    model = cls(12, d_state=8)
    x = seeded_input(4, 30, 12)
    y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.pow(2).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_bad_arguments_are_reported():
    with pytest.raises(ValueError, match="unknown selective-scan backend"):
        Mamba(16, backend="gpu")
    with pytest.raises(ValueError, match="dt_rank"):
        Mamba(16, dt_rank="big")


@pytest.mark.parametrize("cls", [Mamba, BiMamba])
@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_grouped_input_equals_sequences_folded_into_the_batch(cls, backend):
    # (B, L, G, d) through one grouped scan == the G sequences as B·G batch elements
    torch.manual_seed(6)
    model = cls(6, d_state=3, backend=backend).double()
    batch, length, groups = 2, 13, 4
    x = torch.randn(batch, length, groups, 6, dtype=torch.float64, requires_grad=True)
    x_folded = x.detach().permute(0, 2, 1, 3).reshape(batch * groups, length, 6).requires_grad_(True)
    y = model(x)
    assert y.shape == (batch, length, groups, 6)
    w = torch.randn(y.shape, dtype=torch.float64)
    grads = torch.autograd.grad((y * w).sum(), [x, *model.parameters()])
    y_folded = model(x_folded)
    w_folded = w.permute(0, 2, 1, 3).reshape(batch * groups, length, 6)
    grads_folded = torch.autograd.grad((y_folded * w_folded).sum(), [x_folded, *model.parameters()])
    unfold = y_folded.reshape(batch, groups, length, 6).permute(0, 2, 1, 3)
    torch.testing.assert_close(y, unfold)
    torch.testing.assert_close(grads[0], grads_folded[0].reshape(batch, groups, length, 6).permute(0, 2, 1, 3))
    for (name, _), g, g_folded in zip(model.named_parameters(), grads[1:], grads_folded[1:]):
        torch.testing.assert_close(g, g_folded, msg=lambda m, n=name: f"{n}: {m}")
