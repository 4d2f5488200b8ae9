"""Wall time of one outer fold of the closed-form baselines at connectome scale; prints JSON.

What is timed: ``model.fit(X, y, groups)`` on one training fold (the whole nested CV: feature
extraction, standardisation, the Gram matrix and its eigendecomposition, ``GridSearchCV`` over
the grid × inner folds, the refit) and ``predict_log_proba`` on a test fold, each broken down
into feature extraction and the rest (``fit_cpu_s``: CPU seconds of all the process' threads,
which on a shared machine says more than the wall time). Data: ``--n-scans`` random scans of ``--n-rois`` ROIs ×
``--n-times`` time points, two scans per subject, a weak shared time course in 10 ROIs for
class 1 (so the search has something to find); 80 % of them form the training fold. The
target of issue 13 is FC_LR at 1000 scans × 400 ROIs (79 800 features) under 2 minutes for a
fold on 2 cores.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/baselines_speed.py                     # FC_LR, 1000 × 400 × 300
    OMP_NUM_THREADS=2 python benchmarks/baselines_speed.py --models FC_LR FC_SVM catch22 --n-scans 300

This is a measurement script, never part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time


def make_scans(n_scans: int, n_rois: int, n_times: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    y = np.arange(n_scans) % 2
    X = rng.standard_normal((n_scans, n_rois, n_times), dtype=np.float32)
    shared = rng.standard_normal((n_scans, n_times), dtype=np.float32)
    X[:, :10] += 0.3 * (y[:, None, None] * shared[:, None, :])
    groups = np.array([f"sub{i // 4 * 2 + i % 2:05d}" for i in range(n_scans)])  # 2 scans per subject and class
    return list(X), y, groups


def time_model(name: str, X, y, groups, n_train: int) -> dict:
    from neurossm.models.registry import get_model

    spec = get_model(name)
    model = spec.build(X[0].shape[0], 2, X[0].shape[1])
    feature_seconds = []
    real_features = model.features

    def timed_features(scans):
        t = time.perf_counter()
        out = real_features(scans)
        feature_seconds.append(time.perf_counter() - t)
        return out

    model.features = timed_features
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(X[:n_train], y[:n_train], groups=groups[:n_train])
    fit_s, fit_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    fit_features_s = sum(feature_seconds)
    t0 = time.perf_counter()
    logp = model.predict_log_proba(X[n_train:])
    predict_s = time.perf_counter() - t0
    accuracy = float((logp.argmax(1) == y[n_train:]).mean())
    return {"model": spec.name, "fit_s": fit_s, "fit_cpu_s": fit_cpu_s, "fit_feature_s": fit_features_s,
            "fit_search_s": fit_s - fit_features_s, "predict_s": predict_s,
            "n_features": int(model.coef_.shape[1]), "fitted": model.fitted_params(), "test_accuracy": accuracy}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["FC_LR"])
    parser.add_argument("--n-scans", type=int, default=1000)
    parser.add_argument("--n-rois", type=int, default=400)
    parser.add_argument("--n-times", type=int, default=300)
    parser.add_argument("--train-fraction", type=float, default=0.8)
    args = parser.parse_args(argv)

    import numpy as np
    import sklearn
    from threadpoolctl import threadpool_info

    X, y, groups = make_scans(args.n_scans, args.n_rois, args.n_times)
    n_train = int(round(args.train_fraction * args.n_scans))
    load_before = os.getloadavg()
    results = []
    for name in args.models:
        print(f"{name} ...", file=sys.stderr, flush=True)
        record = time_model(name, X, y, groups, n_train)
        print(f"{name}: fit {record['fit_s']:.1f} s (features {record['fit_feature_s']:.1f} s), "
              f"predict {record['predict_s']:.1f} s", file=sys.stderr, flush=True)
        results.append(record)
    report = {
        "benchmark": "one outer fold of the closed-form baselines (nested CV included)",
        "data": {"n_scans": args.n_scans, "n_train": n_train, "n_test": args.n_scans - n_train,
                 "n_rois": args.n_rois, "n_times": args.n_times, "n_subjects": len(set(groups))},
        "host": {"cpu_count": os.cpu_count(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                 "blas": [{k: i.get(k) for k in ("internal_api", "num_threads")} for i in threadpool_info()],
                 "python": platform.python_version(), "numpy": np.__version__, "scikit-learn": sklearn.__version__,
                 "load_average": {"before": load_before, "after": os.getloadavg()},
                 "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024},
        "results": results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
