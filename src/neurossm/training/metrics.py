"""The one metrics function: every fold, model and report uses it."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "f1_macro", "precision", "recall")


def classification_metrics(y_true, probs, n_classes: int | None = None) -> dict[str, float]:
    """Accuracy, balanced accuracy, ROC-AUC, macro F1, macro precision and macro recall.

    ``probs`` is ``(n, C)``. Precision, recall and F1 are macro averages over the classes for
    every task, two classes included (the mean of both classes' values, not the positive class's
    alone), so that one name means one thing in every summary. ROC-AUC: binary, that of class 1's
    probability; several classes, one-vs-rest macro-averaged over the classes present in the test
    fold. It is NaN where it is undefined, when the test side holds a single class (not 0.5);
    summaries average it over the folds where it is defined and say how many those are.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = n_classes or probs.shape[1]
    if probs.ndim != 2 or probs.shape[1] != n_classes:
        raise ValueError(f"probs has shape {probs.shape}; expected (n_scans, {n_classes}), one column per class")
    y_pred = probs.argmax(axis=1)
    labels = np.arange(n_classes)
    with warnings.catch_warnings():
        # A test fold with one class present is legitimate; sklearn warns about it.
        warnings.simplefilter("ignore", UserWarning)
        out = {
            "accuracy": accuracy_score(y_true, y_pred),
            "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
            "f1_macro": f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
            "precision": precision_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
            "recall": recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        }
    present = np.unique(y_true)
    if len(present) < 2:
        out["roc_auc"] = float("nan")
    elif n_classes == 2:
        out["roc_auc"] = roc_auc_score(y_true, probs[:, 1])
    else:
        p = probs / probs.sum(axis=1, keepdims=True)
        out["roc_auc"] = np.mean([roc_auc_score(y_true == c, p[:, c]) for c in present])
    return {k: float(out[k]) for k in METRICS}


def n_defined(values) -> int:
    """How many of ``values`` are finite (the folds a mean over folds is taken over)."""
    arr = np.asarray(list(values), dtype=np.float64)
    return int(np.isfinite(arr).sum())


def mean_std(values) -> dict[str, float]:
    """Mean and (population) standard deviation, ignoring NaN."""
    arr = np.asarray(list(values), dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": float(arr.mean()), "std": float(arr.std())}
