"""Fold models of `neurossm train` in the saved-model format: load, explain as the CLI does, predict new scans."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

import neurossm
from neurossm import cli
from neurossm.io import read_json, write_dataframe, write_json
from neurossm.pipeline.options import ExperimentOptions, load_experiment_dataset
from neurossm.training.model_file import read_model_file

SYNTHETIC = ["--dataset", "SYNTHETIC", "--model", "NeuroSSM", "--device", "cpu", "--seeds", "0", "--epochs", "1",
             "--config", "d_model=8", "d_state=4", "scales=1,2", "--data-option", "n_scans=20", "n_times=32",
             "n_signal_rois=2", "--n-rois", "6", "--quiet"]


@pytest.fixture(scope="module")
def holdout(tmp_path_factory):
    """A finished ``--analysis --skip_cross_validation`` NeuroSSM run: (run folder, its CPA folder)."""
    root = tmp_path_factory.mktemp("holdout")
    assert cli.main(["train", *SYNTHETIC, "--skip_cross_validation", "--analysis", "--run-name", "r",
                     "--results-root", str(root / "Results"), "--analysis-root", str(root / "Analysis")]) == 0
    return root / "Results" / "SYNTHETIC" / "NeuroSSM" / "r", root / "Analysis" / "Explainability" / "SYNTHETIC"


def _folder(root, n_scans=12, n_rois=5, n_times=30, labels=True, seed=1):
    """A CUSTOM folder: one ``.npy`` per scan (class "pd" has ROIs 0-1 coupled), with or without labels.csv."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_scans):
        label = ("hc", "pd")[i % 2]
        x = rng.standard_normal((n_rois, n_times))
        if label == "pd":
            x[:2] += 2.0 * rng.standard_normal(n_times)
        np.save(root / f"s{i:02d}.npy", x.astype(np.float32))
        rows.append({"scan": f"s{i:02d}", "subject": f"p{i // 2}{label}", "label": label})
    if labels:
        write_dataframe(root / "labels.csv", pd.DataFrame(rows))
    return root


def test_every_fold_saves_the_one_model_format_and_loads_as_a_classifier(holdout):
    run, _ = holdout
    path = run / "seed_0" / "fold_0" / "model.pt"
    info, _ = read_model_file(path)
    config = read_json(run / "config.json")
    assert info.model == "NeuroSSM" and info.n_rois == 6 and info.atlas == "synthetic"
    assert info.classes == config["dataset"]["class_names"] and info.crop_length == config["training"]["crop_length"]
    assert info.training_data["dataset"] == "SYNTHETIC" and info.training_data["fingerprint"].startswith("sha256:")
    assert info.training_data["run_id"] == config["run_id"]
    clf = neurossm.load(run)  # a holdout run holds one fold model
    assert isinstance(clf, neurossm.NeuroSSMClassifier) and clf.get_params()["d_model"] == 8


def test_explain_from_python_gives_the_numbers_the_cli_wrote(holdout):
    run, maps = holdout
    clf = neurossm.load(run / "seed_0" / "fold_0" / "model.pt")
    dataset = load_experiment_dataset(ExperimentOptions.from_config(read_json(run / "config.json")))
    (split,) = read_json(run / "splits" / "seed_0.json")
    scans = [s for s in dataset.scans if s.scan_id in set(split["test"])]
    out = clf.explain([s.timeseries for s in scans], [dataset.class_names[s.label] for s in scans])
    for i, scan in enumerate(scans):
        with np.load(maps / "seed_0" / f"subj_{scan.scan_id}.npz") as f:
            written = {k: f[k] for k in f.files}
        for key in ("probs", "pathway_maps", "pathway_importance", "cpa_score", "logit_full", "logit_ablated"):
            np.testing.assert_allclose(out[key][i], written[key], rtol=1e-4, atol=1e-6, err_msg=key)
        np.testing.assert_array_equal(out["dominant_pathway"][i], written["dominant_pathway"])
        np.testing.assert_array_equal(out["pathway_names"], written["pathway_names"])
        assert out["target"][i] == written["class_names"][int(written["target"])]


def test_a_run_of_weights_only_checkpoints_is_refused_by_explain_resume_and_load(holdout, tmp_path, errors):
    run, _ = holdout
    old = tmp_path / "old"
    shutil.copytree(run, old)
    fold = old / "seed_0" / "fold_0"
    (fold / "model.pt").rename(fold / "checkpoint.pt")  # as neurossm 0.1 named its weights
    write_json(fold / "metrics.json", {**read_json(fold / "metrics.json"), "checkpoint": "checkpoint.pt"})
    assert cli.main(["explain", "--run", str(old), "--analysis-root", str(tmp_path / "A"), "--quiet"]) == 2
    assert "whose folds saved weights-only checkpoints (seed_0/fold_0/checkpoint.pt)" in errors()
    assert cli.main(["train", *SYNTHETIC, "--skip_cross_validation", "--resume", str(old)]) == 2
    assert errors().count("train the run again") == 2
    with pytest.raises(neurossm.classifier.ConfigError, match="made by neurossm"):
        neurossm.load(old)


def test_predict_a_folder_without_labels_writes_one_row_per_scan(tmp_path):
    train = _folder(tmp_path / "train")
    X = [np.load(train / f"s{i:02d}.npy") for i in range(12)]
    y = ["hc", "pd"] * 6
    model = neurossm.Classifier("FC_LR", atlas="schaefer400").fit(X, y).save(tmp_path / "m.pt")
    new = _folder(tmp_path / "new", n_scans=4, labels=False, seed=2)
    out = tmp_path / "predictions.csv"
    assert cli.main(["predict", "--model", str(model), "--data-root", str(new), "--out", str(out), "--quiet"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["scan", "predicted", "prob_hc", "prob_pd"]
    assert table["scan"].tolist() == [f"s{i:02d}" for i in range(4)]
    expected = neurossm.load(model).predict_proba([np.load(new / f"s{i:02d}.npy") for i in range(4)])
    np.testing.assert_allclose(table[["prob_hc", "prob_pd"]].to_numpy(), expected, rtol=1e-6)
    assert table["predicted"].tolist() == np.array(["hc", "pd"])[expected.argmax(axis=1)].tolist()


def test_predict_with_a_runs_folds_averages_them_with_ensemble_only(tmp_path, errors):
    data = _folder(tmp_path / "data", n_scans=16)
    results = tmp_path / "Results"
    assert cli.main(["train", "--dataset", "CUSTOM", "--data-root", str(data), "--model", "FC_LR", "--folds", "2",
                     "--results-root", str(results), "--run-name", "r", "--quiet"]) == 0
    run = results / "CUSTOM" / "FC_LR" / "r"
    out = tmp_path / "p.csv"
    assert cli.main(["predict", "--model", str(run), "--data-root", str(data), "--out", str(out), "--quiet"]) == 2
    assert "the run has 2 fold models; pass --ensemble" in errors()
    assert cli.main(["predict", "--model", str(run), "--data-root", str(data), "--out", str(out), "--ensemble",
                     "--quiet"]) == 0
    table = pd.read_csv(out, dtype={"subject": str})
    assert list(table.columns) == ["scan", "subject", "label", "predicted", "prob_hc", "prob_pd"]
    folds = neurossm.load_run(run)
    scans = [np.load(data / f"{s}.npy") for s in table["scan"]]
    mean = np.mean([m.predict_proba(scans) for m in folds], axis=0)
    np.testing.assert_allclose(table[["prob_hc", "prob_pd"]].to_numpy(), mean, rtol=1e-6)


def test_predict_refuses_another_roi_count_atlas_or_too_short_scans(tmp_path, errors):
    train = _folder(tmp_path / "train")
    X = [np.load(train / f"s{i:02d}.npy") for i in range(12)]
    model = neurossm.Classifier("FC_LR", atlas="schaefer400").fit(X, ["hc", "pd"] * 6).save(tmp_path / "m.pt")

    def predict(folder, *extra):
        return cli.main(["predict", "--model", str(model), "--data-root", str(folder), "--out",
                         str(tmp_path / "p.csv"), "--quiet", *extra])

    assert predict(_folder(tmp_path / "rois", n_scans=3, n_rois=7, labels=False)) == 2
    assert "the scans have 7 ROIs (atlas custom), but" in errors() and "trained on 5 ROIs (atlas schaefer400)" in errors()
    assert predict(_folder(tmp_path / "aal", n_scans=3, labels=False), "--data-option", "atlas=aal3v2") == 2
    assert "the scans are in atlas aal3v2, but" in errors()
    assert predict(_folder(tmp_path / "short", n_scans=3, n_times=20, labels=False)) == 2
    assert "shorter than the model's crop length 30: s00 (20)" in errors()
    assert "each scan needs at least 30 time points" in errors()
    assert not (tmp_path / "p.csv").exists()
