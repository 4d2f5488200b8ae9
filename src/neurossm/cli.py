"""The ``neurossm`` command: train, explain, reference, prep, demo, report, compare, models.

``python tester.py ...`` is ``neurossm train ...`` with the original tool's flags.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from .errors import NeuroSSMError
from .log import get_logger, setup_logging

log = get_logger(__name__)


def _seed_list(values: Sequence[str]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The training/testing flags, shared by ``tester.py`` and ``neurossm train``."""
    g = p.add_argument_group("what to run")
    g.add_argument("--dataset", required=True, type=str.upper,
                   help="HCP_REST, HCP_TASK, PPMI, CUSTOM (your own folder) or SYNTHETIC")
    g.add_argument("--model", default="NeuroSSM",
                   help="a registered model (case-insensitive; `neurossm models` lists them). Default: NeuroSSM")
    g.add_argument("--config", nargs="+", metavar="KEY=VALUE", default=[],
                   help="model options, e.g. --config d_model=64 scales=1,2 (see `neurossm models --verbose`)")
    g.add_argument("--preset", default=None, help="a named configuration of the model (e.g. an ablation)")
    g.add_argument("--device", default="auto",
                   help="GPU index (0), cuda:N, cpu, or auto (GPU 0 when CUDA is available). "
                        "Without CUDA a GPU request warns and uses the CPU")

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
                   action="store_true", help="one train/validation/holdout split per seed instead of k folds")
    g.add_argument("--epochs", type=int, default=None, help="training epochs (default: per dataset)")
    g.add_argument("--batch-size", type=int, default=None, help="scans per step (default: per dataset)")
    g.add_argument("--lr", type=float, default=None, help="peak learning rate (default: per dataset)")

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
    g.add_argument("--quiet", action="store_true", help="print warnings and the final table only")
    g.add_argument("--verbose", action="store_true", help="debug logging")


def device_flag(device: str) -> str:
    """``--device auto`` becomes GPU 0 when CUDA is available, else ``cpu``; other values pass through."""
    if device == "auto":
        import torch

        return "0" if torch.cuda.is_available() else "cpu"
    return str(device)


def options_from_args(args: argparse.Namespace):
    from .config import parse_overrides
    from .training.runner import ExperimentOptions

    device = device_flag(args.device)
    dataset_options = parse_overrides(args.data_option)
    if args.task_release is not None:
        dataset_options["task_release"] = None if args.task_release.lower() == "all" else args.task_release
    return ExperimentOptions(
        dataset=args.dataset, model=args.model, data_root=args.data_root, results_root=args.results_root,
        run_name=args.run_name, resume=args.resume, seeds=_seed_list(args.seeds), folds=args.folds,
        device=device, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        crop_length=args.crop_length, n_rois=args.n_rois, skip_cross_validation=args.skip_cross_validation,
        analysis=args.analysis, analysis_root=args.analysis_root, cpa_target=args.cpa_target,
        preset=args.preset, model_config=parse_overrides(args.config), dataset_options=dataset_options,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from .training.runner import run_experiment, summary_table

    result = run_experiment(options_from_args(args))
    print(summary_table(result.summary))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models.registry import get_model, list_models

    for name in list_models():
        spec = get_model(name)
        print(f"{spec.name:<12} {spec.description}")
        if args.verbose:
            if spec.reference:
                print(f"{'':<12} reference: {spec.reference}")
            for k, v in spec.defaults().items():
                print(f"{'':<12}   {k} = {v!r}")
            for k, v in spec.presets.items():
                print(f"{'':<12}   preset {k}: {v}")
    if args.verbose:
        from .config import describe_training_defaults

        print("\ntraining defaults of the gradient-trained models, per dataset (--epochs, --lr, "
              "--batch-size override them):")
        for line in describe_training_defaults():
            print(f"  {line}")
    return 0


def _optional(module: str) -> tuple[Callable | None, Callable | None]:
    """``add_arguments`` and ``run`` of a subcommand module, or ``None`` when it is not there."""
    import importlib

    try:
        mod = importlib.import_module(f"neurossm.{module}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("neurossm"):
            return None, None
        raise
    return getattr(mod, "add_arguments", None), getattr(mod, "run", None)


SUBCOMMANDS = {
    # name: (module with add_arguments/run, help)
    "explain": ("explain.cli", "recompute CPA maps from a finished run's checkpoints and splits"),
    "reference": ("reference.cli", "score CPA maps against Neurosynth reference maps; write NIfTI maps"),
    "prep": ("prep.cli", "extract ROI time series from 4D NIfTI files into the CUSTOM layout"),
    "demo": ("demo", "the offline end-to-end demo on synthetic data in a real atlas"),
    "report": ("report.cli", "rebuild report.html of a run folder"),
    "compare": ("compare", "compare finished runs: metrics and paired tests over shared folds"),
}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="neurossm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"neurossm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("train", help="cross-validated training and testing (what tester.py runs)",
                       description="Cross-validated training and testing; writes Results/<DATASET>/<MODEL>/<run>/.")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("models", help="list registered models")
    p.add_argument("--verbose", action="store_true", help="show each model's options and presets")
    p.set_defaults(func=cmd_models)
    for name, (module, help_text) in SUBCOMMANDS.items():
        add_arguments, run = _optional(module)
        if add_arguments is None or run is None:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(func=run)
    return parser


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    setup_logging(quiet=getattr(args, "quiet", False), verbose=getattr(args, "verbose", False))
    try:
        return int(args.func(args) or 0)
    except NeuroSSMError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted; finished folds are kept (continue with --resume RUN_DIR)")
        return 130


def tester_main(argv: Sequence[str] | None = None) -> int:
    """``python tester.py``: the original tool's command line, same flags as ``neurossm train``."""
    parser = argparse.ArgumentParser(
        prog="tester.py",
        description="Train and test a model with subject-grouped cross-validation over seeds "
                    "(same as `neurossm train`).")
    add_train_arguments(parser)
    parser.set_defaults(func=cmd_train)
    return main(argv, parser)


if __name__ == "__main__":
    sys.exit(main())
