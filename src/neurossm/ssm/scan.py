"""Selective scan: the input-dependent linear recurrence at the heart of Mamba (S6).

For every batch element, channel ``d`` and state index ``n``::

    delta  = softplus(delta + delta_bias)            # optional bias and softplus
    h[t]   = exp(delta[t] * A) * h[t-1] + delta[t] * B[t] * u[t]
    y[t]   = sum_n C[t, n] * h[t, n]  +  D * u[t]
    y[t]  *= silu(z[t])                              # optional gate

with mamba-ssm's ``selective_scan_fn`` layouts: ``u, delta, z: (batch, D, L)``, ``A: (D, N)``,
``B, C: (batch, N, L)``, ``D, delta_bias: (D,)``; the output is ``(batch, D, L)``. A is real and
expected negative (mamba-ssm parametrises it as ``-exp(A_log)``).

Three backends compute the same thing:

``reference``
    The plain sequential recurrence under autograd. Slow; the float64 oracle of the tests.
``cpu``
    A blocked recurrence with a hand-written backward pass (:class:`_BlockedScan`), tuned for
    CPUs; it runs on one intra-op thread (see :func:`_one_intra_op_thread`). Pure PyTorch, so it
    also runs on any other device.
``cuda``
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

import contextlib
import functools
import os
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

__all__ = [
    "BACKENDS",
    "cuda_backend_available",
    "resolve_backend",
    "selective_scan",
    "selective_scan_cpu",
    "selective_scan_cuda",
    "selective_scan_reference",
]

BACKENDS = ("auto", "reference", "cpu", "cuda")

_CUDA_INSTALL_HINT = (
    "the 'cuda' scan backend needs mamba-ssm, which builds only with a CUDA toolkit and an "
    "NVIDIA GPU: `pip install mamba-ssm` (or `pip install neurossm[cuda]`). "
    "Use backend='cpu' or 'auto' to run without it."
)


# --------------------------------------------------------------------------------------------
# Public entry point


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
    B, C : Tensor, shape (batch, N, L)
        Input-dependent input and output projections.
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


def cuda_backend_available() -> bool:
    """True when mamba-ssm's selective-scan kernel can be imported."""
    try:
        _load_cuda_scan()
    except RuntimeError:
        return False
    return True


def _check_shapes(u, delta, A, B, C, D, z, delta_bias) -> None:
    if u.dim() != 3:
        raise ValueError(f"u must be (batch, D, L), got shape {tuple(u.shape)}")
    batch, dim, length = u.shape
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"A must be (D, N) with D={dim}, got shape {tuple(A.shape)}")
    n_state = A.shape[1]
    expected = {
        "delta": (delta, (batch, dim, length)),
        "B": (B, (batch, n_state, length)),
        "C": (C, (batch, n_state, length)),
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


def _prepare_delta(delta, delta_bias, delta_softplus):
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        # threshold 20 is torch's default and the one mamba-ssm's kernel uses
        delta = F.softplus(delta)
    return delta


def _skip_and_gate(y, u, D, z):
    if D is not None:
        y = y + D[:, None] * u
    if z is not None:
        y = y * F.silu(z)
    return y


# --------------------------------------------------------------------------------------------
# reference backend


def selective_scan_reference(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                             delta_softplus=False):
    """The sequential recurrence, one time step at a time, differentiated by autograd.

    Computes in the inputs' dtype (at least float32) and returns ``u``'s dtype. It is the oracle
    the other backends are tested against, so it is written to be obviously right, not fast.
    """
    out_dtype = u.dtype
    dtype = torch.promote_types(u.dtype, torch.float32)
    u, delta, A, B, C = (t.to(dtype) for t in (u, delta, A, B, C))
    delta = _prepare_delta(delta, delta_bias, delta_softplus)
    batch, dim, length = u.shape
    h = u.new_zeros(batch, dim, A.shape[1])  # (b, d, n)
    ys = []
    for t in range(length):
        decay = torch.exp(delta[:, :, t, None] * A)  # (b, d, n)
        drive = (delta[:, :, t] * u[:, :, t])[:, :, None] * B[:, None, :, t]  # (b, d, n)
        h = decay * h + drive
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, :, t]))
    y = torch.stack(ys, dim=-1)  # (b, d, L)
    return _skip_and_gate(y, u, D, z).to(out_dtype)


# --------------------------------------------------------------------------------------------
# cpu backend

# Steps per block of the blocked scan. Each block holds a few (T, b, N, D) work buffers; this
# many float32 elements per buffer keeps them cache-resident: 16 steps at b=16, N=16, D=128 was
# ~10 % faster than 32 on a 2-core EPYC (1 MiB L2, 32 MiB L3) at L=1200, with 8 about the same.
_BLOCK_ELEMENTS = 1 << 19
_MIN_BLOCK, _MAX_BLOCK = 8, 64
_LOG2_E = 1.4426950408889634


@contextlib.contextmanager
def _one_intra_op_thread() -> Iterator[None]:
    """Run the enclosed PyTorch CPU ops on one intra-op thread, then restore the caller's count.

    The blocked scan issues thousands of small ops (one ``(b, N, D)`` slab per time step). Split
    over threads, every op ends in a barrier; on a loaded machine one descheduled thread stalls
    each barrier, which measured 10-20x slower than one thread (a 2-core host shared with other
    jobs), and even on an idle one two threads were no faster than one.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _default_block_size(batch: int, dim: int, n_state: int) -> int:
    per_step = max(1, batch * dim * n_state)
    size = _MIN_BLOCK
    while size * 2 <= _MAX_BLOCK and size * 2 * per_step <= _BLOCK_ELEMENTS:
        size *= 2
    return size


def selective_scan_cpu(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                       delta_softplus=False, block_size: int | None = None):
    """The blocked selective scan with a hand-written, memory-lean backward pass.

    The step-size bias and softplus and the recurrence are :class:`_BlockedScan`; the ``D`` skip
    and the ``z`` gate are cheap ``(batch, D, L)`` operations left to autograd. ``block_size`` (steps per
    block) defaults to a value that keeps the block's buffers cache-resident.
    """
    out_dtype = u.dtype
    dtype = torch.promote_types(u.dtype, torch.float32)
    u, delta, A, B, C = (t.to(dtype) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta_bias = delta_bias.to(dtype)
    if block_size is None:
        block_size = _default_block_size(u.shape[0], u.shape[1], A.shape[1])
    y = _BlockedScan.apply(u, delta, A, B, C, delta_bias, bool(delta_softplus), int(block_size))
    return _skip_and_gate(y, u, D, z).to(out_dtype)


class _BlockedScan(torch.autograd.Function):
    """``y = scan(u, softplus?(delta + delta_bias), A, B, C)`` (no skip or gate) in time blocks.

    Work happens in time-major ``(T, b, N, D)`` buffers for one block of ``T`` steps at a time,
    with the channel axis ``D`` innermost so that every elementwise operation and the reductions
    over ``N`` and ``D`` run on contiguous memory. Within a block the decays
    ``exp(delta[t] * A)`` are formed directly (exponents stay <= 0 for negative A, so nothing
    overflows in float32, unlike log-space cumulative-sum formulations) and the state is advanced
    one step at a time across the whole ``(b, N, D)`` slab.

    Forward keeps only the state at the start of every block, ``(n_blocks, b, N, D)``. Backward
    walks the blocks in reverse: it recomputes the block's states from the saved boundary state,
    runs the adjoint recurrence ``g[t] = C[t] * dy[t] + exp(delta[t+1] * A) * g[t+1]`` backwards
    in time, and turns ``g`` into the gradients of every input. Peak memory is a few block
    buffers plus the saved boundary states; ``(b, L, D, N)`` is never formed.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, delta_bias, delta_softplus, block_size):
        with _one_intra_op_thread():
            return _BlockedScan._forward(ctx, u, delta, A, B, C, delta_bias, delta_softplus, block_size)

    @staticmethod
    def backward(ctx, grad_y):
        with _one_intra_op_thread():
            return _BlockedScan._backward(ctx, grad_y)

    @staticmethod
    def _forward(ctx, u, delta, A, B, C, delta_bias, delta_softplus, block_size):
        batch, dim, length = u.shape
        n_state = A.shape[1]
        T = max(1, min(block_size, length))
        n_blocks = -(-length // T)
        u_t, dt_t, B_t, C_t = _time_major_padded(u, delta, B, C, n_blocks * T)
        if delta_bias is not None:
            dt_t[:length] += delta_bias
        if delta_softplus:
            dt_t[:length] = F.softplus(dt_t[:length])
        dtu_t = dt_t * u_t  # (Lp, b, D)
        A2_t = (A * _LOG2_E).t().contiguous()  # (N, D), for exp(dt A) = exp2(dt A log2 e)

        decay = u.new_empty(T, batch, n_state, dim)
        states = u.new_empty(T, batch, n_state, dim)
        starts = u.new_empty(n_blocks, batch, n_state, dim)
        starts[0].zero_()
        y_t = u.new_empty(n_blocks * T, batch, dim)
        for k in range(n_blocks):
            steps = slice(k * T, (k + 1) * T)
            _block_decay_and_drive(dt_t[steps], dtu_t[steps], A2_t, B_t[steps], decay, states)
            _advance(decay.unbind(0), states.unbind(0), starts[k])
            # y[t, b, d] = sum_n C[t, b, n] h[t, b, n, d]
            torch.bmm(C_t[steps].view(T * batch, 1, n_state), states.view(T * batch, n_state, dim),
                      out=y_t[steps].view(T * batch, 1, dim))
            if k + 1 < n_blocks:
                starts[k + 1].copy_(states[-1])

        ctx.save_for_backward(u_t, dt_t, A, B_t, C_t, starts)
        ctx.block_size = T
        ctx.length = length
        ctx.delta_softplus = delta_softplus
        ctx.has_bias = delta_bias is not None
        return y_t[:length].permute(1, 2, 0).contiguous()  # (b, D, L)

    @staticmethod
    def _backward(ctx, grad_y):
        u_t, dt_t, A, B_t, C_t, starts = ctx.saved_tensors
        T, length = ctx.block_size, ctx.length
        n_blocks, batch, n_state, dim = starts.shape
        padded = n_blocks * T
        gy_t = u_t.new_empty(padded, batch, dim)
        gy_t[:length] = grad_y.permute(2, 0, 1)
        gy_t[length:] = 0
        dtu_t = dt_t * u_t
        A_t = A.t().contiguous()  # (N, D)
        A2_t = A_t * _LOG2_E

        decay = u_t.new_empty(T, batch, n_state, dim)
        # states_ext[0] is the state before the block, states_ext[1:] the block's states
        states_ext = u_t.new_empty(T + 1, batch, n_state, dim)
        states, states_prev = states_ext[1:], states_ext[:-1]
        adj = u_t.new_empty(T, batch, n_state, dim)
        work = u_t.new_empty(T, batch, n_state, dim)
        # sum over blocks of m * dt, reduced over (t, b) once at the end
        g_A_acc = u_t.new_zeros(T, batch, n_state, dim)
        carry = u_t.new_zeros(batch, n_state, dim)
        g_dtu = u_t.new_empty(padded, batch, dim)
        g_dt = u_t.new_empty(padded, batch, dim)
        g_B = u_t.new_empty(padded, batch, n_state)
        g_C = u_t.new_empty(padded, batch, n_state)
        decay_steps, adj_steps = decay.unbind(0), adj.unbind(0)

        for k in reversed(range(n_blocks)):
            steps = slice(k * T, (k + 1) * T)
            states_ext[0].copy_(starts[k])
            _block_decay_and_drive(dt_t[steps], dtu_t[steps], A2_t, B_t[steps], decay, states)
            _advance(decay_steps, states.unbind(0), states_ext[0])
            gy = gy_t[steps]  # (T, b, D)

            # dC[t, b, n] = sum_d h[t, b, n, d] dy[t, b, d]
            torch.mul(states, gy.unsqueeze(2), out=work)
            torch.sum(work, dim=-1, out=g_C[steps])

            # adjoint: g[t] = C[t] dy[t] + decay[t+1] * g[t+1], entering from the next block
            torch.mul(C_t[steps].unsqueeze(-1), gy.unsqueeze(2), out=adj)
            adj_steps[-1].add_(carry)
            for t in range(T - 2, -1, -1):
                adj_steps[t].addcmul_(decay_steps[t + 1], adj_steps[t + 1])

            # d(delta*u)[t, b, d] = sum_n g B ;  dB[t, b, n] = sum_d g (delta*u)
            torch.bmm(B_t[steps].view(T * batch, 1, n_state), adj.view(T * batch, n_state, dim),
                      out=g_dtu[steps].view(T * batch, 1, dim))
            torch.mul(adj, dtu_t[steps].unsqueeze(2), out=work)
            torch.sum(work, dim=-1, out=g_B[steps])

            # through the decay: m = g * exp(delta A) * h[t-1]; d delta = sum_n m A; dA = sum m delta
            decay.mul_(adj)
            carry.copy_(decay[0])
            decay.mul_(states_prev)
            g_A_acc.addcmul_(decay, dt_t[steps].unsqueeze(2))
            decay.mul_(A_t)
            torch.sum(decay, dim=2, out=g_dt[steps])

        g_dt.addcmul_(g_dtu, u_t)
        g_dt, dt_t = g_dt[:length], dt_t[:length]
        if ctx.delta_softplus:
            # softplus'(x) = sigmoid(x) = 1 - exp(-softplus(x)), from the saved output
            g_dt.mul_(torch.expm1(-dt_t).neg_())
        g_u = (g_dtu[:length] * dt_t).permute(1, 2, 0)
        g_delta = g_dt.permute(1, 2, 0)
        g_bias = g_dt.sum(dim=(0, 1)) if ctx.has_bias else None
        g_A = g_A_acc.sum(dim=(0, 1)).t()
        g_B = g_B[:length].permute(1, 2, 0)
        g_C = g_C[:length].permute(1, 2, 0)
        return g_u, g_delta, g_A, g_B, g_C, g_bias, None, None


def _time_major_padded(u, delta, B, C, padded_length):
    """(b, D, L) -> (Lp, b, D) and (b, N, L) -> (Lp, b, N), zero-padded at the end.

    Padded steps have delta = 0, so their decay is 1 and their drive 0: the state passes through
    them unchanged, and their outputs are cut off.
    """
    length = u.shape[-1]
    out = []
    for x in (u, delta, B, C):
        buf = x.new_empty(padded_length, x.shape[0], x.shape[1])
        buf[:length].copy_(x.permute(2, 0, 1))
        buf[length:].zero_()
        out.append(buf)
    return out


def _block_decay_and_drive(dt, dtu, A2_t, B, decay, drive):
    """decay[t] = exp(delta[t] A) = exp2(delta[t] A log2(e)), drive[t] = delta[t] u[t] B[t].

    ``A2_t`` is ``(A log2 e)^T``, ``(N, D)``; outputs are ``(T, b, N, D)``. exp2 is used because
    it is markedly faster than exp on CPUs and, unlike exp, keeps its speed when results
    underflow to denormals (large ``|delta A|``).
    """
    torch.mul(dt.unsqueeze(2), A2_t, out=decay).exp2_()
    torch.mul(B.unsqueeze(-1), dtu.unsqueeze(2), out=drive)


def _advance(decay_steps, state_steps, h0):
    """In place: states[t] = decay[t] * states[t-1] + states[t] (which holds the drive)."""
    h = h0
    for a_t, x_t in zip(decay_steps, state_steps):
        x_t.addcmul_(a_t, h)
        h = x_t


# --------------------------------------------------------------------------------------------
# cuda backend


@functools.lru_cache(maxsize=1)
def _load_cuda_scan() -> Callable:
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception as exc:  # ImportError, or a broken CUDA extension raising at import
        raise RuntimeError(f"{_CUDA_INSTALL_HINT} (import failed: {exc})") from exc
    return selective_scan_fn


def selective_scan_cuda(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                        delta_softplus=False):
    """mamba-ssm's fused CUDA kernel (same semantics and layouts).

    The kernel takes float32, float16 or bfloat16 inputs; ``A``, ``D`` and ``delta_bias`` are
    passed as float32, as mamba-ssm's own Mamba block does.
    """
    selective_scan_fn = _load_cuda_scan()
    if not u.is_cuda:
        raise ValueError(
            f"backend='cuda' needs tensors on a CUDA device, got device {u.device}; "
            "use backend='cpu'"
        )
    return selective_scan_fn(
        u, delta, A.float(), B, C,
        D=None if D is None else D.float(),
        z=z,
        delta_bias=None if delta_bias is None else delta_bias.float(),
        delta_softplus=delta_softplus,
        return_last_state=False,
    )


_BACKEND_FUNCTIONS = {
    "reference": selective_scan_reference,
    "cpu": selective_scan_cpu,
    "cuda": selective_scan_cuda,
}
