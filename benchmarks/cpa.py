"""Does CPA find what was planted, and what does it cost? Prints JSON.

Two measurements:

``recovery``
    For each planted form (``diff``: abrupt level shifts, on blocks of ``--diff-scale`` samples;
    ``raw``: a slow fluctuation at ``--raw-scale``), a SYNTHETIC dataset (``--n-scans`` × ``--n-rois`` ×
    ``--n-times``) is split once, subject-grouped and stratified (train / validation / holdout,
    as ``--skip_cross_validation`` does); NeuroSSM is trained on the training side with the
    harness' defaults for SYNTHETIC, and CPA (true class) explains the holdout scans. Reported per
    class: recall of the planted ROIs in the top quarter of the class-mean ``cpa_score`` and the
    pathway agreement, both from :func:`neurossm.reference.recovery.planted_recovery`, with the
    holdout accuracy and the class' mean pathway importance.
``speed``
    CPA extraction of one batch of ``--batch-size`` scans at the HCP-Rest shape (400 ROIs × 600
    time points, one window per scan) with the default NeuroSSM (untrained: cost does not depend
    on the weights), against one plain forward + backward pass (target logits summed, gradients
    of the weights) of the same batch. Median of ``--repeats`` after one warm-up.

Usage::

    nice -n 10 python benchmarks/cpa.py                      # both parts, default sizes
    python benchmarks/cpa.py --skip-speed --n-scans 120 --n-rois 32 --n-times 200
    python benchmarks/cpa.py --skip-recovery --batch-size 4 --threads 2

This is a measurement script, never part of the tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np
import torch


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-scans", type=int, default=200)
    p.add_argument("--n-rois", type=int, default=64)
    p.add_argument("--n-times", type=int, default=300)
    p.add_argument("--n-signal-rois", type=int, default=4, help="planted ROIs per class")
    # At amplitude 1 the raw form's class1 recall is 0.5 (docs/cpa.md); at 2 both forms are recovered.
    p.add_argument("--amplitude", type=float, default=2.0)
    p.add_argument("--diff-scale", type=int, default=1, help="samples per block of the diff form's level")
    p.add_argument("--raw-scale", type=int, default=4, help="period multiplier of the raw form")
    p.add_argument("--forms", nargs="+", default=["diff", "raw"], choices=("diff", "raw"))
    p.add_argument("--epochs", type=int, default=None, help="default: the harness' SYNTHETIC default")
    p.add_argument("--config", nargs="+", default=[], metavar="KEY=VALUE", help="NeuroSSM options")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8, help="scans per CPA batch (speed part)")
    p.add_argument("--speed-rois", type=int, default=400)
    p.add_argument("--speed-times", type=int, default=600)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine may be shared)")
    p.add_argument("--skip-recovery", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    return p.parse_args()


def recovery(args: argparse.Namespace, form: str) -> dict:
    from neurossm.config import parse_overrides
    from neurossm.data.registry import training_defaults
    from neurossm.data.splits import make_splits
    from neurossm.data.synthetic import make_synthetic
    from neurossm.explain.cpa import explain_scan_batch
    from neurossm.reference.recovery import planted_recovery
    from neurossm.models.registry import get_model
    from neurossm.pipeline.unit import UnitContext, fit_unit

    scale = args.diff_scale if form == "diff" else args.raw_scale
    ds = make_synthetic(seed=args.seed, n_scans=args.n_scans, n_rois=args.n_rois, n_times=args.n_times,
                        signal_form=form, scale=scale, amplitude=args.amplitude, n_signal_rois=args.n_signal_rois)
    training = training_defaults("SYNTHETIC", epochs=args.epochs)
    (split,) = make_splits(ds, args.seed, 5, training.val_fraction, single=True)
    spec = get_model("NeuroSSM")
    config = spec.resolve_config(parse_overrides(args.config), None)
    ctx = UnitContext(dataset=ds, spec=spec, model_config=config, training=training, device=torch.device("cpu"))
    unit = fit_unit(ctx, split, model_seed=args.seed)  # in memory: no run folder, CPA below on its own
    est, test, metrics, fit_s = unit.estimator, unit.test, unit.metrics["test"], unit.metrics["fit_seconds"]
    labels = np.array([s.label for s in test])
    t0 = time.perf_counter()
    parts = [explain_scan_batch(est.module, [s.timeseries for s in test[b : b + 16]], ds.crop_length,
                                targets=labels[b : b + 16]) for b in range(0, len(test), 16)]
    explain_s = time.perf_counter() - t0
    scores = np.concatenate([r.cpa_score for r in parts])
    dominant = np.concatenate([r.dominant_pathway for r in parts])
    importance = np.concatenate([r.pathway_importance for r in parts])
    names = parts[0].pathway_names
    per_class = planted_recovery(scores, dominant, labels, names, ds.ground_truth["signal_rois"],
                                 ds.class_names, form)
    for c, name in enumerate(ds.class_names):
        per_class[name]["mean_pathway_importance"] = dict(zip(names, importance[labels == c].mean(0).astype(np.float64).round(3).tolist()))
    return {"form": form, "scale": scale, "n_train": unit.metrics["n_train"], "n_val": unit.metrics["n_val"],
            "n_test": len(test),
            "epochs": training.epochs, "holdout_accuracy": metrics["accuracy"],
            "holdout_balanced_accuracy": metrics["balanced_accuracy"], "fit_s": round(fit_s, 1),
            "explain_s": round(explain_s, 2), "classes": per_class}


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed(args: argparse.Namespace) -> dict:
    from neurossm.explain.cpa import explain_scan_batch
    from neurossm.models.neurossm import NeuroSSM

    torch.manual_seed(0)
    n_rois, n_times, batch = args.speed_rois, args.speed_times, args.batch_size
    model = NeuroSSM(n_rois, 2, n_times, drop_prob=0.0)
    scans = list(np.random.default_rng(0).standard_normal((batch, n_rois, n_times)).astype(np.float32))
    targets = np.arange(batch) % 2

    def cpa():
        explain_scan_batch(model, scans, n_times, targets=targets)

    def forward_backward():
        model.zero_grad(set_to_none=True)
        x = torch.from_numpy(np.stack(scans))
        logits = model(x)  # (B, C)
        logits.gather(1, torch.from_numpy(targets)[:, None]).sum().backward()

    model.eval()
    t_cpa = _median_time(cpa, args.repeats)
    t_fb = _median_time(forward_backward, args.repeats)
    return {"shape": [n_rois, n_times], "batch_size": batch, "n_pathways": len(model.pathway_names),
            "cpa_batch_s": round(t_cpa, 3), "forward_backward_batch_s": round(t_fb, 3),
            "cpa_over_forward_backward": round(t_cpa / t_fb, 2), "cpa_scans_per_s": round(batch / t_cpa, 2)}


def main() -> int:
    args = _parse()
    from neurossm.training.threads import apply_threads

    apply_threads(args.threads)
    out = {"machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
                       "processor": platform.processor() or platform.machine()}}
    if not args.skip_recovery:
        out["recovery_settings"] = {"n_scans": args.n_scans, "n_rois": args.n_rois, "n_times": args.n_times,
                                    "n_signal_rois": args.n_signal_rois, "amplitude": args.amplitude,
                                    "config": args.config, "seed": args.seed}
        out["recovery"] = [recovery(args, form) for form in args.forms]
    if not args.skip_speed:
        out["speed"] = speed(args)
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
