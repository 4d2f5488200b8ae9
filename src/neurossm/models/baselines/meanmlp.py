"""meanMLP: an MLP applied to each time point's ROI vector, averaged over time.

Popov et al. (2024) report this per-time-step MLP with temporal mean pooling as a baseline that
the more elaborate fMRI time-series models rarely beat. Each time point's ROI vector goes
through ``Linear(R → hidden) → LayerNorm → ReLU → Dropout → Linear(hidden → classes)``; the
class logits are the mean over time points. Because the last layer is linear, averaging its
outputs equals averaging the hidden features first; the model is blind to the order of the
time points by construction.

References
----------
Popov, P., Mahmood, U., Fu, Z., Yang, C., Calhoun, V., & Plis, S. (2024). A simple but
tough-to-beat baseline for fMRI time-series classification. *NeuroImage*, 303, 120909.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from ...errors import ConfigError
from ..registry import register_model


@register_model(
    "meanMLP",
    kind="torch",
    description="per-time-point MLP on the ROI vector (Linear, LayerNorm, ReLU, dropout, Linear), mean over time",
    reference="Popov et al. (2024) NeuroImage 303:120909",
)
class MeanMLP(nn.Module):
    """meanMLP classifier of ROI time series.

    Parameters
    ----------
    {signal_parameters}
    n_times : int
        Training crop length (the model accepts any length ≥ 1).
    hidden_size : int
        Width of the per-time-point hidden layer (160).
    drop_prob : float
        Dropout after the ReLU (0.49).

    Notes
    -----
    The defaults are the published ones: hidden width 160 and dropout 0.49, with one hidden
    layer: the defaults of the authors' released code (Popov et al., 2024, repository
    ``neuroneural/meanMLP``), read through code that reproduces it. The authors' own training
    schedule is not reproduced: the harness's shared AdamW + cosine schedule and validation
    checkpoint selection apply, as for every gradient-trained model.
    """

    def __init__(self, n_rois: int, n_outputs: int, n_times: int, hidden_size: int = 160,
                 drop_prob: float = 0.49) -> None:
        super().__init__()
        if hidden_size < 1 or not 0.0 <= drop_prob < 1.0:
            raise ConfigError(f"meanMLP needs hidden_size ≥ 1 and 0 ≤ drop_prob < 1; got {hidden_size}, {drop_prob}")
        self.n_rois, self.n_outputs, self.n_times = n_rois, n_outputs, n_times
        self.encoder = nn.Sequential(nn.Linear(n_rois, hidden_size), nn.LayerNorm(hidden_size), nn.ReLU(),
                                     nn.Dropout(drop_prob))
        self.head = nn.Linear(hidden_size, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, R, T)`` → logits ``(B, n_outputs)``."""
        h = self.encoder(rearrange(x, "b r t -> b t r"))  # (B, T, hidden)
        return self.head(h).mean(dim=1)  # (B, T, n_outputs) → (B, n_outputs)
