"""One fit/predict interface over both kinds of registered model.

``TorchEstimator`` trains an ``nn.Module`` on random crops with AdamW and keeps the epoch with
the best validation score, stopping early once that score has stalled for ``patience`` epochs,
and predicts a scan by averaging its logits over the scan's test windows
(:func:`neurossm.data.preprocess.window_batches`), so that it sees at test time the length it was
trained on and every time point of the scan counts. ``FeatureEstimator`` hands a closed-form
model the whole scans (any length) of the whole training fold, with their subject ids: the model
chooses its own hyperparameters by inner cross-validation, and predicts from the whole test scan.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..config import TrainingConfig
from ..data.preprocess import random_crop, window_batches
from ..errors import ConfigError
from ..log import get_logger, progress
from ..models.registry import ModelSpec
from . import distributed
from .metrics import classification_metrics

log = get_logger(__name__)


def _average_by_owner(values: np.ndarray, owners: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, values.shape[1]), dtype=np.float64)
    np.add.at(out, owners, values)
    return out / np.bincount(owners, minlength=n)[:, None]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Estimator:
    """Common interface: ``fit``, ``predict_logits``, ``get_state``/``set_state``, ``history``.

    The fitted state is what :mod:`neurossm.training.model_file` saves beside the model's
    description: a torch model's ``state_dict``, or a closed-form model's fitted arrays.
    """

    def __init__(self, spec: ModelSpec, config: dict[str, Any], n_rois: int, n_classes: int,
                 crop_length: int, training: TrainingConfig, device: torch.device, seed: int) -> None:
        self.spec, self.config = spec, dict(config)
        self.n_rois, self.n_classes, self.crop_length = n_rois, n_classes, crop_length
        self.training, self.device, self.seed = training, device, seed
        self.history: list[dict[str, float]] = []
        self.stopped_epoch: int | None = None  # the last epoch run when training stopped early

    def fit(self, X: Sequence[np.ndarray], y: np.ndarray, X_val: Sequence[np.ndarray], y_val: np.ndarray,
            groups: Sequence[str] | None = None, groups_val: Sequence[str] | None = None) -> "Estimator":
        """Fit on ``X``; ``X_val`` is the inner validation split, ``groups*`` the subject ids."""
        raise NotImplementedError

    def fitted_params(self) -> dict[str, Any]:
        """Hyperparameters chosen during ``fit`` (recorded in the fold's metrics); none by default."""
        return {}

    def predict_logits(self, X: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, X: Sequence[np.ndarray]) -> np.ndarray:
        return softmax(self.predict_logits(X))

    def get_state(self) -> dict[str, Any]:
        """The fitted state: name → tensor or array."""
        raise NotImplementedError

    def set_state(self, state: dict[str, Any], where: str) -> None:
        """Put a saved ``get_state()`` back; ``where`` (the file) names it in errors."""
        raise NotImplementedError


class TorchEstimator(Estimator):
    """Mini-batch training of a registered ``nn.Module`` on random crops."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        torch.manual_seed(self.seed)
        self.module = self.spec.build(self.n_rois, self.n_classes, self.crop_length, self.config).to(self.device)

    def _loss(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        custom = getattr(self.module, "training_loss", None)
        if custom is not None:
            return custom(xb, yb)
        logits = self.module(xb)
        return F.cross_entropy(logits, yb), logits

    def _lr_factor(self, step: int, total: int, warmup: int) -> float:
        if self.training.schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        progress_frac = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress_frac)))

    def _param_groups(self) -> list[dict[str, Any]]:
        # Norms, biases and SSM parameters flagged `_no_weight_decay` (A_log, D) are not decayed.
        decay, no_decay = [], []
        for name, p in self.module.named_parameters():
            if not p.requires_grad:
                continue
            if p.ndim < 2 or getattr(p, "_no_weight_decay", False) or name.endswith(".bias"):
                no_decay.append(p)
            else:
                decay.append(p)
        return [{"params": decay, "weight_decay": self.training.weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]

    def fit(self, X, y, X_val, y_val, groups=None, groups_val=None):
        cfg = self.training
        rng = np.random.default_rng(self.seed)
        y = np.asarray(y, dtype=np.int64)
        n = len(X)
        steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
        total = cfg.epochs * steps_per_epoch
        warmup = cfg.warmup_epochs * steps_per_epoch
        opt = torch.optim.AdamW(self._param_groups(), lr=cfg.lr)
        best_score, best_state, best_epoch, step = -math.inf, None, 0, 0
        # Under torchrun each rank trains on its share of every batch; rank 0 alone validates (distributed.py).
        replicas = distributed.Replicas(self.module, self._loss)
        # Without a validation split there is nothing to stop on: every epoch runs.
        patience = int(cfg.patience or 0) if len(X_val) else 0
        self.stopped_epoch = None
        for epoch in progress(range(cfg.epochs), desc="epochs", total=cfg.epochs):
            self.module.train()
            order = rng.permutation(n)
            loss_sum, correct = 0.0, 0
            for b in range(steps_per_epoch):
                idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                xb = torch.from_numpy(np.stack([random_crop(X[i], self.crop_length, rng) for i in idx]))
                yb = torch.from_numpy(y[idx])
                xb, yb = xb.to(self.device), yb.to(self.device)
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * self._lr_factor(step, total, warmup)
                loss, logits, yb = replicas.loss(xb, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.module.parameters(), cfg.grad_clip)
                opt.step()
                step += 1
                loss_sum += float(loss.detach()) * len(idx) / replicas.world_size
                correct += int((logits.detach().argmax(1) == yb).sum())
            loss_sum, correct = distributed.sum_over_ranks(loss_sum, correct)
            record = {"epoch": epoch + 1, "train_loss": loss_sum / n, "train_accuracy": correct / n,
                      "lr": cfg.lr * self._lr_factor(max(0, step - 1), total, warmup)}
            if len(X_val) and replicas.is_main:
                val_logits = self.predict_logits(X_val)
                vm = classification_metrics(y_val, softmax(val_logits), self.n_classes)
                val_loss = float(F.cross_entropy(torch.from_numpy(val_logits), torch.from_numpy(np.asarray(y_val))))
                record.update(val_loss=val_loss, val_accuracy=vm["accuracy"],
                              val_balanced_accuracy=vm["balanced_accuracy"])
                score = -val_loss if cfg.select_metric == "loss" else vm["balanced_accuracy"] - 1e-6 * val_loss
            else:
                score = float(epoch)
            self.history.append(record)
            log.debug("epoch %d: %s", epoch + 1, record)
            if score > best_score:
                best_score, best_epoch = score, epoch
                best_state = copy.deepcopy(self.module.state_dict())
            # Rank 0 alone validates: its decision stops every rank at the same epoch.
            if distributed.agree(bool(patience) and epoch - best_epoch >= patience and epoch + 1 < cfg.epochs):
                self.stopped_epoch = epoch + 1
                log.debug("early stop after epoch %d: no better validation score since epoch %d",
                          epoch + 1, best_epoch + 1)
                break
        for record in self.history:
            record["selected"] = float(record["epoch"] == best_epoch + 1)
            # history.csv says where training ended early: 1 on the last epoch run, else 0
            record["early_stop"] = float(record["epoch"] == self.stopped_epoch)
        if best_state is not None:
            self.module.load_state_dict(best_state)
        return self

    @torch.no_grad()
    def predict_logits(self, X):
        self.module.eval()
        owners, wins = window_batches(X, self.crop_length)
        chunk = max(1, 2 * self.training.batch_size)
        outs = []
        for b in range(0, len(wins), chunk):
            xb = torch.from_numpy(np.stack(wins[b : b + chunk])).to(self.device)
            outs.append(self.module(xb).float().cpu().numpy())
        return _average_by_owner(np.concatenate(outs), owners, len(X))

    def get_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.module.state_dict().items()}

    def set_state(self, state: dict[str, Any], where: str) -> None:
        try:
            self.module.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
        except RuntimeError as err:
            # weights of another network than the options build (a file edited by hand, or a
            # constructor whose defaults changed the network's shape since it was saved)
            first = str(err).splitlines()[1:2] or [str(err)]
            raise ConfigError(
                f"{where}: the weights do not fit {self.spec.name} built with {self.config} "
                f"({first[0].strip()}); they were trained with other options: train the model again"
            ) from None


class FeatureEstimator(Estimator):
    """A closed-form model fitted on the whole scans of the whole training fold.

    The harness's validation split is handed back to the training side: these models choose
    their regularisation by subject-grouped inner cross-validation on the whole training fold
    (``fit(X, y, groups)``, see :mod:`neurossm.models.registry`), so a held-out split would only
    shrink their training set. Crops do not apply: features (a correlation matrix, catch22
    statistics) are computed on each whole scan, whatever its length.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = self.spec.build(self.n_rois, self.n_classes, self.crop_length, self.config)

    def fit(self, X, y, X_val, y_val, groups=None, groups_val=None):
        scans = [*X, *X_val]
        labels = np.concatenate([np.asarray(y), np.asarray(y_val)]).astype(np.int64)
        if groups is None:
            subjects = None
        else:
            subjects = np.asarray([*groups, *(groups_val if groups_val is not None else [])], dtype=object)
            if len(subjects) != len(scans):
                raise ValueError(f"{len(scans)} scans but {len(subjects)} subject ids")
        self.model.fit(scans, labels, groups=subjects)
        self.history = list(getattr(self.model, "history_", []))
        return self

    def fitted_params(self) -> dict[str, Any]:
        get = getattr(self.model, "fitted_params", None)
        return dict(get()) if get is not None else {}

    def predict_logits(self, X):
        logp = np.asarray(self.model.predict_log_proba(list(X)), dtype=np.float64)  # (n, classes seen in fit)
        classes = getattr(self.model, "classes_", None)
        if classes is None or logp.shape[1] == self.n_classes:
            return logp
        # A class absent from the training fold (HCP-Task data holding some of the tasks) was never
        # predicted: log-probability ≈ −708 (probability ≈ 1e−308), finite so that no metric sees −inf.
        out = np.full((len(logp), self.n_classes), np.log(np.finfo(np.float64).tiny))
        out[:, np.asarray(classes, dtype=np.int64)] = logp
        return out

    def get_state(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.model.get_state().items()}

    def set_state(self, state: dict[str, Any], where: str) -> None:
        arrays = {k: v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for k, v in state.items()}
        try:
            self.model.set_state(arrays)
        except (KeyError, ValueError) as err:
            raise ConfigError(f"{where}: the fitted arrays do not fit {self.spec.name} ({type(err).__name__}: "
                              f"{err}); train the model again") from None


def make_estimator(spec: ModelSpec, config: dict[str, Any], **kwargs: Any) -> Estimator:
    cls = TorchEstimator if spec.kind == "torch" else FeatureEstimator
    return cls(spec, config, **kwargs)
