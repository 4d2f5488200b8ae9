"""The one place that knows each dataset's defaults: atlas, ROI count, crop length, target, training.

Everything printed into a run's ``config.json`` is resolved from here plus the command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class DatasetInfo:
    """What a named dataset is: its atlas, ROI count, crop length and prediction target."""

    name: str
    atlas: str
    n_rois: int | None
    crop_length: int | None
    target: str
    description: str


DATASETS: dict[str, DatasetInfo] = {
    "HCP_REST": DatasetInfo("HCP_REST", "schaefer400", 400, 600, "gender",
                            "HCP-1200 resting state, Schaefer-400 ROIs, label: gender (F/M)"),
    "HCP_TASK": DatasetInfo("HCP_TASK", "schaefer400", 400, 150, "task",
                            "HCP-1200 task fMRI, Schaefer-400 ROIs, label: one of 7 tasks"),
    "PPMI": DatasetInfo("PPMI", "aal3v2", 166, 100, "diagnosis",
                        "PPMI resting state, AAL3v2 ROIs, label: Parkinson's disease vs control"),
    "CUSTOM": DatasetInfo("CUSTOM", "custom", None, None, "label",
                          "your own ROI time series: a folder of per-scan files and labels.csv"),
    "SYNTHETIC": DatasetInfo("SYNTHETIC", "synthetic", None, None, "label",
                             "generated from a seed, with known ground truth"),
}

# Names the seed's atlases go by in files and on the command line.
ATLAS_N_ROIS = {"schaefer400": 400, "aal3v2": 166}


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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Per-dataset training defaults (epochs, lr, schedule, batch size); crop lengths are in DATASETS.
TRAINING_DEFAULTS: dict[str, TrainingConfig] = {
    "HCP_REST": TrainingConfig(epochs=20, batch_size=16, lr=5e-4),
    "HCP_TASK": TrainingConfig(epochs=20, batch_size=16, lr=1e-3),
    "PPMI": TrainingConfig(epochs=30, batch_size=16, lr=5e-4),
    # Your own data is often small (a hundred scans): a longer budget that early stopping cuts short
    # once the inner validation score has stalled, rather than a fixed count that overfits.
    "CUSTOM": TrainingConfig(epochs=40, patience=8),
    "SYNTHETIC": TrainingConfig(epochs=15, batch_size=16, lr=2e-3, warmup_epochs=1),
}


def describe_training_defaults() -> list[str]:
    """One line per dataset: its training defaults, as ``neurossm models --verbose`` prints them."""
    lines = []
    for name, cfg in TRAINING_DEFAULTS.items():
        stop = (f"early stopping after {cfg.patience} epochs without improvement" if cfg.patience
                else "no early stopping")
        lines.append(f"{name:<10} epochs {cfg.epochs}, batch {cfg.batch_size}, lr {cfg.lr:g} ({cfg.schedule}, "
                     f"warm-up {cfg.warmup_epochs}), weight decay {cfg.weight_decay:g}, validation "
                     f"{cfg.val_fraction:g} of subjects, selection by {cfg.select_metric}, {stop}")
    return lines


def dataset_info(name: str) -> DatasetInfo:
    key = name.upper()
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[key]


def training_defaults(dataset: str, **overrides: Any) -> TrainingConfig:
    """The dataset's training defaults with the given fields replaced (``None`` keeps the default)."""
    base = TRAINING_DEFAULTS[dataset_info(dataset).name]
    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise ConfigError(f"unknown training option(s) {sorted(unknown)}; known: {sorted(fields)}")
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


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


@dataclass
class RunOptions:
    """Harness options shared by ``tester.py`` and ``neurossm train`` (resolved, then saved)."""

    dataset: str
    model: str
    seeds: tuple[int, ...] = (0,)
    folds: int = 5
    device: str = "cpu"
    crop_length: int | None = None
    skip_cross_validation: bool = False
    analysis: bool = False
    model_config: dict[str, Any] = field(default_factory=dict)
