"""``--threads``: one function sets the count, a bad value is refused, a run records what it used."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch

from neurossm import cli
from neurossm.errors import ConfigError
from neurossm.pipeline.executors import UnitTask, _ray_unit
from neurossm.training import threads

TRAIN = ["train", "--dataset", "SYNTHETIC", "--data-option", "n_scans=24", "n_rois=6", "n_times=40",
         "n_signal_rois=2", "--model", "FC_LR", "--folds", "2", "--device", "cpu", "--quiet"]


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch):
    """Each test leaves torch, the thread variables and the module's record as it found them."""
    before = torch.get_num_threads()
    for name in threads._ENV:
        monkeypatch.setenv(name, os.environ.get(name, "1"))
    monkeypatch.setitem(threads._state, "threads", None)
    yield
    torch.set_num_threads(before)


def test_apply_threads_sets_torch_the_environment_and_the_record():
    chosen = threads.apply_threads(2)
    assert torch.get_num_threads() == 2
    assert [os.environ[n] for n in threads._ENV] == ["2", "2", "2"]
    assert threads.current() == chosen == threads.Threads(2, "--threads")
    torch.set_num_threads(1)
    assert threads.current() == threads.Threads(1, "set outside neurossm")


@pytest.mark.parametrize("bad", [0, -3, 1.5, True])
def test_a_bad_count_is_refused_with_what_is_accepted(bad):
    with pytest.raises(ConfigError, match=rf"--threads {bad}: expected a whole number of threads, at least 1"):
        threads.apply_threads(bad)


def test_the_default_follows_omp_then_the_usable_cpus_then_the_torchrun_share(monkeypatch):
    monkeypatch.setattr(threads, "usable_cpus", lambda: 8)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.default_threads() == threads.Threads(3, "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.default_threads() == threads.Threads(8, "usable CPUs")
    # torchrun exports OMP_NUM_THREADS=1 to each rank; the share of the node's CPUs replaces it.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert threads.default_threads() == threads.Threads(4, "8 usable CPUs / 2 torchrun ranks on this node")


def test_a_ray_unit_computes_with_its_cpus_per_fold():
    task = UnitTask(0, 0, None, None)
    metrics, _ = _ray_unit(lambda shared, t, device: {"threads": torch.get_num_threads()}, None, task, 2, 0)
    assert metrics == {"threads": 2}
    assert threads.current() == threads.Threads(2, "--cpus-per-fold")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_train_refuses_a_bad_threads_value_with_exit_2(value, tmp_path, caplog):
    # the message goes through neurossm's logger, which does not propagate to the root: listen to it
    logger = logging.getLogger("neurossm")
    logger.addHandler(caplog.handler)
    try:
        assert cli.main([*TRAIN, "--results-root", str(tmp_path), "--threads", value]) == 2
    finally:
        logger.removeHandler(caplog.handler)
    assert f"--threads {value}: expected a whole number of threads, at least 1" in caplog.text
    assert not (tmp_path / "SYNTHETIC").exists()


def test_every_computing_subcommand_takes_threads():
    parser = cli.build_parser()
    for name, (_, _, computes) in cli.SUBCOMMANDS.items():
        sub = parser._subparsers._group_actions[0].choices[name]
        assert ("--threads" in {s for a in sub._actions for s in a.option_strings}) == computes, name


def test_threads_reach_torch_and_each_units_metrics(tmp_path):
    assert cli.main([*TRAIN, "--results-root", str(tmp_path), "--run-name", "r", "--threads", "2"]) == 0
    assert torch.get_num_threads() == 2
    for path in sorted((tmp_path / "SYNTHETIC" / "FC_LR" / "r").glob("seed_0/fold_*/metrics.json")):
        assert json.loads(path.read_text())["threads"] == {"n": 2, "source": "--threads"}, path
