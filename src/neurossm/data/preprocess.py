"""Per-scan preprocessing shared by every model: z-scoring, random training crops, test windows."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def zscore(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Z-score each ROI over time, returned as float32; a constant ROI becomes zeros, not NaN (NaN
    input stays NaN).

    Computed in float64: in float32 a single sample of 1e20 overflows the variance (the ROI
    became all zeros) and values around 1e-25 underflow it (the whole scan did). Z-scores are
    bounded by sqrt(n_times), so the float32 result holds them.
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=axis, keepdims=True)
    std = x.std(axis=axis, keepdims=True)
    constant = np.where(np.isfinite(std), 0.0, np.nan)
    return np.where(std > 0, (x - mean) / np.where(std > 0, std, 1.0), constant).astype(np.float32)


def random_crop(x: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """One random window of ``length`` time points of an ``(n_rois, n_times)`` scan."""
    n_times = x.shape[-1]
    start = int(rng.integers(0, n_times - length + 1))
    return x[..., start : start + length]


def window_starts(n_times: int, length: int) -> list[int]:
    """Starts of the test windows: non-overlapping windows of ``length``, the last one flush with the end.

    Test predictions average the logits over these windows, so that a model sees at test time
    exactly the length it was trained on and every time point counts.
    """
    if n_times <= length:
        return [0]
    starts = list(range(0, n_times - length + 1, length))
    if starts[-1] + length < n_times:
        starts.append(n_times - length)
    return starts


def window_batches(scans: Sequence[np.ndarray], length: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """All test windows of all scans, and the index of the scan owning each window.

    Testing (:mod:`neurossm.training.estimators`) and CPA (:mod:`neurossm.explain.cpa`) both see
    a scan through these windows, so an explanation is of the logit the model was tested on.
    """
    owners, wins = [], []
    for i, x in enumerate(scans):
        for s in window_starts(x.shape[-1], length):
            owners.append(i)
            wins.append(x[:, s : s + length])
    return np.asarray(owners), wins
