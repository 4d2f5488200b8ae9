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
    A blocked recurrence with a hand-written backward pass, for training on CPUs. Two engines
    compute it: ``compiled``, numba kernels that fuse each step into one vectorised loop nest
    (:mod:`neurossm.ssm._compiled`, :class:`_CompiledScan`; batch slices run on the caller's
    ``torch.get_num_threads()`` threads), and ``eager``, the same algorithm as PyTorch ops
    (:class:`_BlockedScan`, on one intra-op thread, see :func:`_one_intra_op_thread`), which
    needs nothing beyond PyTorch and runs on any device. ``engine="auto"`` takes ``compiled``
    for CPU tensors when numba imports, ``eager`` otherwise; the environment variable
    ``NEUROSSM_CPU_SCAN_ENGINE=compiled|eager`` overrides that choice.
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
import warnings
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

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
                       delta_softplus=False, block_size: int | None = None, engine: str = "auto"):
    """The blocked selective scan with a hand-written, memory-lean backward pass.

    ``engine`` is ``"compiled"`` (numba kernels, CPU tensors only; they compute everything,
    bias, softplus, skip and gate included), ``"eager"`` (PyTorch ops, any device; the ``D``
    skip and the ``z`` gate are left to autograd) or ``"auto"`` (compiled when it can run, see
    :func:`compiled_engine_available`). ``block_size`` (steps per block, the granularity of the
    states kept for backward) defaults to a value that keeps the block's buffers cache-resident.
    """
    out_dtype = u.dtype
    dtype = torch.promote_types(u.dtype, torch.float32)
    u, delta, A, B, C = (t.to(dtype) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta_bias = delta_bias.to(dtype)
    if _use_compiled(engine, u):
        D, z = (None if t is None else t.to(dtype) for t in (D, z))
        y = _CompiledScan.apply(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus),
                                int(block_size or _COMPILED_BLOCK))
        return y.to(out_dtype)
    if block_size is None:
        block_size = _default_block_size(u.shape[0], u.shape[1], A.shape[1])
    y = _BlockedScan.apply(u, delta, A, B, C, delta_bias, bool(delta_softplus), int(block_size))
    return _skip_and_gate(y, u, D, z).to(out_dtype)


def compiled_engine_available() -> bool:
    """True when the ``cpu`` backend's compiled (numba) engine can be imported."""
    return _load_compiled() is not None


@functools.lru_cache(maxsize=1)
def _load_compiled() -> ModuleType | None:
    try:
        from . import _compiled
    except Exception as exc:  # numba missing, or an llvmlite that does not load here
        warnings.warn(f"the cpu scan's compiled engine is unavailable ({exc}); using the eager "
                      "engine, several times slower. `pip install numba` enables it.",
                      RuntimeWarning, stacklevel=3)
        return None
    return _compiled


# Environment variable that sets what engine="auto" means (compiled or eager), for comparing the
# two in a whole model or sidestepping numba, without touching code or configs
ENGINE_ENV = "NEUROSSM_CPU_SCAN_ENGINE"


def _use_compiled(engine: str, u: torch.Tensor) -> bool:
    if engine == "auto":
        engine = os.environ.get(ENGINE_ENV, "").strip().lower() or "auto"
        where = f" (from the environment variable {ENGINE_ENV})"
    else:
        where = ""
    if engine not in CPU_ENGINES:
        raise ValueError(f"unknown cpu-scan engine {engine!r}{where}; "
                         f"choose one of {', '.join(CPU_ENGINES)}")
    if engine == "eager":
        return False
    on_cpu = u.device.type == "cpu"
    if engine == "auto":
        return on_cpu and compiled_engine_available()
    if not on_cpu:
        raise ValueError(f"engine='compiled' runs on CPU tensors, got device {u.device}; "
                         "use engine='eager' or 'auto'")
    if not compiled_engine_available():
        raise RuntimeError("engine='compiled' needs numba (`pip install numba`); "
                           "use engine='eager' or 'auto'")
    return True


# Steps per block of the compiled engine: a block's states and decays, (2 T + 1) N D values per
# batch element, stay in L2; 16 was faster than 8 and as fast as 32 at b=16, N=16, D=128.
_COMPILED_BLOCK = 16


class _CompiledScan(torch.autograd.Function):
    """All of ``selective_scan`` (bias, softplus, recurrence, skip, gate) by the numba kernels.

    The kernels work time-major, so the inputs are transposed once to ``(b, L, D)`` and
    ``(b, L, N)``; those copies are saved for backward, with the state at every block start and,
    when gated, the output before the gate. The output and the gradients are returned as
    ``(b, D, L)`` views of the kernels' time-major results.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus, block):
        kernels = _load_compiled()
        batch, dim, length = u.shape
        gated = z is not None
        u_t, delta_t, B_t, C_t = (_time_major(x) for x in (u, delta, B, C))
        z_t = _time_major(z) if gated else u_t.new_empty(batch, 0, 0)
        shared = _shared_arrays(A, D, delta_bias, softplus, gated, block)
        y = torch.empty_like(u_t)
        pre = torch.empty_like(u_t) if gated else z_t
        starts = u_t.new_empty(batch, -(-length // block), A.shape[1], dim)
        _run_batch_slices(kernels.scan_forward, shared, (u_t, delta_t, B_t, C_t, z_t, y, pre, starts))
        ctx.save_for_backward(u_t, delta_t, B_t, C_t, z_t, pre, starts)
        ctx.shared = shared
        ctx.optional = (D is not None, gated, delta_bias is not None)
        return y.transpose(1, 2)

    @staticmethod
    def backward(ctx, grad_y):
        kernels = _load_compiled()
        u_t, delta_t, B_t, C_t, z_t, pre, starts = ctx.saved_tensors
        has_D, gated, has_bias = ctx.optional
        batch, dim = u_t.shape[0], u_t.shape[2]
        g_u, g_delta, g_z = (torch.empty_like(x) for x in (u_t, u_t, z_t))
        g_B, g_C = torch.empty_like(B_t), torch.empty_like(C_t)
        g_A = u_t.new_empty(batch, *ctx.shared[0].shape)  # per batch element, summed below
        g_D, g_bias = u_t.new_empty(batch, dim), u_t.new_empty(batch, dim)
        zero = u_t.new_zeros(()).numpy()[()]
        _run_batch_slices(kernels.scan_backward, (*ctx.shared, zero),
                          (u_t, delta_t, B_t, C_t, z_t, pre, starts, _time_major(grad_y),
                           g_u, g_delta, g_z, g_B, g_C, g_A, g_D, g_bias))
        return (g_u.transpose(1, 2), g_delta.transpose(1, 2), g_A.sum(0).t(),
                g_B.transpose(1, 2), g_C.transpose(1, 2),
                g_D.sum(0) if has_D else None, g_z.transpose(1, 2) if gated else None,
                g_bias.sum(0) if has_bias else None, None, None)


def _shared_arrays(A, D, delta_bias, softplus, gated, block) -> tuple:
    """The kernels' leading arguments: ``A`` as ``(N, D)``, ``D`` and ``delta_bias`` (zeros when
    absent), and the three options, as NumPy values."""
    zeros = A.new_zeros(A.shape[0])
    A_t, D, delta_bias = (x.detach().contiguous().numpy() for x in
                          (A.t(), zeros if D is None else D, zeros if delta_bias is None else delta_bias))
    return A_t, D, delta_bias, softplus, gated, block


def _time_major(x: torch.Tensor) -> torch.Tensor:
    """``(b, C, L)`` → a contiguous ``(b, L, C)`` copy, detached."""
    return x.detach().transpose(1, 2).contiguous()


def _run_batch_slices(kernel: Callable, shared: tuple, batched: tuple[torch.Tensor, ...]) -> None:
    """``kernel(*shared, *batched)``, the batched tensors cut into one slice of the batch per thread.

    Threads: PyTorch's ``torch.get_num_threads()``, at most one per batch element; the calling
    thread takes the first slice.
    """
    batch = batched[0].shape[0]
    n_threads = max(1, min(torch.get_num_threads(), batch))

    def call(lo: int, hi: int) -> None:
        kernel(*shared, *(t[lo:hi].numpy() for t in batched))

    bounds = [round(i * batch / n_threads) for i in range(n_threads + 1)]
    futures = [_thread_pool(n_threads - 1).submit(call, lo, hi)
               for lo, hi in zip(bounds[1:-1], bounds[2:])]
    call(bounds[0], bounds[1])
    for future in futures:
        future.result()


_POOLS: dict[int, tuple[ThreadPoolExecutor, int]] = {}


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool with at least ``workers`` threads (a forked child makes its own)."""
    pool, size = _POOLS.get(os.getpid(), (None, 0))
    if pool is None or size < workers:
        if pool is not None:
            pool.shutdown(wait=False)  # idle threads exit; running calls finish
        size = max(1, workers)
        pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="neurossm-scan")
        _POOLS[os.getpid()] = (pool, size)
    return pool


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
        A2_t = (A * _LOG2_E).t().contiguous()  # (N, D), for exp(dt A) = exp2(dt A log2 e)
        block = _BlockInputs(u, n_state, T)

        decay = u.new_empty(T, batch, n_state, dim)
        states = u.new_empty(T, batch, n_state, dim)
        starts = u.new_empty(n_blocks, batch, n_state, dim)
        starts[0].zero_()
        y = u.new_empty(batch, dim, length)
        y_block = u.new_empty(T, batch, dim)
        for k in range(n_blocks):
            lo, hi = k * T, min((k + 1) * T, length)
            n = hi - lo
            u_b, dt_b, B_b, C_b = block.load(u, delta, B, C, delta_bias, delta_softplus, lo, hi)
            dec, st = decay[:n], states[:n]
            _block_decay_and_drive(dt_b, dt_b * u_b, A2_t, B_b, dec, st)
            _advance(dec.unbind(0), st.unbind(0), starts[k])
            # y[t, b, d] = sum_n C[t, b, n] h[t, b, n, d]
            torch.bmm(C_b.view(n * batch, 1, n_state), st.view(n * batch, n_state, dim),
                      out=y_block[:n].view(n * batch, 1, dim))
            y[:, :, lo:hi].copy_(y_block[:n].permute(1, 2, 0))
            if k + 1 < n_blocks:
                starts[k + 1].copy_(st[-1])

        ctx.save_for_backward(u, delta, A, B, C, delta_bias, starts)
        ctx.block_size = T
        ctx.delta_softplus = delta_softplus
        return y  # (b, D, L)

    @staticmethod
    def _backward(ctx, grad_y):
        u, delta, A, B, C, delta_bias, starts = ctx.saved_tensors
        T = ctx.block_size
        n_blocks, batch, n_state, dim = starts.shape
        length = u.shape[-1]
        A_t = A.t().contiguous()  # (N, D)
        A2_t = A_t * _LOG2_E
        block = _BlockInputs(u, n_state, T)

        decay = u.new_empty(T, batch, n_state, dim)
        # states_ext[0] is the state before the block, states_ext[1:] the block's states
        states_ext = u.new_empty(T + 1, batch, n_state, dim)
        adj = u.new_empty(T, batch, n_state, dim)
        work = u.new_empty(T, batch, n_state, dim)
        # sum over blocks of m * dt, reduced over (t, b) once at the end
        g_A_acc = u.new_zeros(T, batch, n_state, dim)
        carry = u.new_zeros(batch, n_state, dim)
        gy_b, g_dtu_b, g_dt_b = (u.new_empty(T, batch, dim) for _ in range(3))
        g_B_b, g_C_b = (u.new_empty(T, batch, n_state) for _ in range(2))
        g_u, g_delta = torch.empty_like(u), torch.empty_like(u)
        g_B, g_C = torch.empty_like(B), torch.empty_like(C)
        g_bias = torch.zeros_like(delta_bias) if delta_bias is not None else None

        for k in reversed(range(n_blocks)):
            lo, hi = k * T, min((k + 1) * T, length)
            n = hi - lo
            u_b, dt_b, B_b, C_b = block.load(u, delta, B, C, delta_bias, ctx.delta_softplus, lo, hi)
            dtu_b = dt_b * u_b
            dec, wk, ad = decay[:n], work[:n], adj[:n]
            st_prev, st = states_ext[:n], states_ext[1 : n + 1]
            states_ext[0].copy_(starts[k])
            _block_decay_and_drive(dt_b, dtu_b, A2_t, B_b, dec, st)
            dec_steps, ad_steps = dec.unbind(0), ad.unbind(0)
            _advance(dec_steps, st.unbind(0), states_ext[0])
            gy = gy_b[:n]
            gy.copy_(grad_y[:, :, lo:hi].permute(2, 0, 1))  # (n, b, D)

            # dC[t, b, n] = sum_d h[t, b, n, d] dy[t, b, d]
            torch.mul(st, gy.unsqueeze(2), out=wk)
            torch.sum(wk, dim=-1, out=g_C_b[:n])
            g_C[:, :, lo:hi].copy_(g_C_b[:n].permute(1, 2, 0))

            # adjoint: g[t] = C[t] dy[t] + decay[t+1] * g[t+1], entering from the next block
            torch.mul(C_b.unsqueeze(-1), gy.unsqueeze(2), out=ad)
            ad_steps[-1].add_(carry)
            for t in range(n - 2, -1, -1):
                ad_steps[t].addcmul_(dec_steps[t + 1], ad_steps[t + 1])

            # d(delta*u)[t, b, d] = sum_n g B ;  dB[t, b, n] = sum_d g (delta*u)
            g_dtu = g_dtu_b[:n]
            torch.bmm(B_b.view(n * batch, 1, n_state), ad.view(n * batch, n_state, dim),
                      out=g_dtu.view(n * batch, 1, dim))
            torch.mul(ad, dtu_b.unsqueeze(2), out=wk)
            torch.sum(wk, dim=-1, out=g_B_b[:n])
            g_B[:, :, lo:hi].copy_(g_B_b[:n].permute(1, 2, 0))

            # through the decay: m = g * exp(delta A) * h[t-1]; d delta = sum_n m A; dA = sum m delta
            dec.mul_(ad)
            carry.copy_(dec[0])
            dec.mul_(st_prev)
            g_A_acc[:n].addcmul_(dec, dt_b.unsqueeze(2))
            dec.mul_(A_t)
            g_dt = g_dt_b[:n]
            torch.sum(dec, dim=2, out=g_dt)
            g_dt.addcmul_(g_dtu, u_b)
            if ctx.delta_softplus:
                # softplus'(x) = sigmoid(x) = 1 - exp(-softplus(x)), from the recomputed output
                g_dt.mul_(torch.expm1(-dt_b).neg_())
            if g_bias is not None:
                g_bias += g_dt.sum(dim=(0, 1))
            g_delta[:, :, lo:hi].copy_(g_dt.permute(1, 2, 0))
            g_dtu.mul_(dt_b)
            g_u[:, :, lo:hi].copy_(g_dtu.permute(1, 2, 0))

        g_A = g_A_acc.sum(dim=(0, 1)).t()
        return g_u, g_delta, g_A, g_B, g_C, g_bias, None, None


class _BlockInputs:
    """Time-major copies of one block of the inputs, in buffers reused from block to block.

    Transposing ``T`` steps at a time, while they are in cache, costs a fraction of transposing
    whole ``(b, D, L)`` tensors, and no second full-length copy of the inputs is kept.
    """

    def __init__(self, u: torch.Tensor, n_state: int, T: int) -> None:
        batch, dim, _ = u.shape
        self.u, self.dt = u.new_empty(T, batch, dim), u.new_empty(T, batch, dim)
        self.B, self.C = u.new_empty(T, batch, n_state), u.new_empty(T, batch, n_state)

    def load(self, u, delta, B, C, delta_bias, delta_softplus, lo: int, hi: int):
        """``u``, ``softplus?(delta + delta_bias)``, ``B``, ``C`` of steps ``lo:hi``, each ``(n, b, ·)``."""
        n = hi - lo
        u_b, dt_b, B_b, C_b = self.u[:n], self.dt[:n], self.B[:n], self.C[:n]
        for dst, src in ((u_b, u), (dt_b, delta), (B_b, B), (C_b, C)):
            dst.copy_(src[:, :, lo:hi].permute(2, 0, 1))
        if delta_bias is not None:
            dt_b += delta_bias
        if delta_softplus:
            dt_b.copy_(F.softplus(dt_b))
        return u_b, dt_b, B_b, C_b


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
