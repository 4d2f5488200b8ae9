"""Linear classifiers on per-scan features, regularisation chosen by subject-grouped nested CV.

Every closed-form baseline (``FC_LR``, ``FC_SVM``, ``catch22``, ``MiniRocket``) is the same
recipe on a different feature map: features of the whole scan → standardised → an L2-penalised
linear model whose strength is picked by inner k-fold cross-validation on the *whole* training
fold (scikit-learn's ``GridSearchCV`` over ``StratifiedGroupKFold`` on subject ids, so a
subject's scans never sit on both sides of an inner split), then refitted on the whole
training fold. :class:`NestedCVLinearClassifier` is that recipe; a subclass supplies the
feature map and the scikit-learn estimator.

Wide data: connectomes have ``R(R−1)/2`` features (79 800 at 400 ROIs) for a few hundred
scans. The standardised training matrix ``Z`` (n × F) is replaced by ``Z V`` (n × r), with
``V`` (F × r) an orthonormal basis of its row space obtained from the eigendecomposition of
the Gram matrix ``Z Zᵀ`` (computed once). For an L2 penalty this is exact, not an
approximation: every inner-fold optimum ``w`` lies in the span of that fold's training rows,
which is inside the span of ``V``, and ``‖V u‖ = ‖u‖``, ``Z V u = Z w``. The grid × folds fits
then run on an n × r matrix, and the chosen model's coefficients are mapped back
(``w = V u``) so that prediction and the saved state use the original features.

The standardisation statistics come from the whole training fold. They use no labels, and the
outer test fold never contributes; the inner folds share them (refitting the scaler per inner
fold would need one Gram matrix per fold for a label-free difference).
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
from scipy.special import log_softmax
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..errors import ConfigError
from ..log import get_logger

log = get_logger(__name__)

#: Inverse L2 strengths ``C`` searched by the logistic-regression and SVM baselines.
C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def row_space_basis(z: np.ndarray) -> np.ndarray:
    """Orthonormal basis ``V`` (F × r) of the row space of ``z`` (n × F), from its Gram matrix.

    ``z V = U √Λ`` where ``z zᵀ = U Λ Uᵀ``; directions with eigenvalue below a relative
    tolerance (rank deficiency: constant or duplicated features, n > F) are dropped.
    """
    gram = z @ z.T  # (n, n): the one pass over the F features
    eigval, eigvec = np.linalg.eigh(gram)
    keep = eigval > max(eigval.max(initial=0.0), 0.0) * len(gram) * np.finfo(np.float64).eps * 10
    if not keep.any():
        raise ConfigError("every training scan has the same features; there is nothing to classify on")
    # V = zᵀ U Λ^{-1/2}: unit-norm, mutually orthogonal columns spanning the rows of z.
    return (z.T @ eigvec[:, keep]) / np.sqrt(eigval[keep])


def inner_folds_for(y: np.ndarray, groups: np.ndarray, inner_folds: int) -> int:
    """The inner fold count actually used: at most one fold per subject of the rarest class."""
    per_class = [len(np.unique(groups[y == c])) for c in np.unique(y)]
    if len(per_class) < 2:
        raise ConfigError(f"the training fold holds one class only ({np.unique(y).tolist()}); "
                          "a classifier needs at least two")
    # Below 2 no inner CV is possible: the caller falls back to a default strength and says so.
    return min(int(inner_folds), min(per_class))


def scores_to_log_proba(scores: np.ndarray) -> np.ndarray:
    """Log-softmax of decision scores; one binary score ``s`` becomes the columns ``[−s/2, s/2]``.

    For logistic regression this is its probability (binary: ``sigmoid(s)``; multinomial: the
    softmax of the class scores). For an SVM or ridge classifier these are scores, not
    calibrated probabilities: argmax and ranking (ROC-AUC) are meaningful, the values are not.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = np.stack([-scores / 2.0, scores / 2.0], axis=1)  # (n, 2)
    return log_softmax(scores, axis=1)


class NestedCVLinearClassifier:
    """Features → standardise → L2 linear model, strength chosen by grouped inner CV.

    Subclasses define :meth:`features` (``(n_scans, F)`` from a list of ``(R, T)`` scans),
    :meth:`_estimator` (an unfitted scikit-learn linear classifier) and the class attributes
    ``param_name`` (the estimator's strength parameter) and ``grid_name`` (the constructor
    argument holding its candidate values). A feature map with fitted parameters overrides
    :meth:`fit_features` and the ``_feature_state``/``_set_feature_state`` pair.

    Parameters
    ----------
    inner_folds : int
        Inner ``StratifiedGroupKFold`` folds over the training fold's subjects (5); fewer when
        the rarest class has fewer subjects.

    Notes
    -----
    Ties between grid values (common with balanced accuracy on small folds) go to the first
    value in the grid, i.e. to the strongest regularisation when the grid is ordered so.
    """

    param_name = "C"
    grid_name = "c_grid"
    scoring = "balanced_accuracy"

    def __init__(self, inner_folds: int = 5) -> None:
        if int(inner_folds) < 2:
            raise ConfigError(f"inner_folds={inner_folds}: inner cross-validation needs at least 2 folds")
        self.inner_folds = int(inner_folds)
        self.scaler_: StandardScaler | None = None
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | None = None
        self.classes_: np.ndarray | None = None
        self.selected_: float | None = None
        self.inner_folds_used_: int | None = None
        self.inner_score_: float | None = None
        self.history_: list[dict[str, Any]] = []

    # --- what a subclass supplies ------------------------------------------------------------

    def features(self, X: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def fit_features(self, X: Sequence[np.ndarray], y: np.ndarray) -> np.ndarray:
        """Features of the training scans; fits the feature map first where it has parameters."""
        return self.features(X)

    def _estimator(self):
        raise NotImplementedError

    def _feature_state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_feature_state(self, state: dict[str, np.ndarray]) -> None:
        pass

    # --- the shared recipe ------------------------------------------------------------------

    @property
    def grid(self) -> tuple[float, ...]:
        return tuple(getattr(self, self.grid_name))

    def fit(self, X: Sequence[np.ndarray], y, groups=None) -> "NestedCVLinearClassifier":
        """Choose the strength by inner CV on all of ``X``, then refit on all of ``X``.

        ``groups`` are the subject ids of the scans (inner folds never split a subject);
        without them every scan counts as its own subject.
        """
        y = np.asarray(y)
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)
        if not len(y) == len(groups) == len(X):
            raise ConfigError(f"{len(X)} scans, {len(y)} labels and {len(groups)} subject ids; they must match")
        k = inner_folds_for(y, groups, self.inner_folds)
        feats = self.fit_features(X, y)  # (n, F)
        self.scaler_ = StandardScaler().fit(feats)
        z = self.scaler_.transform(feats)  # (n, F)
        basis = row_space_basis(z)  # (F, r)
        if k < 2:
            return self._fit_default(z @ basis, y, basis, k)
        search = GridSearchCV(self._estimator(), {self.param_name: list(self.grid)}, scoring=self.scoring,
                              cv=StratifiedGroupKFold(n_splits=k), refit=True, error_score="raise")
        # The grid × folds fits run on an n × r matrix: too small for BLAS threads to pay off, and
        # threads that spin while the solver's serial code runs slowed them several-fold.
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
            # small inner folds may miss a class in their predictions; weak penalties may stop early
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(z @ basis, y, groups=groups)
        best = search.best_estimator_
        coef = np.atleast_2d(best.coef_)  # (n_classes or 1, r)
        self.coef_ = coef @ basis.T  # (n_classes or 1, F): back in the standardised feature space
        self.intercept_ = np.atleast_1d(np.asarray(best.intercept_, dtype=np.float64))
        self.classes_ = np.asarray(best.classes_)
        self.selected_ = float(search.best_params_[self.param_name])
        self.inner_folds_used_ = k
        self.inner_score_ = float(search.best_score_)
        res = search.cv_results_
        self.history_ = [
            {self.param_name: float(v), f"inner_{self.scoring}_mean": float(m), f"inner_{self.scoring}_std": float(s),
             "chosen": float(i == search.best_index_)}
            for i, (v, m, s) in enumerate(zip(res[f"param_{self.param_name}"], res["mean_test_score"],
                                              res["std_test_score"]))
        ]
        return self

    def _fit_default(self, zb: np.ndarray, y: np.ndarray, basis: np.ndarray, k: int) -> "NestedCVLinearClassifier":
        """A class with one subject leaves inner CV nothing to hold out: fit the grid value nearest 1."""
        value = min(self.grid, key=lambda v: abs(np.log(v)))
        log.warning("%s: a class has %d subject(s) in this training fold, too few for inner cross-validation; "
                    "fitted with the default %s=%g instead of choosing it (more subjects or fewer outer folds "
                    "let inner CV choose)", type(self).__name__, k, self.param_name, value)
        est = clone(self._estimator()).set_params(**{self.param_name: value})
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(zb, y)
        self.coef_ = np.atleast_2d(est.coef_) @ basis.T  # (n_classes or 1, F)
        self.intercept_ = np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64))
        self.classes_ = np.asarray(est.classes_)
        self.selected_, self.inner_folds_used_, self.inner_score_ = float(value), 0, None
        self.history_ = []
        return self

    def fitted_params(self) -> dict[str, Any]:
        """The hyperparameters inner CV chose, for the fold's ``metrics.json``."""
        return {self.param_name: self.selected_, "inner_folds": self.inner_folds_used_,
                "inner_scoring": self.scoring, f"inner_{self.scoring}": self.inner_score_,
                "grid": list(self.grid)}

    def decision_scores(self, X: Sequence[np.ndarray]) -> np.ndarray:
        z = self.scaler_.transform(self.features(X))  # (n, F)
        scores = z @ self.coef_.T + self.intercept_  # (n, n_classes or 1)
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_log_proba(self, X: Sequence[np.ndarray]) -> np.ndarray:
        return scores_to_log_proba(self.decision_scores(X))

    def get_state(self) -> dict[str, np.ndarray]:
        """The fitted parameters as plain arrays (saved as ``.npz``, never a pickle)."""
        return {"scaler_mean": self.scaler_.mean_, "scaler_scale": self.scaler_.scale_, "coef": self.coef_,
                "intercept": self.intercept_, "classes": self.classes_, "selected": np.array(self.selected_),
                **{f"features_{k}": v for k, v in self._feature_state().items()}}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.scaler_ = StandardScaler()
        self.scaler_.mean_, self.scaler_.scale_ = state["scaler_mean"], state["scaler_scale"]
        self.scaler_.var_ = self.scaler_.scale_ ** 2
        self.scaler_.n_features_in_ = self.scaler_.mean_.shape[0]
        self.coef_, self.intercept_, self.classes_ = state["coef"], state["intercept"], state["classes"]
        self.selected_ = float(state["selected"])
        self._set_feature_state({k[len("features_"):]: v for k, v in state.items() if k.startswith("features_")})
