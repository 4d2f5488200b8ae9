"""The closed-form baselines run on every loader's scans (whole scans, the loader's splits)."""

from __future__ import annotations

import numpy as np
import pytest

from neurossm.io import read_json
from neurossm.pipeline import ExperimentOptions, run_experiment


def _run(tmp_path, dataset: str, model: str, root, **options):
    opts = ExperimentOptions(dataset=dataset, model=model, data_root=str(root), results_root=str(tmp_path / "R"),
                             folds=2, run_name="r", crop_length=20, dataset_options=options)
    return run_experiment(opts)


def _check(result, model: str):
    assert result.summary["complete"] and result.summary["model"] == model
    n_classes = len(result.dataset.class_names)
    for k in range(2):
        metrics = read_json(result.run_dir / "seed_0" / f"fold_{k}" / "metrics.json")
        assert "C" in metrics["hyperparameters"]
        assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == len(result.dataset)
    probs = result.run_dir / "predictions.csv"
    assert probs.is_file()
    return n_classes


@pytest.mark.slow
def test_fc_lr_on_hcp_rest(tmp_path, hcp_root):
    _check(_run(tmp_path, "HCP_REST", "FC_LR", hcp_root), "FC_LR")


@pytest.mark.slow
def test_catch22_on_hcp_task_with_several_scans_per_subject(tmp_path, lay, task_data):
    lay.save_task(tmp_path, task_data)
    lay.write_pheno(tmp_path)
    result = _run(tmp_path, "HCP_TASK", "catch22", tmp_path, task_release=None)
    assert len({s.subject_id for s in result.dataset.scans}) < len(result.dataset)
    _check(result, "catch22")


@pytest.mark.slow
def test_fc_svm_on_ppmi(tmp_path, lay, ppmi_records):
    lay.save_ppmi(tmp_path, ppmi_records)
    _check(_run(tmp_path, "PPMI", "FC_SVM", tmp_path), "FC_SVM")


def test_catch22_on_a_custom_folder_of_scans_of_different_lengths(tmp_path, lay, folder_arrays, folder_labels):
    root = lay.write_folder(tmp_path / "data", folder_arrays, folder_labels)
    result = _run(tmp_path, "CUSTOM", "catch22", root)
    assert len({s.timeseries.shape[1] for s in result.dataset.scans}) > 1
    _check(result, "catch22")
    assert np.isfinite(np.loadtxt(result.run_dir / "fold_metrics.csv", delimiter=",", skiprows=1)[:, 2:4]).all()
