"""Settings shared by every layer: the named atlases, the training settings, ``KEY=VALUE`` overrides.

Each dataset's own defaults (atlas, crop length, training, ...) are in its
:class:`~neurossm.data.registry.DatasetSpec`, registered by its loader module.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
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


SCHEDULES = ("cosine", "constant")
SELECT_METRICS = ("balanced_accuracy", "loss")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


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
    patience : int or None
        Early stopping: end training when the validation selection score (``select_metric``) has
        not improved for this many epochs; the best epoch's weights are kept either way. ``0`` or
        ``None`` trains all ``epochs``. Needs an inner validation split.
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
    patience: int | None = None

    def __post_init__(self) -> None:
        # Checked here, before any model is built, so that a bad value is a message, not a torch traceback.
        checks = (
            ("epochs", "--epochs", self.epochs, _is_int, lambda v: v >= 1,
             "a whole number ≥ 1 (0 epochs would report an untrained model's metrics)"),
            ("batch_size", "--batch-size", self.batch_size, _is_int, lambda v: v >= 1, "a whole number ≥ 1"),
            ("lr", "--lr", self.lr, _is_real, lambda v: 0 < v < math.inf, "a number > 0"),
            ("weight_decay", "--weight-decay", self.weight_decay, _is_real, lambda v: 0 <= v < math.inf, "a number ≥ 0"),
            ("warmup_epochs", None, self.warmup_epochs, _is_int, lambda v: v >= 0, "a whole number ≥ 0"),
            ("val_fraction", None, self.val_fraction, _is_real, lambda v: 0 < v < 1, "a fraction between 0 and 1"),
            ("grad_clip", None, self.grad_clip, _is_real, lambda v: 0 <= v < math.inf, "a number ≥ 0 (0 disables)"),
            ("patience", "--patience", 0 if self.patience is None else self.patience, _is_int, lambda v: v >= 0,
             "a whole number ≥ 0 (0 or None: no early stopping)"),
            ("schedule", None, self.schedule, lambda v: isinstance(v, str), lambda v: v in SCHEDULES,
             f"one of {', '.join(SCHEDULES)}"),
            ("select_metric", None, self.select_metric, lambda v: isinstance(v, str), lambda v: v in SELECT_METRICS,
             f"one of {', '.join(SELECT_METRICS)}"),
        )
        for name, flag, value, type_ok, range_ok, expected in checks:
            if not (type_ok(value) and range_ok(value)):
                raise ConfigError(f"{flag or 'training option ' + name} {value!r}: expected {expected}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainingConfig":
        """The settings in ``values`` (a saved ``to_dict``); keys that are not settings are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


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
