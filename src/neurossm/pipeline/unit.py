"""The unit of work: one (seed, fold) — train, test, explain if asked, write its own folders.

:func:`fit_unit` is what the runner, ``neurossm explain`` (through :func:`load_unit` and
:func:`explain_unit`), the benchmarks and any executor call. A unit writes only inside its own
``<run>/seed_<S>/fold_<k>/`` folder (``metrics.json`` last: the "done" marker) and, with CPA, its
own ``Explainability/<DATASET>/seed_<S>[/fold_<k>]/`` folder; the run's shared files (config,
splits) are written before any unit starts and the summary after all have finished.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import TrainingConfig
from ..data.scans import Scan, ScanDataset
from ..data.splits import Split
from ..errors import ConfigError
from ..explain import files as cpa_files
from ..explain.contract import check_explainable
from ..io import to_json
from ..log import get_logger
from ..models.registry import ModelSpec, get_model
from ..training import distributed, threads
from ..training.device import resolve_device
from ..training.estimators import Estimator, make_estimator
from ..training.metrics import classification_metrics
from ..training.model_file import MODEL_FILE, data_fingerprint, describe, load_estimator, write_model_file
from ..training.results import RunDirectory, predictions_frame
from .options import ExperimentOptions, load_experiment_dataset, training_config_of

log = get_logger(__name__)


@dataclass
class UnitContext:
    """What every unit of one run shares: the data, the model and how to train and explain it.

    ``run=None`` keeps results in memory (benchmarks); ``analysis_root=None`` skips CPA.
    ``holdout`` (``--skip_cross_validation``) drops the ``fold_<k>`` level of the CPA folders.
    """

    dataset: ScanDataset
    spec: ModelSpec
    model_config: dict[str, Any]
    training: TrainingConfig
    device: torch.device
    run: RunDirectory | None = None
    analysis_root: Path | None = None
    cpa_target: str = "true"
    holdout: bool = False
    run_id: str | None = None  # recorded in the CPA files (default: the run folder's, when there is one)

    def __post_init__(self) -> None:
        self._by_id = {s.scan_id: s for s in self.dataset.scans}
        if self.run_id is None and self.run is not None:
            self.run_id = self.run.run_id()

    def scans(self, ids, where: str) -> list[Scan]:
        """The scans ``ids`` of the dataset (``where`` names the file that lists them, for the error)."""
        missing = [i for i in ids if i not in self._by_id]
        if missing:
            raise ConfigError(f"{where}: scan(s) {missing[:5]} are not in the dataset loaded now; "
                              "did the data change since the run?")
        return [self._by_id[i] for i in ids]

    @classmethod
    def from_run(cls, run_dir: str | Path, *, data_root: str | None = None, device: str | None = "cpu",
                 analysis_root: str | Path | None = None, cpa_target: str | None = None) -> "UnitContext":
        """The context of a run folder written by ``neurossm train``, its dataset reloaded from its config."""
        rd = RunDirectory(run_dir)
        if not rd.config_path.is_file():
            raise ConfigError(f"--run {rd.root}: no config.json there; pass a folder written by `neurossm train`")
        rd.check_model_format()
        config = rd.read_config()
        opts = ExperimentOptions.from_config(config)
        if data_root:
            opts.data_root = data_root
        dataset = load_experiment_dataset(opts)
        return cls(dataset=dataset, spec=get_model(config["model"]["name"]), model_config=config["model"]["config"],
                   training=training_config_of(config), device=resolve_device(device), run=rd,
                   analysis_root=Path(analysis_root) if analysis_root is not None else None,
                   cpa_target=cpa_target or opts.cpa_target, holdout=opts.skip_cross_validation)

    def estimator(self, seed: int) -> Estimator:
        return make_estimator(self.spec, self.model_config, n_rois=self.dataset.n_rois,
                              n_classes=self.dataset.n_classes, crop_length=self.dataset.crop_length,
                              training=self.training, device=self.device, seed=seed)


@dataclass
class UnitResult:
    """A fitted unit: its estimator, test scans, test probabilities and the metrics written."""

    estimator: Estimator
    test: list[Scan]
    probs: np.ndarray         # (n_test, C)
    metrics: dict[str, Any]


def unit_seed(split: Split) -> int:
    """The model's random seed of a unit: distinct per (seed, fold), reproducible."""
    return split.seed * 1000 + split.fold


def fit_unit(ctx: UnitContext, split: Split, *, model_seed: int | None = None) -> UnitResult:
    """Train on ``split``'s train side (validation for model selection), test once, explain, write.

    Parameters
    ----------
    ctx : UnitContext
        The run's shared data and settings.
    split : Split
        The unit: its seed, fold and scan ids per side.
    model_seed : int, optional
        Seed of the model's initialisation and crops (default :func:`unit_seed`).

    Returns
    -------
    UnitResult
        With ``ctx.run``, the fold's checkpoint, predictions, history and ``metrics.json`` are on
        disk; with ``ctx.analysis_root``, the CPA files of the test scans too.
    """
    t0 = time.perf_counter()
    where = f"seed {split.seed} fold {split.fold}"
    est = ctx.estimator(unit_seed(split) if model_seed is None else model_seed)
    train, val, test = (ctx.scans(ids, where) for ids in (split.train, split.val, split.test))
    log.info("seed %d fold %d: training %s on %d scans (validation %d, test %d)", split.seed, split.fold,
             ctx.spec.name, len(train), len(val), len(test))
    est.fit([s.timeseries for s in train], np.array([s.label for s in train]),
            [s.timeseries for s in val], np.array([s.label for s in val]),
            groups=[s.subject_id for s in train], groups_val=[s.subject_id for s in val])
    fit_seconds = time.perf_counter() - t0
    if not distributed.current().is_main:
        # The other ranks of a torchrun job only helped to train: rank 0 tests, explains and writes.
        return UnitResult(est, test, np.empty((0, ctx.dataset.n_classes)), {})
    probs = est.predict_proba([s.timeseries for s in test])
    test_metrics = classification_metrics([s.label for s in test], probs, ctx.dataset.n_classes)
    if not np.isfinite(test_metrics["roc_auc"]):
        log.warning("seed %d fold %d: ROC-AUC is undefined: the test fold holds only class %r; the summary "
                    "averages ROC-AUC over the folds where it is defined and says how many", split.seed,
                    split.fold, ctx.dataset.class_names[test[0].label] if test else "?")
    if ctx.run is not None:
        fitted_on = [*train, *val]
        info = describe(est, classes=ctx.dataset.class_names, atlas=ctx.dataset.atlas, standardize=True,
                        training_data={"dataset": ctx.dataset.name, "n_scans": len(fitted_on), "run_id": ctx.run_id,
                                       "seed": split.seed, "fold": split.fold,
                                       "fingerprint": data_fingerprint([s.timeseries for s in fitted_on],
                                                                       [s.label for s in fitted_on])})
        write_model_file(ctx.run.model_path(split.seed, split.fold), info, est.get_state())
    if ctx.analysis_root is not None:
        explain_unit(ctx, est, split, test)
    selected = [h for h in est.history if h.get("selected")]
    metrics = {"seed": split.seed, "fold": split.fold, "test": test_metrics,
               "n_train": len(train), "n_val": len(val), "n_test": len(test),
               "selected_epoch": selected[0]["epoch"] if selected else None,
               "fit_seconds": fit_seconds, "threads": threads.current().to_dict(), "checkpoint": MODEL_FILE}
    if est.fitted_params():  # what a closed-form model's inner cross-validation chose
        metrics["hyperparameters"] = est.fitted_params()
    if ctx.run is not None:
        ctx.run.write_fold(split.seed, split.fold, metrics,
                           predictions_frame(test, probs, ctx.dataset.class_names), est.history)
    # The run prints each finished unit's line (pipeline/runner.py); this one is for the unit's log.
    log.debug("seed %d fold %d: test accuracy %.3f, balanced accuracy %.3f, ROC-AUC %.3f (%.1f s)", split.seed,
              split.fold, test_metrics["accuracy"], test_metrics["balanced_accuracy"], test_metrics["roc_auc"],
              time.perf_counter() - t0)
    return UnitResult(est, test, probs, metrics)


def load_unit(ctx: UnitContext, split: Split) -> Estimator | None:
    """The fitted estimator of a finished unit from its saved model (``None`` when there is none).

    The model file describes itself; it must describe the model and options of the run's
    ``config.json``, or the error names both.
    """
    if ctx.run is None:
        raise ValueError("load_unit needs a context with a run folder")
    path = ctx.run.model_path(split.seed, split.fold)
    if not path.is_file():
        return None
    info, est = load_estimator(path, ctx.device)
    saved, run = json.loads(to_json(info.options)), json.loads(to_json(ctx.model_config))
    if info.model != ctx.spec.name or saved != run:
        diff = sorted(k for k in {*saved, *run} if saved.get(k) != run.get(k))
        raise ConfigError(f"{path}: a {info.model} model with options {', '.join(f'{k}={saved.get(k)!r}' for k in diff)}, "
                          f"but the run's config.json says {ctx.spec.name} with "
                          f"{', '.join(f'{k}={run.get(k)!r}' for k in diff)}; was a file of the run edited or "
                          "copied from another run? Train the run again")
    return est


def explain_unit(ctx: UnitContext, est: Estimator, split: Split, test: list[Scan] | None = None) -> list[Path]:
    """CPA files of the unit's test scans, in its own ``Explainability`` folder."""
    from ..explain.cpa import explain_to_files

    if ctx.analysis_root is None:
        raise ValueError("explain_unit needs a context with an analysis_root")
    check_explainable(est.module, ctx.spec.name)
    if test is None:
        test = ctx.scans(split.test, f"seed {split.seed} fold {split.fold} test side")
    out = cpa_files.unit_dir(ctx.analysis_root, ctx.dataset.name, split.seed, None if ctx.holdout else split.fold)
    run = None
    if ctx.run is not None:
        run = cpa_files.run_record(ctx.run_id, ctx.run.root, ctx.spec.name, split.seed, split.fold)
    return explain_to_files(est.module, test, ctx.dataset, out, target=ctx.cpa_target,
                            crop_length=est.crop_length, device=ctx.device, run=run)
