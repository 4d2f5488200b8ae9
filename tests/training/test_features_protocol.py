"""The harness side of the closed-form models: whole training fold, subject ids, whole scans, chosen C."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from neurossm.data.scans import assemble
from neurossm.io import read_json
from neurossm.models.registry import get_model
from neurossm.pipeline import ExperimentOptions, run_experiment


def _opts(tmp_path, model="FC_LR", **kw):
    return ExperimentOptions(dataset="CUSTOM", model=model, results_root=str(tmp_path / "Results"), seeds=(0,),
                             folds=4, run_name="r", **kw)


def test_fold_metrics_record_the_chosen_regularisation(tmp_path, tiny_dataset):
    run = run_experiment(_opts(tmp_path), dataset=tiny_dataset).run_dir
    config = read_json(run / "config.json")
    assert "whole scan" in config["training"]["test_policy"]
    grid = list(get_model("FC_LR").defaults()["c_grid"])
    for k in range(4):
        fold = run / "seed_0" / f"fold_{k}"
        metrics = read_json(fold / "metrics.json")
        params = metrics["hyperparameters"]
        assert params["C"] in grid and params["grid"] == grid and params["inner_folds"] >= 2
        history = pd.read_csv(fold / "history.csv")
        assert list(history["C"]) == grid and history["chosen"].sum() == 1
        assert history.loc[history["chosen"] == 1, "C"].item() == params["C"]


def test_features_model_gets_the_whole_training_fold_whole_scans_and_subject_ids(tmp_path, tiny_dataset, monkeypatch):
    """Variable-length scans, no crops; train + validation scans together, each with its subject."""
    rng = np.random.default_rng(0)
    scans = [dataclasses.replace(s, timeseries=s.timeseries[:, : int(rng.integers(45, 61))])
             for s in tiny_dataset.scans]
    ds = assemble("CUSTOM", scans, tiny_dataset.class_names, atlas="custom", n_rois=tiny_dataset.n_rois,
                  crop_length=None)
    subject_of = {s.timeseries.tobytes(): s.subject_id for s in ds.scans}
    cls = get_model("FC_LR").cls
    seen = []
    real_fit, real_predict = cls.fit, cls.predict_log_proba

    def spy_fit(self, X, y, groups=None):
        seen.append(("fit", [x.shape[1] for x in X], list(groups), [subject_of[x.tobytes()] for x in X]))
        return real_fit(self, X, y, groups=groups)

    def spy_predict(self, X):
        seen.append(("predict", [x.shape[1] for x in X]))
        return real_predict(self, X)

    monkeypatch.setattr(cls, "fit", spy_fit)
    monkeypatch.setattr(cls, "predict_log_proba", spy_predict)
    run = run_experiment(_opts(tmp_path), dataset=ds).run_dir
    lengths = {s.timeseries.shape[1] for s in ds.scans}
    assert len(lengths) > 1
    fits = [s for s in seen if s[0] == "fit"]
    assert len(fits) == 4
    for k, (_, fit_lengths, groups, true_subjects) in enumerate(fits):
        metrics = read_json(run / "seed_0" / f"fold_{k}" / "metrics.json")
        assert len(fit_lengths) == metrics["n_train"] + metrics["n_val"]  # the validation split is trained on
        assert groups == true_subjects  # each scan arrives with its own subject id
    predicted = [n for s in seen if s[0] == "predict" for n in s[1]]
    assert sorted(predicted) == sorted(s.timeseries.shape[1] for s in ds.scans)  # whole test scans, once each
