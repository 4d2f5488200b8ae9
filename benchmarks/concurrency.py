"""Two ``neurossm train`` runs on one machine at once, against one alone; prints JSON.

Usage::

    python benchmarks/concurrency.py                      # the default small SYNTHETIC run
    python benchmarks/concurrency.py --epochs 6 --out benchmarks/results/concurrency_<date>.json

Each configuration runs the real command (``python -m neurossm train``) in fresh processes on
SYNTHETIC data, with the thread variables (``OMP_NUM_THREADS``, ``OMP_WAIT_POLICY``, ...) removed
from their environment so that ``--threads`` and the command's defaults decide
(neurossm.training.threads):

- ``lone``: one run, default threads (the CPUs this process may use);
- ``lone_half``: one run, ``--threads`` = CPUs / 2;
- ``concurrent_default``: two identical runs started together, each with the default threads
  (together twice as many threads as CPUs);
- ``concurrent_half``: the same, each with ``--threads`` = CPUs / 2.

Per run: ``wall_s`` (the whole command, imports included) and ``fit_s`` (the units' training
time from their ``metrics.json``). Per concurrent configuration: ``speed_vs_lone`` = lone wall
time / the slower run's wall time (``speed_vs_fastest_lone``: against the faster lone run). The target of issue 28 is that each of two concurrent runs is
no slower than half a lone run: ``speed_vs_lone >= 0.5``. The load average at the start and end
is recorded: on a machine others use, the numbers move with their work.
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
from datetime import datetime, timezone
from pathlib import Path

from neurossm.io import to_json, write_json
from neurossm.training.threads import usable_cpus

ROOT = Path(__file__).resolve().parents[1]
DATA = ["n_scans=96", "n_rois=48", "n_times=150", "n_signal_rois=4"]


def _env() -> dict[str, str]:
    # The command's own defaults decide: its thread count and OpenMP's passive waiting.
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                             "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY")}
    src = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    return env


def _command(results: Path, name: str, args: argparse.Namespace, threads: int | None) -> list[str]:
    return [sys.executable, "-m", "neurossm", "train", "--dataset", "SYNTHETIC", "--data-option", *DATA,
            "--model", args.model, "--epochs", str(args.epochs), "--folds", str(args.folds), "--seeds", "0",
            "--device", "cpu", "--results-root", str(results), "--run-name", name, "--quiet",
            *([] if threads is None else ["--threads", str(threads)])]


def _fit_seconds(results: Path, model: str, name: str) -> tuple[float, dict]:
    paths = sorted((results / "SYNTHETIC" / model / name).glob("seed_*/fold_*/metrics.json"))
    metrics = [json.loads(p.read_text()) for p in paths]
    return sum(m["fit_seconds"] for m in metrics), metrics[0].get("threads", {}) if metrics else {}


def _runs(results: Path, label: str, args: argparse.Namespace, threads: int | None, n: int) -> dict:
    """``n`` identical runs started together; their wall and fit times."""
    names = [f"{label}_{i}" for i in range(n)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(_command(results, name, args, threads), env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for name in names]
    rows = []
    for name, proc in zip(names, procs):
        _, err = proc.communicate()
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{label}: `neurossm train` exited {proc.returncode}:\n{err[-3000:]}")
        fit, used = _fit_seconds(results, args.model, name)
        rows.append({"wall_s": round(wall, 2), "fit_s": round(fit, 2), "threads": used})
    return {"threads_flag": threads, "runs": rows, "wall_s_max": max(r["wall_s"] for r in rows)}


def add_ratios(configs: dict) -> None:
    """``speed_vs_lone`` (against the lone run with default threads, the issue's target) and
    ``speed_vs_fastest_lone`` (against the faster of the two lone runs) of each concurrent one."""
    lone = configs["lone"]["wall_s_max"]
    fastest = min(lone, configs["lone_half"]["wall_s_max"])
    for name in ("concurrent_default", "concurrent_half"):
        c = configs[name]
        c["speed_vs_lone"] = round(lone / c["wall_s_max"], 3)
        c["speed_vs_fastest_lone"] = round(fastest / c["wall_s_max"], 3)
        c["target_met"] = c["speed_vs_lone"] >= 0.5


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="NeuroSSM", help="a registered model (default NeuroSSM, its defaults)")
    p.add_argument("--epochs", type=int, default=4, help="epochs per fold (default 4)")
    p.add_argument("--folds", type=int, default=2, help="folds, one seed (default 2)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = p.parse_args()

    cpus = usable_cpus()
    half = max(1, cpus // 2)
    out = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "host": {"usable_cpus": cpus, "python": platform.python_version(),
                    "OMP_WAIT_POLICY": "the command's default (PASSIVE)",
                    "processor": platform.processor() or platform.machine(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
           "run": {"dataset": "SYNTHETIC", "data_options": DATA, "model": args.model, "epochs": args.epochs,
                   "folds": args.folds, "seeds": [0]},
           "target": "each of two concurrent runs no slower than half a lone run: speed_vs_lone >= 0.5"}
    with tempfile.TemporaryDirectory(prefix="neurossm-concurrency-") as tmp:
        results = Path(tmp)
        configs = {"lone": _runs(results, "lone", args, None, 1),
                   "lone_half": _runs(results, "lone_half", args, half, 1),
                   "concurrent_default": _runs(results, "concurrent_default", args, None, 2),
                   "concurrent_half": _runs(results, "concurrent_half", args, half, 2)}
    add_ratios(configs)
    out["configs"] = configs
    out["host"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(to_json(out), end="")
    if args.out:
        write_json(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
