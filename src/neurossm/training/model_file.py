"""The saved-model file: one self-describing file per fitted model, and its one writer and reader.

``Classifier.save(path)`` writes it, every fold of ``neurossm train`` writes it
(``seed_<S>/fold_<k>/model.pt``), and ``neurossm.load``, ``neurossm predict`` and
``neurossm explain --run`` read it. It is a ``torch.save`` archive of a dict with two entries:

- ``"neurossm"``: JSON text, the model's description (:class:`ModelInfo`): the file format and
  its version, the neurossm version that wrote it, the registered model and every one of its
  options, the ROI count and atlas, the crop length, the classes, the preprocessing, the training
  settings and a fingerprint of the training data;
- ``"weights"``: name → tensor (a torch model's ``state_dict``; a closed-form model's fitted arrays).

It is read with ``torch.load(weights_only=True)``, which rebuilds tensors, strings and plain
containers only: loading a model file never runs code stored in it. A file of another format
version (or a weights-only ``checkpoint.pt`` of neurossm 0.1) is refused with the version that
wrote it, rather than loaded into a network it may not fit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .. import __version__
from ..config import TrainingConfig
from ..errors import ConfigError, DataNotFoundError
from ..io import atomic_path, to_json
from ..models.registry import get_model
from .estimators import Estimator, make_estimator

FORMAT = "neurossm-model"
#: Raised whenever a change would make an older reader mis-load a newer file (or the reverse).
FORMAT_VERSION = 1
#: The name every fold of ``neurossm train`` gives its model file.
MODEL_FILE = "model.pt"
#: What every loader does to a scan before the model sees it (``standardize=True``).
ZSCORE = "z-score each ROI over the whole scan (a constant ROI gives zeros)"


@dataclass
class ModelInfo:
    """The description saved with a model's weights.

    Parameters
    ----------
    model : str
        Registered model name (``neurossm models`` lists them).
    options : dict
        Every option of the model (its resolved config), defaults included.
    n_rois : int
        ROIs per time point of the scans it was trained on.
    crop_length : int
        Training crop length; a scan to predict needs at least this many time points.
    classes : list
        The labels ``predict`` returns, in the order of the probability columns (ints or strings).
    atlas : str or None
        Atlas of the ROIs, when known (``schaefer400``, ``aal3v2``, ``custom``, ...).
    preprocessing : dict
        What is done to each scan before the model sees it.
    training : dict
        The training settings (:class:`~neurossm.config.TrainingConfig` fields), the seed, the
        validation split and the epoch kept.
    training_data : dict
        ``fingerprint`` (:func:`data_fingerprint`), ``n_scans``, and ``dataset`` when it was one.
    neurossm_version : str
        The version that wrote the file.
    """

    model: str
    options: dict[str, Any]
    n_rois: int
    crop_length: int
    classes: list[Any]
    atlas: str | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    neurossm_version: str = __version__

    @property
    def class_names(self) -> list[str]:
        return [str(c) for c in self.classes]

    def training_config(self) -> TrainingConfig:
        return TrainingConfig.from_dict(self.training)

    def to_json(self) -> str:
        return to_json({"format": FORMAT, "format_version": FORMAT_VERSION, **dataclasses.asdict(self)})


def data_fingerprint(scans: Sequence[np.ndarray], labels: Sequence[Any]) -> str:
    """``sha256:<hex>`` of the scans (shape and float32 values, in order) and their labels.

    Two models trained on the same scans and labels record the same fingerprint, so a saved
    model says which data it learnt from without carrying the data.
    """
    digest = hashlib.sha256()
    for x in scans:
        x = np.ascontiguousarray(x, dtype=np.float32)
        digest.update(np.asarray(x.shape, dtype=np.int64).tobytes())
        digest.update(x.tobytes())
    digest.update(json.dumps([str(v) for v in labels]).encode())
    return f"sha256:{digest.hexdigest()}"


def describe(est: Estimator, *, classes: Sequence[Any], atlas: str | None, standardize: bool,
             training_data: dict[str, Any], **training: Any) -> ModelInfo:
    """The :class:`ModelInfo` of a fitted harness estimator; ``training`` adds to its training record."""
    selected = [h["epoch"] for h in est.history if h.get("selected")]
    return ModelInfo(
        model=est.spec.name, options=dict(est.config), n_rois=int(est.n_rois), crop_length=int(est.crop_length),
        classes=[c.item() if isinstance(c, np.generic) else c for c in classes], atlas=atlas,
        preprocessing={"standardize": ZSCORE if standardize else None,
                       "test": "logits averaged over non-overlapping windows of crop_length"
                       if est.spec.kind == "torch" else "features of the whole scan"},
        training={**est.training.to_dict(), "seed": int(est.seed),
                  "selected_epoch": selected[0] if selected else None, "stopped_epoch": est.stopped_epoch,
                  **training},
        training_data=dict(training_data))


def write_model_file(path: str | Path, info: ModelInfo, state: dict[str, Any]) -> Path:
    """Write ``info`` and the fitted ``state`` (from ``Estimator.get_state``) to ``path``, atomically."""
    weights = {}
    for name, value in state.items():
        tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(value))
        weights[name] = tensor.detach().cpu()
    with atomic_path(path) as tmp:
        torch.save({"neurossm": info.to_json(), "weights": weights}, tmp)
    return Path(path)


def read_model_file(path: str | Path) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    """The description and weights in a model file; anything else is refused, naming what it is."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no saved model there; pass a file written by Classifier.save "
                                f"or a fold's {MODEL_FILE} of a `neurossm train` run")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ConfigError(f"{path}: not a neurossm model file ({type(exc).__name__}: {reason}); pass a file "
                          f"written by Classifier.save or a fold's {MODEL_FILE}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("neurossm"), str):
        raise ConfigError(
            f"{path}: holds weights without a description of the model (a checkpoint of neurossm 0.1, before "
            f"saved models described themselves); neurossm {__version__} cannot tell which network they "
            "belong to: train the model again with this version")
    meta = json.loads(obj["neurossm"])
    version = meta.get("format_version")
    if meta.get("format") != FORMAT or version != FORMAT_VERSION:
        raise ConfigError(
            f"{path}: saved by neurossm {meta.get('neurossm_version', '(unknown)')} in model format {version!r}; "
            f"neurossm {__version__} reads model format {FORMAT_VERSION} only: load it with neurossm "
            f"{meta.get('neurossm_version', 'of that version')}, or train the model again with this one")
    names = {f.name for f in dataclasses.fields(ModelInfo)}
    info = ModelInfo(**{k: v for k, v in meta.items() if k in names})
    return info, dict(obj.get("weights") or {})


def load_estimator(path: str | Path, device: torch.device | str = "cpu") -> tuple[ModelInfo, Estimator]:
    """A model file as its description and the fitted harness estimator, on ``device``."""
    info, state = read_model_file(path)
    spec = get_model(info.model)
    est = make_estimator(spec, spec.validate_config(info.options), n_rois=info.n_rois, n_classes=len(info.classes),
                         crop_length=info.crop_length, training=info.training_config(), device=torch.device(device),
                         seed=int(info.training.get("seed", 0)))
    est.set_state(state, str(path))
    return info, est
