"""NeuroSSM: multiscale differential state-space modelling of ROI-wise fMRI time series.

Each scan is seen through several *pathways*: a signal form (the raw BOLD signal, or its
first-order temporal difference) at a temporal scale (average pooling by 1, 2, 4 time points).
Each pathway encodes its input to one vector: ``"time"`` embeds the ROI vector of every time
step, runs bidirectional selective state-space (Mamba) blocks over time and pools over time;
``"roi"`` reads each ROI's own series (optionally without the scan's shared components, and
through a small Mamba with weights shared across ROIs, one grouped scan for all ROIs), pools
statistics of each ROI over time and mixes the ROIs; ``"hybrid"`` (the default) adds the two.
The pathway vectors are fused into one classifier. A pathway can be ablated (its vector set to
zero) before fusion, which is how Calibrated Pathway Attribution measures how much a decision
depends on it.

References
----------
NeuroSSM: Multiscale Differential State-Space Modeling for Context-Aware fMRI Analysis.
Gu & Dao (2023). Mamba: Linear-Time Sequence Modeling with Selective State Spaces. arXiv:2312.00752.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import ConfigError
from ..ssm.mamba import BiMamba, Mamba
from .registry import register_model

FORMS = ("raw", "diff")
POOLINGS = ("mean", "abs_mean", "max", "attention", "moments")
FUSIONS = ("gate", "concat", "mean")
ENCODERS = ("time", "roi", "hybrid")
ORDER_READOUTS = ("both", "roi", "time", "none")
ROI_MIXERS = ("linear", "score", "attention")


def pathway_signal(x: torch.Tensor, form: str, scale: int) -> torch.Tensor:
    """The input of one pathway: ``x`` average-pooled by ``scale``, raw or differenced.

    ``x`` is ``(B, R, T)``; the result is ``(B, R, T // scale)``. The difference at t = 0 is 0
    so that both forms of a scale keep the same length.
    """
    xs = F.avg_pool1d(x, kernel_size=scale, stride=scale) if scale > 1 else x  # (B, R, T_s)
    if form == "diff":
        xs = torch.cat([torch.zeros_like(xs[..., :1]), xs[..., 1:] - xs[..., :-1]], dim=-1)  # (B, R, T_s)
    return xs


class ResidualSSMBlock(nn.Module):
    """Residual block ``x + Mixer(Norm(x))`` with a (bi)directional Mamba mixer.

    ``norm=False`` drops the pre-norm (see :class:`RoiPathway` for why). Takes ``(B, T, d_model)``
    or, for weight-shared sequences, ``(B, T, G, d_model)``.
    """

    def __init__(self, d_model: int, d_state: int, d_conv: int, expand: int, bidirectional: bool,
                 drop_prob: float, backend: str, norm: bool = True) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model) if norm else nn.Identity()
        mixer = BiMamba if bidirectional else Mamba
        self.mixer = mixer(d_model, d_state=d_state, d_conv=d_conv, expand=expand, backend=backend)
        self.drop = nn.Dropout(drop_prob)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.drop(self.mixer(self.norm(h)))  # (B, T, [G,] d_model)


MOMENT_EPS = 1e-4


def log_moments(h: torch.Tensor) -> torch.Tensor:
    """Log second moment and log standardised fourth moment over time (axis 1), per feature.

    ``(B, T, ..., d)`` → ``(B, ..., 2 d)``: ``log E[h²]`` (the feature's energy: a slow
    fluctuation at a pathway's scale, a shared fluctuation picked out by a spatial filter) and
    ``log E[h⁴] − 2 log E[h²]`` (its tail weight, the log kurtosis about zero: brief events and
    abrupt shifts in a difference series). The first ``d`` entries are the energies.
    """
    e2 = h.pow(2).mean(dim=1) + MOMENT_EPS  # (B, ..., d)
    e4 = h.pow(4).mean(dim=1) + MOMENT_EPS**2  # (B, ..., d)
    log_e2 = torch.log(e2)
    return torch.cat([log_e2, torch.log(e4) - 2 * log_e2], dim=-1)  # (B, ..., 2d)


def autocorrelations(h: torch.Tensor, lags: tuple[int, ...]) -> torch.Tensor:
    """Normalised autocorrelation over time (axis 1) at each lag, per feature.

    ``(B, T, ..., d)`` → ``(B, ..., d · len(lags))``, lag-major: ``r_k = Σ_t h̃(t) h̃(t + k) /
    Σ_t h̃(t)²`` with ``h̃`` centred over time (the biased estimator, ``|r_k| ≤ 1``; 0 at a lag of
    ``T`` or more). The shape of a feature's spectrum without its power: a slow oscillation
    makes ``r_k`` fall below zero near half its period, where noise and shared drifts stay near
    zero or above, which the energy and tail weight of :func:`log_moments` do not tell.
    """
    n_times = h.shape[1]
    hc = h - h.mean(dim=1, keepdim=True)  # (B, T, ..., d)
    energy = hc.pow(2).sum(dim=1) + MOMENT_EPS * n_times  # (B, ..., d)
    out = [(hc[:, :-k] * hc[:, k:]).sum(dim=1) / energy if k < n_times else torch.zeros_like(energy)
           for k in lags]
    return torch.cat(out, dim=-1)  # (B, ..., d·L)


def held_autocorrelations(x: torch.Tensor, c: torch.Tensor, patch: int, lags: tuple[int, ...]) -> torch.Tensor:
    """:func:`autocorrelations` of ``x + c`` where ``c`` is held over patches, without forming it.

    ``x`` is ``(B, R, T)``; ``c`` is ``(B, R, C, T_p)`` with ``T_p = T // patch``, the value of
    channel ``C`` over each patch (0 on the last ``T - T_p · patch`` samples). Returns ``(B, R,
    C · len(lags))``, lag-major, equal to ``autocorrelations`` of the ``(B, T, R, C)`` series
    ``x(t) + c(t)``. Every term that involves ``c`` is a sum over patches: of ``c`` against sums
    of ``x`` over shifted patches (read from one cumulative sum), or of ``c`` against itself ``a``
    and ``a + 1`` patches later, for a lag ``k = a · patch + b``. The only full-length work per lag
    is one dot product of ``x`` with itself shifted, on one channel and, in training, without
    gradient: forming the ``C`` corrected series and differentiating their lagged products took
    a third of a training step at HCP-Rest.
    """
    n_times, n_patches = x.shape[-1], c.shape[-1]
    cum = F.pad(x.cumsum(dim=-1), (1, 0))  # (B, R, T + 1): cum[j] = Σ_{t<j} x(t)
    starts = torch.arange(n_patches, device=x.device) * patch  # (T_p,) first sample of each patch
    # cum read at any j in [-margin, T + margin]: Σ_{t<j} x(t) over [0, T), i.e. 0 before and the total after
    margin = max([k for k in lags if k < n_times], default=0) + patch
    cum_ext = F.pad(cum, (margin, margin), mode="replicate")  # (B, R, T + 1 + 2 margin)

    def window_sums(offset: int) -> torch.Tensor:
        # Σ of x over [start + offset, start + offset + patch) ∩ [0, T), for every patch: (B, R, T_p)
        lo = margin + offset
        return (cum_ext[..., lo + patch :: patch][..., :n_patches] - cum_ext[..., lo::patch][..., :n_patches])

    def c_dot(w: torch.Tensor) -> torch.Tensor:
        # Σ_p c_p w_p for w of shape (B, R, T_p) or (T_p,): (B, R, C)
        return (c @ w[..., None]).squeeze(-1) if w.ndim > 1 else c @ w

    def c_lagged(a: int) -> torch.Tensor:
        # Σ_p c_p c_{p+a}: (B, R, C)
        return torch.linalg.vecdot(c[..., : n_patches - a], c[..., a:]) if a < n_patches else c.new_zeros(c.shape[:-1])

    total_x = cum[..., -1:]  # (B, R, 1)
    mu = (total_x + patch * c.sum(dim=-1)) / n_times  # (B, R, C): each series' mean over time
    sum_sq = torch.linalg.vecdot(x, x)[..., None] + 2 * c_dot(window_sums(0)) + patch * c_lagged(0)
    energy = sum_sq - n_times * mu.pow(2) + MOMENT_EPS * n_times  # (B, R, C): Σ_t ũ(t)², ũ centred
    out = []
    for k in lags:
        if k >= n_times:
            out.append(torch.zeros_like(energy))
            continue
        a, b = divmod(k, patch)
        xx = torch.linalg.vecdot(x[..., :-k], x[..., k:])[..., None]  # (B, R, 1)
        # Σ_{t<T-k} x(t) c(t+k) + c(t) x(t+k): c against the sums of x over patches shifted by ∓k
        cross = c_dot(window_sums(-k) + window_sums(k))  # (B, R, C)
        # Σ_t c(t) c(t+k): a sample of patch p meets patch p+a (patch - b of them) and p+a+1 (b)
        cc = (patch - b) * c_lagged(a) + (b * c_lagged(a + 1) if b else 0)  # (B, R, C)
        # Σ_{t<T-k} u(t) and Σ_{t>=k} u(t), for the centring
        head_count = (n_times - k - starts).clamp(0, patch).to(x.dtype)  # (T_p,): samples before T - k
        tail_count = (starts + patch - k).clamp(0, patch).to(x.dtype)  # (T_p,): samples from k on
        head = cum[..., n_times - k, None] + c_dot(head_count)
        tail = total_x - cum[..., k, None] + c_dot(tail_count)
        numerator = xx + cross + cc - mu * (head + tail) + (n_times - k) * mu.pow(2)  # Σ_t ũ(t) ũ(t+k)
        out.append(numerator / energy)
    return torch.cat(out, dim=-1)  # (B, R, C·L)


def remove_shared_components(x: torch.Tensor) -> torch.Tensor:
    """Each ROI's series without the scan's shared components: ``(B, R, T)`` → ``(B, R, T)``.

    Per scan, the principal directions across ROIs whose variance exceeds what ``R`` independent
    series of ``T`` samples reach by chance — eigenvalues of the ROI correlation matrix above the
    upper edge of the Marchenko–Pastur law, ``(1 + √(R/T))²`` — are projected out of the
    time-centred series. What is left is what each ROI does beyond the fluctuations it shares with
    many others (global signal, large-scale networks), the same threshold MP-PCA denoising uses
    to tell signal components from noise (Veraart et al., 2016, NeuroImage 142). The directions
    are found without gradient (a data-dependent linear map, like a normalisation's statistics);
    the projection itself is differentiated.
    """
    n_rois, n_times = x.shape[-2:]
    xc = x - x.mean(dim=-1, keepdim=True)  # (B, R, T)
    scale = xc.detach().pow(2).mean(dim=-1, keepdim=True).add(1e-8).sqrt()  # (B, R, 1): each ROI's SD
    z = xc / scale  # (B, R, T), unit variance; differentiated through the projection below
    with torch.no_grad():
        zd = z.detach()
        edge = (1 + math.sqrt(n_rois / n_times)) ** 2
        if n_times < n_rois:
            # the (T, T) Gram matrix has the same non-zero eigenvalues, at a fraction of the cost;
            # its eigenvectors map to ROI directions through z
            eigval, eigvec = torch.linalg.eigh(zd.transpose(-1, -2) @ zd / n_times)  # (B, T), (B, T, T)
            eigvec = zd @ eigvec * torch.rsqrt(eigval.clamp_min(1e-8) * n_times).unsqueeze(-2)  # (B, R, T)
        else:
            eigval, eigvec = torch.linalg.eigh(zd @ zd.transpose(-1, -2) / n_times)  # of the (B, R, R) correlations
        shared = eigvec * (eigval > edge).to(x.dtype).unsqueeze(-2)  # (B, R, ·), other directions zeroed
    # removed where they were found, among the standardised series, then back to each ROI's scale
    return scale * (z - shared @ (shared.transpose(-1, -2) @ z))  # (B, R, T)


class TemporalPooling(nn.Module):
    """Pool ``(B, T, ..., d)`` over time (axis 1) to ``(B, ..., d)`` (``(B, ..., 2 d)`` for
    ``"moments"``).

    ``"mean"``, ``"abs_mean"`` (mean of absolute values: brief events of either sign add up
    instead of cancelling), ``"max"``, ``"attention"`` (softmax over time of a learned score) or
    ``"moments"`` (:func:`log_moments`: log energy and log tail weight of every feature).
    """

    def __init__(self, pooling: str, d_model: int) -> None:
        super().__init__()
        self.pooling = pooling
        self.out_features = 2 * d_model if pooling == "moments" else d_model
        if pooling == "attention":
            self.score = nn.Linear(d_model, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.pooling == "moments":
            return log_moments(h)  # (B, ..., 2d)
        if self.pooling == "mean":
            return h.mean(dim=1)  # (B, ..., d)
        if self.pooling == "abs_mean":
            return h.abs().mean(dim=1)  # (B, ..., d)
        if self.pooling == "max":
            return h.amax(dim=1)  # (B, ..., d)
        weights = torch.softmax(self.score(h), dim=1)  # (B, T, ..., 1)
        return (weights * h).sum(dim=1)  # (B, ..., d)


def stream_statistics(y: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Per feature, over time (axis 1), the mean product of a state-space stream ``y`` with the
    present input ``h`` and with its square: ``(B, T, ..., d)`` twice → ``(B, ..., 2 d)``.

    The stream's state summarises the past, so ``h(t) y(t)`` are lagged products of present and
    past (their asymmetry in time is which feature leads), and ``h(t)² y(t)`` lagged third-order
    products, ``E[h(t)² h(t − k)]``, whose difference from ``E[h(t)² h(t + k)]`` is the classic
    test statistic of time reversibility (Ramsey & Rothman, 1996): a response that rises at once
    and decays slowly meets its peak after small values, its mirror image after large ones.
    """
    return torch.cat([(h * y).mean(dim=1), (h.pow(2) * y).mean(dim=1)], dim=-1)


def lift_series(x: torch.Tensor) -> torch.Tensor:
    """Each ROI's series at unit mean square and its square about 1: ``(B, R, T)`` → ``(B, T, R, 2)``.

    With the square beside the series, the lagged products that :func:`stream_statistics` pools
    include ``E[x(t)² x(t − k)]``, the third-order products whose asymmetry in time tells a
    response's rise from its decay; the series alone gives only its autocovariance, which is the
    same forwards and backwards.
    """
    u = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-8)  # (B, R, T)
    return rearrange(torch.stack([u, u.pow(2) - 1], dim=-1), "b r t c -> b t r c")  # (B, T, R, 2)


class DirectionReadout(nn.Module):
    """What a selective state-space model reads from a sequence played forwards that it does not
    read from the same sequence played backwards.

    One :class:`~neurossm.ssm.mamba.Mamba` (one set of weights) runs over the features ``h`` in
    time order and over ``h`` reversed; each stream is pooled over time against its own input
    (:func:`stream_statistics`: the mean products of the stream with ``h`` and with ``h²``), and
    the result is the forward stream's statistics minus the backward stream's, ``(B, [G,] 2 d)``.
    Pooling does not depend on the order of time steps, so reversing ``h`` swaps the two streams:
    the read-out changes sign exactly, and it is zero for a sequence that reads the same both
    ways. The statistics every other part pools (energies, tail weights, autocorrelations) are
    unchanged by a reversal; this one carries what they cannot: which way a response's shape runs,
    which region leads another. The state is what reads order here: the stream at ``t`` summarises
    the past (forwards) or the future (backwards), and its products with the present are lagged
    products whose asymmetry in time is the signal.
    """

    def __init__(self, d_model: int, d_state: int, d_conv: int, expand: int, backend: str) -> None:
        super().__init__()
        # steps of 0.05 to 0.5: a memory of a few samples, the lags at which one part of a response
        # follows another (mamba-ssm's default, 0.001 to 0.1, remembers tens to thousands)
        self.mamba = Mamba(d_model, d_state=d_state, d_conv=d_conv, expand=expand, backend=backend,
                           dt_min=0.05, dt_max=0.5)
        self.out_features = 2 * d_model

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        both = torch.cat([h, h.flip(1)], dim=0)  # (2B, T, [G,] d): forward, then reversed
        forward, backward = stream_statistics(self.mamba(both), both).chunk(2, dim=0)  # (B, [G,] 2d) each
        return forward - backward  # (B, [G,] 2d)


class Pathway(nn.Module):
    """The ``"time"`` encoder: ROI embedding per time step → residual Mamba blocks → temporal
    pooling → one vector.

    The embedding is ``width`` wide (``time_d_model``). With ``pooling="moments"`` the features
    are pooled without the final LayerNorm (which would set every time step to unit spread, the
    energy that pooling measures); pooled statistics of another width than ``d_model`` are
    projected to it. The embedding then acts as a bank of spatial filters whose output energies
    are read, as in common-spatial-pattern decoding: what a change in the coupling between ROIs
    changes. With ``direction``, a :class:`DirectionReadout` of the features is added (through
    its own linear map to ``d_model``): which way the spatial filters' outputs run in time, e.g.
    which of two regions leads.
    """

    def __init__(self, n_rois: int, d_model: int, width: int, n_layers: int, d_state: int, d_conv: int,
                 expand: int, bidirectional: bool, pooling: str, drop_prob: float, backend: str,
                 direction: bool = False) -> None:
        super().__init__()
        self.embed = nn.Linear(n_rois, width)
        self.blocks = nn.ModuleList(
            ResidualSSMBlock(width, d_state, d_conv, expand, bidirectional, drop_prob, backend)
            for _ in range(n_layers)
        )
        self.norm = nn.Identity() if pooling == "moments" else nn.LayerNorm(width)
        self.pool = TemporalPooling(pooling, width)
        n_out = self.pool.out_features
        self.out = nn.Sequential(nn.Dropout(drop_prob), nn.Linear(n_out, d_model)) if n_out != d_model else None
        self.direction = DirectionReadout(width, d_state, d_conv, expand, backend) if direction else None
        if direction:
            # its own spatial filters, of the series without the scan's shared components: the
            # strong shared fluctuations are reversible and would drown the lagged products
            self.direction_embed = nn.Linear(n_rois, width)
            self.direction_out = nn.Linear(self.direction.out_features, d_model)

    def forward(self, xp: torch.Tensor, roi_statistics: list | None = None) -> torch.Tensor:
        # (``roi_statistics``: the encoders' common signature; this one has no per-ROI statistics)
        h = self.embed(rearrange(xp, "b r t -> b t r"))  # (B, T_s, width)
        for block in self.blocks:
            h = block(h)  # (B, T_s, width)
        v = self.pool(self.norm(h))  # (B, width), or (B, 2 width) for moments
        v = self.out(v) if self.out is not None else v  # (B, d_model)
        if self.direction is not None:
            v = v + self.direction_out(self.direction_features(xp))  # (B, d_model)
        return v

    def direction_features(self, xp: torch.Tensor) -> torch.Tensor:
        """The :class:`DirectionReadout` of this part's own spatial filters of the series without
        the scan's shared components: ``(B, R, T_s)`` → ``(B, 2 width)``."""
        g = self.direction_embed(rearrange(remove_shared_components(xp), "b r t -> b t r"))  # (B, T_s, width)
        return self.direction(g)  # (B, 2 width)


class RoiPathway(nn.Module):
    """The ``"roi"`` encoder: each ROI's own series through weights shared across ROIs, pooled
    statistics per ROI, then a mix of the ROIs into one vector.

    Per ROI, a strided convolution (``roi_patch`` samples per step, ``roi_d_model`` filters)
    lifts the series to features; residual (bi)directional Mamba blocks run over time, all ROIs
    of a scan as the groups of one grouped scan; a linear map, initialised to zero, turns the
    features into ``roi_channels`` corrections that are held over their patch and added to the
    ROI's own series: ``u_r(t) = x_r(t) + c_r(t)``. At initialisation ``u`` is the input itself,
    so the pooled statistics start as those of the pathway's signal (for a difference pathway,
    the energy and tail weight of the sample-to-sample changes) and training learns the temporal
    filter that makes them more telling. Each ROI's channels are pooled over time (``pooling``;
    ``"moments"``: log energy and log tail weight, :func:`log_moments`; then, with ``lags``, the
    autocorrelations at those lags, :func:`autocorrelations`), standardised over the
    scan's ROIs (a ROI's contrast with the others) and mixed: ``"score"`` (one score per ROI
    from its statistics, with weights shared by all ROIs, then one dense layer over ROIs: as many
    weights per output as ROIs, what a hundred scans can fit), ``"linear"`` (one dense layer over
    ROIs × statistics) or ``"attention"`` (a softmax over ROIs of a learned score, with a learned
    per-ROI prior and value offset, averaging projected ROI statistics).

    The blocks have no pre-norm: a LayerNorm over the few features of one ROI at one time step
    would rescale every step to unit spread, erasing the step's amplitude, which is what tells a
    brief event from the background. Inputs are z-scored per ROI, so the scale stays bounded.
    """

    def __init__(self, n_rois: int, d_model: int, roi_d_model: int, roi_d_state: int, roi_patch: int,
                 roi_channels: int, roi_mixer: str, n_layers: int, d_conv: int, expand: int, bidirectional: bool,
                 pooling: str, drop_prob: float, backend: str, remove_shared: bool = False,
                 lags: tuple[int, ...] = (), direction: bool = False) -> None:
        super().__init__()
        self.patch = roi_patch
        self.remove_shared = remove_shared
        self.lags = tuple(lags)
        self.stem = nn.Conv1d(1, roi_d_model, kernel_size=roi_patch, stride=roi_patch)
        self.blocks = nn.ModuleList(
            ResidualSSMBlock(roi_d_model, roi_d_state, d_conv, expand, bidirectional, drop_prob, backend,
                             norm=False)
            for _ in range(n_layers)
        )
        self.correction = nn.Linear(roi_d_model, roi_channels)
        nn.init.zeros_(self.correction.weight)
        nn.init.zeros_(self.correction.bias)
        self.pool = TemporalPooling(pooling, roi_channels)
        # each ROI's own series at full resolution, lifted to (x, x² - 1); weights shared by all
        # ROIs, like the stem: one grouped scan per direction
        self.direction = DirectionReadout(2, roi_d_state, d_conv, expand, backend) if direction else None
        n_stats = (self.pool.out_features + roi_channels * len(self.lags)
                   + (self.direction.out_features if direction else 0))
        self.drop = nn.Dropout(drop_prob)
        self.roi_mixer = roi_mixer
        if roi_mixer == "linear":
            self.mix = nn.Linear(n_rois * n_stats, d_model)
        elif roi_mixer == "score":
            self.roi_score = nn.Linear(n_stats, 1)
            self.mix = nn.Linear(n_rois, d_model)
        else:
            self.roi_score = nn.Linear(n_stats, 1)
            self.roi_prior = nn.Parameter(torch.zeros(n_rois))
            self.value = nn.Linear(n_stats, d_model)
            self.roi_value = nn.Parameter(torch.zeros(n_rois, d_model))

    def corrections(self, xp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The series the ROI-wise part reads, ``(B, R, T_s)`` (with ``remove_shared``: without the
        scan's shared components, :func:`remove_shared_components`), and its learned corrections
        per patch, ``(B, T_s // patch, R, roi_channels)``; ROI ``r``'s depend on ROI ``r``'s series
        alone."""
        xp, h = self.encode(xp)
        return xp, self.correction(h)  # (B, R, T_s), (B, T_p, R, channels)

    def encode(self, xp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The series the ROI-wise part reads, ``(B, R, T_s)``, and its per-patch features ``(B,
        T_s // patch, R, roi_d_model)`` (stem, then the per-ROI blocks)."""
        if self.remove_shared:
            xp = remove_shared_components(xp)  # (B, R, T_s)
        batch = xp.shape[0]
        h = self.stem(rearrange(xp, "b r t -> (b r) 1 t"))  # (B·R, roi_d_model, T_s // patch)
        h = rearrange(h, "(b r) d t -> b t r d", b=batch)  # (B, T_p, R, roi_d_model)
        for block in self.blocks:
            h = block(h)  # (B, T_p, R, roi_d_model)
        return xp, h

    def roi_series(self, xp: torch.Tensor) -> torch.Tensor:
        """Each ROI's series plus its corrections, held over their patch: ``(B, T_s, R,
        roi_channels)`` (the tail shorter than a patch is not corrected)."""
        return self._held(*self.corrections(xp))

    def _held(self, xp: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        c = c.repeat_interleave(self.patch, dim=1)  # (B, T_p·patch, R, channels)
        c = F.pad(c, (0, 0, 0, 0, 0, xp.shape[-1] - c.shape[1]))  # the tail shorter than a patch: no correction
        return rearrange(xp, "b r t -> b t r 1") + c  # (B, T_s, R, channels)

    def roi_features(self, xp: torch.Tensor) -> torch.Tensor:
        """Each ROI's pooled statistics ``(B, R, n_stats)``: ``pooling``'s, then the
        autocorrelations at ``lags`` (:func:`autocorrelations`, computed patch-wise by
        :func:`held_autocorrelations`), then the direction read-out of the ROI's series
        (:class:`DirectionReadout` of :func:`lift_series`)."""
        x, h = self.encode(xp)
        c = self.correction(h)  # (B, T_p, R, channels)
        parts = [self.pool(self._held(x, c))]  # (B, R, ·)
        if self.lags:
            c = rearrange(c, "b p r c -> b r c p").contiguous()  # (B, R, channels, T_p)
            parts.append(held_autocorrelations(x, c, self.patch, self.lags))  # (B, R, C·L)
        if self.direction is not None:
            parts.append(self.direction(lift_series(x)))  # (B, R, 4)
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]  # (B, R, n_stats)

    def forward(self, xp: torch.Tensor, roi_statistics: list | None = None) -> torch.Tensor:
        """``(B, R, T_s)`` → ``(B, d_model)``. Given a list, ``roi_statistics`` receives the
        standardised statistics ``(B, R, n_stats)`` as a new leaf of the graph (what CPA
        attributes to: the mixer reads them; the gradient then stops there)."""
        v = self.roi_features(xp)  # (B, R, n_stats)
        # each statistic as the ROI's contrast with the scan's other ROIs: pooled statistics share
        # a large offset across ROIs and scans, next to which the differences that carry a class
        # are small; standardised over ROIs, they are what the mixer sees, without any dependence
        # on the batch
        v = (v - v.mean(dim=1, keepdim=True)) * torch.rsqrt(v.var(dim=1, keepdim=True, unbiased=False) + 1e-5)
        if roi_statistics is not None:
            v = v.detach().requires_grad_(True)
            roi_statistics.append(v)
        v = self.drop(v)  # (B, R, n_stats)
        if self.roi_mixer == "linear":
            return self.mix(rearrange(v, "b r d -> b (r d)"))  # (B, d_model)
        if self.roi_mixer == "score":
            return self.mix(self.roi_score(v).squeeze(-1))  # (B, R) -> (B, d_model)
        weights = torch.softmax(self.roi_score(v).squeeze(-1) + self.roi_prior, dim=1)  # (B, R)
        values = self.value(v) + self.roi_value  # (B, R, d_model)
        return torch.einsum("br,brd->bd", weights, values)  # (B, d_model)


class HybridPathway(nn.Module):
    """The ``"hybrid"`` encoder: the sum of a ``"roi"`` and a ``"time"`` encoding of one input.

    The ROI-wise part reads what each ROI does on its own (events, shifts, slow power); the
    per-time-step part reads how ROIs move together (its embedding is a bank of spatial filters).
    """

    def __init__(self, roi: RoiPathway, time: Pathway) -> None:
        super().__init__()
        self.roi, self.time = roi, time

    def forward(self, xp: torch.Tensor, roi_statistics: list | None = None) -> torch.Tensor:
        return self.roi(xp, roi_statistics) + self.time(xp)  # (B, d_model)


# The ROI-wise designs as they were first measured (issue 12, second session): the per-ROI Mamba
# on, the scan's shared components kept, no autocorrelations. The suite's NeuroSSM-hybrid and
# NeuroSSM-roi records.
_FIRST_ROI_WISE = {"roi_remove_shared": False, "roi_n_layers": None, "roi_lags": None}


@register_model(
    "NeuroSSM",
    kind="torch",
    description="multiscale raw + difference pathways, each read per ROI and per time step (Mamba), gated fusion",
    reference="NeuroSSM: Multiscale Differential State-Space Modeling for Context-Aware fMRI Analysis",
    presets={
        "single_pathway": {"forms": ("raw",), "scales": (1,)},
        "raw_multiscale": {"forms": ("raw",)},
        "diff_multiscale": {"forms": ("diff",)},
        "single_scale": {"scales": (1,)},
        # the encoder ablations (docs/models.md, Presets and ablations; their history: docs/design-log.md)
        "time": {"encoder": "time", "pooling": "mean", "d_model": 64, "time_d_model": None, "drop_prob": 0.1},
        "time_moments": {"encoder": "time"},
        "roi_only": {"encoder": "roi"},
        "keep_shared": {"roi_remove_shared": False},
        "roi_mamba": {"roi_n_layers": None},
        "no_lags": {"roi_lags": None},
        # the direction read-out in both parts (docs/models.md, Reading the order of time)
        "order_readout": {"order_readout": "both"},
        "hybrid": dict(_FIRST_ROI_WISE),
        "roi": {"encoder": "roi", **_FIRST_ROI_WISE},
        # one difference pathway with the per-ROI Mamba: the best-measured configuration on events
        "small_data": {"forms": ("diff",), "scales": (1,), "roi_n_layers": None, "roi_lags": None},
    },
)
class NeuroSSM(nn.Module):
    """Multi-pathway state-space classifier of ROI time series.

    Parameters
    ----------
    {signal_parameters}
    n_times : int
        Training crop length; the model itself accepts any length ≥ the largest scale (times
        ``roi_patch`` with the ``"roi"`` encoder).
    scales : tuple of int
        Temporal scales: each pathway average-pools time by its scale.
    forms : tuple of str
        Signal forms: ``"raw"`` and/or ``"diff"`` (first-order temporal difference).
    d_model : int
        Width of each pathway's vector (and of the ``"time"`` encoder's embedding).
    n_layers : int
        Residual Mamba blocks per pathway (per encoder).
    d_state, d_conv, expand : int
        Mamba state size (of the ``"time"`` encoder), causal convolution width and inner
        expansion (mamba-ssm's defaults; ``d_conv`` and ``expand`` serve both encoders).
    bidirectional : bool
        Scan time in both directions (classification sees the whole scan).
    pooling : str
        Temporal pooling of both encoders: ``"moments"`` (log energy and log tail weight of
        each feature, :func:`log_moments`), ``"mean"``, ``"abs_mean"`` (mean of absolute
        values), ``"max"`` or ``"attention"``.
    encoder : str
        How a pathway encodes its input (see Notes): ``"hybrid"`` (default: the sum of the two
        below), ``"roi"`` (each ROI's own series through weights shared across ROIs, pooled per
        ROI, then a mixer over ROIs) or ``"time"`` (a dense embedding of the ROI vector per time
        step, then Mamba over time).
    roi_d_model : int
        ``"roi"`` part: Mamba features per ROI and patch.
    roi_d_state : int
        ``"roi"`` part: Mamba state size per channel.
    roi_patch : int
        ``"roi"`` part: samples per step of the stem (non-overlapping temporal patches; 1 keeps
        every sample). Divides the per-ROI scan's length, hence its cost; the corrections are
        held over their patch and added to every sample.
    roi_channels : int
        ``"roi"`` part: corrected copies of each ROI's series whose statistics are pooled.
    roi_n_layers : int or None
        ``"roi"`` part: residual Mamba blocks per ROI (``None``: ``n_layers``; 0: the
        corrections are a linear filter of each patch, the stem and the correction layer alone).
    roi_remove_shared : bool
        ``"roi"`` part: read each ROI's series without the scan's shared components (principal
        components above the Marchenko–Pastur edge, :func:`remove_shared_components`), so that
        its statistics say what the ROI does on its own, not how strongly it carries the
        fluctuations every ROI shares (those stay with the ``"time"`` part).
    roi_lags : tuple of int or None
        ``"roi"`` part: lags, in samples of the pathway's scale, at which each ROI's
        autocorrelation is added to its statistics (:func:`autocorrelations`; the spectral shape
        that tells a slow oscillation from noise of the same power). ``None`` (``--config
        roi_lags=null``): energy and tail weight alone.
    order_readout : str
        Which parts read the direction of time (:class:`DirectionReadout`: one Mamba run forwards
        and backwards over the part's features, the difference of the two streams' pooled
        statistics, which changes sign when a scan is reversed): ``"none"`` (default: the ROI-wise
        statistics are then unchanged by a reversal), ``"both"``, ``"roi"`` (each ROI's own
        features: the shape of its responses) or ``"time"`` (the spatial filters' outputs: which
        region leads). Experimental until the whole suite has measured it (docs/models.md,
        Reading the order of time).
    time_d_model : int or None
        ``"time"`` part: width of the per-time-step embedding and its Mamba (``None``, ``--config time_d_model=null``: ``d_model``).
    roi_mixer : str
        ``"roi"`` part: ``"score"`` (a score per ROI with weights shared by all ROIs, then dense
        over ROIs), ``"linear"`` (dense over ROIs × statistics) or ``"attention"``
        (softmax-weighted mean of projected ROI statistics, with learned per-ROI priors).
    fusion : str
        ``"gate"`` (softmax-gated sum of pathway vectors), ``"concat"`` or ``"mean"``.
    drop_prob : float
        Dropout inside blocks and before the head.
    scan_backend : str
        Selective-scan backend: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"reference"``.

    Notes
    -----
    Every encoder maps a pathway input ``(B, R, T_s)`` to ``(B, d_model)``:

    - ``"time"`` (:class:`Pathway`): ``Linear(R → time_d_model)`` per time step → pre-norm
      residual BiMamba blocks → temporal pooling (``"moments"``: ``2 time_d_model``
      statistics) → ``Linear(→ d_model)`` where the widths differ. Every ROI enters every feature, as in BolT: with
      moments pooling the embedding is a bank of spatial filters whose energies are read, which
      is what a change of coupling between ROIs moves.
    - ``"roi"`` (:class:`RoiPathway`): shared components removed (``roi_remove_shared``) → per
      ROI, ``Conv1d(1 → roi_d_model, kernel = stride = roi_patch)`` → ``roi_n_layers`` residual
      BiMamba blocks whose weights are shared by all ROIs (one grouped
      selective scan with ``R`` groups, see :mod:`neurossm.ssm.scan`) → zero-initialised
      corrections added to the ROI's own series ``(B, T_s, R, roi_channels)`` → pooling per
      ROI, plus autocorrelations at ``roi_lags`` → standardisation over ROIs → ROI mixer
      ``(B, d_model)``. A ROI's temporal filter is
      learned from every ROI's series, so a signal in a few ROIs need not be found by a dense
      per-step layer first.
    - ``"hybrid"`` (:class:`HybridPathway`, the default): the sum of both.

    Pathway order is forms-major: ``raw_s1, raw_s2, raw_s4, diff_s1, ...``. ``forward`` takes a
    ``pathway_mask`` of shape ``(P,)`` or ``(B, P)``; a zero entry replaces that pathway's vector
    by zeros before fusion (CPA's ablation). With every pathway ablated the logits are those of
    the fused zero vector.
    """

    def __init__(
        self,
        n_rois: int,
        n_outputs: int,
        n_times: int,
        scales: tuple[int, ...] = (1, 2, 4),
        forms: tuple[str, ...] = ("raw", "diff"),
        d_model: int = 32,
        n_layers: int = 1,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        bidirectional: bool = True,
        pooling: str = "moments",
        fusion: str = "gate",
        drop_prob: float = 0.3,
        scan_backend: str = "auto",
        encoder: str = "hybrid",
        roi_d_model: int = 4,
        roi_d_state: int = 4,
        roi_patch: int = 4,
        roi_channels: int = 2,
        roi_mixer: str = "score",
        time_d_model: int | None = 16,
        roi_remove_shared: bool = True,
        roi_n_layers: int | None = 0,
        roi_lags: tuple[int, ...] | None = (1, 2, 4, 8),
        order_readout: str = "none",
    ) -> None:
        super().__init__()
        scales, forms = tuple(int(s) for s in scales), tuple(str(f) for f in forms)
        if not scales or not forms or any(s < 1 for s in scales):
            raise ConfigError(f"NeuroSSM needs at least one scale ≥ 1 and one form; got scales={scales}, forms={forms}")
        for value, allowed, what in ((pooling, POOLINGS, "pooling"), (fusion, FUSIONS, "fusion"),
                                     (encoder, ENCODERS, "encoder"), (roi_mixer, ROI_MIXERS, "roi_mixer"),
                                     (order_readout, ORDER_READOUTS, "order_readout")):
            if value not in allowed:
                raise ConfigError(f"NeuroSSM {what}={value!r}; choose one of {allowed}")
        if any(f not in FORMS for f in forms):
            raise ConfigError(f"NeuroSSM forms={forms}; each must be one of {FORMS}")
        if n_times // max(scales) < 1:
            raise ConfigError(f"crop length {n_times} is shorter than the largest scale {max(scales)}")
        if roi_n_layers is not None and int(roi_n_layers) < 0:
            raise ConfigError(f"NeuroSSM roi_n_layers={roi_n_layers!r}; it must be 0 or more (null: n_layers)")
        if roi_lags is not None and any(int(k) < 1 for k in roi_lags):
            raise ConfigError(f"NeuroSSM roi_lags={roi_lags!r}; each lag must be a positive number of samples "
                              "(null: no autocorrelation statistics)")
        for value, what in ((roi_d_model, "roi_d_model"), (roi_d_state, "roi_d_state"), (roi_patch, "roi_patch"),
                            (roi_channels, "roi_channels"), (1 if time_d_model is None else time_d_model,
                                                             "time_d_model")):
            if int(value) < 1:
                raise ConfigError(f"NeuroSSM {what}={value!r}; it must be a positive integer")
        if encoder != "time" and n_times // max(scales) < roi_patch:
            raise ConfigError(f"crop length {n_times} pooled by the largest scale {max(scales)} is shorter than "
                              f"roi_patch={roi_patch}; use a longer crop, smaller scales or a smaller roi_patch")
        self.n_rois, self.n_outputs, self.n_times = n_rois, n_outputs, n_times
        self.scales, self.forms, self.fusion = scales, forms, fusion
        self.pathway_specs = tuple((f, s) for f in forms for s in scales)
        self.encoder = encoder

        width = d_model if time_d_model is None else int(time_d_model)
        lags = tuple(int(k) for k in roi_lags or ())

        def roi() -> RoiPathway:
            return RoiPathway(n_rois, d_model, int(roi_d_model), int(roi_d_state), int(roi_patch), int(roi_channels),
                              roi_mixer, n_layers if roi_n_layers is None else int(roi_n_layers), d_conv, expand,
                              bidirectional, pooling, drop_prob, scan_backend,
                              bool(roi_remove_shared), lags, direction=order_readout in ("both", "roi"))

        def time() -> Pathway:
            return Pathway(n_rois, d_model, width, n_layers, d_state, d_conv, expand, bidirectional, pooling,
                           drop_prob, scan_backend, direction=order_readout in ("both", "time"))

        def pathway() -> nn.Module:
            return {"roi": roi, "time": time, "hybrid": lambda: HybridPathway(roi(), time())}[encoder]()

        self.pathways = nn.ModuleList(pathway() for _ in self.pathway_specs)
        n_paths = len(self.pathway_specs)
        if fusion == "gate":
            self.gate = nn.Linear(d_model, 1)
        fused_dim = d_model * n_paths if fusion == "concat" else d_model
        self.head = nn.Sequential(nn.LayerNorm(fused_dim), nn.Dropout(drop_prob), nn.Linear(fused_dim, n_outputs))

    @property
    def pathway_names(self) -> list[str]:
        return [f"{form}_s{scale}" for form, scale in self.pathway_specs]

    def pathway_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each pathway's own input, ``(B, R, T // scale)``, in ``pathway_names`` order."""
        return [pathway_signal(x, form, scale) for form, scale in self.pathway_specs]

    def fuse(self, vectors: torch.Tensor) -> torch.Tensor:
        """Fuse pathway vectors ``(B, P, d_model)`` into one vector per scan."""
        if self.fusion == "concat":
            return rearrange(vectors, "b p d -> b (p d)")  # (B, P·d_model)
        if self.fusion == "mean":
            return vectors.mean(dim=1)  # (B, d_model)
        weights = torch.softmax(self.gate(vectors), dim=1)  # (B, P, 1)
        return (weights * vectors).sum(dim=1)  # (B, d_model)

    def pathway_vectors(self, inputs: list[torch.Tensor], roi_statistics: list | None = None) -> torch.Tensor:
        """Encode each pathway input to its pooled vector: ``(B, P, d_model)``.

        Given an empty list, ``roi_statistics`` receives one entry per pathway: the ROI-wise
        part's standardised statistics ``(B, R, n_stats)`` as a leaf of the graph (gradients of
        the logits stop there instead of reaching the input through that part), or ``None`` for
        a pathway without a ROI-wise part. CPA localises through both (docs/cpa.md).
        """
        vectors = []
        for pathway, xp in zip(self.pathways, inputs):
            taps = [] if roi_statistics is not None else None
            vectors.append(pathway(xp, taps))  # (B, d_model)
            if roi_statistics is not None:
                roi_statistics.append(taps[0] if taps else None)
        return torch.stack(vectors, dim=1)  # (B, P, d_model)

    def classify(self, vectors: torch.Tensor, pathway_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from pathway vectors, with the masked pathways ablated before fusion."""
        if pathway_mask is not None:
            mask = torch.as_tensor(pathway_mask, dtype=vectors.dtype, device=vectors.device)
            mask = mask.expand(vectors.shape[0], -1) if mask.ndim == 1 else mask  # (B, P)
            vectors = vectors * mask[..., None]  # ablated pathways contribute a zero vector
        return self.head(self.fuse(vectors))  # (B, n_outputs)

    def forward_pathways(self, inputs: list[torch.Tensor], pathway_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from the pathway inputs (CPA differentiates with respect to these)."""
        return self.classify(self.pathway_vectors(inputs), pathway_mask)

    def forward(self, x: torch.Tensor, pathway_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(B, R, T)`` → logits ``(B, n_outputs)``."""
        return self.forward_pathways(self.pathway_inputs(x), pathway_mask)
