"""The scikit-learn estimators: fit/predict on scans, parameters, cross-validation, routing, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
import torch
from sklearn.base import clone, is_classifier
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import neurossm
from neurossm import Classifier, NeuroSSMClassifier
from neurossm import classifier as api
from neurossm.errors import ConfigError
from neurossm.training.estimators import FeatureEstimator
from neurossm.training.model_file import FORMAT_VERSION, read_model_file

TINY = dict(epochs=2, d_model=8, d_state=4, scales=(1, 2), batch_size=8, crop_length=16)


def _scans(n: int = 24, n_rois: int = 6, n_times: int = 40, seed: int = 0):
    """Scans whose class "b" has ROIs 0-1 share a time course (a connectivity signal); two scans per subject."""
    rng = np.random.default_rng(seed)
    y = np.array(["a", "b"] * (n // 2))
    X = rng.standard_normal((n, n_rois, n_times)).astype(np.float32)
    X[y == "b", :2] += 2.0 * rng.standard_normal((int((y == "b").sum()), 1, n_times))
    groups = np.array([f"sub{i // 4}{'ab'[i % 2]}" for i in range(n)])
    return X, y, groups


@pytest.fixture(scope="module")
def fitted():
    X, y, g = _scans()
    ragged = [x[:, : 30 + i % 10] for i, x in enumerate(X)]  # scans of 30 to 39 time points
    return NeuroSSMClassifier(**TINY).fit(ragged, y, groups=g), X, y


def test_estimators_are_classifiers_with_the_models_options_as_parameters():
    clf = NeuroSSMClassifier(d_model=16, epochs=3)
    assert is_classifier(clf) and is_classifier(Classifier("BolT"))
    params = clf.get_params()
    assert params["d_model"] == 16 and params["epochs"] == 3 and "model" not in params
    copy = clone(clf)
    assert copy.get_params() == params and copy is not clf
    copy.set_params(d_model=32, lr=1e-2)
    assert copy.get_params()["d_model"] == 32 and clf.get_params()["d_model"] == 16
    with pytest.raises(ValueError, match="Invalid parameter.*'hidden_size'"):
        copy.set_params(hidden_size=4)
    # a model's options belong to it: changing the model drops them
    gru = Classifier("NeuroSSM", d_model=8).set_params(model="GRU", hidden_size=4)
    assert gru.get_params()["hidden_size"] == 4 and "d_model" not in gru.get_params()
    assert set(dir(neurossm)) >= {"Classifier", "NeuroSSMClassifier", "load", "load_run"}


def test_string_labels_lists_of_scans_of_several_lengths_and_unknown_options(fitted):
    clf, X, y = fitted
    assert clf.classes_.tolist() == ["a", "b"] and clf.n_rois_ == clf.n_features_in_ == 6
    ragged = [X[0], X[1, :, :35], X[2, :, :clf.crop_length_]]  # predicted at any length ≥ the crop
    assert set(clf.predict(ragged)) <= {"a", "b"}
    proba = clf.predict_proba(ragged)
    assert proba.shape == (3, 2) and np.allclose(proba.sum(axis=1), 1)
    assert 0 <= clf.score(X, y) <= 1
    with pytest.raises(ConfigError, match="no option 'widht'"):
        NeuroSSMClassifier(widht=3).fit(X, y)


def test_scans_of_another_roi_count_or_too_short_are_refused_with_what_is_needed(fitted):
    clf, X, _ = fitted
    with pytest.raises(ValueError, match=r"X\[0\] has 5 ROI\(s\), but the model was fitted on 6 ROIs"):
        clf.predict(X[:2, :5])
    with pytest.raises(ValueError, match=rf"shorter than the model's crop length {clf.crop_length_}.*at least "
                                         rf"{clf.crop_length_} time points"):
        clf.predict([X[0, :, :10]])
    with pytest.raises(ValueError, match="Reshape your data"):
        clf.predict(X[0, 0])


def test_the_inner_validation_split_keeps_subjects_together_and_is_by_scan_without_groups(monkeypatch):
    X, y, g = _scans()
    seen = []

    def record(self, X, y, X_val, y_val, groups=None, groups_val=None):
        seen.append((list(groups), list(groups_val)))
        return self

    monkeypatch.setattr(FeatureEstimator, "fit", record)
    Classifier("FC_LR").fit(X, y, groups=g)
    fit_groups, val_groups = seen[-1]
    assert val_groups and not set(fit_groups) & set(val_groups)
    assert set(fit_groups) | set(val_groups) == set(g)
    Classifier("FC_LR").fit(X, y)
    fit_groups, val_groups = seen[-1]
    assert sorted(fit_groups + val_groups) == list(range(len(y)))  # each scan its own group


def test_cross_val_score_with_subject_groups_grid_search_and_a_pipeline():
    X, y, g = _scans()
    scores = cross_val_score(Classifier("FC_LR"), X, y, groups=g, cv=StratifiedGroupKFold(3))
    assert scores.shape == (3,) and scores.mean() > 0.7
    search = GridSearchCV(NeuroSSMClassifier(**{**TINY, "epochs": 1}), {"d_model": [4, 8]}, cv=2).fit(X, y)
    assert search.best_params_["d_model"] in (4, 8) and search.predict(X[:2]).shape == (2,)
    pipe = make_pipeline(FunctionTransformer(lambda scans: scans[:, :4]), Classifier("FC_LR")).fit(X, y)
    assert pipe.score(X, y) > 0.7 and pipe[-1].n_rois_ == 4


def test_metadata_routing_hands_the_groups_to_the_inner_validation_split(monkeypatch):
    X, y, g = _scans()
    inner = []
    split = api.validation_split

    def recording_split(labels, groups, *args):
        inner.append(np.asarray(groups).tolist())
        return split(labels, groups, *args)

    monkeypatch.setattr(api, "validation_split", recording_split)
    with sklearn.config_context(enable_metadata_routing=True):
        clf = Classifier("FC_LR").set_fit_request(groups=True)
        cross_val_score(clf, X, y, cv=StratifiedGroupKFold(3), params={"groups": g})
    assert len(inner) == 3 and all(set(groups) <= set(g.tolist()) for groups in inner)


@pytest.mark.parametrize("make", [lambda: NeuroSSMClassifier(**TINY), lambda: Classifier("FC_LR", atlas="aal3v2")])
def test_save_and_load_give_the_same_model_with_its_description(make, tmp_path, monkeypatch):
    X, y, g = _scans()
    clf = make().fit(X, y, groups=g)
    path = clf.save(tmp_path / "model.pt")
    loads = []
    real_load = torch.load

    def checked_load(*args, **kwargs):
        loads.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", checked_load)
    again = neurossm.load(path)
    assert loads and all(w is True for w in loads)  # nothing in the file is unpickled as code
    assert type(again) is type(clf) and again.classes_.tolist() == ["a", "b"]
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), rtol=1e-6, atol=1e-7)
    info, _ = read_model_file(path)
    assert info.n_rois == 6 and info.crop_length == clf.crop_length_ and info.classes == ["a", "b"]
    assert info.neurossm_version == neurossm.__version__ and info.preprocessing["standardize"]
    assert info.training_data["fingerprint"].startswith("sha256:") and info.training_data["n_scans"] == len(y)
    assert info.options == {k: list(v) if isinstance(v, tuple) else v for k, v in
                            api.get_model(info.model).resolve_config(clf._options).items()}
    for key, value in clf.get_params().items():
        if key not in ("crop_length",):
            assert again.get_params()[key] == value, key
    # a refit of the loaded model trains the same network again
    assert clone(again).fit(X, y, groups=g).predict(X).shape == (len(y),)


def test_a_model_of_another_format_version_is_refused_with_the_version_named(tmp_path):
    X, y, _ = _scans(n=12)
    path = Classifier("FC_LR").fit(X, y).save(tmp_path / "model.pt")
    blob = torch.load(path, weights_only=True)
    blob["neurossm"] = blob["neurossm"].replace(f'"format_version": {FORMAT_VERSION}', '"format_version": 99') \
        .replace(f'"neurossm_version": "{neurossm.__version__}"', '"neurossm_version": "9.1.0"')
    torch.save(blob, tmp_path / "newer.pt")
    with pytest.raises(ConfigError, match=r"newer\.pt: saved by neurossm 9\.1\.0 in model format 99; neurossm "
                                          rf"{neurossm.__version__} reads model format {FORMAT_VERSION}"):
        neurossm.load(tmp_path / "newer.pt")
    # neurossm 0.1's checkpoint.pt: a bare state dict
    torch.save({"head.weight": torch.zeros(2, 3)}, tmp_path / "checkpoint.pt")
    with pytest.raises(ConfigError, match=r"checkpoint\.pt: holds weights without a description.*neurossm 0\.1"):
        neurossm.load(tmp_path / "checkpoint.pt")
    (tmp_path / "notes.pt").write_text("not a model")
    with pytest.raises(ConfigError, match=r"notes\.pt: not a neurossm model file"):
        neurossm.load(tmp_path / "notes.pt")


def test_explain_returns_cpa_of_each_scan_as_named_arrays(fitted):
    clf, X, y = fitted
    out = clf.explain(X[:3], y[:3], batch_size=2)
    n_paths = len(out["pathway_names"])
    assert out["pathway_maps"].shape == (3, n_paths, 6) and out["cpa_score"].shape == (3, 6)
    np.testing.assert_allclose(out["pathway_maps"].sum(axis=2), 1, rtol=1e-5)
    np.testing.assert_allclose(out["pathway_importance"].sum(axis=1), 1, rtol=1e-5)
    assert out["target"].tolist() == y[:3].tolist() and set(out["pred"]) <= {"a", "b"}
    assert out["dominant_pathway"].max() < n_paths
    with pytest.raises(ConfigError, match="FC_LR"):
        Classifier("FC_LR").fit(X, y).explain(X[:1])
