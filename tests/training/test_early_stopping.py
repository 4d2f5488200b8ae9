"""Early stopping: training ends ``patience`` epochs after the best validation score, keeps the best weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurossm.config import TrainingConfig
from neurossm.errors import ConfigError
from neurossm.data.registry import describe_training_defaults, list_datasets, training_defaults
from neurossm.models.registry import get_model
from neurossm.training.estimators import TorchEstimator, make_estimator

N_ROIS, N_TIMES = 4, 16


def _estimator(**training) -> TorchEstimator:
    spec = get_model("GRU")
    config = spec.resolve_config({"hidden_size": 4}, None)
    cfg = TrainingConfig(**{"epochs": 12, "batch_size": 8, "warmup_epochs": 0, **training})
    return make_estimator(spec, config, n_rois=N_ROIS, n_classes=2, crop_length=N_TIMES, training=cfg,
                          device=torch.device("cpu"), seed=0)


def _data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    X = [rng.standard_normal((N_ROIS, N_TIMES)).astype(np.float32) for _ in range(n)]
    return X, np.arange(n) % 2


def _scripted_validation(monkeypatch, val_accuracy: list[float]) -> None:
    """Validation predictions whose accuracy follows ``val_accuracy`` epoch by epoch (4 validation scans)."""
    calls = iter(val_accuracy)

    def predict_logits(self, X):
        right = round(next(calls) * len(X))
        y = np.arange(len(X)) % 2
        pred = np.where(np.arange(len(X)) < right, y, 1 - y)
        return np.eye(2)[pred] * 3.0  # the same confidence every epoch: the loss follows the accuracy

    monkeypatch.setattr(TorchEstimator, "predict_logits", predict_logits)


def test_stops_patience_epochs_after_the_best_and_records_both(monkeypatch):
    # best at epoch 3, then no improvement: with patience 4 training ends after epoch 7
    _scripted_validation(monkeypatch, [0.5, 0.75, 1.0, 0.75, 1.0, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0])
    X, y = _data(8, 0)
    est = _estimator(patience=4).fit(X, y, *_data(4, 1))
    assert est.stopped_epoch == 7 and len(est.history) == 7
    assert [h["epoch"] for h in est.history if h["selected"]] == [3]
    assert [h["epoch"] for h in est.history if h["early_stop"]] == [7]


@pytest.mark.parametrize("patience", [None, 0, 20])
def test_no_stop_when_disabled_or_patience_is_longer_than_training(monkeypatch, patience):
    _scripted_validation(monkeypatch, [1.0] + [0.5] * 11)
    X, y = _data(8, 0)
    est = _estimator(patience=patience).fit(X, y, *_data(4, 1))
    assert est.stopped_epoch is None and len(est.history) == 12
    assert not any(h["early_stop"] for h in est.history)
    assert [h["epoch"] for h in est.history if h["selected"]] == [1]


def test_without_validation_every_epoch_runs():
    X, y = _data(8, 0)
    est = _estimator(epochs=3, patience=1).fit(X, y, [], np.array([], dtype=np.int64))
    assert est.stopped_epoch is None and len(est.history) == 3


def test_the_best_epochs_weights_are_kept(monkeypatch):
    _scripted_validation(monkeypatch, [0.5, 1.0, 0.5, 0.5, 0.5])
    snapshots = []
    original = TorchEstimator._loss

    def loss_and_snapshot(self, xb, yb):
        snapshots.append({k: v.detach().clone() for k, v in self.module.state_dict().items()})
        return original(self, xb, yb)

    monkeypatch.setattr(TorchEstimator, "_loss", loss_and_snapshot)
    X, y = _data(8, 0)  # one step per epoch: the weights after epoch 2 are those before epoch 3's step
    est = _estimator(batch_size=8, patience=2).fit(X, y, *_data(4, 1))
    assert est.stopped_epoch == 4
    for k, v in est.module.state_dict().items():
        torch.testing.assert_close(v, snapshots[2][k])


def test_custom_defaults_stop_early_and_are_listed():
    custom = training_defaults("CUSTOM")
    assert custom.patience and custom.patience < custom.epochs
    assert training_defaults("CUSTOM", patience=0).patience == 0
    lines = describe_training_defaults()
    assert len(lines) == len(list_datasets())
    assert any(line.startswith("CUSTOM") and f"after {custom.patience} epochs" in line for line in lines)


def test_weights_of_other_options_are_refused_with_the_file_and_what_to_do():
    # e.g. a model file edited by hand, or one whose constructor defaults changed the network's shape
    spec = get_model("NeuroSSM")
    cfg = TrainingConfig(epochs=1, batch_size=8, warmup_epochs=0)

    def build(overrides):
        return make_estimator(spec, spec.resolve_config({"d_model": 8, "scales": 1, **overrides}, None), n_rois=N_ROIS,
                              n_classes=2, crop_length=N_TIMES, training=cfg, device=torch.device("cpu"), seed=0)

    state = build({"roi_lags": None}).get_state()
    build({"roi_lags": None}).set_state(state, "model.pt")  # the same options load
    with pytest.raises(ConfigError, match=r"model\.pt: the weights do not fit NeuroSSM.*train the model again"):
        build({}).set_state(state, "model.pt")
