"""Settings shared by every layer: the named atlases, the training settings, ``KEY=VALUE`` overrides.

Each dataset's own defaults (atlas, crop length, training, ...) are in its
:class:`~neurossm.data.registry.DatasetSpec`, registered by its loader module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class AtlasInfo:
    """A named atlas: its ROI count and the other names it goes by in files and on the command line."""

    name: str
    n_rois: int
    description: str
    aliases: tuple[str, ...] = ()


# The one table of named atlases (how each is loaded: neurossm.atlas).
ATLASES: dict[str, AtlasInfo] = {
    "schaefer400": AtlasInfo("schaefer400", 400, "Schaefer 2018, 400 parcels, 7 networks, 2 mm"),
    "aal3v2": AtlasInfo("aal3v2", 166, "AAL3v2, 166 regions", aliases=("aal3",)),
}


def named_atlas(spec: str) -> AtlasInfo | None:
    """The named atlas ``spec`` stands for (case, ``-`` and ``_`` ignored), or ``None``."""
    key = str(spec).strip().lower().replace("-", "").replace("_", "")
    return next((a for a in ATLASES.values() if key == a.name or key in a.aliases), None)


@dataclass
class TrainingConfig:
    """Optimisation settings for the gradient-trained models (baselines fitted in closed form ignore them).

    Parameters
    ----------
    epochs : int
        Passes over the training fold; each epoch draws one random crop per scan.
    batch_size : int
        Scans per optimisation step.
    lr : float
        Peak learning rate of AdamW.
    weight_decay : float
        AdamW weight decay.
    schedule : str
        ``"cosine"`` (linear warm-up over ``warmup_epochs`` then cosine decay) or ``"constant"``.
    warmup_epochs : int
        Epochs of linear warm-up.
    val_fraction : float
        Fraction of the training fold's subjects held out for model selection (never the test fold).
    select_metric : str
        Validation metric that picks the checkpoint: ``"balanced_accuracy"`` or ``"loss"``.
    grad_clip : float
        Gradient-norm clip (0 disables).
    """

    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-2
    schedule: str = "cosine"
    warmup_epochs: int = 2
    val_fraction: float = 0.2
    select_metric: str = "balanced_accuracy"
    grad_clip: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["d_model=64", "scales=1,2"]`` → ``{"d_model": 64, "scales": (1, 2)}`` (YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--config expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        if "," in raw and not raw.strip().startswith("["):
            value: Any = tuple(yaml.safe_load(v) for v in raw.split(",") if v != "")
        else:
            value = yaml.safe_load(raw)
            if isinstance(value, list):
                value = tuple(value)
        out[key.strip()] = value
    return out
