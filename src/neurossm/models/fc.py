"""Functional-connectivity baselines: Pearson correlation, Fisher z, a linear classifier.

The standard comparison for fMRI classification (e.g. Pervaiz et al., 2020, *NeuroImage*
"Optimising network modelling methods for fMRI"): the upper triangle of the ROI × ROI
correlation matrix of the whole scan, Fisher z-transformed and standardised, fed to a
regularised linear model whose strength is chosen by subject-grouped inner cross-validation on
the whole training fold (:class:`neurossm.models.linear.NestedCVLinearClassifier`), never on the
test fold.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from .linear import C_GRID, NestedCVLinearClassifier
from .registry import register_model


def connectivity_features(scans: Sequence[np.ndarray]) -> np.ndarray:
    """Fisher-z Pearson correlations, upper triangle: ``(n_scans, R·(R−1)/2)``.

    Scans may differ in length. A constant ROI has no defined correlation; it contributes zeros.
    """
    feats = []
    for x in scans:
        x = np.asarray(x, dtype=np.float64)
        xc = x - x.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(xc, axis=1)
        xc = np.divide(xc, norm[:, None], out=np.zeros_like(xc), where=norm[:, None] > 0)
        corr = xc @ xc.T
        iu = np.triu_indices(corr.shape[0], k=1)
        feats.append(np.arctanh(np.clip(corr[iu], -0.999999, 0.999999)))
    return np.asarray(feats, dtype=np.float64)


class ConnectivityClassifier(NestedCVLinearClassifier):
    """Connectivity features of the whole scan + a linear model with nested-CV regularisation.

    Parameters
    ----------
    c_grid : tuple of float
        Candidate inverse L2 strengths ``C``, weakest penalty last; inner CV picks one
        (ties → the stronger regularisation).
    inner_folds : int
        Inner subject-grouped folds on the training fold (5).
    """

    def __init__(self, c_grid: tuple[float, ...] = C_GRID, inner_folds: int = 5) -> None:
        super().__init__(inner_folds)
        self.c_grid = tuple(sorted(float(c) for c in c_grid))

    def features(self, X: Sequence[np.ndarray]) -> np.ndarray:
        return connectivity_features(X)


@register_model(
    "FC_LR",
    kind="features",
    description="Pearson connectivity of the whole scan (upper triangle, Fisher z, standardised) + L2 logistic "
                "regression, C by subject-grouped nested CV",
    reference="Pervaiz et al. (2020) NeuroImage 211:116604",
)
class FCLogisticRegression(ConnectivityClassifier):
    """Connectivity + L2-regularised logistic regression (multinomial for several classes)."""

    def _estimator(self) -> LogisticRegression:
        # lbfgs on the n × r row-space coordinates (see neurossm.models.linear): exact and fast.
        return LogisticRegression(max_iter=5000)
