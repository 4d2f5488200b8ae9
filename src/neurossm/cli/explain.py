"""``neurossm explain --run RUN_DIR``: CPA maps from a finished run, without retraining."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..log import get_logger

log = get_logger(__name__)

DEVICE_DEFAULT = "cpu"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="a run folder written by `neurossm train`")
    p.add_argument("--analysis-root", default="Analysis",
                   help="maps go to ANALYSIS_ROOT/Explainability/<DATASET>/seed_<S>/[fold_<k>/] (default Analysis)")
    p.add_argument("--cpa-target", choices=("true", "pred"), default="true", help="class explained (default true)")
    p.add_argument("--data-root", default=None, help="override the run's data root (data moved since)")


def run(args: argparse.Namespace) -> int:
    from ..data.splits import Split
    from ..explain.contract import check_explainable
    from ..explain.files import check_folder_is_this_runs, dataset_dir
    from ..pipeline.unit import UnitContext, explain_unit, load_unit
    from ..training.results import RunDirectory, check_run_files

    if RunDirectory(args.run).config_path.is_file():
        check_run_files(RunDirectory(args.run))  # a damaged file named before the dataset is loaded
    ctx = UnitContext.from_run(args.run, data_root=args.data_root, device=args.device,
                               analysis_root=args.analysis_root, cpa_target=args.cpa_target)
    check_explainable(ctx.spec.cls, ctx.spec.name)
    check_folder_is_this_runs(dataset_dir(args.analysis_root, ctx.dataset.name), ctx.run_id,
                              f"--analysis-root {args.analysis_root}")
    seeds = ctx.run.read_config()["options"]["seeds"]
    n_done = 0
    for seed in seeds:
        for entry in ctx.run.read_splits(seed) or []:
            split = Split.from_dict(entry)
            est = load_unit(ctx, split)
            if est is None:
                log.warning("seed %d fold %d: no checkpoint (fold unfinished?); skipped", seed, split.fold)
                continue
            explain_unit(ctx, est, split)
            n_done += 1
    if n_done == 0:
        raise ConfigError(f"{ctx.run.root}: no finished fold with a checkpoint to explain")
    print(f"CPA maps of {n_done} fold(s) written under {dataset_dir(args.analysis_root, ctx.dataset.name)}")
    return 0
