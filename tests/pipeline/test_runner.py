import dataclasses

import numpy as np
import pytest

from neurossm.data.scans import ScanDataset
from neurossm.errors import ConfigError
from neurossm.io import read_json, write_text
from neurossm.training.device import resolve_device
from neurossm.training.metrics import METRICS
from neurossm.pipeline import ExperimentOptions, run_experiment


def _opts(tmp_path, **kw):
    base = dict(dataset="CUSTOM", model="FC_LR", results_root=str(tmp_path / "Results"), seeds=(0,), folds=5,
                run_name="r")
    base.update(kw)
    return ExperimentOptions(**base)


def _shuffled(ds: ScanDataset, seed: int) -> ScanDataset:
    labels = np.random.default_rng(seed).permutation(ds.labels)
    scans = [dataclasses.replace(s, label=int(y)) for s, y in zip(ds.scans, labels)]
    return dataclasses.replace(ds, scans=scans)


def test_fc_lr_finds_a_connectivity_signal_and_not_shuffled_labels(tmp_path, dataset_factory):
    ds = dataset_factory(n_scans=120, n_rois=10, n_times=80, signal=0.8)
    real = run_experiment(_opts(tmp_path, seeds=(0, 1)), dataset=ds).summary
    assert real["test"]["accuracy"]["mean"] > 0.8
    shuffled = run_experiment(_opts(tmp_path, seeds=(0, 1), run_name="shuffled"), dataset=_shuffled(ds, 7)).summary
    assert abs(shuffled["test"]["accuracy"]["mean"] - 0.5) < 0.15


def test_run_folder_layout_and_summary_schema(tmp_path, tiny_dataset):
    res = run_experiment(_opts(tmp_path), dataset=tiny_dataset)
    run = res.run_dir
    assert run == tmp_path / "Results" / "CUSTOM" / "FC_LR" / "r"
    for name in ("config.json", "dataset.json", "splits/seed_0.json", "fold_metrics.csv", "predictions.csv",
                 "summary.json"):
        assert (run / name).is_file(), name
    summary = read_json(run / "summary.json")
    assert set(summary["test"]) == set(METRICS)
    for v in summary["test"].values():
        assert isinstance(v["mean"], float) and isinstance(v["std"], float)
    assert summary["complete"] and summary["n_folds_done"] == 5
    for k in range(5):
        fold = run / "seed_0" / f"fold_{k}"
        assert {p.name for p in fold.iterdir()} == {"metrics.json", "predictions.csv", "history.csv",
                                                    "model.pt"}
    assert not list(run.rglob("*.tmp*"))


def test_same_seed_gives_byte_identical_split_files(tmp_path, tiny_dataset):
    a = run_experiment(_opts(tmp_path, run_name="a"), dataset=tiny_dataset).run_dir
    b = run_experiment(_opts(tmp_path, run_name="b"), dataset=tiny_dataset).run_dir
    assert (a / "splits/seed_0.json").read_bytes() == (b / "splits/seed_0.json").read_bytes()


def test_resume_continues_at_the_first_unfinished_fold(tmp_path, tiny_dataset):
    run = run_experiment(_opts(tmp_path), dataset=tiny_dataset).run_dir
    # A run killed during fold 3: folds 3 and 4 never wrote their "done" marker.
    for k in (3, 4):
        (run / "seed_0" / f"fold_{k}" / "metrics.json").unlink()
    kept = {k: (run / "seed_0" / f"fold_{k}" / "metrics.json").stat().st_mtime_ns for k in range(3)}
    res = run_experiment(_opts(tmp_path, resume=str(run)), dataset=tiny_dataset)
    assert res.summary["n_folds_done"] == 5
    assert {k: (run / "seed_0" / f"fold_{k}" / "metrics.json").stat().st_mtime_ns for k in range(3)} == kept


def test_resume_with_other_arguments_is_refused(tmp_path, tiny_dataset):
    run = run_experiment(_opts(tmp_path), dataset=tiny_dataset).run_dir
    with pytest.raises(ConfigError, match="arguments differ.*folds"):
        run_experiment(_opts(tmp_path, resume=str(run), folds=3), dataset=tiny_dataset)


def test_a_second_run_into_the_same_folder_is_refused(tmp_path, tiny_dataset):
    run_experiment(_opts(tmp_path), dataset=tiny_dataset)
    with pytest.raises(ConfigError, match="already holds a run.*--resume"):
        run_experiment(_opts(tmp_path), dataset=tiny_dataset)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "summary.json"
    write_text(target, "old")

    class Boom:
        def encode(self, _):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_text(target, Boom())
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_gpu_request_without_cuda_warns_and_uses_cpu(monkeypatch, caplog):
    import logging

    import torch

    from neurossm.training import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "_CPU_FALLBACK_SAID", set())
    logger = logging.getLogger("neurossm")
    logger.addHandler(caplog.handler)
    try:
        assert resolve_device("0").type == "cpu" and resolve_device("0").type == "cpu"
    finally:
        logger.removeHandler(caplog.handler)
    # one record, seen once (the handler may also get it through the root logger: same object)
    records = {id(r): r for r in caplog.records}.values()
    assert [r.getMessage() for r in records] == ["--device 0: CUDA is not available here; using the CPU"]
    assert resolve_device("cpu").type == "cpu"
