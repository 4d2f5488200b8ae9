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
        """Map ``x (B, L, d_model)`` to ``(B, L, d_model)``."""
        length = x.shape[1]
        xz = rearrange(self.in_proj(x), "b l d -> b d l")  # (B, 2*d_inner, L)
        x, z = xz.chunk(2, dim=1)  # (B, d_inner, L) each
        # padding d_conv-1 on both sides; keeping the first L outputs makes the conv causal
        x = self.act(self.conv1d(x)[..., :length])  # (B, d_inner, L)

        x_dbl = self.x_proj(rearrange(x, "b d l -> b l d"))  # (B, L, dt_rank + 2*d_state)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = rearrange(dt @ self.dt_proj.weight.t(), "b l d -> b d l")  # (B, d_inner, L)
        B = rearrange(B, "b l n -> b n l")  # (B, d_state, L), a view: the cpu scan wants (B, L, N)
        C = rearrange(C, "b l n -> b n l")  # (B, d_state, L)

        A = -torch.exp(self.A_log.float())  # (d_inner, d_state)
        y = selective_scan(
            x, dt, A, B, C, self.D.float(), z=z, delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True, backend=self.backend,
        )  # (B, d_inner, L)
        return self.out_proj(rearrange(y, "b d l -> b l d"))  # (B, L, d_model)


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
        """Map ``x (B, L, d_model)`` to ``(B, L, d_model)``."""
        y_fwd = self.forward_mamba(x)  # (B, L, d_model)
        y_bwd = self.backward_mamba(x.flip(1)).flip(1)  # (B, L, d_model)
        return y_fwd + y_bwd
