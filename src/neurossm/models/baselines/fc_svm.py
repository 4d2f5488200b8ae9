"""Functional connectivity + linear support vector machine.

The connectome-based classifier benchmarked by Dadi et al. (2019): Pearson correlations between
ROI time series of the whole scan (upper triangle, Fisher z, standardised) fed to an
L2-regularised linear SVM, whose ``C`` is chosen by subject-grouped inner cross-validation on
the whole training fold (see :class:`neurossm.models.fc.ConnectivityClassifier`).

References
----------
Dadi, K., Rahim, M., Abraham, A., et al. (2019). Benchmarking functional connectome-based
predictive models for resting-state fMRI. *NeuroImage*, 192, 115–134.
"""

from __future__ import annotations

from sklearn.svm import LinearSVC

from ..fc import ConnectivityClassifier
from ..registry import register_model


@register_model(
    "FC_SVM",
    kind="features",
    description="Pearson connectivity of the whole scan (upper triangle, Fisher z, standardised) + L2 linear SVM, "
                "C by subject-grouped nested CV",
    reference="Dadi et al. (2019) NeuroImage 192:115-134",
)
class FCLinearSVM(ConnectivityClassifier):
    """Connectivity + linear SVM (squared hinge, L2 penalty; one-vs-rest for several classes).

    Parameters
    ----------
    c_grid : tuple of float
        Candidate ``C`` values; inner CV balanced accuracy picks one.
    inner_folds : int
        Inner subject-grouped folds on the training fold (5).

    Notes
    -----
    ``predict_log_proba`` returns the log-softmax of the SVM's decision scores
    (:func:`neurossm.models.linear.scores_to_log_proba`). These are *scores*, not calibrated
    probabilities: argmax, balanced accuracy and ROC-AUC (which depends only on their order) are
    meaningful; a "probability" of 0.9 is not. A binary SVM has one score ``s`` (positive:
    class 1); it is written as the two columns ``[−s/2, s/2]`` so that the softmax of class 1
    is ``sigmoid(s)``.
    """

    def _estimator(self) -> LinearSVC:
        # random_state fixes liblinear's coordinate order, so a fold refits to the same model.
        return LinearSVC(dual="auto", max_iter=20000, random_state=0)
