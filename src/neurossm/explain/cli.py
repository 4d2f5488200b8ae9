"""``neurossm explain --run RUN_DIR``: CPA maps from a finished run, without retraining."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from ..io import read_json
from ..log import get_logger

log = get_logger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="a run folder written by `neurossm train`")
    p.add_argument("--analysis-root", default="Analysis",
                   help="maps go to ANALYSIS_ROOT/Explainability/<DATASET>/seed_<S>/[fold_<k>/] (default Analysis)")
    p.add_argument("--cpa-target", choices=("true", "pred"), default="true", help="class explained (default true)")
    p.add_argument("--data-root", default=None, help="override the run's data root (data moved since)")
    p.add_argument("--device", default="cpu", help="cpu or a GPU index")
    p.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..data.splits import Split
    from ..models.registry import get_model
    from ..training.estimators import make_estimator, resolve_device
    from ..training.results import RunDirectory
    from ..training.runner import ExperimentOptions, load_experiment_dataset, run_id_of, training_config_of
    from .cpa import check_folder_is_this_runs, explain_to_files, run_record

    rd = RunDirectory(args.run)
    cfg_path = rd.root / "config.json"
    if not cfg_path.is_file():
        raise ConfigError(f"--run {rd.root}: no config.json there; pass a folder written by `neurossm train`")
    cfg = read_json(cfg_path)
    opts = ExperimentOptions(**{**cfg["options"], "seeds": tuple(cfg["options"]["seeds"])})
    if args.data_root:
        opts.data_root = args.data_root
    spec = get_model(cfg["model"]["name"])
    if not getattr(spec.cls, "supports_cpa", False):
        raise ConfigError(f"{rd.root}: model {spec.name} has no pathways for CPA to explain")
    dataset = load_experiment_dataset(opts)
    by_id = {s.scan_id: s for s in dataset.scans}
    device = resolve_device(args.device)
    training = training_config_of(cfg)
    run_id = run_id_of(rd.root)
    check_folder_is_this_runs(Path(args.analysis_root) / "Explainability" / dataset.name, run_id,
                              f"--analysis-root {args.analysis_root}")
    n_done = 0
    for seed in opts.seeds:
        path = rd.splits_path(seed)
        if not path.is_file():
            continue
        for entry in read_json(path):
            split = Split.from_dict(entry)
            ckpt = rd.fold_dir(seed, split.fold) / "checkpoint.pt"
            if not ckpt.is_file():
                log.warning("seed %d fold %d: no checkpoint (fold unfinished?); skipped", seed, split.fold)
                continue
            missing = [i for i in split.test if i not in by_id]
            if missing:
                raise ConfigError(f"{path}: test scan(s) {missing[:5]} are not in the dataset loaded now; "
                                  "did the data change since the run?")
            est = make_estimator(spec, cfg["model"]["config"], n_rois=dataset.n_rois, n_classes=dataset.n_classes,
                                 crop_length=int(cfg["training"]["crop_length"]), training=training,
                                 device=device, seed=0)
            est.load(ckpt)
            sub = Path(f"seed_{seed}") if opts.skip_cross_validation else Path(f"seed_{seed}") / f"fold_{split.fold}"
            explain_to_files(est.module, [by_id[i] for i in split.test], dataset,
                             Path(args.analysis_root) / "Explainability" / dataset.name / sub,
                             target=args.cpa_target, crop_length=est.crop_length, device=device,
                             run=run_record(run_id, rd.root, spec.name, seed, split.fold))
            n_done += 1
    if n_done == 0:
        raise ConfigError(f"{rd.root}: no finished fold with a checkpoint to explain")
    print(f"CPA maps of {n_done} fold(s) written under {Path(args.analysis_root) / 'Explainability' / dataset.name}")
    return 0
