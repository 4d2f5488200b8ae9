"""Selective scan: the input-dependent linear recurrence at the heart of Mamba (S6).

For every batch element, channel ``d`` and state index ``n``::

    delta  = softplus(delta + delta_bias)            # optional bias and softplus
    h[t]   = exp(delta[t] * A) * h[t-1] + delta[t] * B[t] * u[t]
    y[t]   = sum_n C[t, n] * h[t, n]  +  D * u[t]
    y[t]  *= silu(z[t])                              # optional gate

with mamba-ssm's ``selective_scan_fn`` layouts: ``u, delta, z: (batch, D, L)``, ``A: (D, N)``,
``B, C: (batch, N, L)``, ``D, delta_bias: (D,)``; the output is ``(batch, D, L)``. A is real and
expected negative (mamba-ssm parametrises it as ``-exp(A_log)``).

``B`` and ``C`` may also be *grouped*, ``(batch, G, N, L)``, mamba-ssm's layout: the ``D``
channels are split evenly into ``G`` consecutive groups of ``D / G``, and channel ``d`` reads
``B[:, d // (D / G)]`` and ``C[:, d // (D / G)]``. ``G = 1`` is the ungrouped scan. One grouped
scan runs ``G`` independent sequences of one batch element at once, e.g. one per ROI with the
ROI's features as its channels: the channel axis is then wide (ROIs × features), which is what
the kernels vectorise over, instead of ``G`` times more sequences of a few channels each.

Three backends compute the same thing:

``reference`` (:mod:`neurossm.ssm.reference`)
    The plain sequential recurrence under autograd. Slow; the float64 oracle of the tests.
``cpu`` (:mod:`neurossm.ssm.cpu`, :mod:`neurossm.ssm.eager`)
    A blocked recurrence with a hand-written backward pass, for training on CPUs. Two engines
    compute it: ``compiled``, numba kernels that fuse each step into one vectorised loop nest
    (:mod:`neurossm.ssm._compiled`; batch slices run on the caller's
    ``torch.get_num_threads()`` threads), and ``eager``, the same algorithm as PyTorch ops
    (:mod:`neurossm.ssm.eager`, on one intra-op thread), which
    needs nothing beyond PyTorch and runs on any device. ``engine="auto"`` takes ``compiled``
    for CPU tensors when numba imports, ``eager`` otherwise; the environment variable
    ``NEUROSSM_CPU_SCAN_ENGINE=compiled|eager`` overrides that choice.
``cuda`` (:mod:`neurossm.ssm.cuda`)
    mamba-ssm's fused kernel (``pip install mamba-ssm``, which needs a CUDA toolkit and GPU),
    imported only when asked for.

``backend="auto"`` takes ``cuda`` when mamba-ssm is installed and the tensors are on a CUDA
device, and ``cpu`` otherwise.

References
----------
Gu, A. & Dao, T. (2023). Mamba: Linear-time sequence modeling with selective state spaces.
arXiv:2312.00752.
"""

from __future__ import annotations

import torch

from neurossm.ssm.cpu import CPU_ENGINES, compiled_engine_available, selective_scan_cpu
from neurossm.ssm.cuda import _load_cuda_scan, cuda_backend_available, selective_scan_cuda
from neurossm.ssm.reference import selective_scan_reference

__all__ = [
    "BACKENDS",
    "CPU_ENGINES",
    "compiled_engine_available",
    "cuda_backend_available",
    "resolve_backend",
    "selective_scan",
    "selective_scan_cpu",
    "selective_scan_cuda",
    "selective_scan_reference",
]

BACKENDS = ("auto", "reference", "cpu", "cuda")
CPU_ENGINES = ("auto", "compiled", "eager")

def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """Run the selective scan with the chosen backend.

    Parameters
    ----------
    u : Tensor, shape (batch, D, L)
        Input sequence.
    delta : Tensor, shape (batch, D, L)
        Step sizes (before ``delta_bias`` and the optional softplus).
    A : Tensor, shape (D, N)
        State matrix (diagonal, real, negative).
    B, C : Tensor, shape (batch, N, L) or (batch, G, N, L)
        Input-dependent input and output projections; grouped (the second shape, ``G``
        dividing ``D``, the same for both) gives each group of ``D / G`` consecutive channels
        its own.
    D : Tensor, shape (D,), optional
        Skip connection weight.
    z : Tensor, shape (batch, D, L), optional
        Gate; the output is multiplied by ``silu(z)``.
    delta_bias : Tensor, shape (D,), optional
        Added to ``delta`` before the softplus.
    delta_softplus : bool
        Apply ``softplus`` to ``delta`` (after the bias).
    backend : {"auto", "reference", "cpu", "cuda"}
        Which implementation to run (see the module docstring).

    Returns
    -------
    Tensor, shape (batch, D, L)
    """
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    scan = _BACKEND_FUNCTIONS[resolve_backend(backend, u)]
    return scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


def resolve_backend(backend: str, u: torch.Tensor | None = None) -> str:
    """Turn ``backend`` (possibly ``"auto"``) into the name of the backend that will run.

    Raises ``ValueError`` for an unknown name or for ``cuda`` with tensors off the GPU, and
    ``RuntimeError`` for ``cuda`` without mamba-ssm installed.
    """
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown selective-scan backend {backend!r}; choose one of {', '.join(BACKENDS)}"
        )
    on_cuda = u is not None and u.is_cuda
    if backend == "auto":
        return "cuda" if on_cuda and cuda_backend_available() else "cpu"
    if backend == "cuda":
        _load_cuda_scan()
        if u is not None and not on_cuda:
            raise ValueError(
                f"backend='cuda' needs tensors on a CUDA device, got device {u.device}; "
                "move the model and data with .to('cuda') or use backend='cpu'"
            )
    return backend


def _check_shapes(u, delta, A, B, C, D, z, delta_bias) -> None:
    if u.dim() != 3:
        raise ValueError(f"u must be (batch, D, L), got shape {tuple(u.shape)}")
    batch, dim, length = u.shape
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"A must be (D, N) with D={dim}, got shape {tuple(A.shape)}")
    n_state = A.shape[1]
    if B.dim() == 4:
        n_groups = B.shape[1]
        if n_groups < 1 or dim % n_groups:
            raise ValueError(f"grouped B {tuple(B.shape)} has {n_groups} groups, which do not split "
                             f"the D={dim} channels of u {tuple(u.shape)} evenly")
        bc_shape = (batch, n_groups, n_state, length)
    else:
        bc_shape = (batch, n_state, length)
    expected = {
        "delta": (delta, (batch, dim, length)),
        "B": (B, bc_shape),
        "C": (C, bc_shape),
        "D": (D, (dim,)),
        "z": (z, (batch, dim, length)),
        "delta_bias": (delta_bias, (dim,)),
    }
    for name, (tensor, shape) in expected.items():
        if tensor is not None and tuple(tensor.shape) != shape:
            raise ValueError(
                f"{name} must have shape {shape} to match u {tuple(u.shape)} and "
                f"A {tuple(A.shape)}, got {tuple(tensor.shape)}"
            )


_BACKEND_FUNCTIONS = {
    "reference": selective_scan_reference,
    "cpu": selective_scan_cpu,
    "cuda": selective_scan_cuda,
}
