"""Data-parallel training (DDP under torchrun) equals one process with the same global batch."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from neurossm.training import distributed

HERE = Path(__file__).parent


def _load_ddp_fit():
    spec = importlib.util.spec_from_file_location("ddp_fit", HERE / "ddp_fit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shares_cover_the_batch_in_order_and_differ_by_at_most_one():
    for n in (1, 4, 7, 16):
        for world in (1, 2, 3):
            shares = [distributed.Replicas.share(_FakeReplicas(r, world), n) for r in range(world)]
            covered = [i for s in shares for i in range(n)[s]]
            assert covered == list(range(n))
            sizes = [s.stop - s.start for s in shares]
            assert max(sizes) - min(sizes) <= 1


class _FakeReplicas:
    def __init__(self, rank: int, world: int) -> None:
        self.ranks = distributed.Ranks(rank=rank, world_size=world)
        self.world_size = world


def test_a_single_process_is_rank_0_of_1_and_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ranks, device = distributed.init_from_environment(torch.device("cpu"))
    assert (ranks.rank, ranks.world_size, ranks.is_main, device.type) == (0, 1, True, "cpu")
    assert distributed.agree(True) is True and distributed.broadcast({"a": 1}) == {"a": 1}
    assert distributed.sum_over_ranks(2, 3.5) == (2.0, 3.5)


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_with_the_same_global_batch(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1] / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(HERE / "ddp_fit.py"), str(tmp_path / "ddp")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    _load_ddp_fit().fit(tmp_path / "single")

    ddp = json.loads((tmp_path / "ddp/history.json").read_text())
    single = json.loads((tmp_path / "single/history.json").read_text())
    assert [h["epoch"] for h in ddp] == [h["epoch"] for h in single]
    # float32 training: the runs differ only in how each gradient sum is split (two shares added
    # by the all-reduce vs one batch), a rounding of ~1e-7 relative per step. Measured over these
    # 12 AdamW steps: losses agree to 4e-8 relative, weights to 1.2e-7 absolute. The tolerances
    # (1e-6 relative on the curve, 1e-6 + 1e-5 relative on weights) leave about ten times that.
    for a, b in zip(ddp, single):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "selected"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), key
    w_ddp = torch.load(tmp_path / "ddp/weights.pt", weights_only=True)
    w_single = torch.load(tmp_path / "single/weights.pt", weights_only=True)
    assert w_ddp.keys() == w_single.keys()
    for k in w_single:
        torch.testing.assert_close(w_ddp[k], w_single[k], rtol=1e-5, atol=1e-6, msg=k)


@pytest.mark.slow
def test_torchrun_train_writes_once_from_rank_0_and_matches_one_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1] / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    args = ["train", "--dataset", "SYNTHETIC", "--data-option", "n_scans=24", "n_rois=6", "n_times=40",
            "n_signal_rois=2", "--model", "GRU", "--config", "hidden_size=8", "drop_prob=0", "--epochs", "2",
            "--batch-size", "5", "--skip_cross_validation", "--device", "cpu", "--results-root", str(tmp_path),
            "--quiet", "--only", "0:0"]  # one unit, and no summary or report to wait for
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "neurossm", *args, "--run-name", "ddp"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = subprocess.run([sys.executable, "-m", "neurossm", *args, "--run-name", "one"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    # Rank 0 alone wrote the run: no second rank's files or logs.
    a, b = tmp_path / "SYNTHETIC/GRU/ddp", tmp_path / "SYNTHETIC/GRU/one"
    assert sorted(p.relative_to(a) for p in a.rglob("*")) == sorted(p.relative_to(b) for p in b.rglob("*"))
    assert (a / "splits/seed_0.json").read_bytes() == (b / "splits/seed_0.json").read_bytes()
    # Same tolerance argument as above: the runs differ by the gradient sums' rounding only.
    fold_a, fold_b = a / "seed_0/fold_0", b / "seed_0/fold_0"
    pd.testing.assert_frame_equal(pd.read_csv(fold_a / "history.csv"), pd.read_csv(fold_b / "history.csv"),
                                  rtol=1e-6, atol=1e-9)
    pd.testing.assert_frame_equal(pd.read_csv(fold_a / "predictions.csv"), pd.read_csv(fold_b / "predictions.csv"),
                                  rtol=1e-5, atol=1e-6)
