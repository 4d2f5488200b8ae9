"""Mamba (v1) block and a bidirectional wrapper.

The block follows mamba-ssm's ``Mamba`` (``mamba_simple.py``) parametrisation, parameter names
and initialisation, so a state dict saved by one loads into the other. Only the scan differs:
it goes through :func:`neurossm.ssm.selective_scan`, whose backend is chosen per block.

References
----------
Gu, A. & Dao, T. (2023). Mamba: Linear-time sequence modeling with selective state spaces.
arXiv:2312.00752.
Gu, A., Gupta, A., Goel, K. & Ré, C. (2022). On the parameterization and initialization of
diagonal state space models (S4D). NeurIPS.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from neurossm.ssm.scan import BACKENDS, selective_scan

__all__ = ["BiMamba", "Mamba"]


class Mamba(nn.Module):
    """Selective state-space block (Mamba v1).

    ``x -> in_proj -> (x, z)``; ``x -> causal depthwise conv -> SiLU``; ``x_proj`` gives the
    input-dependent step ``dt`` (rank ``dt_rank``, expanded by ``dt_proj``), ``B`` and ``C``;
    the selective scan with ``A = -exp(A_log)``, skip ``D`` and gate ``silu(z)``; ``out_proj``.

    Parameters
    ----------
    d_model : int
        Width of the input and output.
    d_state : int
        State size ``N`` per channel.
    d_conv : int
        Kernel size of the causal depthwise convolution.
    expand : int
        Inner width ``d_inner = expand * d_model``.
    dt_rank : int or "auto"
        Rank of the step-size projection; ``"auto"`` is ``ceil(d_model / 16)``.
    dt_min, dt_max : float
        Initial step sizes are drawn log-uniformly in ``[dt_min, dt_max]``.
    dt_init_floor : float
        Lower bound on the initial step sizes.
    dt_scale : float
        Scales the ``dt_proj`` weight initialisation range.
    conv_bias : bool
        Bias in the depthwise convolution.
    bias : bool
        Bias in ``in_proj`` and ``out_proj``.
    backend : {"auto", "reference", "cpu", "cuda"}
        Selective-scan backend (see :func:`neurossm.ssm.selective_scan`).

    Notes
    -----
    Parameter names and shapes are those of mamba-ssm: ``in_proj.weight (2*d_inner, d_model)``,
    ``conv1d.weight (d_inner, 1, d_conv)``, ``conv1d.bias (d_inner,)``,
    ``x_proj.weight (dt_rank + 2*d_state, d_inner)``, ``dt_proj.weight (d_inner, dt_rank)``,
    ``dt_proj.bias (d_inner,)``, ``A_log (d_inner, d_state)``, ``D (d_inner,)``,
    ``out_proj.weight (d_model, d_inner)``. As there, the ``dt_proj`` bias is applied inside the
    scan (as ``delta_bias``, before the softplus), and ``A_log`` and ``D`` carry
    ``_no_weight_decay = True`` for optimisers that honour it.

    The block is causal: the output at time ``t`` depends on inputs up to ``t`` only.

    References
    ----------
    Gu & Dao (2023), arXiv:2312.00752.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        dt_scale: float = 1.0,
        conv_bias: bool = True,
        bias: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown selective-scan backend {backend!r}; choose one of {BACKENDS}")
        if dt_rank == "auto":
            dt_rank = math.ceil(d_model / 16)
        elif not isinstance(dt_rank, int) or dt_rank < 1:
            raise ValueError(f"dt_rank must be a positive int or 'auto', got {dt_rank!r}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = expand * d_model
        self.dt_rank = dt_rank
        self.backend = backend

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(
            self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner,
            padding=d_conv - 1, bias=conv_bias,
        )
        self.act = nn.SiLU()
        self.x_proj = nn.Linear(self.d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, self.d_inner, bias=True)

        dt_init_std = dt_rank ** -0.5 * dt_scale
        nn.init.uniform_(self.dt_proj.weight, -dt_init_std, dt_init_std)
        # initial steps log-uniform in [dt_min, dt_max]; the bias stores softplus^-1 of them
        dt = torch.exp(
            torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        ).clamp(min=dt_init_floor)
        inv_softplus_dt = dt + torch.log(-torch.expm1(-dt))
        with torch.no_grad():
            self.dt_proj.bias.copy_(inv_softplus_dt)
        self.dt_proj.bias._no_reinit = True

        # S4D-real: A[d, n] = -(n + 1), stored as its log so that A stays negative in training
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.D._no_weight_decay = True

        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x (B, L, d_model)`` to ``(B, L, d_model)``.

        ``x`` may also be ``(B, L, G, d_model)``: ``G`` sequences per batch element (one per ROI,
        say) that share every weight, mapped to ``(B, L, G, d_model)``. The result is that of
        folding ``G`` into the batch, computed with one grouped scan per batch element whose
        channels are the ``G × d_inner`` of all sequences (see :mod:`neurossm.ssm.scan`), so the
        scan's vector axis stays wide however few channels one sequence has.
        """
        grouped = x.dim() == 4
        if not grouped:
            x = x.unsqueeze(2)  # (B, L, 1, d_model)
        length, groups = x.shape[1], x.shape[2]
        x, z = self.in_proj(x).chunk(2, dim=-1)  # (B, L, G, d_inner) each
        x = rearrange(x, "b l g d -> b (g d) l")  # (B, G·d_inner, L)
        z = rearrange(z, "b l g d -> b (g d) l")  # (B, G·d_inner, L)
        # the same depthwise kernel for every group: padding d_conv-1 on both sides; keeping the
        # first L outputs makes the conv causal
        conv_bias = None if self.conv1d.bias is None else self.conv1d.bias.repeat(groups)
        x = F.conv1d(x, self.conv1d.weight.repeat(groups, 1, 1), conv_bias,
                     padding=self.d_conv - 1, groups=groups * self.d_inner)
        x = self.act(x[..., :length])  # (B, G·d_inner, L)
        # one time-major copy serves x_proj and the scan: the cpu scan reads time-major memory,
        # and given this view it needs no copy of its own
        x = rearrange(x, "b (g d) l -> b l g d", g=groups).contiguous()  # (B, L, G, d_inner)

        x_dbl = self.x_proj(x)  # (B, L, G, dt_rank + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = rearrange(dt @ self.dt_proj.weight.t(), "b l g d -> b (g d) l")  # (B, G·d_inner, L)
        # views of time-major memory, which is what the cpu scan wants
        B = rearrange(B, "b l g n -> b g n l")  # (B, G, d_state, L)
        C = rearrange(C, "b l g n -> b g n l")  # (B, G, d_state, L)
        if not grouped:
            B, C = B[:, 0], C[:, 0]  # (B, d_state, L): the plain layout

        A = -torch.exp(self.A_log.float()).repeat(groups, 1)  # (G·d_inner, d_state)
        y = selective_scan(
            rearrange(x, "b l g d -> b (g d) l"), dt, A, B, C, self.D.float().repeat(groups), z=z,
            delta_bias=self.dt_proj.bias.float().repeat(groups), delta_softplus=True,
            backend=self.backend,
        )  # (B, G·d_inner, L)
        y = self.out_proj(rearrange(y, "b (g d) l -> b l g d", g=groups))  # (B, L, G, d_model)
        return y if grouped else y[:, :, 0]  # (B, L, [G,] d_model)


class BiMamba(nn.Module):
    """Bidirectional Mamba: a forward-time and a reverse-time block, outputs summed.

    ``y = forward_mamba(x) + flip(backward_mamba(flip(x)))`` with ``flip`` reversing time, so the
    output at ``t`` sees the whole sequence: the past through ``forward_mamba``, the future
    through ``backward_mamba``. The two blocks have separate weights. Summing (rather than
    concatenating) keeps the width at ``d_model`` so the wrapper drops in where a ``Mamba`` goes.

    Parameters
    ----------
    d_model : int
        Width of the input and output.
    **mamba_kwargs
        Every other argument of :class:`Mamba` (``d_state``, ``d_conv``, ``expand``, ``dt_rank``,
        ``dt_min``, ``dt_max``, ``dt_init_floor``, ``dt_scale``, ``conv_bias``, ``bias``,
        ``backend``), with its defaults; both directions get the same arguments.
    """

    def __init__(self, d_model: int, **mamba_kwargs) -> None:
        super().__init__()
        self.forward_mamba = Mamba(d_model, **mamba_kwargs)
        self.backward_mamba = Mamba(d_model, **mamba_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x (B, L, d_model)`` to ``(B, L, d_model)``, or ``(B, L, G, d_model)`` to
        ``(B, L, G, d_model)`` (weight-shared sequences, see :meth:`Mamba.forward`)."""
        y_fwd = self.forward_mamba(x)  # (B, L, d_model)
        y_bwd = self.backward_mamba(x.flip(1)).flip(1)  # (B, L, d_model)
        return y_fwd + y_bwd
