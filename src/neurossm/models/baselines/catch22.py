"""catch22: canonical time-series features per ROI + a linear model chosen by nested CV.

For every ROI the 22 catch22 features (Lubba et al., 2019) of its raw signal and of its first
difference are computed on the whole scan: ``R × 2 × 22`` features per scan, standardised and
fed to an L2 logistic regression whose ``C`` is chosen by subject-grouped inner
cross-validation on the whole training fold (:mod:`neurossm.models.linear`). This is the
time-series-features analogue of the connectivity baselines: it sees each ROI's own dynamics
(autocorrelation, distribution, entropy-like statistics) and none of the coupling between ROIs.

Computation and caching (:mod:`neurossm.models.catch22_features`): extraction runs over scans
in parallel (joblib, ``n_jobs`` processes), and the features are cached in memory by a content
hash of the scan, so the five outer folds of a run, which share most of their scans, compute
each scan once per process. A run split over several processes (one per fold) keeps one cache
per process.

References
----------
Lubba, C. H., Sethi, S. S., Knaute, P., Schultz, S. R., Fulcher, B. D., & Jones, N. S. (2019).
catch22: CAnonical Time-series CHaracteristics. *Data Mining and Knowledge Discovery*, 33,
1821–1852.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from ...errors import ConfigError
from ..catch22_features import catch22_features
from ..linear import C_GRID, NestedCVLinearClassifier
from ..registry import register_model


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
