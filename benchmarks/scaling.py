"""Scale-out measured: DDP ranks on one unit, and (seed, fold) units inline vs on Ray; prints JSON.

Usage::

    python benchmarks/scaling.py                 # both parts
    python benchmarks/scaling.py --part ddp      # one unit: 1 process vs 2 gloo ranks under torchrun
    python benchmarks/scaling.py --part units    # 5 folds × 2 seeds: --executor inline vs ray (2 workers)

Every configuration runs the real command (``python -m neurossm train`` or ``torchrun ... -m
neurossm train``) in a fresh process on SYNTHETIC data, so the times include what a user waits
for. Reported per configuration:

- ``wall_s``: the whole command, start-up (imports, Ray start, process group) included;
- ``fit_s`` (ddp part): the unit's training time from its ``metrics.json`` (``fit_seconds``),
  without start-up, testing or the report; ``unit_fit_s_sum``/``_max`` (units part): the same
  summed over / largest among the units (a unit slower on Ray than inline means the workers
  competed for cores);
- ``ratio``: the baseline's time over this one (> 1 is faster).

``ddp`` compares 1 process × 1 thread, 1 process × 2 threads and 2 ranks × 1 thread on the same
unit and global batch. ``units`` compares ``--executor inline`` (one process, units one after
another, 1 thread) with ``--executor ray --cpus-per-fold 1`` on a 2-CPU local Ray instance
(two units at a time, 1 thread each). Times depend on the machine and its load; run it on a quiet
one (``OMP_NUM_THREADS`` is set per configuration here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# One unit big enough that training dominates start-up on one thread (tens of seconds).
DDP_DATA = ["n_scans=160", "n_rois=32", "n_times=200", "n_signal_rois=4"]
DDP_MODEL = ["d_model=32", "scales=1,2", "drop_prob=0", "scan_backend=cpu"]
# Ten units of ~10 s of training each on one quiet core: long enough that Ray's start-up (a few
# seconds) and each worker's first-unit costs (imports, compiled-kernel load) do not dominate.
UNITS_DATA = ["n_scans=120", "n_rois=32", "n_times=150", "n_signal_rois=4"]
UNITS_MODEL = ["d_model=16", "d_state=8", "scales=1,2", "drop_prob=0", "scan_backend=cpu"]


def _env(threads: int) -> dict[str, str]:
    src = str(ROOT / "src")
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "PYTHONPATH": src if not path else f"{src}{os.pathsep}{path}"}


def _train_args(results: Path, name: str, data: list[str], model: list[str], epochs: int,
                extra: list[str]) -> list[str]:
    return ["train", "--dataset", "SYNTHETIC", "--data-option", *data, "--model", "NeuroSSM",
            "--config", *model, "--epochs", str(epochs), "--device", "cpu", "--results-root", str(results),
            "--run-name", name, "--quiet", *extra]


def _timed(cmd: list[str], threads: int) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=_env(threads), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return wall


def _run_dir(results: Path, name: str) -> Path:
    return results / "SYNTHETIC" / "NeuroSSM" / name


def bench_ddp(results: Path, epochs: int) -> dict:
    py = [sys.executable, "-m"]
    args = lambda name: _train_args(results, name, DDP_DATA, DDP_MODEL, epochs,  # noqa: E731
                                    ["--skip_cross_validation", "--batch-size", "16"])
    configs = [
        ("1 process x 1 thread", py + ["neurossm", *args("p1t1")], 1, "p1t1"),
        ("1 process x 2 threads", py + ["neurossm", *args("p1t2")], 2, "p1t2"),
        ("2 ranks x 1 thread (torchrun, gloo)",
         py + ["torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "neurossm", *args("r2t1")],
         1, "r2t1"),
    ]
    rows = []
    for label, cmd, threads, name in configs:
        wall = _timed(cmd, threads)
        m = json.loads((_run_dir(results, name) / "seed_0" / "fold_0" / "metrics.json").read_text())
        rows.append({"config": label, "wall_s": round(wall, 2), "fit_s": round(m["fit_seconds"], 2),
                     "test_accuracy": m["test"]["accuracy"]})
    base = rows[0]
    for r in rows:
        r["fit_ratio_vs_1x1"] = round(base["fit_s"] / r["fit_s"], 3)
        r["wall_ratio_vs_1x1"] = round(base["wall_s"] / r["wall_s"], 3)
    return {"unit": {"data": DDP_DATA, "model": DDP_MODEL, "epochs": epochs, "batch_size": 16,
                     "split": "--skip_cross_validation (one train/validation/holdout split)"},
            "runs": rows}


def bench_units(results: Path, epochs: int, seeds: list[str], folds: int) -> dict:
    common = lambda name, extra: [sys.executable, "-m", "neurossm",  # noqa: E731
                                  *_train_args(results, name, UNITS_DATA, UNITS_MODEL, epochs,
                                               ["--seeds", *seeds, "--folds", str(folds), *extra])]
    rows = []
    for label, name, extra in (
        ("inline (one process, 1 thread)", "inline", ["--executor", "inline"]),
        ("ray, 2 workers x 1 thread", "ray", ["--executor", "ray", "--cpus-per-fold", "1",
                                             "--ray-num-cpus", "2"]),
    ):
        wall = _timed(common(name, extra), 1)
        summary = json.loads((_run_dir(results, name) / "summary.json").read_text())
        fits = [json.loads(p.read_text())["fit_seconds"]
                for p in _run_dir(results, name).glob("seed_*/fold_*/metrics.json")]
        rows.append({"config": label, "wall_s": round(wall, 2), "units": summary["n_folds_done"],
                     "unit_fit_s_sum": round(sum(fits), 2), "unit_fit_s_max": round(max(fits), 2),
                     "accuracy_mean": summary["test"]["accuracy"]["mean"]})
    rows[1]["ratio_inline_over_ray"] = round(rows[0]["wall_s"] / rows[1]["wall_s"], 3)
    same_splits = all(
        (_run_dir(results, "inline") / "splits" / f"seed_{s}.json").read_bytes()
        == (_run_dir(results, "ray") / "splits" / f"seed_{s}.json").read_bytes() for s in seeds)
    return {"units": {"seeds": seeds, "folds": folds, "data": UNITS_DATA, "model": UNITS_MODEL, "epochs": epochs},
            "split_files_identical": same_splits,
            "max_abs_diff_inline_vs_ray": _max_abs_diff(_run_dir(results, "inline"), _run_dir(results, "ray")),
            "runs": rows}


def _max_abs_diff(a: Path, b: Path) -> dict[str, float]:
    """Largest difference between two runs' fold metrics and test probabilities."""
    import pandas as pd

    out = {}
    for name in ("fold_metrics.csv", "predictions.csv"):
        x, y = pd.read_csv(a / name), pd.read_csv(b / name)
        keys = ["seed", "fold"] + (["scan_id"] if "scan_id" in x else [])
        x, y = x.sort_values(keys).reset_index(drop=True), y.sort_values(keys).reset_index(drop=True)
        num = [c for c in x.columns if c not in keys and pd.api.types.is_float_dtype(x[c])]
        out[name] = float((x[num] - y[num]).abs().to_numpy().max())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("ddp", "units", "all"), default="all")
    p.add_argument("--ddp-epochs", type=int, default=3)
    p.add_argument("--unit-epochs", type=int, default=4)
    p.add_argument("--seeds", nargs="+", default=["0", "1"])
    p.add_argument("--folds", type=int, default=5)
    args = p.parse_args(argv)
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()}}
    with tempfile.TemporaryDirectory(prefix="neurossm-scaling-") as tmp:
        if args.part in ("ddp", "all"):
            report["ddp"] = bench_ddp(Path(tmp) / "ddp", args.ddp_epochs)
        if args.part in ("units", "all"):
            report["units"] = bench_units(Path(tmp) / "units", args.unit_epochs, args.seeds, args.folds)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
