"""A bidirectional GRU over time points: the recurrent baseline.

Recurrent networks over ROI time series are a standard deep baseline for fMRI classification:
an LSTM over the ROI vector of each time point (Dvornek et al., 2017) and GRU-based multi-scale
RNNs (Yan et al., 2019). This is the plain form of that family, not a re-implementation of
either paper: a per-time-step embedding, a (bi)directional GRU, temporal pooling and a linear
head.

References
----------
Dvornek, N. C., Ventola, P., Pelphrey, K. A., & Duncan, J. S. (2017). Identifying autism from
resting-state fMRI using long short-term memory networks. *MLMI 2017*, LNCS 10541, 362–370.
Yan, W., Calhoun, V., Song, M., et al. (2019). Discriminating schizophrenia using recurrent neural
network applied on time courses of multi-site fMRI data. *EBioMedicine*, 47, 543–552.
Cho, K., et al. (2014). Learning phrase representations using RNN encoder–decoder for statistical
machine translation. *EMNLP 2014*.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from ...errors import ConfigError
from ..registry import register_model

POOLINGS = ("mean", "last")


@register_model(
    "GRU",
    kind="torch",
    description="bidirectional GRU over time points (ROI vector per step), mean pooling, linear head",
    reference="Dvornek et al. (2017) MLMI; Yan et al. (2019) EBioMedicine 47:543-552",
)
class GRUClassifier(nn.Module):
    """Recurrent classifier of ROI time series.

    Parameters
    ----------
    {signal_parameters}
    n_times : int
        Training crop length (the model accepts any length ≥ 1).
    hidden_size : int
        GRU state width per direction.
    n_layers : int
        Stacked GRU layers.
    embed : bool
        ``True``: ``Linear(n_rois → hidden_size)`` per time point before the GRU; ``False``: the GRU
        reads the ROI vector directly.
    bidirectional : bool
        Run the GRU forwards and backwards in time (classification sees the whole scan).
    pooling : str
        ``"mean"``: mean of the GRU outputs over time; ``"last"``: the final state of each
        direction (t = T − 1 forwards, t = 0 backwards) of the top layer.
    drop_prob : float
        Dropout between GRU layers and before the head.
    """

    def __init__(
        self,
        n_rois: int,
        n_outputs: int,
        n_times: int,
        hidden_size: int = 64,
        n_layers: int = 1,
        embed: bool = True,
        bidirectional: bool = True,
        pooling: str = "mean",
        drop_prob: float = 0.1,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"GRU pooling={pooling!r}; choose one of {POOLINGS}")
        if hidden_size < 1 or n_layers < 1:
            raise ConfigError(f"GRU needs hidden_size ≥ 1 and n_layers ≥ 1; got {hidden_size}, {n_layers}")
        self.n_rois, self.n_outputs, self.n_times = n_rois, n_outputs, n_times
        self.pooling = pooling
        self.n_directions = 2 if bidirectional else 1
        self.embed = nn.Linear(n_rois, hidden_size) if embed else nn.Identity()
        self.gru = nn.GRU(hidden_size if embed else n_rois, hidden_size, num_layers=n_layers, batch_first=True,
                          bidirectional=bidirectional, dropout=drop_prob if n_layers > 1 else 0.0)
        out_dim = hidden_size * self.n_directions
        self.head = nn.Sequential(nn.LayerNorm(out_dim), nn.Dropout(drop_prob), nn.Linear(out_dim, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, R, T)`` → logits ``(B, n_outputs)``."""
        h = self.embed(rearrange(x, "b r t -> b t r"))  # (B, T, hidden | R)
        out, h_n = self.gru(h)  # (B, T, D·hidden), (layers·D, B, hidden)
        if self.pooling == "mean":
            pooled = out.mean(dim=1)  # (B, D·hidden)
        else:
            pooled = rearrange(h_n[-self.n_directions:], "d b h -> b (d h)")  # (B, D·hidden)
        return self.head(pooled)  # (B, n_outputs)
