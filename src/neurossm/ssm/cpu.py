"""The ``cpu`` backend of the selective scan: a blocked recurrence with a hand-written backward.

Two engines compute it: ``compiled``, numba kernels that fuse each step into one vectorised loop
nest (:mod:`neurossm.ssm._compiled`, driven by :class:`_CompiledScan` here; batch slices run on
the caller's ``torch.get_num_threads()`` threads), and ``eager``, the same algorithm as PyTorch
ops (:mod:`neurossm.ssm.eager`). ``engine="auto"`` takes ``compiled`` for CPU tensors when numba
imports, ``eager`` otherwise; the environment variable ``NEUROSSM_CPU_SCAN_ENGINE`` overrides
that choice.
"""

from __future__ import annotations

import functools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Callable

import torch

from neurossm.ssm.eager import _BlockedScan, _default_block_size
from neurossm.ssm.reference import _skip_and_gate

__all__ = ["CPU_ENGINES", "ENGINE_ENV", "compiled_engine_available", "selective_scan_cpu"]

CPU_ENGINES = ("auto", "compiled", "eager")


def selective_scan_cpu(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                       delta_softplus=False, block_size: int | None = None, engine: str = "auto"):
    """The blocked selective scan with a hand-written, memory-lean backward pass.

    ``engine`` is ``"compiled"`` (numba kernels, CPU tensors only; they compute everything,
    bias, softplus, skip and gate included), ``"eager"`` (PyTorch ops, any device; the ``D``
    skip and the ``z`` gate are left to autograd) or ``"auto"`` (compiled when it can run, see
    :func:`compiled_engine_available`). ``block_size`` (steps per block, the granularity of the
    states kept for backward) defaults to a value that keeps the block's buffers cache-resident.
    ``B`` and ``C`` are ``(b, N, L)`` or grouped ``(b, G, N, L)`` (see :mod:`neurossm.ssm.scan`).
    """
    out_dtype = u.dtype
    dtype = torch.promote_types(u.dtype, torch.float32)
    u, delta, A, B, C = (t.to(dtype) for t in (u, delta, A, B, C))
    # both engines take B and C grouped; the ungrouped scan is the one with a single group
    if B.dim() == 3:
        B, C = B.unsqueeze(1), C.unsqueeze(1)  # (b, 1, N, L)
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

    The kernels work time-major, so the inputs are transposed once to ``(b, L, D)`` and, for the
    grouped ``B`` and ``C`` ``(b, G, N, L)``, to ``(b, L, G, N)``; those copies are saved for backward, with the state at every block start and,
    when gated, the output before the gate. The output and the gradients are returned as
    ``(b, D, L)`` views of the kernels' time-major results.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus, block):
        kernels = _load_compiled()
        batch, dim, length = u.shape
        gated = z is not None
        u_t, delta_t = _time_major(u), _time_major(delta)  # (b, L, D)
        B_t, C_t = _time_major_groups(B), _time_major_groups(C)  # (b, L, G, N)
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
                g_B.permute(0, 2, 3, 1), g_C.permute(0, 2, 3, 1),
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


def _time_major_groups(x: torch.Tensor) -> torch.Tensor:
    """Grouped ``(b, G, N, L)`` → contiguous ``(b, L, G, N)``, detached (no copy when ``x`` is a
    view of such memory, as the Mamba block's ``B`` and ``C`` are)."""
    return x.detach().permute(0, 3, 1, 2).contiguous()


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

