"""catch22 features of ROI time series, computed in parallel and cached by scan content.

Kept apart from the classifier (:mod:`neurossm.models.baselines.catch22`) so that the worker
processes of the parallel extraction import only numpy and pycatch22, not the model packages
(importing those pulls in PyTorch, which cost a worker several seconds).

The features of a scan depend only on its values, so they are cached in memory, keyed by a
content hash (BLAKE2b of the array's bytes, shape and dtype): the outer folds of a run, which
share most of their scans, compute each scan once per process. The cache holds at most
:data:`CACHE_MAX_BYTES`; least recently used entries go first.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from typing import Sequence

import numpy as np

from ..errors import DataFormatError

N_FEATURES = 22
FORMS = ("raw", "diff")
#: Memory bound of the per-process feature cache (400 ROIs × 44 float64 features ≈ 141 kB a scan).
CACHE_MAX_BYTES = 512 * 2**20
# Below this many time points × ROIs in total (about 20 s of catch22 at ~3 ms per 300-point
# series), extraction stays in-process: starting the worker processes took 4 s on a busy 2-core
# machine (20 scans × 50 ROIs × 300 points: 8.2 s in two workers against 3.8 s in-process).
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
