"""Fit one small NeuroSSM on a fixed synthetic fold; run alone or as ranks under ``torchrun``.

``python -m torch.distributed.run --standalone --nproc-per-node 2 ddp_fit.py OUT`` trains it
data-parallel; :func:`fit` in the test process trains the same fold in one process. Rank 0 (or
the single process) writes the history and the final weights to ``OUT``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from neurossm.config import TrainingConfig
from neurossm.data.synthetic import make_synthetic
from neurossm.models.registry import get_model
from neurossm.training import distributed
from neurossm.training.estimators import make_estimator

# No dropout: masks are drawn per rank, so they could not match one process's (distributed.py).
# Concatenation, not the gate: the gate's bias shifts every pathway's score alike, so its exact
# gradient is zero and AdamW turns the rounding noise in it into steps of size lr, which would
# compare noise, not training.
CONFIG = {"d_model": 8, "d_state": 4, "scales": (1,), "drop_prob": 0.0, "fusion": "concat", "scan_backend": "cpu"}
# 13 training scans in batches of 4: the last batch holds one scan, so rank 1's share is empty there.
N_TRAIN, BATCH, EPOCHS = 13, 4, 3


def fit(out: Path) -> None:
    torch.set_num_threads(1)
    ranks, device = distributed.init_from_environment(torch.device("cpu"))
    data = make_synthetic(seed=3, n_scans=N_TRAIN + 6, n_rois=6, n_times=40, n_signal_rois=2, amplitude=3.0)
    X, y = [s.timeseries for s in data.scans], np.array([s.label for s in data.scans])
    spec = get_model("NeuroSSM")
    est = make_estimator(spec, spec.resolve_config(CONFIG), n_rois=6, n_classes=2, crop_length=24,
                         training=TrainingConfig(epochs=EPOCHS, batch_size=BATCH, lr=5e-3, warmup_epochs=1),
                         device=device, seed=11)
    est.fit(X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:])
    if ranks.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "history.json").write_text(json.dumps(est.history))
        torch.save(est.module.state_dict(), out / "weights.pt")
    distributed.shutdown()


if __name__ == "__main__":
    fit(Path(sys.argv[1]))
