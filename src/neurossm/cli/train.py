"""``neurossm train`` (and ``python tester.py``): cross-validated training and testing."""

from __future__ import annotations

import argparse
from typing import Sequence

from ..errors import ConfigError
from ..log import get_logger
from ..pipeline.executors import EXECUTORS
from .common import EXIT_FAILURE

log = get_logger(__name__)

DESCRIPTION = "Cross-validated training and testing; writes Results/<DATASET>/<MODEL>/<run>/."


def _seed_list(values: Sequence[str]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The training/testing flags, shared by ``tester.py`` and ``neurossm train``."""
    g = p.add_argument_group("what to run")
    g.add_argument("--dataset", required=True, type=str.upper,
                   help="HCP_REST, HCP_TASK, PPMI, CUSTOM (your own folder) or SYNTHETIC")
    g.add_argument("--model", default="NeuroSSM",
                   help="a registered model (case-insensitive; `neurossm models` lists them). Default: NeuroSSM")
    g.add_argument("--config", nargs="+", metavar="KEY=VALUE", default=[],
                   help="model options, e.g. --config d_model=64 scales=1,2 (see `neurossm models --verbose`)")
    g.add_argument("--preset", default=None, help="a named configuration of the model (e.g. an ablation)")

    g = p.add_argument_group("data")
    g.add_argument("--data-root", default=None,
                   help="folder with the dataset's files (default Dataset/Data; for CUSTOM, the folder "
                        "holding labels.csv and one file per scan)")
    g.add_argument("--crop-length", type=int, default=None,
                   help="time points per training crop (default: the dataset's, or the shortest scan)")
    g.add_argument("--n-rois", type=int, default=None,
                   help="ROI count of your atlas (CUSTOM: decides which axis is ROI when files are transposed)")
    g.add_argument("--task-release", default=None,
                   help="HCP_TASK: keep subjects whose pheno.csv Release equals this (default Q1; 'all' keeps all)")
    g.add_argument("--data-option", nargs="+", metavar="KEY=VALUE", default=[],
                   help="further loader options, e.g. SYNTHETIC: n_scans=200 signal_form=diff n_rois=64 seed=3 "
                        "(docs/datasets.md lists each dataset's options)")

    g = p.add_argument_group("evaluation")
    g.add_argument("--seeds", nargs="+", default=["0"], metavar="S",
                   help="repeat the whole cross-validation for each seed (default: 0)")
    g.add_argument("--folds", type=int, default=5, help="outer cross-validation folds (default 5)")
    g.add_argument("--skip_cross_validation", "--skip-cross-validation", dest="skip_cross_validation",
                   action="store_true",
                   help="one train/validation/holdout split per seed instead of k folds: the holdout is fold 0 "
                        "of --folds (1/FOLDS of the subjects, e.g. 20%% with the default 5), and the "
                        "validation split is taken from the rest")
    g.add_argument("--epochs", type=int, default=None, help="training epochs (default: per dataset)")
    g.add_argument("--batch-size", type=int, default=None, help="scans per step (default: per dataset)")
    g.add_argument("--lr", type=float, default=None, help="peak learning rate (default: per dataset)")
    g.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (default: per dataset)")
    g.add_argument("--patience", type=int, default=None,
                   help="early stopping after this many epochs without a better validation score; 0: none "
                        "(default: per dataset)")

    g = p.add_argument_group("output")
    g.add_argument("--results-root", default="Results", help="results go to RESULTS_ROOT/<DATASET>/<MODEL>/<run>/")
    g.add_argument("--run-name", default=None, help="name of the run folder (default: run-<UTC time>)")
    g.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue a killed run at its first unfinished fold (same arguments)")
    g.add_argument("--analysis", action="store_true",
                   help="write CPA maps of the test scans to ANALYSIS_ROOT/Explainability/<DATASET>/seed_<S>/")
    g.add_argument("--analysis-root", default="Analysis", help="default: Analysis")
    g.add_argument("--cpa-target", choices=("true", "pred"), default="true",
                   help="class explained by CPA: the true label (default) or the prediction")

    g = p.add_argument_group("scale-out (docs/scaling.md)")
    g.add_argument("--executor", choices=EXECUTORS, default="inline",
                   help="who runs the (seed, fold) units: inline (default, one after another in this process) "
                        "or ray (Ray tasks; needs the neurossm[ray] extra)")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="join the Ray cluster at ADDR (default: start a local Ray instance for this run)")
    g.add_argument("--ray-num-cpus", type=int, default=None, metavar="N",
                   help="CPUs of the local Ray instance (default: all of this machine's)")
    g.add_argument("--cpus-per-fold", type=int, default=1, metavar="N", help="CPUs per unit on Ray, and the unit's threads (default 1)")
    g.add_argument("--gpus-per-fold", type=float, default=0, metavar="G", help="GPUs per unit on Ray (default 0)")
    g.add_argument("--only", nargs="+", default=[], metavar="SEED:FOLD",
                   help="run only these units into the shared run folder named by --run-name or --resume "
                        "(one Slurm array task each); then `neurossm summarize RUN_DIR`")


def _units(values: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """``--only 0:3 1:0`` as ((seed, fold), ...)."""
    units = []
    for v in values:
        seed, sep, fold = v.partition(":")
        if not sep or not seed.strip().lstrip("-").isdigit() or not fold.strip().isdigit():
            raise ConfigError(f"--only {v}: expected SEED:FOLD, e.g. --only 0:3 (seed 0, fold 3)")
        units.append((int(seed), int(fold)))
    return tuple(units)


def options_from_args(args: argparse.Namespace):
    """The :class:`~neurossm.pipeline.options.ExperimentOptions` that the flags describe."""
    from ..config import parse_overrides
    from ..pipeline import ExperimentOptions

    dataset_options = parse_overrides(args.data_option)
    if args.task_release is not None:
        dataset_options["task_release"] = None if args.task_release.lower() == "all" else args.task_release
    return ExperimentOptions(
        dataset=args.dataset, model=args.model, data_root=args.data_root, results_root=args.results_root,
        run_name=args.run_name, resume=args.resume, seeds=_seed_list(args.seeds), folds=args.folds,
        device=args.device, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, patience=args.patience,
        crop_length=args.crop_length, n_rois=args.n_rois, skip_cross_validation=args.skip_cross_validation,
        analysis=args.analysis, analysis_root=args.analysis_root, cpa_target=args.cpa_target,
        preset=args.preset, only=_units(args.only), model_config=parse_overrides(args.config), dataset_options=dataset_options,
    )


def run(args: argparse.Namespace) -> int:
    from ..pipeline import run_experiment, summary_table
    from ..pipeline.executors import make_executor
    from ..training import distributed

    executor = make_executor(args.executor, ray_address=args.ray_address, cpus_per_fold=args.cpus_per_fold,
                             gpus_per_fold=args.gpus_per_fold, ray_num_cpus=args.ray_num_cpus)
    try:
        result = run_experiment(options_from_args(args), executor=executor)
    finally:
        distributed.shutdown()
    if result.summary is not None:
        print(summary_table(result.summary))
    if result.failed:
        for o in result.failed:
            log.error("unit seed %d fold %d failed: %s (log: %s)", o.task.seed, o.task.fold, o.error, o.task.log_path)
        log.error("%d unit(s) failed; the others are kept. Finish the run with --resume %s", len(result.failed),
                  result.run_dir)
        return EXIT_FAILURE
    return 0
