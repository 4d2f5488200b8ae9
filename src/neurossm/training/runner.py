"""Cross-validation over seeds: load → split → fit → test → write, resumable fold by fold."""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..config import TrainingConfig, dataset_info, training_defaults
from ..data.scans import ScanDataset
from ..data.splits import Split, check_disjoint, make_splits
from ..errors import ConfigError
from ..io import read_json, to_json, write_once
from ..log import get_logger
from ..models.registry import get_model
from . import distributed
from .estimators import make_estimator, resolve_device
from .metrics import classification_metrics
from .results import RunDirectory, predictions_frame

log = get_logger(__name__)


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


@dataclass
class RunResult:
    """A finished run; ``summary`` is ``None`` with ``--only`` and on the ranks > 0 of a torchrun job.

    ``failed`` lists the units that did not finish (:class:`~neurossm.pipeline.executors.UnitOutcome`).
    """

    run_dir: Path
    summary: dict[str, Any] | None
    dataset: ScanDataset
    failed: list = field(default_factory=list)


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
    names = {f.name for f in dataclasses.fields(TrainingConfig)}
    return TrainingConfig(**{k: v for k, v in config["training"].items() if k in names})


def _new_run_dir(opts: ExperimentOptions, dataset_name: str, model_name: str) -> Path:
    name = opts.run_name or datetime.now(timezone.utc).strftime("run-%Y%m%d-%H%M%S")
    path = Path(opts.results_root) / dataset_name / model_name / name
    if (path / "config.json").exists():
        raise ConfigError(f"{path} already holds a run; pass --resume {path} to continue it, or another --run-name")
    return path


def _check_resume(run_dir: Path, opts: ExperimentOptions) -> None:
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise ConfigError(f"--resume {run_dir}: no config.json there; is it a run folder?")
    saved = read_json(cfg_path)["options"]
    now = _normalise(opts.fingerprint())
    diff = sorted(k for k in now if saved.get(k) != now[k])
    if diff:
        detail = "; ".join(f"{k}: run has {saved.get(k)!r}, now {now[k]!r}" for k in diff)
        raise ConfigError(f"--resume {run_dir}: the arguments differ from the run's ({detail}); "
                          "start it again with the same arguments")


def _normalise(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), for comparisons with saved files."""
    return json.loads(to_json(obj))


def _write_or_check_splits(rd: RunDirectory, seed: int, splits: list[Split]) -> None:
    path = rd.splits_path(seed)
    payload = [s.to_dict() for s in splits]
    if not write_once(path, to_json(payload)) and read_json(path) != _normalise(payload):
        raise ConfigError(f"{path}: the saved splits differ from the ones seed {seed} gives now; "
                          "the data or the split options changed since the run started")


def run_experiment(opts: ExperimentOptions, dataset: ScanDataset | None = None, executor=None) -> RunResult:
    """Run (or resume) cross-validation of ``opts.model`` on ``opts.dataset``.

    ``executor`` runs the (seed, fold) units (:mod:`neurossm.pipeline.executors`; default: inline,
    in this process). With ``opts.only`` just those units run, into the shared run folder, and no
    summary is written: ``neurossm summarize RUN_DIR`` does that once every unit is there.
    """
    from ..pipeline.executors import InlineExecutor, UnitTask
    from ..pipeline.summarize import summarize_run

    executor = executor or InlineExecutor()
    info = dataset_info(opts.dataset)
    spec = get_model(opts.model)
    model_config = spec.resolve_config(opts.model_config, opts.preset)
    training = training_defaults(info.name, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr)
    if opts.analysis and not getattr(spec.cls, "supports_cpa", False):
        raise ConfigError(f"--analysis needs a model with pathways that CPA can ablate (NeuroSSM); {spec.name} has none")
    # Under torchrun, one process per rank: each trains its share, rank 0 alone writes (distributed.py).
    ranks, device = distributed.init_from_environment(resolve_device(opts.device))
    if ranks.distributed and executor.name != "inline":
        raise ConfigError(f"--executor {executor.name} under torchrun: the ranks of one torchrun job train one "
                          "unit together; run the units one after another (--executor inline) or use --only per job")

    if dataset is None:
        dataset = load_experiment_dataset(opts)
    log.info("%s: %d scans, %d subjects, %d ROIs, classes %s, crop length %d", dataset.name, len(dataset),
             len(set(dataset.subjects.tolist())), dataset.n_rois, ", ".join(dataset.class_names),
             dataset.crop_length)

    run_dir = distributed.broadcast(_run_dir_of(opts, info.name, spec.name) if ranks.is_main else None)
    rd = RunDirectory(run_dir)
    config = {
        "options": opts.fingerprint(),
        "model": {"name": spec.name, "kind": spec.kind, "config": model_config, "reference": spec.reference},
        "training": {**training.to_dict(), "crop_length": dataset.crop_length,
                     "test_policy": "logits averaged over non-overlapping windows of crop_length"},
        "dataset": {"name": info.name, "atlas": dataset.atlas, "n_rois": dataset.n_rois,
                    "class_names": list(dataset.class_names), "target": info.target},
        "versions": _versions(),
    }
    # The run's shared files are written once, by whichever process of the run comes first.
    if ranks.is_main and not write_once(run_dir / "config.json", to_json(config)) and not opts.resume:
        _check_resume(run_dir, opts)  # --only: another job of this run wrote it; same arguments?
    if ranks.is_main:
        write_once(run_dir / "dataset.json", to_json({**dataset.summary(),
                                                      "dropped": [dataclasses.asdict(d) for d in dataset.dropped],
                                                      "ground_truth": dataset.ground_truth}))
    log.info("run folder: %s", run_dir)

    all_splits = []
    for seed in opts.seeds:
        splits = make_splits(dataset, seed, opts.folds, training.val_fraction, single=opts.skip_cross_validation)
        if ranks.is_main:
            _write_or_check_splits(rd, seed, splits)
        all_splits += splits
    wanted = _select_units(all_splits, opts.only)
    # Units may run in other working directories (Ray workers, other nodes of a shared file system).
    unit_root = run_dir.absolute()
    tasks = []
    for split in wanted:
        check_disjoint(dataset, split)
        if distributed.agree(rd.fold_done(split.seed, split.fold)):
            log.info("seed %d fold %d: already done, skipped", split.seed, split.fold)
            continue
        log_path = unit_root / "logs" / f"seed_{split.seed}_fold_{split.fold}.log" if ranks.is_main else None
        tasks.append(UnitTask(split.seed, split.fold, split, log_path))
    if executor.name == "ray" and device.type == "cuda" and not executor.gpus_per_fold:
        log.warning("--device %s with --executor ray: units train where Ray places them, on the CPU unless "
                    "--gpus-per-fold reserves GPUs for them", opts.device)
    job = UnitJob(unit_root, dataclasses.replace(opts, analysis_root=str(Path(opts.analysis_root).absolute())),
                  spec, model_config, training, dataset, str(device))
    failed = []
    for i, outcome in enumerate(executor.run(fit_unit_task, job, tasks), 1):
        if outcome.ok:
            if ranks.is_main:  # the other ranks of a torchrun job only helped to train
                log.info("%s", progress_line(outcome, i, len(tasks)))
        else:
            failed.append(outcome)
            log.error("seed %d fold %d failed after %d attempt(s): %s; log: %s", outcome.task.seed,
                      outcome.task.fold, outcome.attempts, outcome.error, outcome.task.log_path)
    if not ranks.is_main or opts.only:
        return RunResult(run_dir, None, dataset, failed)
    summary = summarize_run(run_dir, partial=bool(failed))
    return RunResult(run_dir, summary, dataset, failed)


def _run_dir_of(opts: ExperimentOptions, dataset_name: str, model_name: str) -> Path:
    """The run folder: ``--resume``'s, or a new one; with ``--only``, the named one, new or not."""
    if opts.resume:
        _check_resume(Path(opts.resume), opts)
        return Path(opts.resume)
    if opts.only:
        if not opts.run_name:
            raise ConfigError("--only runs some units of a run that several jobs share: name the run with "
                              "--run-name NAME (the same in every job), or give --resume RUN_DIR")
        return Path(opts.results_root) / dataset_name / model_name / opts.run_name
    return _new_run_dir(opts, dataset_name, model_name)


def _select_units(splits: list[Split], only: tuple[tuple[int, int], ...]) -> list[Split]:
    if not only:
        return splits
    have = {(s.seed, s.fold): s for s in splits}
    unknown = [f"{s}:{f}" for s, f in only if (s, f) not in have]
    if unknown:
        raise ConfigError(f"--only {' '.join(unknown)}: not a unit of this run; its units are "
                          f"{', '.join(f'{s}:{f}' for s, f in have)} (SEED:FOLD)")
    return [have[u] for u in dict.fromkeys(only)]


@dataclass
class UnitJob:
    """What every unit of a run reads: sent once to each worker by the executor."""

    run_dir: Path
    opts: ExperimentOptions
    spec: Any
    model_config: dict[str, Any]
    training: TrainingConfig
    dataset: ScanDataset
    device: str


def fit_unit_task(job: UnitJob, task, device: str | None = None) -> dict[str, Any] | None:
    """Fit, test and write one unit (an executor's ``work``); ``device`` overrides the job's (a Ray worker's GPU)."""
    by_id = {s.scan_id: s for s in job.dataset.scans}
    return _run_fold(RunDirectory(job.run_dir), job.opts, job.spec, job.model_config, job.training, job.dataset,
                     by_id, task.split, torch.device(device or job.device))


def progress_line(outcome, index: int, total: int) -> str:
    """One line per finished unit, whichever executor ran it."""
    m = outcome.metrics["test"]
    return (f"seed {outcome.task.seed} fold {outcome.task.fold} done [{index}/{total}]: accuracy {m['accuracy']:.3f}, "
            f"balanced accuracy {m['balanced_accuracy']:.3f}, ROC-AUC {m['roc_auc']:.3f} ({outcome.seconds:.1f} s)")


def _run_fold(rd: RunDirectory, opts: ExperimentOptions, spec, model_config: dict[str, Any],
              training: TrainingConfig, dataset: ScanDataset, by_id: dict, split: Split, device) -> dict[str, Any] | None:
    t0 = time.perf_counter()
    seed_fold = split.seed * 1000 + split.fold
    est = make_estimator(spec, model_config, n_rois=dataset.n_rois, n_classes=dataset.n_classes,
                         crop_length=dataset.crop_length, training=training, device=device, seed=seed_fold)
    train = [by_id[i] for i in split.train]
    val = [by_id[i] for i in split.val]
    test = [by_id[i] for i in split.test]
    log.info("seed %d fold %d: training %s on %d scans (validation %d, test %d)", split.seed, split.fold,
             spec.name, len(train), len(val), len(test))
    est.fit([s.timeseries for s in train], np.array([s.label for s in train]),
            [s.timeseries for s in val], np.array([s.label for s in val]))
    fit_seconds = time.perf_counter() - t0
    if not distributed.current().is_main:
        return None
    probs = est.predict_proba([s.timeseries for s in test])
    test_metrics = classification_metrics([s.label for s in test], probs, dataset.n_classes)
    fold_dir = rd.fold_dir(split.seed, split.fold)
    est.save(fold_dir / est.checkpoint_name)
    if opts.analysis:
        from ..explain.cpa import explain_to_files

        sub = f"seed_{split.seed}" if opts.skip_cross_validation else f"seed_{split.seed}/fold_{split.fold}"
        explain_to_files(est.module, test, dataset, Path(opts.analysis_root) / "Explainability" / dataset.name / sub,
                         target=opts.cpa_target, crop_length=dataset.crop_length, device=device)
    selected = [h for h in est.history if h.get("selected")]
    metrics = {"seed": split.seed, "fold": split.fold, "test": test_metrics,
               "n_train": len(train), "n_val": len(val), "n_test": len(test),
               "selected_epoch": selected[0]["epoch"] if selected else None,
               "fit_seconds": fit_seconds, "checkpoint": est.checkpoint_name}
    rd.write_fold(split.seed, split.fold, metrics, predictions_frame(test, probs, dataset.class_names), est.history)
    log.debug("seed %d fold %d: test accuracy %.3f, balanced accuracy %.3f, ROC-AUC %.3f (%.1f s)", split.seed,
              split.fold, test_metrics["accuracy"], test_metrics["balanced_accuracy"], test_metrics["roc_auc"],
              time.perf_counter() - t0)
    return metrics


def summary_table(summary: dict[str, Any]) -> str:
    """The short table the command line ends with."""
    lines = [f"{summary['model']} on {summary['dataset']}: test metrics over "
             f"{summary['n_folds_done']} fold(s), mean ± std"]
    for k, v in summary["test"].items():
        lines.append(f"  {k:<18} {v['mean']:.3f} ± {v['std']:.3f}")
    lines.append(f"  results: {summary['run_dir']}")
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    import sklearn
    import torch

    return {"neurossm": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "scikit-learn": sklearn.__version__}
