"""Closed-form baselines with nested CV (FC_LR, FC_SVM, catch22, MiniRocket) and meanMLP."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.svm import LinearSVC

from neurossm.errors import ConfigError, DataFormatError
from neurossm.models import catch22_features as c22
from neurossm.models.baselines.catch22 import Catch22Classifier
from neurossm.models.baselines.meanmlp import MeanMLP
from neurossm.models.fc import FCLogisticRegression
from neurossm.models.linear import inner_folds_for, row_space_basis


def _wide(n: int = 30, f: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """More features than samples, a class signal in the first 5 features."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    z = rng.standard_normal((n, f))
    z[:, :5] += 0.8 * y[:, None]
    return z, y


# --- the row-space reduction is exact ------------------------------------------------------------

def test_row_space_basis_is_orthonormal_and_keeps_the_rows():
    z, _ = _wide()
    v = row_space_basis(z)
    assert v.shape == (200, 30)
    np.testing.assert_allclose(v.T @ v, np.eye(30), atol=1e-10)
    np.testing.assert_allclose((z @ v) @ v.T, z, atol=1e-9)  # projecting onto span(V) changes no row


@pytest.mark.parametrize("make", [
    lambda: LogisticRegression(C=0.05, tol=1e-10, max_iter=10000),
    lambda: LinearSVC(C=0.05, tol=1e-10, max_iter=200000, random_state=0),
    lambda: RidgeClassifier(alpha=3.0),
])
def test_fitting_on_row_space_coordinates_equals_fitting_on_the_wide_features(make):
    """An L2 penalty is rotation invariant and the optimum lies in the row space: same model."""
    z, y = _wide()
    fit_rows = np.arange(24)  # an inner training fold: its rows span less than V does
    v = row_space_basis(z)
    wide = make().fit(z[fit_rows], y[fit_rows])
    reduced = make().fit((z @ v)[fit_rows], y[fit_rows])
    np.testing.assert_allclose(reduced.coef_ @ v.T, wide.coef_, atol=1e-5)
    np.testing.assert_allclose(reduced.intercept_, wide.intercept_, atol=1e-5)
    np.testing.assert_allclose(reduced.decision_function(z @ v), wide.decision_function(z), atol=1e-5)


# --- nested CV --------------------------------------------------------------------------------

def test_inner_folds_follow_the_subjects_of_the_rarest_class():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert inner_folds_for(y, np.array(list("aabbccdd")), 5) == 2  # class 0: subjects a, b
    assert inner_folds_for(y, np.arange(8), 5) == 4
    assert inner_folds_for(y, np.arange(8), 3) == 3
    assert inner_folds_for(y, np.array(list("aaaabbcc")), 5) == 1  # no inner CV possible
    with pytest.raises(ConfigError, match="one class"):
        inner_folds_for(np.zeros(4, int), np.arange(4), 5)


def test_a_class_with_one_subject_is_fitted_with_the_default_strength_and_says_so(caplog):
    rng = np.random.default_rng(2)
    X = [rng.standard_normal((6, 40)) for _ in range(8)]
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    model = FCLogisticRegression().fit(X, y, groups=np.array(list("aaaabbcc")))
    params = model.fitted_params()
    assert params["C"] == 1.0 and params["inner_folds"] == 0 and params["inner_balanced_accuracy"] is None
    assert "too few for inner cross-validation" in caplog.text
    assert np.exp(model.predict_log_proba(X)).sum(axis=1) == pytest.approx(np.ones(8))


def test_nested_cv_keeps_each_subject_in_one_inner_fold_and_refits_on_all_scans(monkeypatch):
    rng = np.random.default_rng(1)
    X = [rng.standard_normal((6, 50)) for _ in range(24)]
    y = np.arange(24) % 2
    groups = np.repeat([f"s{i}" for i in range(12)], 2)
    seen = []
    real_split = StratifiedGroupKFold.split

    def spy(self, X_, y_=None, groups=None):
        groups_ = np.asarray(groups)
        for train, test in real_split(self, X_, y_, groups):
            seen.append((set(groups_[train]), set(groups_[test])))
            yield train, test

    monkeypatch.setattr(StratifiedGroupKFold, "split", spy)
    model = FCLogisticRegression(inner_folds=3).fit(X, y, groups=groups)
    assert len(seen) == 3
    for train_subjects, test_subjects in seen:
        assert not train_subjects & test_subjects
    assert set().union(*(t for _, t in seen)) == set(groups)  # every scan is validated once
    # refit on the whole training fold: the final model equals a plain fit with the chosen C
    z = model.scaler_.transform(np.asarray(model.features(X)))
    plain = LogisticRegression(C=model.selected_, tol=1e-10, max_iter=10000).fit(z, y)
    np.testing.assert_allclose(model.decision_scores(X), plain.decision_function(z), atol=1e-3)


def test_fc_lr_without_groups_treats_scans_as_subjects_and_refuses_mismatched_groups(dataset_factory):
    ds = dataset_factory(n_scans=24, n_rois=6, n_times=40)
    X, y = [s.timeseries for s in ds.scans], ds.labels
    assert FCLogisticRegression().fit(X, y).fitted_params()["inner_folds"] == 5
    with pytest.raises(ConfigError, match="subject ids"):
        FCLogisticRegression().fit(X, y, groups=np.arange(5))


def test_fc_lr_learns_connectivity_from_scans_of_different_lengths(dataset_factory):
    ds = dataset_factory(n_scans=60, n_rois=8, n_times=90, signal=0.8)
    rng = np.random.default_rng(0)
    X = [s.timeseries[:, : int(rng.integers(40, 91))] for s in ds.scans]
    groups = [s.subject_id for s in ds.scans]
    model = FCLogisticRegression().fit(X[:44], ds.labels[:44], groups=groups[:44])
    assert (model.predict_log_proba(X[44:]).argmax(1) == ds.labels[44:]).mean() >= 0.8


# --- catch22 ---------------------------------------------------------------------------------------

def test_catch22_features_are_raw_then_difference_per_roi():
    import pycatch22

    x = np.random.default_rng(2).standard_normal((3, 60))
    feats = c22.scan_features(x)
    assert feats.shape == (3 * 2 * 22,)
    for r in range(3):
        np.testing.assert_allclose(feats[r * 44 : r * 44 + 22], pycatch22.catch22_all(x[r].tolist())["values"])
        np.testing.assert_allclose(feats[r * 44 + 22 : r * 44 + 44],
                                   pycatch22.catch22_all(np.diff(x[r]).tolist())["values"])


def test_catch22_features_are_cached_by_content(monkeypatch):
    c22.clear_cache()
    calls = []
    real = c22.scan_features
    monkeypatch.setattr(c22, "scan_features", lambda x: calls.append(1) or real(x))
    rng = np.random.default_rng(3)
    X = [rng.standard_normal((4, 30 + i)) for i in range(5)]
    first = c22.catch22_features(X, n_jobs=1)
    assert len(calls) == 5
    again = c22.catch22_features([x.copy() for x in X[::-1]], n_jobs=1)  # equal content, new arrays
    assert len(calls) == 5
    np.testing.assert_array_equal(again, first[::-1])
    changed = X[0].copy()
    changed[0, 0] += 1.0
    c22.catch22_features([changed], n_jobs=1)
    assert len(calls) == 6
    assert c22.scan_key(X[0]) != c22.scan_key(X[0].astype(np.float32))  # dtype is part of the key


def test_catch22_cache_is_bounded(monkeypatch):
    c22.clear_cache()
    monkeypatch.setattr(c22, "CACHE_MAX_BYTES", 3 * 2 * 2 * 22 * 8)  # three 2-ROI scans
    rng = np.random.default_rng(4)
    c22.catch22_features([rng.standard_normal((2, 20)) for _ in range(5)], n_jobs=1)
    assert len(c22._CACHE) == 3 and c22._CACHE_BYTES <= c22.CACHE_MAX_BYTES
    c22.clear_cache()


def test_catch22_refuses_nan_and_too_short_scans():
    with pytest.raises(DataFormatError, match="NaN"):
        c22.scan_features(np.full((2, 20), np.nan))
    with pytest.raises(DataFormatError, match="n_times ≥ 3"):
        c22.scan_features(np.zeros((2, 2)))


def test_catch22_finds_a_difference_in_autocorrelation():
    """Class 1 ROIs are AR(1) with ϕ = 0.8 instead of white noise: invisible to connectivity."""
    rng = np.random.default_rng(5)
    X, y = [], np.arange(32) % 2
    for label in y:
        x = rng.standard_normal((4, 80))
        if label:
            for t in range(1, 80):
                x[0, t] = 0.8 * x[0, t - 1] + 0.6 * x[0, t]
        X.append(x)
    model = Catch22Classifier(n_jobs=1).fit(X[:24], y[:24])
    assert (model.predict_log_proba(X[24:]).argmax(1) == y[24:]).mean() >= 0.85


# --- MiniRocket ----------------------------------------------------------------------------------

def test_minirocket_without_aeon_names_the_extra(monkeypatch):
    from neurossm.models.baselines import minirocket

    real_import = builtins.__import__

    def no_aeon(name, *args, **kwargs):
        if name == "aeon" or name.startswith("aeon."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_aeon)
    with pytest.raises(ConfigError, match=r"neurossm\[ts\]"):
        minirocket.MiniRocketClassifier()


@pytest.mark.slow
def test_minirocket_handles_scans_longer_than_the_fit_length_and_refuses_shorter():
    pytest.importorskip("aeon")
    from neurossm.models.baselines.minirocket import MiniRocketClassifier, window_starts_even

    assert window_starts_even(100, 40).tolist() == [0, 30, 60]
    assert window_starts_even(40, 40).tolist() == [0]
    rng = np.random.default_rng(6)
    X = [rng.standard_normal((3, 40 + 5 * i)).astype(np.float32) for i in range(12)]
    y = np.arange(12) % 2
    model = MiniRocketClassifier(n_kernels=84, inner_folds=2).fit(X, y)
    assert model.length_ == 40
    feats = model.features([X[0], np.concatenate([X[0], X[0]], axis=1)])
    np.testing.assert_allclose(feats[1], feats[0])  # two copies of a window: the same proportions
    with pytest.raises(DataFormatError, match="fitted on scans of 40 time points"):
        model.predict_log_proba([X[0][:, :30]])


# --- meanMLP ------------------------------------------------------------------------------------

def test_meanmlp_defaults_are_the_published_sizes():
    model = MeanMLP(400, 2, 150)
    assert model.encoder[0].out_features == 160 and model.encoder[3].p == 0.49
    assert isinstance(model.encoder[1], torch.nn.LayerNorm) and isinstance(model.encoder[2], torch.nn.ReLU)


def test_meanmlp_is_the_time_average_of_a_per_time_point_mlp_and_ignores_time_order():
    torch.manual_seed(0)
    model = MeanMLP(5, 3, 20, hidden_size=7).eval()
    x = torch.randn(2, 5, 20)
    with torch.no_grad():
        per_step = torch.stack([model.head(model.encoder(x[:, :, t])) for t in range(20)], dim=1)  # (B, T, C)
        torch.testing.assert_close(model(x), per_step.mean(dim=1))
        torch.testing.assert_close(model(x[:, :, torch.randperm(20)]), model(x))
        assert model(torch.randn(2, 5, 33)).shape == (2, 3)  # any length
    with pytest.raises(ConfigError, match="drop_prob"):
        MeanMLP(5, 2, 20, drop_prob=1.0)
