"""Functional-connectivity baselines: Pearson correlation, Fisher z, a linear classifier.

The standard comparison for fMRI classification (e.g. Pervaiz et al., 2020, *NeuroImage*
"Optimising network modelling methods for fMRI"): the upper triangle of the ROI × ROI
correlation matrix, Fisher z-transformed and standardised, fed to a regularised linear model.
The regularisation strength is chosen on the inner validation split, never on the test fold.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.preprocessing import StandardScaler

from .registry import register_model


def connectivity_features(scans: Sequence[np.ndarray]) -> np.ndarray:
    """Fisher-z Pearson correlations, upper triangle: ``(n_scans, R·(R−1)/2)``.

    A constant ROI has no defined correlation; it contributes zeros.
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


class ConnectivityClassifier:
    """Connectivity features + a linear model whose ``C`` is picked on the validation split.

    Parameters
    ----------
    c_grid : tuple of float
        Candidate inverse regularisation strengths; the one with the best validation balanced
        accuracy is kept (ties → the stronger regularisation).
    """

    def __init__(self, c_grid: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)) -> None:
        self.c_grid = tuple(c_grid)
        self.scaler_: StandardScaler | None = None
        self.model_ = None
        self.selected_c_: float | None = None
        self.history_: list[dict] = []

    def _make(self, c: float):
        raise NotImplementedError

    def fit(self, X, y, X_val=None, y_val=None) -> "ConnectivityClassifier":
        feats = connectivity_features(X)
        self.scaler_ = StandardScaler().fit(feats)
        z = self.scaler_.transform(feats)
        y = np.asarray(y)
        best = None
        # Without a validation split there is nothing to select on: keep the weakest regularisation.
        candidates = sorted(self.c_grid) if X_val is not None else sorted(self.c_grid)[-1:]
        zv = self.scaler_.transform(connectivity_features(X_val)) if X_val is not None else None
        for c in candidates:
            model = self._make(c).fit(z, y)
            if zv is None:
                score = 0.0
            else:
                with warnings.catch_warnings():
                    # a small validation split may hold one class, or miss one the model predicts
                    warnings.simplefilter("ignore", UserWarning)
                    score = balanced_accuracy_score(y_val, model.predict(zv))
            self.history_.append({"C": c, "val_balanced_accuracy": float(score)})
            if best is None or score > best[0]:
                best = (score, c, model)
        _, self.selected_c_, self.model_ = best
        return self

    def decision_scores(self, X) -> np.ndarray:
        raise NotImplementedError

    def get_state(self) -> dict[str, np.ndarray]:
        """The fitted parameters as plain arrays (saved as ``.npz``, never a pickle)."""
        return {"scaler_mean": self.scaler_.mean_, "scaler_scale": self.scaler_.scale_,
                "coef": self.model_.coef_, "intercept": np.atleast_1d(self.model_.intercept_),
                "classes": self.model_.classes_, "selected_c": np.array(self.selected_c_)}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.scaler_ = StandardScaler()
        self.scaler_.mean_, self.scaler_.scale_ = state["scaler_mean"], state["scaler_scale"]
        self.scaler_.var_ = self.scaler_.scale_ ** 2
        self.scaler_.n_features_in_ = self.scaler_.mean_.shape[0]
        self.selected_c_ = float(state["selected_c"])
        self.model_ = self._make(self.selected_c_)
        self.model_.coef_, self.model_.intercept_ = state["coef"], state["intercept"]
        self.model_.classes_ = state["classes"]
        self.model_.n_features_in_ = self.scaler_.n_features_in_

    def predict_log_proba(self, X) -> np.ndarray:
        return self.decision_scores(X)


@register_model(
    "FC_LR",
    kind="features",
    description="Pearson connectivity (upper triangle, Fisher z, standardised) + L2 logistic regression",
    reference="Pervaiz et al. (2020) NeuroImage 211:116604",
)
class FCLogisticRegression(ConnectivityClassifier):
    """Connectivity + L2-regularised logistic regression (multinomial for several classes)."""

    def _make(self, c: float):
        return LogisticRegression(C=c, max_iter=2000)

    def decision_scores(self, X) -> np.ndarray:
        z = self.scaler_.transform(connectivity_features(X))
        return self.model_.predict_log_proba(z)
