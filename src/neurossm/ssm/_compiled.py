"""Numba kernels of the ``cpu`` scan backend: the recurrence fused into one loop nest.

The eager blocked scan (:class:`neurossm.ssm.eager._BlockedScan`) makes about twenty passes over
``(T, b, N, D)`` block buffers per step of forward and backward, each a separate PyTorch op.
These kernels do the same arithmetic in one loop nest per batch element, with the ``(N, D)``
state in cache and the channel axis ``D`` innermost, so that the compiler vectorises it. Batch
elements are independent: the kernels release the GIL, and the caller runs slices of the batch
on its own threads (no numba threading layer, so nothing clashes with PyTorch's OpenMP runtime
and nothing breaks in a forked process).

They compute all of ``selective_scan``: the step-size bias and softplus, the recurrence, the ``D``
skip and the ``silu(z)`` gate, so no ``(b, D, L)`` elementwise pass is left to PyTorch either.
Layouts are time-major, ``u, delta, z, y: (b, L, D)``, ``B, C: (b, L, G, N)``, ``A: (N, D)``,
with the ``D`` channels in ``G`` consecutive groups of ``D / G`` that each read their own ``B``
and ``C`` (``G = 1``: the ungrouped scan); the
shared arguments come first, then the per-batch-element arrays, so that a caller can hand each
thread a slice of the batch. Absent options are passed as zeros (``D``, ``delta_bias``) or
flags (``softplus``, ``gated``; ``z`` and ``pre`` are then empty ``(b, 0, 0)`` arrays). Forward
keeps the state at the start of every block of ``block`` steps, ``(b, n_blocks, N, D)``;
backward recomputes a block's states from it, then runs the adjoint recurrence backwards in
time. No ``(b, L, N, D)`` array is formed.

``exp`` is the bulk of the work. In float32 it is :func:`_exp_nonpos`: range reduction
``exp(x) = 2**k exp(f)``, ``|f| <= ln(2) / 2`` (with ``ln 2`` split in two, so that ``f`` is
exact), a degree-7 polynomial for ``exp(f)`` and ``2**k`` built in the exponent bits, which
vectorises (a libm call does not) and is accurate to about 2e-7 relative;
its argument is never positive here (``delta >= 0``, ``A < 0``; the softplus and sigmoid are
written with ``exp(-|x|)``), and is clamped at ``-126 ln 2``, so a result below ``2**-126``
(1.2e-38) comes out as about that: an absolute error no float32 sum can see. The softplus' ``log1p``
of a value in ``[0, 1]`` is likewise a short series (:func:`_log1p_unit`). Float64 uses
``math.exp`` and ``math.log1p``: it is the tests' precision, not a speed path.

Importing this module needs numba; :mod:`neurossm.ssm.cpu` imports it lazily and falls back
to the eager scan when numba is missing.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic, overload

# fast-math without 'nnan'/'ninf': reductions may be reordered (that is what lets them vectorise),
# but a NaN or inf that training produces still comes out as one. error_model="numpy" (in the
# decorators) drops the zero-division check Python semantics put before every division, which
# stops a loop from vectorising.
_FAST = {"reassoc", "contract", "nsz", "arcp", "afn"}
_LOG2_E = 1.4426950408889634
_LN2 = 0.6931471805599453
# ln 2 in few bits, so that k * _LN2_HI is exact in float32 for the k the exp meets (Cody-Waite)
_LN2_HI = 0.693359375
# Taylor coefficients of exp(f), highest degree first: 1 / k!, k = 7..0 (|f| <= ln 2 / 2)
_EXP_POLY = tuple(np.float32(1.0 / math.factorial(k)) for k in range(7, -1, -1))
# log(1 + e) = 2 atanh(s) = 2 s (1 + s**2 / 3 + s**4 / 5 + ...), highest degree first, to s**12
_ATANH_POLY = tuple(np.float32(1.0 / j) for j in range(13, 0, -2))


@intrinsic
def _f32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the low 32 bits of an integer."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = builder.trunc(args[0], ir.IntType(32)) if bits.bitwidth > 32 else args[0]
        return builder.bitcast(low, ir.FloatType())

    return types.float32(bits), codegen


def _exp_nonpos(x):
    """``exp(x)`` for ``x <= 0`` (typed per dtype by the overload below)."""
    raise NotImplementedError  # pragma: no cover - replaced when compiled


@njit(fastmath=_FAST, error_model="numpy", cache=True)
def _horner(x, coeffs):
    """The polynomial with coefficients ``coeffs`` (highest degree first) at ``x``."""
    p = coeffs[0]
    for c in coeffs[1:]:
        p = p * x + c
    return p


@overload(_exp_nonpos, inline="always")
def _exp_nonpos_impl(x):
    if x == types.float32:
        log2e, half = np.float32(_LOG2_E), np.float32(0.5)
        ln2_hi, ln2_lo = np.float32(_LN2_HI), np.float32(_LN2 - _LN2_HI)
        lowest = np.float32(-126 * _LN2)

        def exp32(x):
            v = max(x, lowest)
            k = np.floor(v * log2e + half)
            f = (v - k * ln2_hi) - k * ln2_lo  # v - k ln 2, in [-ln 2 / 2, ln 2 / 2]
            return _horner(f, _EXP_POLY) * _f32_from_bits((np.int32(k) + 127) << 23)

        return exp32
    if x == types.float64:
        return lambda x: math.exp(x)
    return None


def _log1p_unit(e):
    """``log(1 + e)`` for ``0 <= e <= 1`` (typed per dtype by the overload below)."""
    raise NotImplementedError  # pragma: no cover - replaced when compiled


@overload(_log1p_unit, inline="always")
def _log1p_unit_impl(e):
    if e == types.float32:
        two = np.float32(2.0)

        def log1p32(e):
            s = e / (two + e)  # in [0, 1/3]
            return two * s * _horner(s * s, _ATANH_POLY)

        return log1p32
    if e == types.float64:
        return lambda e: math.log1p(e)
    return None


def _scalar_type(x):
    """The NumPy scalar type of a numba float type (``None`` for any other type).

    The helpers below build their constants in it: a Python number next to a float32 would
    promote the arithmetic to float64 and stop it vectorising.
    """
    return {types.float32: np.float32, types.float64: np.float64}.get(x)


# Scalar helpers of the kernels. Each is a stub whose overload builds the implementation for the
# argument's float type, with its constants in that type (see _scalar_type).


def _softplus(x):
    """``log(1 + exp(x))``, as ``max(x, 0) + log1p(exp(-|x|))``.

    PyTorch's softplus returns ``x`` itself above 20; this differs from it there by less than
    ``exp(-20) = 2e-9``, below float32's resolution at 20, and its slope by as little.
    """
    raise NotImplementedError  # pragma: no cover - replaced when compiled


def _sigmoid(x):
    """``1 / (1 + exp(-x))``; for ``x < 0`` as ``exp(x) / (1 + exp(x))``, without a branch."""
    raise NotImplementedError  # pragma: no cover - replaced when compiled


def _silu_slope(z, s):
    """``d silu(z) / dz`` given ``s = sigmoid(z)``: ``s (1 + z (1 - s))``."""
    raise NotImplementedError  # pragma: no cover - replaced when compiled


@overload(_softplus, inline="always")
def _softplus_impl(x):
    if (ty := _scalar_type(x)) is not None:
        zero = ty(0)
        return lambda x: max(x, zero) + _log1p_unit(_exp_nonpos(-abs(x)))


@overload(_sigmoid, inline="always")
def _sigmoid_impl(x):
    if (ty := _scalar_type(x)) is not None:
        zero, one = ty(0), ty(1)

        def sigmoid(x):
            e = _exp_nonpos(-abs(x))
            return max(e, ty(x >= zero)) / (one + e)

        return sigmoid


@overload(_silu_slope, inline="always")
def _silu_slope_impl(z, s):
    if (ty := _scalar_type(z)) is not None:
        one = ty(1)
        return lambda z, s: s * (one + z * (one - s))


@njit(inline="always", fastmath=_FAST, error_model="numpy", cache=True)
def _step_sizes(delta, delta_bias, softplus, x, dt):
    """``x = delta + bias`` and ``dt = softplus(x)`` (or ``x``) for one time step, ``(D,)``."""
    for d in range(delta.shape[0]):
        v = delta[d] + delta_bias[d]
        x[d] = v
        dt[d] = _softplus(v) if softplus else v


@njit(nogil=True, fastmath=_FAST, error_model="numpy", cache=True)
def scan_forward(A, D_skip, delta_bias, softplus, gated, block, u, delta, B, C, z, y, pre, starts):
    """Fill ``y`` (b, L, D) with the output, ``starts`` (b, K, N, D) with the state at the start
    of every block and, when gated, ``pre`` (b, L, D) with the output before the gate."""
    n_batch, length, dim = u.shape
    n_state, n_groups = A.shape[0], B.shape[2]
    width = dim // n_groups  # channels per group
    for b in range(n_batch):
        h = np.zeros((n_state, dim), dtype=u.dtype)
        x, dt = np.empty(dim, dtype=u.dtype), np.empty(dim, dtype=u.dtype)
        dtu, acc = np.empty(dim, dtype=u.dtype), np.empty(dim, dtype=u.dtype)
        for t in range(length):
            if t % block == 0:
                starts[b, t // block] = h
            _step_sizes(delta[b, t], delta_bias, softplus, x, dt)
            for d in range(dim):
                dtu[d] = dt[d] * u[b, t, d]
                acc[d] = D_skip[d] * u[b, t, d]
            for n in range(n_state):
                for g in range(n_groups):
                    bn, cn = B[b, t, g, n], C[b, t, g, n]
                    # views whose index starts at 0, so the loop has no negative-index wraparound
                    # branch and vectorises (a loop from g * width does not)
                    hg, ag = h[n, g * width:(g + 1) * width], A[n, g * width:(g + 1) * width]
                    dtg, dtug = dt[g * width:(g + 1) * width], dtu[g * width:(g + 1) * width]
                    accg = acc[g * width:(g + 1) * width]
                    for j in range(width):
                        hv = _exp_nonpos(dtg[j] * ag[j]) * hg[j] + dtug[j] * bn
                        hg[j] = hv
                        accg[j] += cn * hv
            if gated:
                for d in range(dim):
                    pre[b, t, d] = acc[d]
                    y[b, t, d] = acc[d] * z[b, t, d] * _sigmoid(z[b, t, d])
            else:
                for d in range(dim):
                    y[b, t, d] = acc[d]


@njit(nogil=True, fastmath=_FAST, error_model="numpy", cache=True)
def scan_backward(A, D_skip, delta_bias, softplus, gated, block, zero,
                  u, delta, B, C, z, pre, starts, grad_y,
                  g_u, g_delta, g_z, g_B, g_C, g_A, g_D, g_bias):
    """Gradients of ``sum(y * grad_y)``: fills ``g_u, g_delta, g_z`` (b, L, D), ``g_B, g_C``
    (b, L, G, N), and per batch element ``g_A`` (b, N, D), ``g_D, g_bias`` (b, D), which the caller
    sums over ``b``. ``zero`` is a 0 of the arrays' dtype (it types the reductions' accumulators).
    """
    n_batch, length, dim = u.shape
    n_state, n_groups = A.shape[0], B.shape[2]
    width = dim // n_groups  # channels per group
    n_blocks = starts.shape[1]
    for b in range(n_batch):
        # states[i]: the state before step lo + i; decay[i]: exp(dt A) of step lo + i
        states = np.empty((block + 1, n_state, dim), dtype=u.dtype)
        decay = np.empty((block, n_state, dim), dtype=u.dtype)
        x_blk, dt_blk = np.empty((block, dim), dtype=u.dtype), np.empty((block, dim), dtype=u.dtype)
        carry = np.zeros((n_state, dim), dtype=u.dtype)  # decay[t+1] * adjoint[t+1]
        dtu, g_pre = np.empty(dim, dtype=u.dtype), np.empty(dim, dtype=u.dtype)
        g_dtu, g_step = np.empty(dim, dtype=u.dtype), np.empty(dim, dtype=u.dtype)
        g_A[b] = 0
        g_D[b] = 0
        g_bias[b] = 0
        for k in range(n_blocks - 1, -1, -1):
            lo = k * block
            hi = min(lo + block, length)
            states[0] = starts[b, k]
            for t in range(lo, hi):
                i = t - lo
                _step_sizes(delta[b, t], delta_bias, softplus, x_blk[i], dt_blk[i])
                for n in range(n_state):
                    for g in range(n_groups):
                        bn = B[b, t, g, n]
                        lo_d, hi_d = g * width, (g + 1) * width  # zero-based views: see scan_forward
                        dtg, ug, ag = dt_blk[i, lo_d:hi_d], u[b, t, lo_d:hi_d], A[n, lo_d:hi_d]
                        dec, s0, s1 = decay[i, n, lo_d:hi_d], states[i, n, lo_d:hi_d], states[i + 1, n, lo_d:hi_d]
                        for j in range(width):
                            a = _exp_nonpos(dtg[j] * ag[j])
                            dec[j] = a
                            s1[j] = a * s0[j] + dtg[j] * ug[j] * bn
            for t in range(hi - 1, lo - 1, -1):
                i = t - lo
                for d in range(dim):
                    gy = grad_y[b, t, d]
                    if gated:
                        zt = z[b, t, d]
                        sg = _sigmoid(zt)
                        g_z[b, t, d] = gy * pre[b, t, d] * _silu_slope(zt, sg)
                        gy = gy * zt * sg
                    g_pre[d] = gy
                    g_D[b, d] += gy * u[b, t, d]
                    dtu[d] = dt_blk[i, d] * u[b, t, d]
                    g_dtu[d] = 0
                    g_step[d] = 0
                for n in range(n_state):
                    for grp in range(n_groups):
                        bn, cn = B[b, t, grp, n], C[b, t, grp, n]
                        acc_b = zero
                        acc_c = zero
                        lo_d, hi_d = grp * width, (grp + 1) * width  # zero-based views: see scan_forward
                        gp, cr, du, gdu = g_pre[lo_d:hi_d], carry[n, lo_d:hi_d], dtu[lo_d:hi_d], g_dtu[lo_d:hi_d]
                        s0, s1, dec = states[i, n, lo_d:hi_d], states[i + 1, n, lo_d:hi_d], decay[i, n, lo_d:hi_d]
                        gs, ag, gA, dtg = g_step[lo_d:hi_d], A[n, lo_d:hi_d], g_A[b, n, lo_d:hi_d], dt_blk[i, lo_d:hi_d]
                        for j in range(width):
                            g = cn * gp[j] + cr[j]  # adjoint of the state after step t
                            acc_c += s1[j] * gp[j]
                            acc_b += g * du[j]
                            gdu[j] += g * bn
                            gd = g * dec[j]
                            cr[j] = gd
                            m = gd * s0[j]
                            gs[j] += m * ag[j]
                            gA[j] += m * dtg[j]
                        g_B[b, t, grp, n] = acc_b
                        g_C[b, t, grp, n] = acc_c
                for d in range(dim):
                    gdt = g_step[d] + g_dtu[d] * u[b, t, d]
                    if softplus:
                        gdt *= _sigmoid(x_blk[i, d])
                    g_delta[b, t, d] = gdt
                    g_bias[b, d] += gdt
                    g_u[b, t, d] = g_dtu[d] * dt_blk[i, d] + g_pre[d] * D_skip[d]
