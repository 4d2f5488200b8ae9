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
    """Accuracy, balanced accuracy, ROC-AUC, macro F1, precision and recall.

    ``probs`` is ``(n, C)``. Binary tasks: ROC-AUC of the positive class (index 1), precision
    and recall of the positive class, F1 macro-averaged. Several classes: ROC-AUC one-vs-rest
    macro-averaged, precision and recall macro-averaged. ROC-AUC is NaN when a fold's test side
    holds a single class (it is undefined there, not 0.5).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = n_classes or probs.shape[1]
    y_pred = probs.argmax(axis=1)
    labels = np.arange(n_classes)
    binary = n_classes == 2
    average = "binary" if binary else "macro"
    with warnings.catch_warnings():
        # A test fold with one class present is legitimate; sklearn warns about it.
        warnings.simplefilter("ignore", UserWarning)
        out = {
            "accuracy": accuracy_score(y_true, y_pred),
            "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
            "f1_macro": f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
            "precision": precision_score(y_true, y_pred, labels=None if binary else labels, average=average,
                                         zero_division=0),
            "recall": recall_score(y_true, y_pred, labels=None if binary else labels, average=average,
                                   zero_division=0),
        }
    if len(np.unique(y_true)) < 2:
        out["roc_auc"] = float("nan")
    elif binary:
        out["roc_auc"] = roc_auc_score(y_true, probs[:, 1])
    else:
        p = probs / probs.sum(axis=1, keepdims=True)
        out["roc_auc"] = roc_auc_score(y_true, p, multi_class="ovr", average="macro", labels=labels)
    return {k: float(out[k]) for k in METRICS}


def mean_std(values) -> dict[str, float]:
    """Mean and (population) standard deviation, ignoring NaN."""
    arr = np.asarray(list(values), dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": float(arr.mean()), "std": float(arr.std())}
