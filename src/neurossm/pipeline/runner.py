"""A run: load → split → fit each (seed, fold) unit → explain → summarise → report; resumable unit by unit.

The run's shared files (``config.json``, ``dataset.json``, ``splits/``) are written once, before
any unit starts, by whichever process of the run comes first; each unit
(:func:`neurossm.pipeline.unit.fit_unit`) writes only its own folders; an executor
(:mod:`.executors`) decides where the units run; the summary and the report
(:mod:`.summarize`) come after all units have finished. Under ``torchrun`` every rank runs this,
each unit is trained by all ranks together, and rank 0 alone writes
(:mod:`neurossm.training.distributed`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

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
from ..training import distributed
from ..training.device import resolve_device
from ..training.results import RunDirectory, check_run_files
from .executors import InlineExecutor, UnitOutcome, UnitTask
from .options import ExperimentOptions, load_experiment_dataset
from .summarize import summarize_run
from .unit import UnitContext, fit_unit

log = get_logger(__name__)


@dataclass
class RunResult:
    """A finished run; ``summary`` is ``None`` with ``--only`` and on the ranks > 0 of a torchrun job.

    ``failed`` lists the units that did not finish (their error and log file).
    """

    run_dir: Path
    summary: dict[str, Any] | None
    dataset: ScanDataset
    failed: list[UnitOutcome] = field(default_factory=list)


def _new_run_dir(opts: ExperimentOptions, dataset_name: str, model_name: str) -> Path:
    name = opts.run_name or datetime.now(timezone.utc).strftime("run-%Y%m%d-%H%M%S")
    path = Path(opts.results_root) / dataset_name / model_name / name
    if RunDirectory(path).config_path.exists():
        raise _already_a_run(path)
    return path


def _already_a_run(path: Path) -> ConfigError:
    return ConfigError(f"{path} already holds a run; pass --resume {path} to continue it, or another --run-name")


def _check_resume(run_dir: Path, opts: ExperimentOptions) -> None:
    rd = RunDirectory(run_dir)
    if not rd.config_path.is_file():
        raise ConfigError(f"--resume {run_dir}: no config.json there; is it a run folder?")
    check_run_files(rd)  # before any fold trains: a damaged file is named now, not after the last fold
    rd.check_model_format()
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
    if not rd.write_splits(seed, payload) and rd.read_splits(seed) != _normalise(payload):
        raise ConfigError(f"{rd.splits_path(seed)}: the saved splits differ from the ones seed {seed} gives now; "
                          "the data or the split options changed since the run started")


def run_experiment(opts: ExperimentOptions, dataset: ScanDataset | None = None, executor=None) -> RunResult:
    """Run (or resume) cross-validation of ``opts.model`` on ``opts.dataset``.

    ``executor`` runs the (seed, fold) units (:mod:`.executors`; default: inline, in this
    process). With ``opts.only`` just those units run, into the shared run folder, and no summary
    is written: ``neurossm summarize RUN_DIR`` does that once every unit is there.
    """
    executor = executor or InlineExecutor()
    info = get_dataset(opts.dataset)
    spec = get_model(opts.model)
    model_config = spec.resolve_config(opts.model_config, opts.preset)
    training = training_defaults(info.name, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr,
                                 weight_decay=opts.weight_decay, patience=opts.patience)
    if opts.analysis:
        check_explainable(spec.cls, spec.name)
    # Under torchrun, one process per rank: each trains its share, rank 0 alone writes.
    ranks, device = distributed.init_from_environment(resolve_device(opts.device))
    if ranks.distributed and executor.name != "inline":
        raise ConfigError(f"--executor {executor.name} under torchrun: the ranks of one torchrun job train one "
                          "unit together; run the units one after another (--executor inline) or use --only per job")

    if dataset is None:
        dataset = load_experiment_dataset(opts)
    log.info("%s: %d scans, %d subjects, %d ROIs, classes %s, crop length %d", dataset.name, len(dataset),
             len(set(dataset.subjects.tolist())), dataset.n_rois, ", ".join(dataset.class_names),
             dataset.crop_length)

    # Everything that can be checked is checked before the run folder exists: a refused run leaves
    # no folder behind that would block its name or refuse a corrected --resume.
    splits_by_seed = {seed: make_splits(dataset, seed, opts.folds, training.val_fraction,
                                        single=opts.skip_cross_validation) for seed in opts.seeds}
    _select_units([s for splits in splits_by_seed.values() for s in splits], opts.only)
    # The constructor's own checks (choices, a crop too short for the model) before any training.
    _build_once(spec, dataset, model_config, opts)
    # Rank 0 names the run (the default name is a timestamp), checks it and claims it before anyone
    # writes there; a new run's folder is made by exactly one process (os.mkdir fails for the other).
    created = False
    if ranks.is_main:
        run_dir = _run_dir_of(opts, info.name, spec.name)
        shared = RunDirectory(run_dir).config_path.is_file()  # --resume, or an --only job after the first
        if not shared:
            check_writable(run_dir, f"--results-root {opts.results_root}")
        # A new run's id; a run that exists keeps the one in its config.json (every --only job of it too).
        run_id = RunDirectory(run_dir).run_id() if shared else uuid.uuid4().hex[:12]
        if opts.analysis:
            cpa_files.check_folder_is_this_runs(cpa_files.dataset_dir(opts.analysis_root, dataset.name), run_id,
                                                f"--analysis-root {opts.analysis_root}")
        if not shared and not opts.only:
            run_dir = _claim_run_dir(run_dir, numbered=not opts.run_name)
            created = True
    run_dir, run_id = distributed.broadcast((run_dir, run_id) if ranks.is_main else None)
    rd = RunDirectory(run_dir)
    try:
        return _run_units(opts, info, spec, model_config, training, dataset, device, ranks, executor, rd,
                          splits_by_seed, run_id)
    except KeyboardInterrupt:
        if ranks.is_main:
            _after_interrupt(rd, created)
        raise
    except Exception:
        # Only a folder this process made is removed (never one a concurrent run or an --only job
        # made, nor a resumed one), and only while nothing in it is finished: keeping it would
        # block --run-name and refuse --resume.
        if created and not rd.completed_folds() and run_dir.is_dir():
            shutil.rmtree(run_dir)
            log.error("the run failed before any fold finished; removed %s", run_dir)
        raise


def _build_once(spec, dataset: ScanDataset, model_config: dict[str, Any], opts: ExperimentOptions) -> None:
    """A trial build; a crop the model refuses is traced to the scans that set it."""
    try:
        spec.build(dataset.n_rois, dataset.n_classes, dataset.crop_length, model_config)
    except ConfigError as exc:
        if opts.crop_length is not None or "crop" not in str(exc):
            raise
        shortest = sorted((s for s in dataset.scans if s.n_times == dataset.crop_length), key=lambda s: s.scan_id)
        names = ", ".join(f"{s.scan_id} ({s.meta.get('source', dataset.name)})" for s in shortest[:5])
        raise ConfigError(f"{exc}. The crop length {dataset.crop_length} is the shortest scan's: {names}"
                          f"{' and more' if len(shortest) > 5 else ''}. Drop the scans too short for {spec.name}, "
                          "or pass a --crop-length it accepts (shorter scans are then left out)") from None


def _claim_run_dir(path: Path, numbered: bool) -> Path:
    """Make a new run's folder, failing if it exists; a default (timestamp) name gets a number instead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    candidates = [path, *(path.with_name(f"{path.name}-{i}") for i in range(2, 100))] if numbered else [path]
    for candidate in candidates:
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            continue
    if RunDirectory(path).config_path.exists():
        raise _already_a_run(path)
    raise ConfigError(f"{path} exists but holds no run: another `neurossm train` may be starting into it right now, "
                      "or it is a folder of your own. Pass another --run-name (or remove the folder if no run is "
                      "starting there)")


def _after_interrupt(rd: RunDirectory, created: bool) -> None:
    done = rd.completed_folds()
    if created and not done and rd.root.is_dir():
        shutil.rmtree(rd.root)
        log.error("interrupted before any fold finished; removed %s (nothing was lost)", rd.root)
    elif rd.config_path.is_file():
        log.error("interrupted: %d finished fold(s) are kept in %s; continue with --resume %s", len(done), rd.root,
                  rd.root)


def _run_units(opts: ExperimentOptions, info, spec, model_config: dict[str, Any], training, dataset: ScanDataset,
               device, ranks, executor, rd: RunDirectory, splits_by_seed: dict[int, list[Split]],
               run_id: str) -> RunResult:
    """Write the run's shared files, fit the unfinished units, summarise and report."""
    run_dir = rd.root
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
        # Where the CPA files go (absolute: the report looks there whatever its working directory).
        "analysis": {"root": str(Path(opts.analysis_root).absolute())} if opts.analysis else None,
        "versions": _versions(),
    }
    if ranks.is_main:
        # Written once, by whichever process of the run comes first; --only jobs check they agree.
        if not rd.write_config(config) and not opts.resume:
            _check_resume(run_dir, opts)
        rd.write_dataset({**dataset.summary(), "dropped": [dataclasses.asdict(d) for d in dataset.dropped],
                          "ground_truth": dataset.ground_truth})
    # Two --only jobs may have started the run together: the id is the one that reached config.json.
    run_id = distributed.broadcast(rd.run_id() if ranks.is_main else None)
    log.info("run folder: %s", run_dir)

    all_splits = []
    for seed, splits in splits_by_seed.items():
        if ranks.is_main:
            _write_or_check_splits(rd, seed, splits)
        all_splits += splits
    # Units may run in other working directories (Ray workers; other nodes of a shared file system).
    unit_rd = RunDirectory(run_dir.absolute())
    tasks = []
    for split in _select_units(all_splits, opts.only):
        check_disjoint(dataset, split)
        if distributed.agree(rd.fold_done(split.seed, split.fold)):
            log.info("seed %d fold %d: already done, skipped", split.seed, split.fold)
            continue
        log_path = unit_rd.unit_log_path(split.seed, split.fold) if ranks.is_main else None
        tasks.append(UnitTask(split.seed, split.fold, split, log_path))
    if executor.name == "ray" and device.type == "cuda" and not executor.gpus_per_fold:
        log.warning("--device %s with --executor ray: units train where Ray places them, on the CPU unless "
                    "--gpus-per-fold reserves GPUs for them", opts.device)
    ctx = UnitContext(dataset=dataset, spec=spec, model_config=model_config, training=training, device=device,
                      run=unit_rd, analysis_root=Path(opts.analysis_root).absolute() if opts.analysis else None,
                      cpa_target=opts.cpa_target, holdout=opts.skip_cross_validation, run_id=run_id)
    failed = []
    for i, outcome in enumerate(executor.run(fit_unit_task, ctx, tasks), 1):
        if not outcome.ok:
            failed.append(outcome)
            log.error("seed %d fold %d failed after %d attempt(s): %s; log: %s", outcome.task.seed,
                      outcome.task.fold, outcome.attempts, outcome.error, outcome.task.log_path)
        elif ranks.is_main:  # the other ranks of a torchrun job only helped to train
            log.info("%s", progress_line(outcome, i, len(tasks)))
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


def fit_unit_task(ctx: UnitContext, task: UnitTask, device: str | None = None) -> dict[str, Any] | None:
    """An executor's unit of work: :func:`fit_unit` on the task's split, returning its metrics.

    ``device`` overrides the context's (a Ray worker trains on the GPU Ray gave it).
    """
    if device is not None:
        ctx = dataclasses.replace(ctx, device=torch.device(device))
    return fit_unit(ctx, task.split).metrics


def progress_line(outcome: UnitOutcome, index: int, total: int) -> str:
    """One line per finished unit, whichever executor ran it."""
    m = outcome.metrics["test"]
    return (f"seed {outcome.task.seed} fold {outcome.task.fold} done [{index}/{total}]: accuracy {m['accuracy']:.3f}, "
            f"balanced accuracy {m['balanced_accuracy']:.3f}, ROC-AUC {m['roc_auc']:.3f} ({outcome.seconds:.1f} s)")


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
