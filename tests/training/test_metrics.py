import numpy as np
import pytest

from neurossm.training.metrics import METRICS, classification_metrics, mean_std


def test_perfect_binary_predictions_score_one():
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    m = classification_metrics(y, probs)
    assert set(m) == set(METRICS)
    assert all(m[k] == pytest.approx(1.0) for k in METRICS)


def test_multiclass_matches_hand_computed_values():
    y = np.array([0, 1, 2, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8]])
    m = classification_metrics(y, probs)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["recall"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["precision"] == pytest.approx((0.5 + 1 + 1) / 3)


def test_auc_is_nan_with_one_class_on_the_test_side():
    m = classification_metrics([1, 1], np.array([[0.4, 0.6], [0.3, 0.7]]))
    assert np.isnan(m["roc_auc"])
    assert m["accuracy"] == 1.0


def test_mean_std_ignores_nan():
    assert mean_std([1.0, 3.0, float("nan")]) == {"mean": 2.0, "std": 1.0}
