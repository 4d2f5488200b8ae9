"""Bad input and faults fed through the real commands: each gets a clear message and exit code 2
(docs/reliability.md lists every case and its answer), and nothing mixed or stale is left."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurossm.cli import main
from neurossm.cli import tester_main as run_tester
from neurossm.io import read_json

SYNTH = ["--dataset", "SYNTHETIC", "--data-option", "n_scans=12", "n_rois=8", "n_times=30"]


@pytest.fixture
def messages(caplog):
    """Records of the ``neurossm`` logger (the command line stops it from propagating to the root)."""
    logger = logging.getLogger("neurossm")
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    yield caplog
    logger.removeHandler(caplog.handler)


def _errors(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def _warnings(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def custom_folder(root: Path, labels: list[str], subjects: list[str], n_rois: int = 6, n_times: int = 30,
                  shapes: dict[int, tuple[int, ...]] | None = None) -> Path:
    """A CUSTOM folder: one ``.npy`` per scan and labels.csv."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(len(labels)):
        shape = (shapes or {}).get(i, (n_rois, n_times + i))
        np.save(root / f"s{i:02d}.npy", rng.standard_normal(shape))
    pd.DataFrame({"scan": [f"s{i:02d}" for i in range(len(labels))], "subject": subjects,
                  "label": labels}).to_csv(root / "labels.csv", index=False)
    return root


def train(tmp_path, *args: str, runner=main) -> int:
    return runner(["train", *args, "--results-root", str(tmp_path / "Results"), "--run-name", "r"]
                  if runner is main else [*args, "--results-root", str(tmp_path / "Results"), "--run-name", "r"])


# Options ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("folds", ["1", "0"])
def test_fewer_than_two_folds(tmp_path, messages, folds):
    assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", folds) == 2
    assert f"--folds {folds}: cross-validation needs at least 2 folds" in _errors(messages)
    assert "holdout" in _errors(messages)
    assert not (tmp_path / "Results").exists()


@pytest.mark.parametrize("option, expected", [
    ("d_model=-3", "model NeuroSSM: option d_model=-3 is out of range; must be ≥ 1"),
    ("d_model=abc", "model NeuroSSM: option d_model='abc' is not a valid int"),
    ("scales=1,0", "option scales=(1, 0) is out of range; each value must be ≥ 1"),
])
def test_model_options_are_checked_before_anything_is_built(tmp_path, messages, option, expected):
    assert train(tmp_path, *SYNTH, "--epochs", "1", "--config", option) == 2
    assert expected in _errors(messages)
    assert not (tmp_path / "Results").exists()


def test_unknown_model_option_lists_the_known_ones(tmp_path, messages):
    assert train(tmp_path, *SYNTH, "--config", "no_such_option=1") == 2
    assert "model NeuroSSM has no option 'no_such_option'; options: " in _errors(messages)


def test_analysis_with_a_model_cpa_cannot_explain(tmp_path, messages):
    assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--analysis") == 2
    assert "FC_LR" in _errors(messages) and "CPA" in _errors(messages)
    assert not (tmp_path / "Results").exists()


@pytest.mark.parametrize("flag, value, expected", [
    ("--batch-size", "0", "--batch-size 0: expected a whole number ≥ 1"),
    ("--epochs", "0", "--epochs 0: expected a whole number ≥ 1 (0 epochs would report an untrained"),
    ("--lr", "-1", "--lr -1.0: expected a number > 0"),
    ("--weight-decay", "-0.5", "--weight-decay -0.5: expected a number ≥ 0"),
    ("--patience", "-1", "--patience -1: expected a whole number ≥ 0"),
])
def test_training_options_are_checked_before_anything_is_built(tmp_path, messages, flag, value, expected):
    assert train(tmp_path, *SYNTH, flag, value, runner=run_tester) == 2
    assert expected in _errors(messages)
    assert not (tmp_path / "Results").exists()


# Classes and folds ------------------------------------------------------------------------------

def test_a_class_with_a_single_subject(tmp_path, messages):
    labels = ["a", "b"] * 4 + ["c", "c"]
    subjects = [f"p{i}" for i in range(8)] + ["only", "only"]
    root = custom_folder(tmp_path / "data", labels, subjects)
    assert train(tmp_path, "--dataset", "CUSTOM", "--data-root", str(root), "--model", "FC_LR", "--folds", "2") == 2
    err = _errors(messages)
    assert "class 'c' has 1 subject (only)" in err and "at least 2 subjects" in err
    assert "Subjects per class: 'a' 4, 'b' 4, 'c' 1" in err
    assert not (tmp_path / "Results").exists()  # refused before the run folder was made


@pytest.mark.slow  # trains (a few seconds)
def test_tiny_dataset_trains_every_fold_on_every_class(tmp_path, messages):
    # 6 scans, 2 folds: a training fold holds 3 scans; the validation split must leave both classes to fit.
    assert train(tmp_path, *SYNTH[:3], "n_scans=6", "n_rois=8", "n_times=30", "--model", "FC_LR",
                 "--folds", "2") == 0
    run = tmp_path / "Results" / "SYNTHETIC" / "FC_LR" / "r"
    labels = {s["scan_id"]: s["label"] for s in
              pd.read_csv(run / "predictions.csv", dtype={"scan_id": str}).to_dict("records")}
    for split in read_json(run / "splits" / "seed_0.json"):
        assert {labels[i] for i in split["train"]} == {0, 1}


@pytest.mark.slow  # trains (a few seconds)
def test_undefined_roc_auc_is_warned_and_counted(tmp_path, messages, capsys):
    # One subject per test fold: every test fold holds a single class, so ROC-AUC is defined on none.
    labels = ["a", "a", "b", "b"] * 2
    subjects = ["p0", "p0", "p1", "p1", "p2", "p2", "p3", "p3"]
    root = custom_folder(tmp_path / "data", labels, subjects)
    assert train(tmp_path, "--dataset", "CUSTOM", "--data-root", str(root), "--model", "FC_LR", "--folds", "4") == 0
    assert "ROC-AUC is undefined: the test fold holds only class" in _warnings(messages)
    summary = read_json(tmp_path / "Results" / "CUSTOM" / "FC_LR" / "r" / "summary.json")
    assert summary["n_folds_defined"]["roc_auc"] == 0 and summary["n_folds_defined"]["accuracy"] == 4
    out = capsys.readouterr().out
    assert "over the 0 of 4 folds where it is defined (undefined on a test fold holding one class)" in out
    assert "precision (macro)" in out and "recall (macro)" in out


# Data files -------------------------------------------------------------------------------------

def test_one_dimensional_scan_names_its_file(tmp_path, messages):
    labels, subjects = ["a", "b"] * 4, [f"p{i}" for i in range(8)]
    root = custom_folder(tmp_path / "data", labels, subjects, shapes={3: (30,)})
    assert train(tmp_path, "--dataset", "CUSTOM", "--data-root", str(root), "--model", "FC_LR") == 2
    err = _errors(messages)
    assert f"{root / 's03.npy'}: shape (30,)" in err and "2-D" in err


def test_mixed_orientation_is_named(tmp_path, messages):
    labels, subjects = ["a", "b"] * 4, [f"p{i}" for i in range(8)]
    root = custom_folder(tmp_path / "data", labels, subjects, shapes={2: (35, 6), 5: (40, 6)})
    assert train(tmp_path, "--dataset", "CUSTOM", "--data-root", str(root), "--model", "FC_LR") == 2
    err = _errors(messages)
    assert "orientation is mixed" in err and "s02.npy" in err and "s05.npy" in err and "ROI count 6" in err


# The run folder -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["file", "read-only"])
def test_results_root_that_cannot_be_written(tmp_path, messages, kind):
    root = tmp_path / "Results"
    if kind == "file":
        root.write_text("not a folder")
        expected = f"{root} is a file, not a folder"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        root.mkdir()
        root.chmod(0o555)
        expected = f"cannot write in {root}"
    try:
        assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2") == 2
    finally:
        if kind != "file":
            root.chmod(0o755)
    assert f"--results-root {root}: " in _errors(messages) and expected in _errors(messages)


@pytest.mark.slow  # trains (a few seconds)
def test_a_failed_run_leaves_no_folder_that_blocks_its_name(tmp_path, messages, monkeypatch):
    from neurossm.training import estimators

    def broken_fit(self, *args, **kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr(estimators.FeatureEstimator, "fit", broken_fit)
        with pytest.raises(RuntimeError, match="disk full"):
            train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2")
    run = tmp_path / "Results" / "SYNTHETIC" / "FC_LR" / "r"
    assert not run.exists()
    assert f"the run failed before any fold finished; removed {run}" in _errors(messages)
    assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2") == 0  # the same name is free
    assert read_json(run / "summary.json")["complete"]


# Command line ---------------------------------------------------------------------------------------

def test_skip_cross_validation_help_says_the_holdout_is_fold_0(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "the holdout is fold 0 of --folds" in help_text


@pytest.mark.slow  # trains (a few seconds)
def test_cpu_fallback_for_a_gpu_request_is_said_once(tmp_path, messages, monkeypatch, recwarn):
    import torch

    from neurossm.training import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "_CPU_FALLBACK_SAID", set())
    assert train(tmp_path, *SYNTH, "--model", "FC_LR", "--folds", "2", "--device", "0") == 0
    records = {id(r): r for r in messages.records}.values()  # a record reaching the handler twice is one
    said = [r for r in records if "CUDA is not available" in r.getMessage()]
    said += [w for w in recwarn if "CUDA is not available" in str(w.message)]
    assert len(said) == 1
