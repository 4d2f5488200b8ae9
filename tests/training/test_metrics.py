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


def test_two_class_precision_and_recall_are_macro_averages():
    # class 0: precision 1/2, recall 1/1; class 1: precision 2/2, recall 2/3
    y = np.array([0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    m = classification_metrics(y, probs)
    assert m["precision"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["recall"] == pytest.approx((1.0 + 2 / 3) / 2)


def test_multiclass_auc_is_over_the_classes_in_the_test_fold():
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4]])
    m = classification_metrics(y, probs, 3)
    # class 0 vs rest: 1.0; class 1 vs rest: 3 of 4 pairs ordered; class 2 absent, so not averaged in
    assert m["roc_auc"] == pytest.approx((1.0 + 0.75) / 2)
