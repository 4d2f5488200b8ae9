"""``neurossm compare``: pairing of runs by (seed, fold), the tests, and the refusal of unpaired splits."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from neurossm.cli.compare import add_arguments, run
from neurossm.compare import COLUMNS, compare_runs, find_run_dirs, paired_tests
from neurossm.errors import ConfigError, DataNotFoundError
from neurossm.training.metrics import METRICS
from neurossm.pipeline import ExperimentOptions, run_experiment


def _run(tmp_path, dataset, model: str, name: str, seeds=(0,)):
    opts = ExperimentOptions(dataset="CUSTOM", model=model, results_root=str(tmp_path / "Results"), seeds=seeds,
                             folds=3, run_name=name)
    return run_experiment(opts, dataset=dataset).run_dir


@pytest.fixture
def two_runs(tmp_path, tiny_dataset):
    return _run(tmp_path, tiny_dataset, "FC_LR", "lr"), _run(tmp_path, tiny_dataset, "FC_SVM", "svm")


def test_same_seed_runs_pair_on_every_fold(two_runs):
    lr, svm = two_runs
    table = compare_runs([lr, svm], reference_model="FC_LR")
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == 2 * len(METRICS)
    assert set(table["model"]) == {"FC_LR", "FC_SVM"} and set(table["reference"]) == {"FC_LR"}
    ref_rows = table[table["model"] == "FC_LR"]
    assert ref_rows["n_pairs"].isna().all()  # the reference is not compared with itself
    acc = table[(table["model"] == "FC_SVM") & (table["metric"] == "accuracy")].iloc[0]
    assert acc["n_pairs"] == 3 and acc["n_folds"] == 3
    a = pd.read_csv(lr / "fold_metrics.csv")["accuracy"].to_numpy()
    b = pd.read_csv(svm / "fold_metrics.csv")["accuracy"].to_numpy()
    assert acc["mean_diff"] == pytest.approx((b - a).mean())


def test_results_root_is_searched_and_default_reference_is_the_first_run(two_runs, tmp_path):
    root = tmp_path / "Results"
    assert find_run_dirs([root]) == sorted(two_runs)
    table = compare_runs([root])
    assert set(table["reference"]) == {"FC_LR"}  # no NeuroSSM run: the first one found


def test_different_splits_are_refused_naming_both_runs_and_the_seed(tmp_path, tiny_dataset, dataset_factory):
    a = _run(tmp_path, tiny_dataset, "FC_LR", "a")
    b = _run(tmp_path, dataset_factory(n_scans=44, seed=7), "FC_SVM", "b")
    assert (a / "splits/seed_0.json").read_bytes() != (b / "splits/seed_0.json").read_bytes()
    with pytest.raises(ConfigError, match=r"runs .*a and .*b \(CUSTOM\) have different splits for seed 0"):
        compare_runs([a, b])


def test_runs_with_disjoint_seeds_have_no_pairs(tmp_path, tiny_dataset):
    a = _run(tmp_path, tiny_dataset, "FC_LR", "a", seeds=(0,))
    b = _run(tmp_path, tiny_dataset, "FC_SVM", "b", seeds=(1,))
    row = compare_runs([a, b]).query("model == 'FC_SVM' and metric == 'accuracy'").iloc[0]
    assert row["n_pairs"] == 0 and math.isnan(row["p_corrected"])


def test_unknown_reference_and_missing_folder_speak_clearly(two_runs, tmp_path):
    with pytest.raises(ConfigError, match="--reference BolT: no run of CUSTOM matches; runs: FC_LR, FC_SVM"):
        compare_runs(list(two_runs), reference_model="BolT")
    with pytest.raises(DataNotFoundError, match="no such run folder"):
        compare_runs([tmp_path / "nowhere"])


def test_corrected_t_test_follows_nadeau_bengio():
    d = np.array([0.02, 0.05, -0.01, 0.04, 0.03, 0.06, 0.00, 0.02, 0.05, 0.01])
    ratio = 0.25  # 5 folds: test / training fold
    out = paired_tests(d, ratio)
    n = d.size
    t = d.mean() / np.sqrt((1 / n + ratio) * d.var(ddof=1))
    assert out["t_corrected"] == pytest.approx(t)
    assert out["p_corrected"] == pytest.approx(2 * stats.t.sf(abs(t), n - 1))
    plain = stats.ttest_1samp(d, 0.0)
    assert out["t_paired"] == pytest.approx(plain.statistic) and out["p_paired"] == pytest.approx(plain.pvalue)
    assert out["p_corrected"] > out["p_paired"]  # the correction widens the interval
    assert out["p_wilcoxon"] == pytest.approx(stats.wilcoxon(d).pvalue)


def test_degenerate_differences_give_nan_not_an_error():
    assert math.isnan(paired_tests(np.array([0.1]), 0.25)["t_corrected"])
    same = paired_tests(np.zeros(5), 0.25)
    assert same["mean_diff"] == 0 and math.isnan(same["p_corrected"]) and math.isnan(same["p_wilcoxon"])


def test_command_prints_and_writes_csv_only_when_asked(two_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args([str(p) for p in two_runs])) == 0
    out = capsys.readouterr().out
    assert "CUSTOM: test metrics" in out and "paired against FC_LR" in out and "FC_SVM" in out
    assert not list(tmp_path.glob("*.csv"))
    csv = tmp_path / "cmp.csv"
    assert run(parser.parse_args([*map(str, two_runs), "--reference", "FC_SVM", "--out", str(csv)])) == 0
    written = pd.read_csv(csv)
    assert set(written["reference"]) == {"FC_SVM"} and len(written) == 2 * len(METRICS)


def test_two_runs_of_one_model_are_labelled_by_folder(tmp_path, tiny_dataset):
    a = _run(tmp_path, tiny_dataset, "FC_LR", "first")
    b = _run(tmp_path, tiny_dataset, "FC_LR", "second")
    with pytest.raises(ConfigError, match="matches several runs of CUSTOM: FC_LR/first, FC_LR/second"):
        compare_runs([a, b], reference_model="FC_LR")
    table = compare_runs([a, b], reference_model="second")
    assert set(table["model"]) == {"FC_LR/first", "FC_LR/second"} and set(table["reference"]) == {"FC_LR/second"}
    same = table.query("model == 'FC_LR/first' and metric == 'accuracy'").iloc[0]
    assert same["mean_diff"] == 0.0  # same model, data, seed and folds: identical fold scores
