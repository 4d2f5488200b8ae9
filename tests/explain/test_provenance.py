"""CPA files record the run they came from, and a run never writes among another run's maps."""

import logging

import numpy as np
import pytest

from neurossm import cli
from neurossm.io import read_json

TINY = ["--dataset", "SYNTHETIC", "--model", "NeuroSSM", "--device", "cpu", "--seeds", "0", "--epochs", "1",
        "--config", "d_model=8", "d_state=4", "scales=1", "--data-option", "n_scans=12", "n_times=32",
        "n_signal_rois=2", "--n-rois", "6", "--folds", "3"]


@pytest.fixture
def errors(caplog):
    logger = logging.getLogger("neurossm")
    logger.addHandler(caplog.handler)
    yield lambda: "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    logger.removeHandler(caplog.handler)


def _train(tmp_path, name, *extra) -> int:
    return cli.tester_main([*TINY, "--results-root", str(tmp_path / "Results"), "--analysis-root",
                            str(tmp_path / "Analysis"), "--run-name", name, "--analysis", *extra])


def _fields(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_cpa_files_record_their_run(tmp_path):
    assert _train(tmp_path, "a", "--skip_cross_validation") == 0
    run = tmp_path / "Results" / "SYNTHETIC" / "NeuroSSM" / "a"
    files = sorted((tmp_path / "Analysis" / "Explainability" / "SYNTHETIC" / "seed_0").glob("subj_*.npz"))
    assert files
    run_id = read_json(run / "config.json")["run_id"]
    for path in files:
        f = _fields(path)
        assert str(f["run_id"]) == run_id and str(f["run_dir"]) == str(run.resolve())
        assert str(f["model"]) == "NeuroSSM" and int(f["seed"]) == 0 and int(f["fold"]) == 0


def test_analysis_refuses_a_folder_holding_another_runs_maps(tmp_path, errors):
    assert _train(tmp_path, "holdout", "--skip_cross_validation") == 0
    maps = tmp_path / "Analysis" / "Explainability" / "SYNTHETIC"
    before = sorted(p.relative_to(maps) for p in maps.rglob("*"))
    # The case: the same analysis root again, now with cross-validation.
    assert _train(tmp_path, "cv") == 2
    err = errors()
    assert f"--analysis-root {tmp_path / 'Analysis'}: {maps} already holds the CPA maps of another run" in err
    assert "holdout" in err and "another --analysis-root" in err
    assert sorted(p.relative_to(maps) for p in maps.rglob("*")) == before  # nothing mixed in
    assert not (tmp_path / "Results" / "SYNTHETIC" / "NeuroSSM" / "cv").exists()
    # Resuming the run that owns the maps is allowed.
    assert _train(tmp_path, "holdout", "--skip_cross_validation", "--resume",
                  str(tmp_path / "Results" / "SYNTHETIC" / "NeuroSSM" / "holdout")) == 0


def test_explain_refuses_a_folder_holding_another_runs_maps(tmp_path, errors):
    assert _train(tmp_path, "a", "--skip_cross_validation") == 0
    run_a = tmp_path / "Results" / "SYNTHETIC" / "NeuroSSM" / "a"
    other = tmp_path / "Other"
    assert cli.tester_main([*TINY, "--results-root", str(tmp_path / "Results"), "--analysis-root", str(other),
                            "--run-name", "b", "--analysis"]) == 0
    assert cli.main(["explain", "--run", str(run_a), "--analysis-root", str(other)]) == 2
    assert "already holds the CPA maps of another run" in errors()
