"""Shared tiny, seeded fixtures."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

from neurossm.data.preprocess import zscore
from neurossm.data.scans import Scan, assemble

# Test tensors are tiny: one thread avoids thread start-up and contention costs on shared machines.
torch.set_num_threads(1)
# ...and the `neurossm` commands the tests run (in-process or as subprocesses) take their default
# thread count from here (neurossm.training.threads).
os.environ.setdefault("OMP_NUM_THREADS", "1")


def make_dataset(n_scans: int = 40, n_rois: int = 8, n_times: int = 60, scans_per_subject: int = 2,
                 signal: float = 1.0, n_classes: int = 2, seed: int = 42, name: str = "CUSTOM"):
    """Scans whose class-1 ROIs 0–2 share a common time course (a connectivity signal)."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n_scans):
        label = i % n_classes
        x = rng.standard_normal((n_rois, n_times))
        if label:
            x[label - 1 : label + 2] += signal * rng.standard_normal(n_times)
        subject = f"sub{(i // (n_classes * scans_per_subject)) * n_classes + label:03d}"
        records.append(Scan(f"scan{i:03d}", subject, label, zscore(x)))
    return assemble(name, records, tuple(f"c{k}" for k in range(n_classes)), atlas="custom", n_rois=n_rois,
                    crop_length=None)


@pytest.fixture
def tiny_dataset():
    return make_dataset()


@pytest.fixture
def dataset_factory():
    """``make_dataset`` for tests that need other sizes."""
    return make_dataset


@pytest.fixture(autouse=True)
def _restore_neurossm_logging():
    """Keep one test's logging set-up out of the next one's ``caplog``, whatever the order.

    Commands run in tests call ``setup_logging``, which stops the ``neurossm`` logger from
    propagating; import-linter's run (tests/test_layers.py) configures logging with
    ``disable_existing_loggers``, which silences every ``neurossm.*`` logger created before it.
    """
    logger = logging.getLogger("neurossm")
    state = (logger.propagate, logger.level, list(logger.handlers))
    yield
    logger.propagate, logger.level = state[0], state[1]
    logger.handlers[:] = state[2]
    for name, other in logging.root.manager.loggerDict.items():
        if name.split(".")[0] == "neurossm" and isinstance(other, logging.Logger):
            other.disabled = False


@pytest.fixture
def errors(caplog):
    """The text of the ERROR records a command logged (what a user reads), one per line."""
    logger = logging.getLogger("neurossm")
    logger.addHandler(caplog.handler)
    yield lambda: "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    logger.removeHandler(caplog.handler)
