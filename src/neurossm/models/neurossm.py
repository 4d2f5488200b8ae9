"""NeuroSSM: multiscale differential state-space modelling of ROI-wise fMRI time series.

Each scan is seen through several *pathways*: a signal form (the raw BOLD signal, or its
first-order temporal difference) at a temporal scale (average pooling by 1, 2, 4 time points).
Each pathway encodes its input to one vector, with one of two encoders: ``"time"`` embeds the ROI
vector of every time step, runs bidirectional selective state-space (Mamba) blocks over time and
pools over time; ``"roi"`` runs a small Mamba over each ROI's own series, with weights shared
across ROIs (one grouped scan for all ROIs), pools each ROI over time and mixes the ROIs. The
pathway vectors are fused into one classifier. A pathway can be ablated (its vector set to zero) before fusion, which is how
Calibrated Pathway Attribution measures how much a decision depends on it.

References
----------
NeuroSSM: Multiscale Differential State-Space Modeling for Context-Aware fMRI Analysis.
Gu & Dao (2023). Mamba: Linear-Time Sequence Modeling with Selective State Spaces. arXiv:2312.00752.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import ConfigError
from ..ssm.mamba import BiMamba, Mamba
from .registry import register_model

FORMS = ("raw", "diff")
POOLINGS = ("mean", "abs_mean", "max", "attention")
FUSIONS = ("gate", "concat", "mean")
ENCODERS = ("time", "roi")
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


class TemporalPooling(nn.Module):
    """Pool ``(B, T, ..., d)`` over time (axis 1) to ``(B, ..., d)``.

    ``"mean"``, ``"abs_mean"`` (mean of absolute values: brief events of either sign add up
    instead of cancelling), ``"max"`` or ``"attention"`` (softmax over time of a learned score).
    """

    def __init__(self, pooling: str, d_model: int) -> None:
        super().__init__()
        self.pooling = pooling
        if pooling == "attention":
            self.score = nn.Linear(d_model, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.pooling == "mean":
            return h.mean(dim=1)  # (B, ..., d)
        if self.pooling == "abs_mean":
            return h.abs().mean(dim=1)  # (B, ..., d)
        if self.pooling == "max":
            return h.amax(dim=1)  # (B, ..., d)
        weights = torch.softmax(self.score(h), dim=1)  # (B, T, ..., 1)
        return (weights * h).sum(dim=1)  # (B, ..., d)


class Pathway(nn.Module):
    """The ``"time"`` encoder: ROI embedding per time step → residual Mamba blocks → temporal
    pooling → one vector."""

    def __init__(self, n_rois: int, d_model: int, n_layers: int, d_state: int, d_conv: int, expand: int,
                 bidirectional: bool, pooling: str, drop_prob: float, backend: str) -> None:
        super().__init__()
        self.embed = nn.Linear(n_rois, d_model)
        self.blocks = nn.ModuleList(
            ResidualSSMBlock(d_model, d_state, d_conv, expand, bidirectional, drop_prob, backend)
            for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.pool = TemporalPooling(pooling, d_model)

    def forward(self, xp: torch.Tensor) -> torch.Tensor:
        h = self.embed(rearrange(xp, "b r t -> b t r"))  # (B, T_s, d_model)
        for block in self.blocks:
            h = block(h)  # (B, T_s, d_model)
        return self.pool(self.norm(h))  # (B, d_model)


class RoiPathway(nn.Module):
    """The ``"roi"`` encoder: each ROI's own series through weights shared across ROIs, then a
    mix of the ROIs into one vector.

    A strided convolution (``roi_patch`` samples per step, ``roi_d_model`` filters) lifts each
    ROI's series to features; residual (bi)directional Mamba blocks run over time, all ROIs of a
    scan as groups of one grouped scan; each ROI's features are pooled over time and
    standardised over the scan's ROIs (a ROI's contrast with the others); a mixer over ROIs gives
    the pathway vector: ``"linear"`` (one dense layer over ROIs × features, which can
    weight a few informative ROIs), ``"score"`` (the same with one shared score per ROI first,
    ``roi_d_model`` times fewer weights to fit from few scans) or ``"attention"`` (a softmax over ROIs of a learned score,
    with a learned per-ROI prior and value offset, averaging projected ROI features).

    The blocks have no pre-norm: a LayerNorm over the few features of one ROI at one time step
    would rescale every step to unit spread, erasing the step's amplitude, which is what tells a
    brief event from the background. Inputs are z-scored per ROI, so the scale stays bounded.
    """

    def __init__(self, n_rois: int, d_model: int, roi_d_model: int, roi_d_state: int, roi_patch: int,
                 roi_mixer: str, n_layers: int, d_conv: int, expand: int, bidirectional: bool,
                 pooling: str, drop_prob: float, backend: str) -> None:
        super().__init__()
        self.stem = nn.Conv1d(1, roi_d_model, kernel_size=roi_patch, stride=roi_patch)
        self.blocks = nn.ModuleList(
            ResidualSSMBlock(roi_d_model, roi_d_state, d_conv, expand, bidirectional, drop_prob, backend,
                             norm=False)
            for _ in range(n_layers)
        )
        self.pool = TemporalPooling(pooling, roi_d_model)
        self.drop = nn.Dropout(drop_prob)
        self.roi_mixer = roi_mixer
        if roi_mixer == "linear":
            self.mix = nn.Linear(n_rois * roi_d_model, d_model)
        elif roi_mixer == "score":
            self.roi_score = nn.Linear(roi_d_model, 1)
            self.mix = nn.Linear(n_rois, d_model)
        else:
            self.roi_score = nn.Linear(roi_d_model, 1)
            self.roi_prior = nn.Parameter(torch.zeros(n_rois))
            self.value = nn.Linear(roi_d_model, d_model)
            self.roi_value = nn.Parameter(torch.zeros(n_rois, d_model))

    def roi_features(self, xp: torch.Tensor) -> torch.Tensor:
        """Each ROI's series ``(B, R, T_s)`` to its pooled features ``(B, R, roi_d_model)``; those
        of ROI ``r`` depend on ROI ``r``'s series alone."""
        batch = xp.shape[0]
        h = self.stem(rearrange(xp, "b r t -> (b r) 1 t"))  # (B·R, roi_d_model, T_p)
        h = rearrange(h, "(b r) d t -> b t r d", b=batch)  # (B, T_p, R, roi_d_model)
        for block in self.blocks:
            h = block(h)  # (B, T_p, R, roi_d_model)
        return self.pool(h)  # (B, R, roi_d_model)

    def forward(self, xp: torch.Tensor) -> torch.Tensor:
        v = self.roi_features(xp)  # (B, R, roi_d_model)
        # each feature as the ROI's contrast with the scan's other ROIs: pooled statistics share a
        # large offset across ROIs and scans (e.g. the mean |x| of z-scored series), next to
        # which the differences that carry a class are small; standardised over ROIs, they are
        # what the mixer sees, without any dependence on the batch
        v = (v - v.mean(dim=1, keepdim=True)) * torch.rsqrt(v.var(dim=1, keepdim=True, unbiased=False) + 1e-5)
        v = self.drop(v)  # (B, R, roi_d_model)
        if self.roi_mixer == "linear":
            return self.mix(rearrange(v, "b r d -> b (r d)"))  # (B, d_model)
        if self.roi_mixer == "score":
            return self.mix(self.roi_score(v).squeeze(-1))  # (B, R) -> (B, d_model)
        weights = torch.softmax(self.roi_score(v).squeeze(-1) + self.roi_prior, dim=1)  # (B, R)
        values = self.value(v) + self.roi_value  # (B, R, d_model)
        return torch.einsum("br,brd->bd", weights, values)  # (B, d_model)


@register_model(
    "NeuroSSM",
    kind="torch",
    description="multiscale raw + difference pathways, bidirectional Mamba encoders, gated fusion",
    reference="NeuroSSM: Multiscale Differential State-Space Modeling for Context-Aware fMRI Analysis",
    presets={
        "single_pathway": {"forms": ("raw",), "scales": (1,)},
        "raw_multiscale": {"forms": ("raw",)},
        "diff_multiscale": {"forms": ("diff",)},
        "roi": {"encoder": "roi", "pooling": "abs_mean"},
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
        Residual Mamba blocks per pathway.
    d_state, d_conv, expand : int
        Mamba state size (of the ``"time"`` encoder), causal convolution width and inner
        expansion (mamba-ssm's defaults; ``d_conv`` and ``expand`` serve both encoders).
    bidirectional : bool
        Scan time in both directions (classification sees the whole scan).
    pooling : str
        Temporal pooling: ``"mean"``, ``"abs_mean"`` (mean of absolute values), ``"max"`` or
        ``"attention"``; the ``"roi"`` encoder pools each ROI's features with it.
    encoder : str
        How a pathway encodes its input (see Notes): ``"time"`` (a dense embedding of the ROI
        vector per time step, then Mamba over time) or ``"roi"`` (Mamba over each ROI's own
        series with weights shared across ROIs, then a mixer over ROIs).
    roi_d_model : int
        ``"roi"`` encoder: features per ROI and time step.
    roi_d_state : int
        ``"roi"`` encoder: Mamba state size per channel.
    roi_patch : int
        ``"roi"`` encoder: samples per step of the stem (non-overlapping temporal patches;
        1 keeps every sample). Divides the per-ROI scan's length, hence its cost.
    roi_mixer : str
        ``"roi"`` encoder: ``"linear"`` (dense over ROIs × features), ``"score"`` (a shared
        score per ROI, then dense over ROIs) or ``"attention"`` (softmax-weighted mean of
        projected ROI features, with learned per-ROI priors).
    fusion : str
        ``"gate"`` (softmax-gated sum of pathway vectors), ``"concat"`` or ``"mean"``.
    drop_prob : float
        Dropout inside blocks and before the head.
    scan_backend : str
        Selective-scan backend: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"reference"``.

    Notes
    -----
    Both encoders map a pathway input ``(B, R, T_s)`` to ``(B, d_model)``:

    - ``"time"`` (:class:`Pathway`): ``Linear(R → d_model)`` per time step ``(B, T_s, d_model)``
      → pre-norm residual BiMamba blocks → LayerNorm → temporal pooling ``(B, d_model)``. Every
      ROI enters every feature, as in BolT; it needs the data to find the informative ROIs in
      one dense layer per time step.
    - ``"roi"`` (:class:`RoiPathway`): per ROI, ``Conv1d(1 → roi_d_model, kernel = stride =
      roi_patch)`` ``(B, T_s / roi_patch, R, roi_d_model)`` → residual BiMamba blocks whose
      weights are shared by all ROIs (one grouped selective scan with ``R`` groups, see
      :mod:`neurossm.ssm.scan`) → temporal pooling per ROI ``(B, R, roi_d_model)`` → ROI mixer
      ``(B, d_model)``. A ROI's temporal features are learned from every ROI's series, so a
      signal that sits in a few ROIs need not be found by a dense per-step layer first.

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
        d_model: int = 64,
        n_layers: int = 1,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        bidirectional: bool = True,
        pooling: str = "mean",
        fusion: str = "gate",
        drop_prob: float = 0.1,
        scan_backend: str = "auto",
        encoder: str = "time",
        roi_d_model: int = 4,
        roi_d_state: int = 4,
        roi_patch: int = 2,
        roi_mixer: str = "attention",
    ) -> None:
        super().__init__()
        scales, forms = tuple(int(s) for s in scales), tuple(str(f) for f in forms)
        if not scales or not forms or any(s < 1 for s in scales):
            raise ConfigError(f"NeuroSSM needs at least one scale ≥ 1 and one form; got scales={scales}, forms={forms}")
        for value, allowed, what in ((pooling, POOLINGS, "pooling"), (fusion, FUSIONS, "fusion"),
                                     (encoder, ENCODERS, "encoder"), (roi_mixer, ROI_MIXERS, "roi_mixer")):
            if value not in allowed:
                raise ConfigError(f"NeuroSSM {what}={value!r}; choose one of {allowed}")
        if any(f not in FORMS for f in forms):
            raise ConfigError(f"NeuroSSM forms={forms}; each must be one of {FORMS}")
        if n_times // max(scales) < 1:
            raise ConfigError(f"crop length {n_times} is shorter than the largest scale {max(scales)}")
        for value, what in ((roi_d_model, "roi_d_model"), (roi_d_state, "roi_d_state"), (roi_patch, "roi_patch")):
            if int(value) < 1:
                raise ConfigError(f"NeuroSSM {what}={value!r}; it must be a positive integer")
        if encoder == "roi" and n_times // max(scales) < roi_patch:
            raise ConfigError(f"crop length {n_times} pooled by the largest scale {max(scales)} is shorter than "
                              f"roi_patch={roi_patch}; use a longer crop, smaller scales or a smaller roi_patch")
        self.n_rois, self.n_outputs, self.n_times = n_rois, n_outputs, n_times
        self.scales, self.forms, self.fusion = scales, forms, fusion
        self.pathway_specs = tuple((f, s) for f in forms for s in scales)
        self.encoder = encoder

        def pathway() -> nn.Module:
            if encoder == "roi":
                return RoiPathway(n_rois, d_model, int(roi_d_model), int(roi_d_state), int(roi_patch), roi_mixer,
                                  n_layers, d_conv, expand, bidirectional, pooling, drop_prob, scan_backend)
            return Pathway(n_rois, d_model, n_layers, d_state, d_conv, expand, bidirectional, pooling, drop_prob,
                           scan_backend)

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

    def pathway_vectors(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """Encode each pathway input to its pooled vector: ``(B, P, d_model)``."""
        return torch.stack([p(xp) for p, xp in zip(self.pathways, inputs)], dim=1)  # (B, P, d_model)

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
