"""Which NeuroSSM pathway input shows a SYNTHETIC class signal, read one value at a time? Prints JSON.

For each signal form, a SYNTHETIC dataset is generated and every scan is turned into the six
pathway inputs of the default NeuroSSM (``raw`` or ``diff`` at scales 1, 2, 4, as
:func:`neurossm.models.neurossm.pathway_signal` makes them). For each input and each of class 1's
signal ROIs, two per-scan statistics that need no temporal model, only values read one by one:

``variance``
    the mean square of the input (second order: the spectrum decides it);
``shape``
    mean ``|x|`` over the root mean square (lower for a heavy-tailed or zero-inflated input).

Reported: d' (difference of means over the pooled standard deviation) of each statistic between
class-1 scans, where those ROIs carry the signal, and class-0 scans, where the same ROIs are
noise; the median over the signal ROIs. ``|d'|`` near 0: that input, read value by value, says
nothing about the class; a pathway can still find it through its temporal model.

Usage::

    python benchmarks/synthetic_forms.py                       # diff and raw (scale 4), amplitudes 1 and 2
    python benchmarks/synthetic_forms.py --forms diff --amplitudes 3

This is a measurement script, never part of the tests.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

SCALES = (1, 2, 4)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-scans", type=int, default=400)
    p.add_argument("--n-rois", type=int, default=16)
    p.add_argument("--n-times", type=int, default=300)
    p.add_argument("--amplitudes", type=float, nargs="+", default=[1.0, 2.0])
    p.add_argument("--forms", nargs="+", default=["diff", "raw"], choices=("diff", "raw"))
    p.add_argument("--diff-scale", type=int, default=1)
    p.add_argument("--raw-scale", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def _dprime(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.mean() - b.mean()) / np.sqrt((a.var() + b.var()) / 2))


def visibility(form: str, scale: int, amplitude: float, args: argparse.Namespace) -> dict:
    from neurossm.data.synthetic import make_synthetic
    from neurossm.models.neurossm import pathway_signal

    ds = make_synthetic(seed=args.seed, n_scans=args.n_scans, n_rois=args.n_rois, n_times=args.n_times,
                        signal_form=form, scale=scale, amplitude=amplitude)
    rois = ds.ground_truth["signal_rois"]["class1"]
    x = torch.from_numpy(np.stack([s.timeseries for s in ds.scans])[:, rois].astype(np.float64))  # (N, K, T)
    one, zero = ds.labels == 1, ds.labels == 0
    out = {}
    for pathway_form in ("raw", "diff"):
        for s in SCALES:
            xp = pathway_signal(x, pathway_form, s).numpy()  # (N, K, T // s)
            power = (xp**2).mean(axis=-1)  # (N, K)
            shape = np.abs(xp).mean(axis=-1) / np.sqrt(power)
            out[f"{pathway_form}_s{s}"] = {
                name: round(float(np.median([_dprime(stat[one, k], stat[zero, k]) for k in range(len(rois))])), 1)
                for name, stat in (("variance", power), ("shape", shape))
            }
    return {"form": form, "scale": scale, "amplitude": amplitude, "dprime": out}


def main() -> int:
    args = _parse()
    torch.set_num_threads(1)
    rows = [visibility(form, args.diff_scale if form == "diff" else args.raw_scale, a, args)
            for form in args.forms for a in args.amplitudes]
    json.dump({"settings": {"n_scans": args.n_scans, "n_rois": args.n_rois, "n_times": args.n_times,
                            "seed": args.seed}, "forms": rows}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
