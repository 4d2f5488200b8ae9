"""CPA files from ``tester.py --analysis`` and from ``neurossm explain --run`` on a finished run."""

import numpy as np
import pytest

from neurossm import cli
from neurossm.errors import ConfigError
from neurossm.io import read_json
from neurossm.training.estimators import TorchEstimator

TINY = ["--dataset", "SYNTHETIC", "--model", "NeuroSSM", "--device", "cpu", "--seeds", "0", "--epochs", "1",
        "--config", "d_model=8", "d_state=4", "scales=1,2", "--data-option", "n_scans=20", "n_times=32", "n_signal_rois=2",
        "--n-rois", "6", "--quiet"]
ARRAYS = ("probs", "pathway_maps", "pathway_importance", "logit_full", "logit_ablated", "cpa_score")


def _train(tmp_path, *extra):
    argv = [*TINY, "--results-root", str(tmp_path / "Results"), "--analysis-root", str(tmp_path / "Analysis"),
            "--run-name", "r", "--analysis", *extra]
    assert cli.tester_main(argv) == 0
    return tmp_path / "Results" / "SYNTHETIC" / "NeuroSSM" / "r", tmp_path / "Analysis" / "Explainability" / "SYNTHETIC"


def _read(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def holdout_run(tmp_path_factory):
    """A finished ``--analysis --skip_cross_validation`` run: (run folder, its Explainability folder)."""
    return _train(tmp_path_factory.mktemp("holdout"), "--skip_cross_validation")


def test_holdout_run_writes_one_file_per_holdout_scan(holdout_run):
    run, maps = holdout_run
    (split,) = read_json(run / "splits" / "seed_0.json")
    files = sorted((maps / "seed_0").glob("*"))
    assert [p.name for p in files] == sorted(f"subj_{i}.npz" for i in split["test"])
    for path in files:
        f = _read(path)
        assert int(f["target"]) == int(f["label"]) and str(f["target_mode"]) == "true"
        assert f["pathway_maps"].shape == (4, 6) and np.isfinite(f["cpa_score"]).all()


def test_cross_validation_writes_each_folds_test_scans_in_its_folder(tmp_path):
    run, maps = _train(tmp_path, "--folds", "3", "--cpa-target", "pred")
    splits = read_json(run / "splits" / "seed_0.json")
    assert sorted(p.name for p in (maps / "seed_0").iterdir()) == ["fold_0", "fold_1", "fold_2"]
    for split in splits:
        files = sorted((maps / "seed_0" / f"fold_{split['fold']}").iterdir())
        assert [p.name for p in files] == sorted(f"subj_{i}.npz" for i in split["test"])
        for path in files:
            f = _read(path)
            # --cpa-target pred explains the predicted class, whatever the label
            assert int(f["target"]) == int(f["pred"]) == int(np.argmax(f["probs"]))
            assert str(f["target_mode"]) == "pred"


def test_explain_recomputes_the_same_maps_without_training(holdout_run, tmp_path, monkeypatch):
    run, maps = holdout_run

    def no_training(*args, **kwargs):
        raise AssertionError("neurossm explain must not train")

    monkeypatch.setattr(TorchEstimator, "fit", no_training)
    again = tmp_path / "Again"
    assert cli.main(["explain", "--run", str(run), "--analysis-root", str(again), "--quiet"]) == 0
    first = sorted((maps / "seed_0").glob("subj_*.npz"))
    second = sorted((again / "Explainability" / "SYNTHETIC" / "seed_0").glob("subj_*.npz"))
    assert [p.name for p in first] == [p.name for p in second] and first
    for a, b in zip(first, second):
        fa, fb = _read(a), _read(b)
        assert set(fa) == set(fb)
        for key in ARRAYS:
            np.testing.assert_allclose(fa[key], fb[key], rtol=1e-5, atol=1e-7, err_msg=key)
        for key in ("scan_id", "label", "pred", "target", "dominant_pathway", "pathway_names"):
            np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)


def test_explain_with_pred_target_explains_the_prediction(holdout_run, tmp_path):
    run, _ = holdout_run
    out = tmp_path / "Pred"
    assert cli.main(["explain", "--run", str(run), "--analysis-root", str(out), "--cpa-target", "pred", "--quiet"]) == 0
    files = sorted((out / "Explainability" / "SYNTHETIC" / "seed_0").glob("subj_*.npz"))
    assert files
    for path in files:
        f = _read(path)
        assert int(f["target"]) == int(f["pred"]) and str(f["target_mode"]) == "pred"


def test_explain_without_config_json_says_what_to_pass(tmp_path):
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    args = cli.build_parser().parse_args(["explain", "--run", str(empty)])
    with pytest.raises(ConfigError, match=r"no config\.json there.*neurossm train"):
        args.func(args)
    assert cli.main(["explain", "--run", str(empty), "--quiet"]) == 2


def test_explain_of_a_run_whose_model_file_disagrees_with_its_config_exits_2(holdout_run, tmp_path, caplog):
    # a run whose config.json was edited (here: its recorded roi_lags) must not end in a traceback
    import shutil

    from neurossm.io import write_json

    run, _ = holdout_run
    old = tmp_path / "old_run"
    shutil.copytree(run, old)
    config = read_json(old / "config.json")
    config["model"]["config"]["roi_lags"] = None
    write_json(old / "config.json", config)
    assert cli.main(["explain", "--run", str(old), "--analysis-root", str(tmp_path / "A"), "--quiet"]) == 2
    assert "model.pt: a NeuroSSM model with options roi_lags=" in caplog.text
    assert "but the run's config.json says NeuroSSM with roi_lags=None" in caplog.text
    assert "Traceback" not in caplog.text
