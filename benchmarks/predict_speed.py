"""``neurossm predict`` throughput on HCP-Rest-shaped scans (scans/s), one thread and all CPUs; prints JSON.

Usage::

    python benchmarks/predict_speed.py                          # 400 ROIs x 1200, 16 scans
    python benchmarks/predict_speed.py --n-times 600 --threads 1 2 --out FILE

The model is the default NeuroSSM for 400 ROIs and two classes, trained for one epoch on a few
random scans (its weights do not change the cost of a forward pass), saved and loaded back as
``neurossm predict`` loads it (:func:`neurossm.classifier.load`). The timed call is
:func:`neurossm.classifier.predict_table`, which the command runs after reading the files: z-score
each scan, average the logits over its non-overlapping crop-length windows, one row per scan.
Reading the files is not timed (it is the disk's cost, not the model's). Each thread count is set
through :func:`neurossm.training.threads.apply_threads`, as ``--threads`` does, with OpenMP's
passive waiting as the command sets it; the best of ``--repeats`` passes is reported, after one
warm-up pass.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def main() -> int:
    from neurossm.training.threads import prefer_passive_waiting, usable_cpus

    prefer_passive_waiting()  # as `neurossm predict` does, before torch loads

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-rois", type=int, default=400, help="ROIs (default 400, Schaefer-400)")
    p.add_argument("--n-times", type=int, default=1200, help="time points per scan (default 1200, a whole "
                                                             "HCP-Rest scan; 600 is its training crop)")
    p.add_argument("--crop-length", type=int, default=600, help="the model's crop length (default 600, HCP-Rest's)")
    p.add_argument("--n-scans", type=int, default=16, help="scans predicted per pass (default 16)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, usable_cpus()],
                   help="thread counts to measure (default: 1 and the CPUs this process may use)")
    p.add_argument("--repeats", type=int, default=2, help="timed passes per thread count (default 2; best kept)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = p.parse_args()

    import torch

    from neurossm.classifier import Classifier, load, predict_table
    from neurossm.io import to_json, write_json
    from neurossm.training.threads import apply_threads

    rng = np.random.default_rng(0)
    load_start = [round(x, 2) for x in os.getloadavg()]
    apply_threads(max(args.threads))
    # Eight short scans, one epoch: enough for a model file; the weights do not change the cost.
    train = rng.standard_normal((8, args.n_rois, args.crop_length)).astype(np.float32)
    clf = Classifier("NeuroSSM", epochs=1, batch_size=4, crop_length=args.crop_length, random_state=0)
    clf.fit(train, np.array([0, 1] * 4))
    scans = [rng.standard_normal((args.n_rois, args.n_times)).astype(np.float32) for _ in range(args.n_scans)]
    ids = [f"scan{i:03d}" for i in range(args.n_scans)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="neurossm-predict-") as tmp:
        model = load(clf.save(Path(tmp) / "model.pt"))
        for threads in args.threads:
            apply_threads(threads)
            predict_table([model], scans[:2], ids[:2])  # warm-up: first-call costs (kernels, allocator)
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                predict_table([model], scans, ids)
                times.append(time.perf_counter() - t0)
            best = min(times)
            rows.append({"threads": torch.get_num_threads(), "seconds": round(best, 3),
                         "scans_per_s": round(args.n_scans / best, 2), "all_s": [round(t, 3) for t in times]})
    out = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "host": {"usable_cpus": usable_cpus(), "python": platform.python_version(), "torch": torch.__version__,
                    "processor": platform.processor() or platform.machine(), "load_average_at_start": load_start,
                    "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
           "model": {"name": "NeuroSSM", "config": "defaults", "n_classes": 2, "crop_length": args.crop_length,
                     "parameters": sum(p.numel() for p in model.model_.module.parameters())},
           "scans": {"n_scans": args.n_scans, "n_rois": args.n_rois, "n_times": args.n_times,
                     "windows_per_scan": args.n_times // args.crop_length},
           "timed": "neurossm.classifier.predict_table (what `neurossm predict` runs after reading the files)",
           "results": rows}
    print(to_json(out), end="")
    if args.out:
        write_json(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
