"""A run: load → split → fit each (seed, fold) unit → explain → summarise → report; resumable unit by unit.

The run's shared files (``config.json``, ``dataset.json``, ``splits/``) are written before any
unit starts; each unit (:func:`neurossm.pipeline.unit.fit_unit`) writes only its own folders; the
summary and the report come after all units have finished.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..data.registry import get_dataset, training_defaults
from ..data.scans import ScanDataset
from ..data.splits import Split, check_disjoint, make_splits
from ..errors import ConfigError
from ..explain.contract import check_explainable
from ..explain import files as cpa_files
from ..io import check_writable, to_json
from ..log import get_logger
from ..models.registry import get_model
from ..training.device import resolve_device
from ..training.results import RunDirectory
from .options import ExperimentOptions, load_experiment_dataset
from .unit import UnitContext, fit_unit

log = get_logger(__name__)


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    dataset: ScanDataset


def _new_run_dir(opts: ExperimentOptions, dataset_name: str, model_name: str) -> Path:
    name = opts.run_name or datetime.now(timezone.utc).strftime("run-%Y%m%d-%H%M%S")
    path = Path(opts.results_root) / dataset_name / model_name / name
    if RunDirectory(path).config_path.exists():
        raise ConfigError(f"{path} already holds a run; pass --resume {path} to continue it, or another --run-name")
    return path


def _check_resume(run_dir: Path, opts: ExperimentOptions) -> None:
    rd = RunDirectory(run_dir)
    if not rd.config_path.is_file():
        raise ConfigError(f"--resume {run_dir}: no config.json there; is it a run folder?")
    saved = rd.read_config()["options"]
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
    payload = [s.to_dict() for s in splits]
    saved = rd.read_splits(seed)
    if saved is None:
        rd.write_splits(seed, payload)
    elif saved != _normalise(payload):
        raise ConfigError(f"{rd.splits_path(seed)}: the saved splits differ from the ones seed {seed} gives now; "
                          "the data or the split options changed since the run started")


def run_experiment(opts: ExperimentOptions, dataset: ScanDataset | None = None) -> RunResult:
    """Run (or resume) cross-validation of ``opts.model`` on ``opts.dataset``."""
    info = get_dataset(opts.dataset)
    spec = get_model(opts.model)
    model_config = spec.resolve_config(opts.model_config, opts.preset)
    training = training_defaults(info.name, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr)
    if opts.analysis:
        check_explainable(spec.cls, spec.name)
    device = resolve_device(opts.device)

    if dataset is None:
        dataset = load_experiment_dataset(opts)
    log.info("%s: %d scans, %d subjects, %d ROIs, classes %s, crop length %d", dataset.name, len(dataset),
             len(set(dataset.subjects.tolist())), dataset.n_rois, ", ".join(dataset.class_names),
             dataset.crop_length)

    # Everything that can be checked is checked before the run folder exists: a refused run leaves
    # no folder behind that would block its name or refuse a corrected --resume.
    splits_by_seed = {seed: make_splits(dataset, seed, opts.folds, training.val_fraction,
                                        single=opts.skip_cross_validation) for seed in opts.seeds}
    # The constructor's own checks (choices, a crop too short for the model) before any training.
    spec.build(dataset.n_rois, dataset.n_classes, dataset.crop_length, model_config)
    run_dir = Path(opts.resume) if opts.resume else _new_run_dir(opts, info.name, spec.name)
    if opts.resume:
        _check_resume(run_dir, opts)
    else:
        check_writable(run_dir, f"--results-root {opts.results_root}")
    rd = RunDirectory(run_dir)
    run_id = rd.run_id() if opts.resume else uuid.uuid4().hex[:12]
    if opts.analysis:
        cpa_files.check_folder_is_this_runs(cpa_files.dataset_dir(opts.analysis_root, dataset.name), run_id,
                                            f"--analysis-root {opts.analysis_root}")
    # A folder is removed on failure only when it is a run's: made now, or a run folder being resumed.
    ours = bool(opts.resume) or not run_dir.exists()
    try:
        return _run_units(opts, info, spec, model_config, training, dataset, device, rd, splits_by_seed, run_id)
    except Exception:
        if ours and not rd.completed_folds() and run_dir.is_dir():
            # Nothing finished is lost; keeping the folder would block --run-name and refuse --resume.
            shutil.rmtree(run_dir)
            log.error("the run failed before any fold finished; removed %s", run_dir)
        raise


def _run_units(opts: ExperimentOptions, info, spec, model_config: dict[str, Any], training, dataset: ScanDataset,
               device, rd: RunDirectory, splits_by_seed: dict[int, list[Split]], run_id: str) -> RunResult:
    """Write the run's shared files, fit every unfinished unit, summarise and report."""
    run_dir = rd.root
    header = {"dataset": info.name, "model": spec.name, "run_dir": str(run_dir)}
    config = {
        # Recorded in every CPA file of the run, so that maps of two runs are never pooled unknowingly.
        "run_id": run_id,
        "options": opts.fingerprint(),
        "model": {"name": spec.name, "kind": spec.kind, "config": model_config, "reference": spec.reference},
        "training": {**training.to_dict(), "crop_length": dataset.crop_length,
                     "test_policy": "logits averaged over non-overlapping windows of crop_length"
                     if spec.kind == "torch"
                     else "features of the whole scan; fitted on the whole training fold (train + validation)"},
        "dataset": {"name": info.name, "atlas": dataset.atlas, "n_rois": dataset.n_rois,
                    "class_names": list(dataset.class_names), "target": info.target},
        "versions": _versions(),
    }
    if not opts.resume:
        rd.write_config(config)
    rd.write_dataset({**dataset.summary(),
                                          "dropped": [dataclasses.asdict(d) for d in dataset.dropped],
                                          "ground_truth": dataset.ground_truth})
    log.info("run folder: %s", run_dir)

    ctx = UnitContext(dataset=dataset, spec=spec, model_config=model_config, training=training, device=device,
                      run=rd, analysis_root=Path(opts.analysis_root) if opts.analysis else None,
                      cpa_target=opts.cpa_target, holdout=opts.skip_cross_validation, run_id=run_id)
    expected = 0
    for seed, splits in splits_by_seed.items():
        _write_or_check_splits(rd, seed, splits)
        expected += len(splits)
        for split in splits:
            check_disjoint(dataset, split)
            if rd.fold_done(seed, split.fold):
                log.info("seed %d fold %d: already done, skipped", seed, split.fold)
                continue
            fit_unit(ctx, split)
    summary = rd.summarise(header, expected)
    from ..report import build_report

    build_report(run_dir)
    return RunResult(run_dir, summary, dataset)


def summary_table(summary: dict[str, Any]) -> str:
    """The short table the command line ends with."""
    lines = [f"{summary['model']} on {summary['dataset']}: test metrics over "
             f"{summary['n_folds_done']} fold(s), mean ± std"]
    defined = summary.get("n_folds_defined", {})
    for k, v in summary["test"].items():
        n = defined.get(k, summary["n_folds_done"])
        note = "" if n == summary["n_folds_done"] else (
            f"   over the {n} of {summary['n_folds_done']} folds where it is defined"
            + (" (undefined on a test fold holding one class)" if k == "roc_auc" else ""))
        label = f"{k} (macro)" if k in ("precision", "recall") else k
        lines.append(f"  {label:<18} {v['mean']:.3f} ± {v['std']:.3f}{note}")
    lines.append(f"  results: {summary['run_dir']}")
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    import sklearn
    import torch

    return {"neurossm": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "scikit-learn": sklearn.__version__}
