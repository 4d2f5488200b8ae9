"""Functional connectivity + linear support vector machine.

The connectome-based classifier benchmarked by Dadi et al. (2019): Pearson correlations between
ROI time series (upper triangle, Fisher z, standardised) fed to an L2-regularised linear SVM,
whose ``C`` is chosen on the inner validation split (see
:class:`neurossm.models.fc.ConnectivityClassifier`).

References
----------
Dadi, K., Rahim, M., Abraham, A., et al. (2019). Benchmarking functional connectome-based
predictive models for resting-state fMRI. *NeuroImage*, 192, 115–134.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax
from sklearn.svm import LinearSVC

from ..fc import ConnectivityClassifier, connectivity_features
from ..registry import register_model


@register_model(
    "FC_SVM",
    kind="features",
    description="Pearson connectivity (upper triangle, Fisher z, standardised) + L2 linear SVM",
    reference="Dadi et al. (2019) NeuroImage 192:115-134",
)
class FCLinearSVM(ConnectivityClassifier):
    """Connectivity + linear SVM (squared hinge, L2 penalty; one-vs-rest for several classes).

    Parameters
    ----------
    c_grid : tuple of float
        Candidate ``C`` values; the best validation balanced accuracy wins.

    Notes
    -----
    ``predict_log_proba`` returns the log-softmax of the SVM's decision scores. These are
    *scores*, not calibrated probabilities: argmax, balanced accuracy and ROC-AUC (which depends
    only on their order) are meaningful; a "probability" of 0.9 is not. A binary SVM has one
    score ``s`` (positive: class 1); it is written as the two columns ``[−s/2, s/2]`` so that the
    softmax of class 1 is ``sigmoid(s)``.
    """

    def _make(self, c: float) -> LinearSVC:
        # dual=True suits connectomes (features ≫ scans); random_state fixes the coordinate order.
        return LinearSVC(C=c, dual=True, max_iter=20000, random_state=0)

    def decision_scores(self, X) -> np.ndarray:
        z = self.scaler_.transform(connectivity_features(X))
        scores = self.model_.decision_function(z)
        if scores.ndim == 1:
            scores = np.stack([-scores / 2.0, scores / 2.0], axis=1)  # (n, 2)
        return log_softmax(scores, axis=1)
