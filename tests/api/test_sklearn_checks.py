"""scikit-learn's own estimator checks, on a closed-form model and a tiny one-epoch NeuroSSM.

The checks feed 2-D toy data ``(n_samples, n_features)``; the estimators read it as scans of one
ROI whose columns are time points (the convention of time-series libraries). The checks that
assume columns are features, or that fit on toy data of two time points, cannot apply to scans
and are expected to fail, each with its reason below.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from neurossm.classifier import Classifier, NeuroSSMClassifier

# catch22 stands for the closed-form models: FC_LR and FC_SVM read the correlations between
# ROIs, which a single-ROI scan does not have.
ESTIMATORS = [Classifier("catch22"), NeuroSSMClassifier(epochs=1, d_model=4, d_state=2, scales=(1,), roi_patch=1)]

TIME_IS_NOT_FEATURES = ("n_features_in_ is the ROI count; a scan's columns are time points, and a scan of any "
                        "length (at least the crop length) can be predicted")
ALWAYS = {
    "check_n_features_in": TIME_IS_NOT_FEATURES,
    "check_n_features_in_after_fitting": TIME_IS_NOT_FEATURES,
    "check_classifiers_train": TIME_IS_NOT_FEATURES,
    "check_estimators_empty_data_messages": "the error speaks of scans and time points, not of features",
    "check_do_not_raise_errors_in_init_or_set_params": "the model's options are **options: the check passes "
                                                       "'options' itself as a parameter name",
}
TWO_TIME_POINTS = "catch22 needs 3 time points or more; these toy data hold scans of 1 or 2"
CATCH22 = {name: TWO_TIME_POINTS for name in (
    "check_classifiers_classes", "check_classifier_data_not_an_array", "check_estimators_fit_returns_self",
    "check_estimators_overwrite_params", "check_fit2d_1feature", "check_fit_check_is_fitted",
    "check_fit_idempotent", "check_readonly_memmap_input")}


def expected_failures(estimator):
    return {**ALWAYS, **(CATCH22 if estimator.get_params().get("model") == "catch22" else {})}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
