"""Parity and robustness tests of the selective-scan backends against the float64 reference."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from neurossm.ssm import cpu as cpu_module
from neurossm.ssm import cuda as cuda_module
from neurossm.ssm import (
    cuda_backend_available,
    resolve_backend,
    selective_scan,
    selective_scan_cpu,
    selective_scan_reference,
)

INPUT_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
# the cpu backend's two engines compute the same thing; every cpu test runs on both
ENGINES = ["compiled", "eager"]
engines = pytest.mark.parametrize("engine", ENGINES)


def make_inputs(batch, dim, n_state, length, *, seed=0, dtype=torch.float64, with_D=True,
                with_z=True, with_bias=True, softplus=True, groups=None):
    """Fresh random inputs in mamba-ssm layouts; absent optional inputs are None.

    With ``groups``, ``B`` and ``C`` are grouped, ``(batch, groups, n_state, length)``.

    With ``softplus=False`` the step sizes are drawn positive, as they must be for a decaying
    (stable) recurrence when no softplus makes them so.
    """
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift).to(dtype)

    bc_groups = () if groups is None else (groups,)

    inputs = {
        "u": randn(batch, dim, length),
        # step sizes around softplus(-1) ~ 0.3, as in a trained Mamba
        "delta": (randn(batch, dim, length, scale=0.5, shift=-1.0) if softplus
                  else torch.exp(randn(batch, dim, length, scale=0.5, shift=-1.3))),
        # S4D-real-like negative A with some spread
        "A": -torch.exp(randn(dim, n_state, scale=0.5)).to(dtype),
        "B": randn(batch, *bc_groups, n_state, length),
        "C": randn(batch, *bc_groups, n_state, length),
        "D": randn(dim) if with_D else None,
        "z": randn(batch, dim, length) if with_z else None,
        "delta_bias": randn(dim, scale=0.3) if with_bias else None,
    }
    return inputs


def run_with_grads(fn, inputs, *, seed=1, **kwargs):
    """Output and gradients of <y, w> for a random w, w.r.t. every non-None input."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items() if v is not None}
    args = {k: leaves.get(k) for k in INPUT_NAMES}
    y = fn(**args, **kwargs)
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    w = w.to(device=y.device, dtype=y.dtype)
    grads = torch.autograd.grad((y * w).sum(), list(leaves.values()))
    return y.detach(), dict(zip(leaves, grads))


def assert_parity(inputs, delta_softplus, **cpu_kwargs):
    y_ref, g_ref = run_with_grads(selective_scan_reference, inputs, delta_softplus=delta_softplus)
    y_cpu, g_cpu = run_with_grads(selective_scan_cpu, inputs, delta_softplus=delta_softplus,
                                  **cpu_kwargs)
    torch.testing.assert_close(y_cpu, y_ref)
    assert g_cpu.keys() == g_ref.keys()
    for name in g_ref:
        torch.testing.assert_close(g_cpu[name], g_ref[name], msg=lambda m, n=name: f"grad {n}: {m}")


@engines
@pytest.mark.parametrize("length", [1, 2, 7, 33, 150, 600])
@pytest.mark.parametrize("optional", [True, False], ids=["D-z-bias-softplus", "bare"])
def test_cpu_matches_reference_float64(length, optional, engine):
    inputs = make_inputs(2, 3, 4, length, seed=length, with_D=optional, with_z=optional,
                         with_bias=optional, softplus=optional)
    assert_parity(inputs, delta_softplus=optional, engine=engine)


@engines
@pytest.mark.parametrize("length", [1, 7, 33, 150])
@pytest.mark.parametrize("block_size", [1, 4, 16])
def test_cpu_block_boundaries(length, block_size, engine):
    # many blocks, a ragged last block, a block longer than the sequence
    inputs = make_inputs(2, 3, 4, length, seed=100 + length)
    assert_parity(inputs, delta_softplus=True, block_size=block_size, engine=engine)


@pytest.mark.parametrize(
    "with_D, with_z, with_bias, softplus",
    [(True, False, False, False), (False, True, False, True), (False, False, True, False),
     (True, True, False, True), (False, True, True, False)],
)
@engines
def test_cpu_matches_reference_option_mix(with_D, with_z, with_bias, softplus, engine):
    inputs = make_inputs(3, 5, 2, 41, seed=7, with_D=with_D, with_z=with_z, with_bias=with_bias,
                         softplus=softplus)
    assert_parity(inputs, delta_softplus=softplus, block_size=8, engine=engine)


@engines
@pytest.mark.parametrize("length", [1, 7, 33])
@pytest.mark.parametrize("groups", [1, 2, 6])
@pytest.mark.parametrize("optional", [True, False], ids=["D-z-bias-softplus", "bare"])
def test_cpu_grouped_matches_reference_float64(length, groups, optional, engine):
    # 6 channels: one group (the ungrouped scan with an explicit group axis), 2 of 3, 6 of 1
    inputs = make_inputs(2, 6, 3, length, seed=200 + length + groups, with_D=optional,
                         with_z=optional, with_bias=optional, softplus=optional, groups=groups)
    assert_parity(inputs, delta_softplus=optional, block_size=4, engine=engine)


def test_grouped_scan_is_independent_sequences_sharing_A():
    # G groups of H channels in one scan == G sequences of H channels each, folded into the
    # batch, when A, D and the bias are the same for every group (as in a weight-shared model)
    batch, groups, width, n_state, length = 2, 3, 4, 5, 17
    shared = make_inputs(1, width, n_state, length, seed=31)
    grouped = make_inputs(batch, groups * width, n_state, length, seed=32, groups=groups)
    for name in ("A", "D", "delta_bias"):
        grouped[name] = shared[name].repeat(groups, *([1] * (shared[name].dim() - 1)))
    y = selective_scan_reference(**grouped, delta_softplus=True)  # (b, G·H, L)

    def fold(x):  # (b, G·H, L) -> (b·G, H, L), (b, G, N, L) -> (b·G, N, L)
        return x.reshape(batch * groups, -1, length)

    folded = {k: fold(grouped[k]) for k in ("u", "delta", "z", "B", "C")}
    y_folded = selective_scan_reference(**folded, A=shared["A"], D=shared["D"],
                                        delta_bias=shared["delta_bias"], delta_softplus=True)
    torch.testing.assert_close(y, y_folded.reshape(batch, groups * width, length))


def test_grouped_shapes_are_checked():
    inputs = make_inputs(2, 6, 3, 5, groups=4)
    with pytest.raises(ValueError, match="4 groups, which do not split the D=6 channels"):
        selective_scan(**inputs)
    inputs = make_inputs(2, 6, 3, 5, groups=2)
    inputs["C"] = inputs["C"][:, :1]
    with pytest.raises(ValueError, match=r"C must have shape \(2, 2, 3, 5\)"):
        selective_scan(**inputs)


def test_dispatch_matches_backend_functions():
    inputs = make_inputs(2, 3, 4, 20, seed=3)
    expected = selective_scan_reference(**inputs, delta_softplus=True)
    for backend in ("auto", "cpu", "reference"):
        y = selective_scan(**inputs, delta_softplus=True, backend=backend)
        torch.testing.assert_close(y, expected)


@engines
def test_cpu_float32_long_sequence_agrees_with_float64(engine):
    inputs64 = make_inputs(2, 3, 4, 1200, seed=11)
    with torch.no_grad():
        y_ref = selective_scan_reference(**inputs64, delta_softplus=True)
        inputs32 = {k: v.float() for k, v in inputs64.items()}
        y32 = selective_scan_cpu(**inputs32, delta_softplus=True, engine=engine)
    assert y32.dtype == torch.float32
    rel = (y32.double() - y_ref).abs().max() / y_ref.abs().max()
    assert rel < 1e-5, f"float32 relative error {rel:.2e} at L=1200"


@engines
def test_cpu_float32_gradients_long_sequence(engine):
    inputs64 = make_inputs(2, 3, 4, 1200, seed=12)
    _, g_ref = run_with_grads(selective_scan_cpu, inputs64, delta_softplus=True, engine="eager")
    inputs32 = {k: v.float() for k, v in inputs64.items()}
    _, g32 = run_with_grads(selective_scan_cpu, inputs32, delta_softplus=True, engine=engine)
    for name, g in g_ref.items():
        rel = (g32[name].double() - g).abs().max() / g.abs().max()
        assert rel < 1e-4, f"grad {name}: float32 relative error {rel:.2e}"


@engines
def test_cpu_gradcheck(engine):
    inputs = make_inputs(1, 2, 3, 5, seed=5)
    names = [k for k in INPUT_NAMES if inputs[k] is not None]

    def fn(*tensors):
        return selective_scan_cpu(**dict(zip(names, tensors)), delta_softplus=True, block_size=2,
                                  engine=engine)

    leaves = tuple(inputs[k].clone().requires_grad_(True) for k in names)
    assert gradcheck(fn, leaves, eps=1e-6, atol=1e-5)


@engines
@pytest.mark.parametrize("decay_exponent", [-50.0, -1000.0])
def test_cpu_large_decay_is_finite_in_float32(decay_exponent, engine):
    inputs = make_inputs(2, 3, 4, 70, seed=9, dtype=torch.float32, with_bias=False)
    inputs["delta"] = torch.full_like(inputs["u"], 2.0)
    inputs["A"] = torch.full_like(inputs["A"], decay_exponent / 2.0)  # delta * A = exponent
    y, grads = run_with_grads(selective_scan_cpu, inputs, delta_softplus=False, block_size=16,
                              engine=engine)
    assert torch.isfinite(y).all()
    for name, g in grads.items():
        assert torch.isfinite(g).all(), f"grad {name} not finite"
    y_ref, _ = run_with_grads(selective_scan_reference,
                              {k: None if v is None else v.double() for k, v in inputs.items()},
                              delta_softplus=False)
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-5, atol=1e-5)


@engines
def test_cpu_does_not_mutate_inputs(engine):
    inputs = make_inputs(2, 3, 4, 19, seed=4)
    before = {k: v.clone() for k, v in inputs.items()}
    run_with_grads(selective_scan_cpu, inputs, delta_softplus=True, block_size=4, engine=engine)
    for name, value in inputs.items():
        assert torch.equal(value, before[name]), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_engine_is_the_same_on_several_threads(dtype):
    # batch elements are independent and each is computed whole by one thread: bit-identical
    inputs = make_inputs(5, 6, 3, 37, seed=21, dtype=dtype)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        y1, g1 = run_with_grads(selective_scan_cpu, inputs, delta_softplus=True, engine="compiled")
        torch.set_num_threads(3)
        y3, g3 = run_with_grads(selective_scan_cpu, inputs, delta_softplus=True, engine="compiled")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(y1, y3)
    for name in g1:
        assert torch.equal(g1[name], g3[name]), name


def test_compiled_engine_takes_strided_inputs():
    # the Mamba block hands over transposed views (time-major underneath); same result
    inputs = make_inputs(2, 4, 3, 23, seed=22)
    strided = {k: v if v is None or v.dim() < 3 else v.transpose(1, 2).contiguous().transpose(1, 2)
               for k, v in inputs.items()}
    assert not strided["u"].is_contiguous()
    y, g = run_with_grads(selective_scan_cpu, strided, delta_softplus=True, engine="compiled")
    y_ref, g_ref = run_with_grads(selective_scan_reference, inputs, delta_softplus=True)
    torch.testing.assert_close(y, y_ref)
    for name in g_ref:
        torch.testing.assert_close(g[name], g_ref[name])


def test_auto_engine_falls_back_to_eager_without_numba(monkeypatch):
    inputs = make_inputs(2, 3, 4, 9, seed=23)
    expected = selective_scan_cpu(**inputs, delta_softplus=True, engine="eager")
    monkeypatch.setattr(cpu_module, "_load_compiled", lambda: None)
    assert not cpu_module.compiled_engine_available()
    torch.testing.assert_close(selective_scan_cpu(**inputs, delta_softplus=True), expected)
    with pytest.raises(RuntimeError, match="needs numba"):
        selective_scan_cpu(**inputs, delta_softplus=True, engine="compiled")


def test_engine_environment_variable_sets_auto(monkeypatch):
    inputs = make_inputs(2, 3, 4, 9, seed=25)
    calls = []
    monkeypatch.setattr(cpu_module._BlockedScan, "apply",
                        lambda *a: calls.append("eager") or torch.zeros_like(inputs["u"]))
    monkeypatch.setenv(cpu_module.ENGINE_ENV, "eager")
    selective_scan_cpu(**inputs, delta_softplus=True)
    assert calls == ["eager"]
    monkeypatch.setenv(cpu_module.ENGINE_ENV, "fortran")
    with pytest.raises(ValueError, match="'fortran' .from the environment variable NEUROSSM_CPU"):
        selective_scan_cpu(**inputs, delta_softplus=True)


def test_bad_engine_requests_are_reported():
    inputs = make_inputs(1, 2, 2, 3, seed=24)
    with pytest.raises(ValueError, match="unknown cpu-scan engine 'numba'"):
        selective_scan_cpu(**inputs, engine="numba")
    meta = {k: None if v is None else v.to("meta") for k, v in inputs.items()}
    with pytest.raises(ValueError, match="runs on CPU tensors"):
        selective_scan_cpu(**meta, engine="compiled")


def test_unknown_backend_raises():
    inputs = make_inputs(1, 2, 3, 4)
    with pytest.raises(ValueError, match="unknown selective-scan backend 'triton'"):
        selective_scan(**inputs, backend="triton")


def test_auto_resolves_to_cpu_for_cpu_tensors():
    assert resolve_backend("auto", torch.zeros(1, 1, 1)) == "cpu"


@pytest.mark.skipif(cuda_backend_available(), reason="mamba-ssm is installed")
def test_cuda_backend_without_mamba_ssm_says_how_to_install():
    inputs = make_inputs(1, 2, 3, 4)
    with pytest.raises(RuntimeError, match="pip install mamba-ssm"):
        selective_scan(**inputs, backend="cuda")


def test_shape_mismatch_is_reported():
    inputs = make_inputs(2, 3, 4, 6)
    inputs["B"] = inputs["B"][:, :, :5]
    with pytest.raises(ValueError, match=r"B must have shape \(2, 4, 6\)"):
        selective_scan(**inputs)


@pytest.mark.skipif(
    not (torch.cuda.is_available() and cuda_backend_available()),
    reason="needs a CUDA device and mamba-ssm",
)
@pytest.mark.parametrize("length", [1, 7, 150, 600])
@pytest.mark.parametrize("optional", [True, False])
def test_cuda_matches_reference(length, optional):
    # mamba-ssm's kernel has no float64; compare its float32 result to the float64 oracle
    inputs = make_inputs(2, 3, 4, length, seed=length, with_D=optional, with_z=optional,
                         with_bias=optional, softplus=optional)
    y_ref, g_ref = run_with_grads(selective_scan_reference, inputs, delta_softplus=optional)
    on_gpu = {k: None if v is None else v.float().cuda() for k, v in inputs.items()}
    y_gpu, g_gpu = run_with_grads(cuda_module.selective_scan_cuda, on_gpu,
                                  delta_softplus=optional)
    torch.testing.assert_close(y_gpu.double().cpu(), y_ref, rtol=1e-4, atol=1e-4)
    for name in g_ref:
        torch.testing.assert_close(g_gpu[name].double().cpu(), g_ref[name], rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(
    not (torch.cuda.is_available() and cuda_backend_available()),
    reason="needs a CUDA device and mamba-ssm",
)
@pytest.mark.parametrize("groups", [2, 6])
def test_cuda_grouped_matches_reference(groups):
    inputs = make_inputs(2, 6, 4, 64, seed=300 + groups, groups=groups)
    y_ref, g_ref = run_with_grads(selective_scan_reference, inputs, delta_softplus=True)
    on_gpu = {k: None if v is None else v.float().cuda() for k, v in inputs.items()}
    y_gpu, g_gpu = run_with_grads(cuda_module.selective_scan_cuda, on_gpu, delta_softplus=True)
    torch.testing.assert_close(y_gpu.double().cpu(), y_ref, rtol=1e-4, atol=1e-4)
    for name in g_ref:
        torch.testing.assert_close(g_gpu[name].double().cpu(), g_ref[name], rtol=1e-3, atol=1e-3)
