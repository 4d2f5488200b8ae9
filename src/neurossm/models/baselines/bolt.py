"""BolT: fused window transformers for fMRI time series.

Every time point of a scan is a token (its ROI vector). The time series is cut into overlapping
*base windows*; each window gets a CLS token, and in every layer the CLS token and the base
tokens of a window attend to the window's tokens plus *fringe* tokens borrowed from its
neighbours. The fringe grows with depth, so the encoder moves from local to global context.
The overlapping base-token outputs are fused back into one sequence by averaging, and a
cross-window consistency term pulls the final CLS tokens of a scan towards each other.

References
----------
Bedel, H. A., Sivgin, I., Dalmaz, O., Dar, S. U. H., & Çukur, T. (2023). BolT: Fused window
transformers for fMRI time series analysis. *Medical Image Analysis*, 88, 102841.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ...errors import ConfigError
from ..registry import register_model

FRINGE_RULES = ("expand", "fixed")
POOLINGS = ("cls", "gmp")


def window_stride(window_size: int, shift_coeff: float) -> int:
    """Stride between consecutive base windows: ``int(window_size · shift_coeff)`` (20 · 2/5 = 8)."""
    # Rounded first so that 20 · 0.4 = 8.000000000000002 does not depend on float noise.
    return int(round(window_size * shift_coeff, 9))


def window_geometry(n_times: int, window_size: int, stride: int) -> tuple[int, int]:
    """``(n_windows, n_used)`` for a scan of ``n_times`` points.

    ``n_windows = (n_times − window_size) // stride + 1`` base windows start at ``0, stride, …``;
    they cover the first ``n_used = window_size + stride · (n_windows − 1)`` time points. The
    remaining ``n_times − n_used < stride`` points at the end are not seen (as in the paper's code).
    """
    if n_times < window_size:
        raise ConfigError(f"BolT needs at least window_size={window_size} time points; got {n_times}")
    n_windows = (n_times - window_size) // stride + 1
    return n_windows, window_size + stride * (n_windows - 1)


def fringe_sizes(n_layers: int, window_size: int, shift_coeff: float, fringe_coeff: float,
                 fringe_rule: str = "expand") -> tuple[int, ...]:
    """Fringe tokens added on *each side* of the base window, per layer (0-based ``l``).

    ``expand``: ``f_l = ⌈W · l · fringe_coeff · (1 − shift_coeff)⌉``, so the key/value window of
    layer ``l`` spans ``W + 2 f_l`` time points (20, 68, 116, 164 with the published W = 20,
    shift 2/5, fringe coefficient 2). ``fixed``: every layer uses the ``l = 1`` fringe.
    """
    if fringe_rule not in FRINGE_RULES:
        raise ConfigError(f"BolT fringe_rule={fringe_rule!r}; choose one of {FRINGE_RULES}")
    out = []
    for layer in range(n_layers):
        depth = layer if fringe_rule == "expand" else 1
        out.append(math.ceil(round(window_size * depth * fringe_coeff * (1.0 - shift_coeff), 9)))
    return tuple(out)


def consistency_loss(cls: torch.Tensor) -> torch.Tensor:
    """Cross-window regularisation: mean squared deviation of each window's CLS from the scan's mean CLS.

    ``cls`` is ``(B, n_windows, C)``; the result is a scalar ≥ 0, zero when all CLS tokens of
    each scan are equal.
    """
    return (cls - cls.mean(dim=1, keepdim=True)).square().mean()


class FusedWindowAttention(nn.Module):
    """Multi-head attention of each window's CLS + base tokens over its CLS + base + fringe tokens.

    Parameters
    ----------
    dim : int
        Token width.
    window_size : int
        Base window length ``W``.
    stride : int
        Shift between consecutive windows.
    fringe : int
        Fringe tokens on each side of the base window, ``f``; keys span ``K = W + 2f`` time points.
    n_heads, head_dim : int
        Attention heads and their width (the inner width ``n_heads · head_dim`` need not be ``dim``).
    attention_bias : bool
        Learned biases on the attention logits: a relative-position bias per head for token→token
        pairs (indexed by the time offset between query and key), and per-position biases for
        CLS→token, token→CLS and CLS→CLS.
    attn_drop_prob, proj_drop_prob : float
        Dropout on the attention weights and on the output projection.

    Notes
    -----
    Keys that fall before the first or after the last used time point (the fringe of edge
    windows) are masked out. Queries, keys and values are per-token linear maps, so they are
    computed once on the whole sequence and then cut into windows; that equals projecting each
    window's tokens separately and saves the repeated work on overlapping tokens.
    """

    def __init__(self, dim: int, window_size: int, stride: int, fringe: int, n_heads: int, head_dim: int,
                 attention_bias: bool = True, attn_drop_prob: float = 0.0, proj_drop_prob: float = 0.0) -> None:
        super().__init__()
        self.window_size, self.stride, self.fringe = window_size, stride, fringe
        self.receptive_size = window_size + 2 * fringe
        self.n_heads, self.head_dim = n_heads, head_dim
        inner = n_heads * head_dim
        self.q = nn.Linear(dim, inner)
        self.kv = nn.Linear(dim, 2 * inner)
        self.proj = nn.Linear(inner, dim)
        self.attn_drop_prob = attn_drop_prob
        self.proj_drop = nn.Dropout(proj_drop_prob)
        self.attention_bias = attention_bias
        if attention_bias:
            max_offset = window_size - 1 + fringe
            self.relative_bias = nn.Parameter(torch.zeros(n_heads, 2 * max_offset + 1))
            self.cls_to_token_bias = nn.Parameter(torch.zeros(n_heads, self.receptive_size))
            self.token_to_cls_bias = nn.Parameter(torch.zeros(n_heads, window_size))
            self.cls_self_bias = nn.Parameter(torch.zeros(n_heads))
            for p in (self.relative_bias, self.cls_to_token_bias, self.token_to_cls_bias, self.cls_self_bias):
                nn.init.trunc_normal_(p, std=0.02)
            # Base query n sits at window time n, key m at window time m − f: offset n − m + f, shifted ≥ 0.
            query = torch.arange(window_size)[:, None]
            key = torch.arange(self.receptive_size)[None, :] - fringe
            self.register_buffer("relative_index", query - key + max_offset, persistent=False)  # (W, K)

    def logit_bias(self) -> torch.Tensor:
        """The learned attention-logit bias of one window: ``(H, 1 + W, 1 + K)``, CLS first."""
        H, W, K = self.n_heads, self.window_size, self.receptive_size
        bias = self.relative_bias.new_zeros(H, 1 + W, 1 + K)
        if not self.attention_bias:
            return bias
        bias[:, 0, 0] = self.cls_self_bias
        bias[:, 0, 1:] = self.cls_to_token_bias
        bias[:, 1:, 0] = self.token_to_cls_bias
        bias[:, 1:, 1:] = self.relative_bias[:, self.relative_index]  # (H, W, K)
        return bias

    def key_mask(self, n_windows: int, n_used: int, device: torch.device) -> torch.Tensor:
        """``(n_windows, 1 + K)`` bool: which keys of each window are real (CLS always is)."""
        starts = torch.arange(n_windows, device=device)[:, None] * self.stride - self.fringe
        times = starts + torch.arange(self.receptive_size, device=device)[None, :]  # (nW, K)
        valid = (times >= 0) & (times < n_used)
        return torch.cat([valid.new_ones(n_windows, 1), valid], dim=1)  # (nW, 1+K)

    def forward(self, h: torch.Tensor, cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``h``: normalised tokens ``(B, T_used, C)``; ``cls``: normalised CLS tokens ``(B, nW, C)``.

        Returns the attended base tokens per window ``(B, nW, W, C)`` and CLS tokens ``(B, nW, C)``.
        """
        W, K, S, f, H = self.window_size, self.receptive_size, self.stride, self.fringe, self.n_heads
        n_windows, n_used = cls.shape[1], h.shape[1]
        q_tok = self.q(h).unfold(1, W, S)  # (B, nW, H·d, W)
        q_tok = rearrange(q_tok, "b w (h d) l -> b w h l d", h=H)
        q_cls = rearrange(self.q(cls), "b w (h d) -> b w h 1 d", h=H)
        q = torch.cat([q_cls, q_tok], dim=-2)  # (B, nW, H, 1+W, d)

        kv_tok = F.pad(self.kv(h), (0, 0, f, f)).unfold(1, K, S)  # (B, nW, 2·H·d, K)
        kv_tok = rearrange(kv_tok, "b w (two h d) l -> two b w h l d", two=2, h=H)
        kv_cls = rearrange(self.kv(cls), "b w (two h d) -> two b w h 1 d", two=2, h=H)
        k = torch.cat([kv_cls[0], kv_tok[0]], dim=-2)  # (B, nW, H, 1+K, d)
        v = torch.cat([kv_cls[1], kv_tok[1]], dim=-2)  # (B, nW, H, 1+K, d)

        valid = self.key_mask(n_windows, n_used, h.device)  # (nW, 1+K)
        mask = self.logit_bias().to(q.dtype)[None] + torch.zeros_like(valid, dtype=q.dtype).masked_fill(
            ~valid, float("-inf"))[:, None, None, :]  # (nW, H, 1+W, 1+K)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_drop_prob if self.training else 0.0
        )  # (B, nW, H, 1+W, d)
        out = self.proj_drop(self.proj(rearrange(out, "b w h l d -> b w l (h d)")))  # (B, nW, 1+W, C)
        return out[:, :, 1:], out[:, :, 0]


def fuse_windows(windows: torch.Tensor, stride: int, n_used: int) -> torch.Tensor:
    """Average the overlapping window outputs ``(B, nW, W, C)`` back into a sequence ``(B, n_used, C)``."""
    B, n_windows, W, C = windows.shape
    index = (torch.arange(n_windows, device=windows.device)[:, None] * stride
             + torch.arange(W, device=windows.device)[None, :]).reshape(-1)  # (nW·W,)
    total = windows.new_zeros(B, n_used, C).index_add_(1, index, windows.reshape(B, n_windows * W, C))
    count = torch.bincount(index, minlength=n_used).to(windows.dtype)  # (n_used,)
    return total / count[None, :, None]  # (B, n_used, C)


class FeedForward(nn.Sequential):
    """``Linear(C → mlp_ratio · C)`` → GELU → dropout → ``Linear(→ C)``."""

    def __init__(self, dim: int, mlp_ratio: float, drop_prob: float) -> None:
        inner = max(1, int(dim * mlp_ratio))
        super().__init__(nn.Linear(dim, inner), nn.GELU(), nn.Dropout(drop_prob), nn.Linear(inner, dim))


class BolTBlock(nn.Module):
    """Fused window transformer layer: pre-norm window attention, fusion, residual, pre-norm MLP.

    The base tokens and the CLS tokens share the norms and the MLP.
    """

    def __init__(self, dim: int, window_size: int, stride: int, fringe: int, n_heads: int, head_dim: int,
                 mlp_ratio: float, attention_bias: bool, drop_prob: float, attn_drop_prob: float) -> None:
        super().__init__()
        self.stride = stride
        self.attn_norm = nn.LayerNorm(dim)
        self.attention = FusedWindowAttention(dim, window_size, stride, fringe, n_heads, head_dim, attention_bias,
                                              attn_drop_prob, drop_prob)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_ratio, drop_prob)

    def forward(self, h: torch.Tensor, cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tok_windows, cls_out = self.attention(self.attn_norm(h), self.attn_norm(cls))  # (B, nW, W, C), (B, nW, C)
        h = h + fuse_windows(tok_windows, self.stride, h.shape[1])  # (B, T_used, C)
        cls = cls + cls_out  # (B, nW, C)
        h = h + self.mlp(self.mlp_norm(h))
        cls = cls + self.mlp(self.mlp_norm(cls))
        return h, cls


@register_model(
    "BolT",
    kind="torch",
    description="fused window transformer over time points: windowed CLS tokens, growing fringe, "
                "cross-window consistency loss",
    reference="Bedel et al. (2023) BolT: Fused window transformers for fMRI time series analysis. "
              "Medical Image Analysis 88:102841",
    presets={
        # A CPU-sized variant: tokens projected to 64 dimensions, 4 heads of 16.
        "small": {"d_model": 64, "n_heads": 4, "head_dim": 16},
    },
)
class BolT(nn.Module):
    """BolT classifier of ROI time series.

    Parameters
    ----------
    {signal_parameters}
    n_times : int
        Training crop length; must be ≥ ``window_size``. Any length ≥ ``window_size`` is accepted
        at inference.
    d_model : int or None
        Token width. ``None`` (published): the ROI vector of a time point *is* the token
        (width ``n_rois``). An integer adds ``Linear(n_rois → d_model)`` per time point, which
        makes the model cheaper at 400 ROIs.
    n_layers : int
        Fused window transformer layers (4).
    n_heads, head_dim : int
        Attention heads and head width (36 × 20 at Schaefer-400 in the paper).
    window_size : int
        Base window length ``W`` in time points (20).
    shift_coeff : float
        Window stride as a fraction of ``W`` (2/5 → stride 8).
    fringe_coeff : float
        Fringe growth; see :func:`fringe_sizes` (2).
    fringe_rule : str
        ``"expand"`` (fringe grows with depth, published) or ``"fixed"`` (paper's ablation).
    mlp_ratio : float
        MLP inner width over token width (1.0).
    attention_bias : bool
        Learned relative-position and CLS attention biases (True).
    drop_prob, attn_drop_prob : float
        Dropout after the attention projection and in the MLP; dropout on attention weights (0.1, 0.1).
    lambda_cons : float
        Weight of the cross-window consistency loss in :meth:`training_loss` (1.0).
    pooling : str
        ``"cls"``: head on the mean of the final CLS tokens (published); ``"gmp"``: head on the
        mean of the final time-point tokens (the paper's ablation).

    Notes
    -----
    *Windows.* Stride ``S = int(W · shift_coeff)``; ``n_windows = (T − W) // S + 1``; the last
    ``T − (W + S · (n_windows − 1))`` time points (fewer than ``S``) are dropped, as in the
    authors' code. At T = 600: 73 windows over 596 points; at T = 150: 17 windows over 148.

    *Fringe.* Layer ``l`` (0-based) lets the CLS and base tokens of a window attend to
    ``f_l = ⌈W · l · fringe_coeff · (1 − shift_coeff)⌉`` extra tokens on each side of the base
    window, i.e. keys/values over ``W + 2 f_l`` points: 20, 68, 116 and 164 with the published
    settings. This equals the authors' key window ``W + ⌈2 W l · fringe_coeff · (1 − shift_coeff)⌉``
    whenever that is ``W`` plus an even number (their code asserts it is). Fringe keys outside
    the scan are masked.

    *CLS tokens.* Every window starts from one shared learnable CLS vector (initialised
    N(0, 1)); the windows' CLS tokens differ from the first layer on because each attends to
    its own window and fringe. After the encoder a LayerNorm is applied to the CLS tokens; the
    head reads their mean over windows, and the consistency loss
    ``mean_{b,w,c} (cls[b,w,c] − mean_w cls[b,w,c])²`` is added with weight ``lambda_cons``
    (the authors' code uses 1; their loss is this mean squared deviation, not a summed L2).

    *Fusion.* A time point lies in up to ``⌈W / S⌉`` base windows; its new value is the mean of
    its outputs in those windows, added residually.

    Departures from the published model: none by default. ``d_model`` and the ``small`` preset
    (``d_model=64, n_heads=4, head_dim=16``) are CPU conveniences. The published optimiser
    (Adam, one-cycle schedule, lr 2e-4 → 4e-4) is replaced by the harness's shared AdamW + cosine
    schedule so every model is trained alike.
    """

    def __init__(
        self,
        n_rois: int,
        n_outputs: int,
        n_times: int,
        d_model: int | None = None,
        n_layers: int = 4,
        n_heads: int = 36,
        head_dim: int = 20,
        window_size: int = 20,
        shift_coeff: float = 0.4,
        fringe_coeff: float = 2.0,
        fringe_rule: str = "expand",
        mlp_ratio: float = 1.0,
        attention_bias: bool = True,
        drop_prob: float = 0.1,
        attn_drop_prob: float = 0.1,
        lambda_cons: float = 1.0,
        pooling: str = "cls",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"BolT pooling={pooling!r}; choose one of {POOLINGS}")
        if window_size < 1 or n_layers < 1 or n_heads < 1 or head_dim < 1:
            raise ConfigError("BolT needs window_size, n_layers, n_heads and head_dim ≥ 1")
        self.stride = window_stride(window_size, shift_coeff)
        if not 1 <= self.stride <= window_size:
            raise ConfigError(f"BolT shift_coeff={shift_coeff} gives stride {self.stride}; "
                              f"it must lie in [1, window_size={window_size}]")
        window_geometry(n_times, window_size, self.stride)  # raises when the crop is too short
        self.n_rois, self.n_outputs, self.n_times = n_rois, n_outputs, n_times
        self.window_size, self.lambda_cons, self.pooling = window_size, float(lambda_cons), pooling
        self.fringes = fringe_sizes(n_layers, window_size, shift_coeff, fringe_coeff, fringe_rule)
        dim = n_rois if d_model is None else int(d_model)
        self.embed = nn.Identity() if d_model is None else nn.Linear(n_rois, dim)
        self.cls_token = nn.Parameter(torch.randn(dim))
        self.blocks = nn.ModuleList(
            BolTBlock(dim, window_size, self.stride, f, n_heads, head_dim, mlp_ratio, attention_bias, drop_prob,
                      attn_drop_prob)
            for f in self.fringes
        )
        self.post_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_outputs)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: ``(B, R, T)`` → final tokens ``(B, T_used, C)`` and normalised CLS tokens ``(B, nW, C)``."""
        n_windows, n_used = window_geometry(x.shape[-1], self.window_size, self.stride)
        h = self.embed(rearrange(x[..., :n_used], "b r t -> b t r"))  # (B, T_used, C)
        cls = self.cls_token.expand(x.shape[0], n_windows, -1)  # (B, nW, C)
        for block in self.blocks:
            h, cls = block(h, cls)  # (B, T_used, C), (B, nW, C)
        return h, self.post_norm(cls)

    def _logits(self, h: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        pooled = cls.mean(dim=1) if self.pooling == "cls" else h.mean(dim=1)  # (B, C)
        return self.head(pooled)  # (B, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, R, T)`` → logits ``(B, n_outputs)``."""
        return self._logits(*self.encode(x))

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy + ``lambda_cons`` × cross-window consistency of the final CLS tokens."""
        h, cls = self.encode(x)
        logits = self._logits(h, cls)
        loss = F.cross_entropy(logits, y) + self.lambda_cons * consistency_loss(cls)
        return loss, logits
