"""catch22: canonical time-series features per ROI + a linear model chosen by nested CV.

For every ROI the 22 catch22 features (Lubba et al., 2019) of its raw signal and of its first
difference are computed on the whole scan: ``R × 2 × 22`` features per scan, standardised and
fed to an L2 logistic regression whose ``C`` is chosen by subject-grouped inner
cross-validation on the whole training fold (:mod:`neurossm.models.linear`). This is the
time-series-features analogue of the connectivity baselines: it sees each ROI's own dynamics
(autocorrelation, distribution, entropy-like statistics) and none of the coupling between ROIs.

Computation and caching: extraction runs over scans in parallel (joblib, ``n_jobs``
processes). The features of a scan depend only on its values, so they are cached in memory,
keyed by a content hash (BLAKE2b of the array's bytes, shape and dtype): the five outer folds
of a run, which share most of their scans, compute each scan once per process. The cache holds
at most :data:`CACHE_MAX_BYTES`; least recently used entries go first. A run split over several
processes (one per fold) keeps one cache per process.

References
----------
Lubba, C. H., Sethi, S. S., Knaute, P., Schultz, S. R., Fulcher, B. D., & Jones, N. S. (2019).
catch22: CAnonical Time-series CHaracteristics. *Data Mining and Knowledge Discovery*, 33,
1821–1852.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from typing import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from ...errors import ConfigError, DataFormatError
from ..linear import C_GRID, NestedCVLinearClassifier
from ..registry import register_model

N_FEATURES = 22
FORMS = ("raw", "diff")
#: Memory bound of the per-process feature cache (400 ROIs × 44 float64 features ≈ 141 kB a scan).
CACHE_MAX_BYTES = 512 * 2**20
# Below this many time points × ROIs in total, starting worker processes costs more than it saves.
_PARALLEL_MIN_WORK = 2_000_000

_CACHE: "OrderedDict[str, np.ndarray]" = OrderedDict()
_CACHE_BYTES = 0


def scan_key(x: np.ndarray) -> str:
    """Content hash of a scan: equal arrays (values, shape, dtype) give equal keys."""
    x = np.ascontiguousarray(x)
    h = hashlib.blake2b(digest_size=20)
    h.update(f"catch22-v1|{x.dtype.str}|{x.shape}|".encode())
    h.update(x.view(np.uint8).reshape(-1).data)
    return h.hexdigest()


def scan_features(x: np.ndarray) -> np.ndarray:
    """catch22 of each ROI's raw signal and first difference: ``(R · 2 · 22,)``, ROI-major.

    Layout: ROI ``r``'s raw features at ``[r·44, r·44 + 22)``, its difference features at
    ``[r·44 + 22, r·44 + 44)``, each in pycatch22's feature order.
    """
    import pycatch22

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 3:
        raise DataFormatError(f"catch22 needs scans of shape (n_rois, n_times) with n_times ≥ 3; got {x.shape}")
    if not np.isfinite(x).all():
        raise DataFormatError(f"catch22: a scan of shape {x.shape} holds NaN or Inf values; clean or drop it")
    out = np.empty((x.shape[0], len(FORMS), N_FEATURES))
    for form, series in enumerate((x, np.diff(x, axis=1))):
        for r, s in enumerate(series):
            out[r, form] = pycatch22.catch22_all(s.tolist())["values"]
    # A feature catch22 cannot estimate (a constant ROI) carries no information: 0, not NaN.
    return np.nan_to_num(out.reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)


def _remember(key: str, feats: np.ndarray) -> None:
    global _CACHE_BYTES
    _CACHE[key] = feats
    _CACHE_BYTES += feats.nbytes
    while _CACHE_BYTES > CACHE_MAX_BYTES and len(_CACHE) > 1:
        _, old = _CACHE.popitem(last=False)
        _CACHE_BYTES -= old.nbytes


def clear_cache() -> None:
    """Empty the per-process feature cache."""
    global _CACHE_BYTES
    _CACHE.clear()
    _CACHE_BYTES = 0


def catch22_features(scans: Sequence[np.ndarray], n_jobs: int = -1) -> np.ndarray:
    """``(n_scans, R · 44)`` features, from the cache where a scan was seen before."""
    keys = [scan_key(x) for x in scans]
    found = {}
    for k in keys:
        if k in _CACHE:
            _CACHE.move_to_end(k)  # recently used: evicted last
            found[k] = _CACHE[k]
    todo = {k: i for i, k in enumerate(keys) if k not in found}  # a repeated scan is computed once
    work = sum(int(np.prod(np.shape(scans[i]))) for i in todo.values())
    workers = (os.cpu_count() or 1) if n_jobs == -1 else max(1, int(n_jobs))
    if workers > 1 and len(todo) > 1 and work >= _PARALLEL_MIN_WORK:
        from joblib import Parallel, delayed

        computed = Parallel(n_jobs=min(workers, len(todo)))(delayed(scan_features)(scans[i]) for i in todo.values())
    else:
        computed = [scan_features(scans[i]) for i in todo.values()]
    for key, feats in zip(todo, computed):
        found[key] = feats
        _remember(key, feats)
    lengths = {found[k].shape[0] for k in keys}
    if len(lengths) > 1:
        raise DataFormatError(f"catch22: scans have different ROI counts ({sorted(n // 44 for n in lengths)}); "
                              "every scan of a dataset must use the same atlas")
    return np.stack([found[k] for k in keys])


@register_model(
    "catch22",
    kind="features",
    description="catch22 features of each ROI's raw signal and first difference (whole scan, standardised) + "
                "L2 logistic regression, C by subject-grouped nested CV",
    reference="Lubba et al. (2019) Data Mining and Knowledge Discovery 33:1821-1852",
)
class Catch22Classifier(NestedCVLinearClassifier):
    """Per-ROI catch22 features of the raw and differenced signal + L2 logistic regression.

    Parameters
    ----------
    c_grid : tuple of float
        Candidate inverse L2 strengths ``C``; inner CV picks one (ties → the stronger penalty).
    inner_folds : int
        Inner subject-grouped folds on the training fold (5).
    n_jobs : int
        Processes for feature extraction (``-1``: one per CPU core). Small inputs run in this
        process whatever the setting.
    """

    def __init__(self, c_grid: tuple[float, ...] = C_GRID, inner_folds: int = 5, n_jobs: int = -1) -> None:
        super().__init__(inner_folds)
        self.c_grid = tuple(sorted(float(c) for c in c_grid))
        if n_jobs == 0:
            raise ConfigError("catch22 n_jobs=0: give a process count ≥ 1, or -1 for one per CPU core")
        self.n_jobs = int(n_jobs)

    def features(self, X: Sequence[np.ndarray]) -> np.ndarray:
        return catch22_features(X, self.n_jobs)

    def _estimator(self) -> LogisticRegression:
        return LogisticRegression(max_iter=5000)
