"""What defines a run (:class:`ExperimentOptions`), and the dataset and training settings it names."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..config import TrainingConfig
from ..data.scans import ScanDataset
from ..errors import ConfigError


@dataclass
class ExperimentOptions:
    """Everything that defines a run; saved to ``config.json`` and compared on ``--resume``."""

    dataset: str
    model: str = "NeuroSSM"
    data_root: str | None = None
    results_root: str = "Results"
    run_name: str | None = None
    resume: str | None = None
    seeds: tuple[int, ...] = (0,)
    folds: int = 5
    device: str = "cpu"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    patience: int | None = None
    crop_length: int | None = None
    n_rois: int | None = None
    skip_cross_validation: bool = False
    analysis: bool = False
    analysis_root: str = "Analysis"
    cpa_target: str = "true"
    preset: str | None = None
    only: tuple[tuple[int, int], ...] = ()
    model_config: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)

    # Fields that may differ between a run and its resumption without changing its results.
    _RUNTIME = ("resume", "run_name", "results_root", "device", "analysis_root", "only")

    def fingerprint(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if k not in self._RUNTIME}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ExperimentOptions":
        """The options a run's ``config.json`` saved (runtime-only fields at their defaults)."""
        saved = config["options"]
        return cls(**{**saved, "seeds": tuple(saved["seeds"])})


def load_experiment_dataset(opts: ExperimentOptions) -> ScanDataset:
    from ..data import load_dataset

    options = dict(opts.dataset_options)
    # `--data-option n_rois=64` and `--n-rois 64` say the same thing; both at once must agree.
    n_rois = options.pop("n_rois", opts.n_rois)
    if opts.n_rois is not None and n_rois is not None and int(n_rois) != int(opts.n_rois):
        raise ConfigError(f"--n-rois {opts.n_rois} and --data-option n_rois={n_rois} disagree; give one")
    return load_dataset(opts.dataset, opts.data_root, crop_length=opts.crop_length, n_rois=n_rois, **options)


def training_config_of(config: dict[str, Any]) -> TrainingConfig:
    """The training settings saved in a run's ``config.json``."""
    return TrainingConfig.from_dict(config["training"])
