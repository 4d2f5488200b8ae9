"""The ``reference`` backend of the selective scan: the sequential recurrence under autograd.

It is the float64 oracle the other backends are tested against (semantics and layouts in
:mod:`neurossm.ssm.scan`), and it owns the two elementwise pieces every backend shares in
meaning: the step-size bias and softplus, and the ``D`` skip and ``silu(z)`` gate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["selective_scan_reference"]


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


def selective_scan_reference(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                             delta_softplus=False):
    """The sequential recurrence, one time step at a time, differentiated by autograd.

    Computes in the inputs' dtype (at least float32) and returns ``u``'s dtype. It is the oracle
    the other backends are tested against, so it is written to be obviously right, not fast:
    ``B`` and ``C`` (grouped or not) are spelled out to one row per channel first.
    """
    out_dtype = u.dtype
    dtype = torch.promote_types(u.dtype, torch.float32)
    u, delta, A, B, C = (t.to(dtype) for t in (u, delta, A, B, C))
    delta = _prepare_delta(delta, delta_bias, delta_softplus)
    batch, dim, length = u.shape
    B, C = _per_channel(B, dim), _per_channel(C, dim)  # (b, d, n, L) each
    h = u.new_zeros(batch, dim, A.shape[1])  # (b, d, n)
    ys = []
    for t in range(length):
        decay = torch.exp(delta[:, :, t, None] * A)  # (b, d, n)
        drive = (delta[:, :, t] * u[:, :, t])[:, :, None] * B[..., t]  # (b, d, n)
        h = decay * h + drive
        ys.append((h * C[..., t]).sum(dim=-1))  # (b, d)
    y = torch.stack(ys, dim=-1)  # (b, d, L)
    return _skip_and_gate(y, u, D, z).to(out_dtype)


def _per_channel(BC, dim):
    """``B`` or ``C``, ``(b, N, L)`` or grouped ``(b, G, N, L)``, as ``(b, dim, N, L)``: the row
    each channel reads (channel ``d`` belongs to group ``d // (dim / G)``)."""
    grouped = BC if BC.dim() == 4 else BC[:, None]  # (b, G, N, L)
    return grouped.repeat_interleave(dim // grouped.shape[1], dim=1)  # (b, dim, N, L)
