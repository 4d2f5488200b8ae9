"""CPA files record the run they came from, and a run never writes among another run's maps."""

import shutil

import numpy as np
import pytest

from neurossm import cli
from neurossm.io import read_json, write_npz

# Each module run trains one tiny NeuroSSM with CPA (tens of seconds on two cores).
pytestmark = pytest.mark.slow

TINY = ["--dataset", "SYNTHETIC", "--model", "NeuroSSM", "--device", "cpu", "--seeds", "0", "--epochs", "1",
        "--config", "d_model=8", "d_state=4", "scales=1", "--data-option", "n_scans=12", "n_times=32",
        "n_signal_rois=2", "--n-rois", "6", "--folds", "3"]


def _train(root, name, *extra) -> int:
    return cli.tester_main([*TINY, "--results-root", str(root / "Results"), "--analysis-root",
                            str(root / "Analysis"), "--run-name", name, "--analysis", *extra])


@pytest.fixture(scope="module")
def holdout(tmp_path_factory):
    """A finished ``--analysis --skip_cross_validation`` run: (root, run folder, its CPA dataset folder)."""
    root = tmp_path_factory.mktemp("provenance")
    assert _train(root, "holdout", "--skip_cross_validation") == 0
    return root, root / "Results" / "SYNTHETIC" / "NeuroSSM" / "holdout", root / "Analysis" / "Explainability" / "SYNTHETIC"


def _fields(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_cpa_files_record_their_run(holdout):
    _, run, maps = holdout
    files = sorted((maps / "seed_0").glob("subj_*.npz"))
    assert files
    run_id = read_json(run / "config.json")["run_id"]
    for path in files:
        f = _fields(path)
        assert str(f["run_id"]) == run_id and str(f["run_dir"]) == str(run.resolve())
        assert str(f["model"]) == "NeuroSSM" and int(f["seed"]) == 0 and int(f["fold"]) == 0


def test_analysis_refuses_a_folder_holding_another_runs_maps(holdout, errors):
    root, run, maps = holdout
    before = sorted(p.relative_to(maps) for p in maps.rglob("*"))
    # The case: the same analysis root again, now with cross-validation.
    assert _train(root, "cv") == 2
    err = errors()
    assert f"--analysis-root {root / 'Analysis'}: {maps} already holds the CPA maps of another run" in err
    assert str(run.resolve()) in err and "another --analysis-root" in err
    assert sorted(p.relative_to(maps) for p in maps.rglob("*")) == before  # nothing mixed in
    assert not (root / "Results" / "SYNTHETIC" / "NeuroSSM" / "cv").exists()
    # Resuming the run that owns the maps is allowed (its folds are done: nothing is retrained).
    assert _train(root, "holdout", "--skip_cross_validation", "--resume", str(run)) == 0


def test_explain_refuses_a_folder_holding_another_runs_maps(holdout, tmp_path, errors):
    _, run, maps = holdout
    other = tmp_path / "Other" / "Explainability" / "SYNTHETIC" / "seed_0"
    other.mkdir(parents=True)
    foreign = _fields(next(maps.glob("seed_0/subj_*.npz")))
    foreign["run_id"] = np.str_("another-run")
    write_npz(other / "subj_x.npz", **foreign)
    assert cli.main(["explain", "--run", str(run), "--analysis-root", str(tmp_path / "Other")]) == 2
    assert "already holds the CPA maps of another run (run another-run" in errors()
    # Into a folder of its own maps it rewrites them.
    shutil.rmtree(tmp_path / "Other")
    assert cli.main(["explain", "--run", str(run), "--analysis-root", str(tmp_path / "Other"), "--quiet"]) == 0
    assert cli.main(["explain", "--run", str(run), "--analysis-root", str(tmp_path / "Other"), "--quiet"]) == 0
