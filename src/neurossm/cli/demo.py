"""``neurossm demo``: the offline end-to-end demo (:mod:`neurossm.pipeline.demo` does the work)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _device_name(device) -> str:
    """``cpu``, or the GPU index as the train flags spell it (``0``)."""
    return "cpu" if device.type == "cpu" else str(device.index or 0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..pipeline.demo import DemoOptions

    d = DemoOptions()
    p.add_argument("--out", type=Path, default=d.out, help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the synthetic data (default: %(default)s)")
    p.add_argument("--n-scans", type=int, default=d.n_scans, help="scans (default: %(default)s)")
    p.add_argument("--n-subjects", type=int, default=d.n_subjects,
                   help="subjects the scans belong to (default: %(default)s, two scans each)")
    p.add_argument("--n-times", type=int, default=d.n_times, help="time points per scan (default: %(default)s)")
    p.add_argument("--crop-length", type=int, default=d.crop_length,
                   help="training crop length (default: %(default)s, PPMI's)")
    p.add_argument("--signal-form", choices=("diff", "raw"), default=d.signal_form,
                   help="class signal: abrupt level shifts (diff) or a slow fluctuation (raw) (default: %(default)s)")
    p.add_argument("--scale", type=int, default=d.scale, help="temporal scale of the signal (default: %(default)s)")
    p.add_argument("--amplitude", type=float, default=d.amplitude,
                   help="signal-to-noise ratio inside a signal region (default: %(default)s)")
    p.add_argument("--rois-per-class", type=int, default=d.rois_per_class,
                   help="regions carrying each class's signal (default: %(default)s)")
    p.add_argument("--folds", type=int, default=d.folds, help="cross-validation folds (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(d.seeds), help="CV seeds (default: 0)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="NeuroSSM training epochs (default: %(default)s)")
    p.add_argument("--config", nargs="+", metavar="KEY=VALUE", default=None,
                   help="NeuroSSM options (default: d_model=32, the rest NeuroSSM's defaults)")
    p.add_argument("--n-perm", type=int, default=d.n_perm, help="permutations of the reference test (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from ..config import parse_overrides
    from ..pipeline.demo import DemoOptions, console_table, run_demo
    from ..training.device import resolve_device

    opts = DemoOptions(
        out=args.out, seed=args.seed, n_scans=args.n_scans, n_subjects=args.n_subjects, n_times=args.n_times,
        crop_length=args.crop_length, signal_form=args.signal_form, scale=args.scale, amplitude=args.amplitude,
        rois_per_class=args.rois_per_class, folds=args.folds, seeds=tuple(args.seeds), epochs=args.epochs,
        device=_device_name(resolve_device(args.device)), n_perm=args.n_perm,
        **({"model_config": parse_overrides(args.config)} if args.config else {}),
    )
    summary = run_demo(opts)
    print(console_table(summary))
    return 0
