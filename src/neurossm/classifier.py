"""Scikit-learn estimators over every registered model: fit, predict, explain, save and load from Python.

One class, :class:`Classifier`, wraps any registered model (``Classifier(model="BolT", d_model=64)``;
``neurossm models`` lists them and their options), and :class:`NeuroSSMClassifier` is
``Classifier(model="NeuroSSM")``. The model's own options are keyword arguments beside the
training settings, so ``get_params``/``set_params``, ``clone``, ``GridSearchCV`` (e.g.
``{"d_model": [32, 64]}``) and ``Pipeline`` treat them like any other parameter.

``X`` is an array ``(n_scans, n_rois, n_times)``, or a list of ``(n_rois, n_times)`` arrays whose
lengths may differ. A 2-D array ``(n_scans, n_times)`` is read as scans of a single ROI each (the
convention of time-series libraries), so that scikit-learn's own estimator checks can run.

``fit`` follows ``neurossm train``'s protocol on the training data it is given: an inner
validation split (subject-disjoint by ``groups`` when given, else by scan; stratified;
:func:`neurossm.data.splits.validation_split`) chooses the epoch to keep and stops training early,
the network trains on random crops and predicts a scan by averaging its logits over windows
(:mod:`neurossm.training.estimators`). ``save`` writes the one saved-model format
(:mod:`neurossm.training.model_file`) that every fold of ``neurossm train`` writes too, and
:func:`load` reads either.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .config import TrainingConfig
from .data.preprocess import zscore
from .data.scans import check_finite
from .data.splits import validation_split
from .errors import ConfigError, DataFormatError
from .explain.contract import check_explainable
from .explain.cpa import explain_scan_batch
from .models.registry import get_model
from .training.device import resolve_device
from .training.estimators import Estimator, make_estimator
from .training.model_file import data_fingerprint, describe, load_estimator, write_model_file
from .training.results import RunDirectory

_DEFAULTS = TrainingConfig()


class Classifier(ClassifierMixin, BaseEstimator):
    """A registered model as a scikit-learn classifier of ROI-wise fMRI scans.

    Parameters
    ----------
    model : str
        A registered model, case-insensitive (``neurossm models`` lists them): ``NeuroSSM``,
        ``BolT``, ``GRU``, ``meanMLP``, ``FC_LR``, ``FC_SVM``, ``catch22``, ``MiniRocket``.
    epochs : int
        Most passes over the training scans (one random crop per scan per epoch).
    batch_size : int
        Scans per optimisation step.
    lr : float
        Peak learning rate of AdamW (cosine schedule after a linear warm-up).
    weight_decay : float
        AdamW weight decay.
    patience : int or None
        Stop when the validation score has not improved for this many epochs; ``None`` or 0
        trains every epoch. The best epoch's weights are kept either way.
    val_fraction : float
        Share of the subjects (of the scans, without ``groups``) held out inside ``fit`` to
        choose the epoch. Closed-form models (``FC_LR``, ...) choose their regularisation by
        inner cross-validation instead and fit on every scan.
    crop_length : int or None
        Time points per training crop; ``None``: the shortest training scan's length. Scans
        to predict need at least this many time points.
    standardize : bool
        Z-score each ROI over the whole scan before the model sees it (what every dataset loader
        of ``neurossm train`` does; z-scoring twice changes nothing).
    atlas : str or None
        Atlas of the ROIs (e.g. ``schaefer400``), recorded in the saved model so that
        ``neurossm predict`` can refuse scans of another atlas.
    device : str
        ``"cpu"``, ``"auto"`` (GPU 0 when CUDA is available), a GPU index or ``"cuda:N"``.
    random_state : int
        Seed of the initialisation, the crops and the inner validation split.
    **options
        The model's own options (its constructor's arguments, e.g. ``d_model=32`` or
        ``scales=(1, 2)``); ``neurossm models --verbose`` lists them with their defaults.

    Attributes
    ----------
    classes_ : ndarray
        The labels seen in ``fit``, in the order of ``predict_proba``'s columns.
    n_rois_ : int
        ROIs per time point of the training scans (also ``n_features_in_``).
    crop_length_ : int
        The crop length used.
    history_ : list of dict
        One row per epoch (losses, validation scores, the epoch kept).
    model_ : Estimator
        The fitted model (``model_.module`` is the ``torch.nn.Module`` of a gradient-trained model).

    Notes
    -----
    In ``cross_val_score(clf, X, y, groups=g, cv=StratifiedGroupKFold(5))`` the groups reach the
    outer splitter only, so the inner validation split inside ``fit`` is by scan. With
    ``sklearn.set_config(enable_metadata_routing=True)`` and ``clf.set_fit_request(groups=True)``,
    ``cross_val_score(clf, X, y, cv=..., params={"groups": g})`` hands the groups to both, and the
    inner split is by subject as in ``neurossm train``.
    """

    def __init__(self, model: str = "NeuroSSM", *, epochs: int = _DEFAULTS.epochs,
                 batch_size: int = _DEFAULTS.batch_size, lr: float = _DEFAULTS.lr,
                 weight_decay: float = _DEFAULTS.weight_decay, patience: int | None = _DEFAULTS.patience,
                 val_fraction: float = _DEFAULTS.val_fraction, crop_length: int | None = None,
                 standardize: bool = True, atlas: str | None = None, device: str = "cpu", random_state: int = 0,
                 **options: Any) -> None:
        self.model = model
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.val_fraction = val_fraction
        self.crop_length = crop_length
        self.standardize = standardize
        self.atlas = atlas
        self.device = device
        self.random_state = random_state
        # The model's options, kept apart so that a change of `model` drops the old model's ones.
        self._options = dict(options)

    # -- parameters ---------------------------------------------------------------------------
    def _model_name(self) -> str:
        return self.model

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The estimator's parameters: the training settings and the model options given."""
        return {**super().get_params(deep), **self._options}

    def set_params(self, **params: Any) -> "Classifier":
        """Set training settings and model options (any option of the model, given or not)."""
        if "model" in params and "model" in self._get_param_names():
            self.model = params.pop("model")
            self._options = {}
        own = set(self._get_param_names())
        super().set_params(**{k: v for k, v in params.items() if k in own or "__" in k})
        options = {k: v for k, v in params.items() if k not in own and "__" not in k}
        if options:
            known = get_model(self._model_name()).defaults()
            unknown = sorted(set(options) - set(known))
            if unknown:
                raise ValueError(f"Invalid parameter(s) {unknown} for estimator {type(self).__name__} "
                                 f"({self._model_name()}); valid parameters: {sorted(own | set(known))}")
            self._options.update(options)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        # A network trained for a few epochs on a few hundred toy points scores below the bar
        # scikit-learn's checks set for tabular classifiers.
        tags.classifier_tags.poor_score = True
        return tags

    def _training(self) -> TrainingConfig:
        return TrainingConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                              weight_decay=self.weight_decay, patience=self.patience, val_fraction=self.val_fraction)

    # -- input --------------------------------------------------------------------------------
    def _scans(self, X: Any, names: Sequence[str] | None = None) -> list[np.ndarray]:
        """``X`` as a list of float32 ``(n_rois, n_times)`` scans, checked (and z-scored if asked)."""
        if issparse(X):
            raise TypeError("X is a sparse matrix; sparse input is not supported: pass dense scans")
        if not isinstance(X, (np.ndarray, list, tuple)) and hasattr(X, "__array__"):
            X = np.asarray(X)  # array-likes (a pandas DataFrame of single-ROI scans, a memmap)
        if isinstance(X, np.ndarray) and X.dtype == object and X.ndim > 1:
            X = X.astype(np.float64)  # a rectangular object array of numbers
        if isinstance(X, np.ndarray) and X.dtype != object:
            if X.ndim == 2:  # one ROI per scan (the time-series libraries' convention for 2-D input)
                X = X[:, None, :]
            if X.ndim != 3:
                raise ValueError(f"X has shape {X.shape}; expected (n_scans, n_rois, n_times), or a list of "
                                 "(n_rois, n_times) arrays. Reshape your data: one scan is X[None] or [scan]")
        elif isinstance(X, (str, bytes)) or not hasattr(X, "__len__"):
            raise TypeError(f"X is a {type(X).__name__}; expected an array (n_scans, n_rois, n_times) or a list of "
                            "(n_rois, n_times) arrays")
        names = list(names) if names is not None else [f"X[{i}]" for i in range(len(X))]
        if len(X) == 0:
            raise ValueError("X holds no scans (0 sample(s)); expected at least one (n_rois, n_times) array")
        scans = []
        for name, x in zip(names, X):
            x = np.asarray(x)
            if np.iscomplexobj(x):
                raise ValueError(f"{name}: Complex data not supported; expected real ROI time series")
            if x.dtype == object or not np.issubdtype(x.dtype, np.number):
                raise ValueError(f"{name}: dtype {x.dtype}; expected a numeric (n_rois, n_times) array")
            if x.ndim == 1:  # a single-ROI scan, as the rows of a 2-D X
                x = x[None, :]
            if x.ndim != 2 or x.shape[1] == 0:
                raise ValueError(f"{name}: shape {x.shape}; expected (n_rois, n_times) with n_times ≥ 1")
            x = x.astype(np.float32)
            check_finite(x, name)
            scans.append(zscore(x) if self.standardize else x)
        n_rois = getattr(self, "n_rois_", scans[0].shape[0])
        for name, x in zip(names, scans):
            if x.shape[0] != n_rois:
                fitted = f"the model was fitted on {n_rois} ROIs" if hasattr(self, "n_rois_") else \
                    f"{names[0]} has {n_rois}"
                raise ValueError(f"{name} has {x.shape[0]} ROI(s), but {fitted} (shape {x.shape}; expected "
                                 f"({n_rois}, n_times)); for one scan pass [scan], not scan")
        crop = getattr(self, "crop_length_", None)
        short = [(name, x.shape[1]) for name, x in zip(names, scans) if crop is not None and x.shape[1] < crop]
        if short:
            listed = ", ".join(f"{n} ({t})" for n, t in short[:5])
            raise ValueError(f"{len(short)} scan(s) are shorter than the model's crop length {crop}: {listed}; "
                             f"each scan needs at least {crop} time points")
        return scans

    # -- fit and predict ----------------------------------------------------------------------
    def fit(self, X: Any, y: Any, groups: Any = None) -> "Classifier":
        """Train on ``X``, ``y``; an inner validation split of them chooses the epoch to keep.

        Parameters
        ----------
        X : array (n_scans, n_rois, n_times) or list of (n_rois, n_times) arrays
            The training scans.
        y : array-like of shape (n_scans,)
            Labels (ints or strings).
        groups : array-like of shape (n_scans,), optional
            Subject of each scan: the inner validation split keeps a subject's scans together.
            Without it the split is by scan.

        Returns
        -------
        self
        """
        for attr in ("model_", "n_rois_", "crop_length_", "classes_"):
            self.__dict__.pop(attr, None)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        scans = self._scans(X)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if len(y) != len(scans):
            raise ValueError(f"y has {len(y)} labels; expected one label per scan ({len(scans)})")
        classes, labels = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y holds 1 class ({classes.tolist()}); a classifier needs at least two")
        subjects = np.arange(len(scans)) if groups is None else np.asarray(groups)
        if len(subjects) != len(scans):
            raise ValueError(f"groups has {len(subjects)} entries; expected one subject id per scan ({len(scans)})")
        crop = self.crop_length if self.crop_length is not None else min(x.shape[1] for x in scans)
        short = [i for i, x in enumerate(scans) if x.shape[1] < crop]
        if short:
            raise ValueError(f"{len(short)} training scan(s) (e.g. X[{short[0]}], {scans[short[0]].shape[1]} time "
                             f"points) are shorter than crop_length={crop}; pass a smaller crop_length")
        spec = get_model(self._model_name())
        config = spec.resolve_config(self._options)
        training = self._training()
        try:
            fit_idx, val_idx = validation_split(labels, subjects, training.val_fraction, self.random_state,
                                                f"{type(self).__name__}.fit (inner validation split)")
        except DataFormatError as exc:
            raise ValueError(f"{exc}. The inner validation split needs at least 2 subjects (scans, without "
                             "groups) of each class") from None
        est = make_estimator(spec, config, n_rois=scans[0].shape[0], n_classes=len(classes), crop_length=int(crop),
                             training=training, device=resolve_device(self.device), seed=self.random_state)
        est.fit([scans[i] for i in fit_idx], labels[fit_idx], [scans[i] for i in val_idx], labels[val_idx],
                groups=subjects[fit_idx].tolist(), groups_val=subjects[val_idx].tolist())
        training_data = {"n_scans": len(scans), "fingerprint": data_fingerprint(scans, y.tolist())}
        self._set_fitted(est, classes, training_data)
        return self

    def _set_fitted(self, est: Estimator, classes: np.ndarray, training_data: dict[str, Any]) -> None:
        self.model_ = est
        self.classes_ = np.asarray(classes)
        self.n_rois_ = self.n_features_in_ = int(est.n_rois)
        self.crop_length_ = int(est.crop_length)
        self.history_ = list(est.history)
        self.training_data_ = dict(training_data)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_scans, n_classes)``, columns in the order of ``classes_``."""
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(self._scans(X))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each scan (a value of ``classes_``)."""
        probs = self.predict_proba(X)
        return self.classes_[probs.argmax(axis=1)]

    # -- explain ------------------------------------------------------------------------------
    def explain(self, X: Any, y: Any = None, *, batch_size: int = 8) -> dict[str, np.ndarray]:
        """Calibrated Pathway Attribution (CPA, docs/cpa.md) of each scan.

        Parameters
        ----------
        X : array (n_scans, n_rois, n_times) or list of (n_rois, n_times) arrays
            The scans to explain.
        y : array-like of shape (n_scans,), optional
            The class to explain for each scan (``neurossm train --cpa-target true`` explains the
            true label); ``None`` explains the predicted class.
        batch_size : int
            Scans per backward pass.

        Returns
        -------
        dict of str to ndarray
            Scans first, under the names of the CPA files ``neurossm train --analysis`` writes:
            ``pathway_names (P,)``, ``pathway_maps (S, P, R)`` (each map sums to 1),
            ``pathway_importance (S, P)``, ``cpa_score (S, R)``, ``dominant_pathway (S, R)``
            (index into ``pathway_names``), ``probs (S, C)``, ``logit_full (S,)``,
            ``logit_ablated (S, P)``, ``importance_fallback (S,)``, and ``pred`` and ``target``
            ``(S,)`` as values of ``classes_``.
        """
        check_is_fitted(self, "model_")
        module = getattr(self.model_, "module", None)
        check_explainable(module if module is not None else self.model_.model, self.model_.spec.name)
        scans = self._scans(X)
        targets = None
        if y is not None:
            y = np.asarray(y)
            unknown = sorted(set(y.tolist()) - set(self.classes_.tolist()))
            if len(y) != len(scans) or unknown:
                raise ValueError(f"y: expected one label of {self.classes_.tolist()} per scan ({len(scans)}); "
                                 f"got {len(y)} label(s){f', unknown {unknown[:5]}' if unknown else ''}")
            targets = np.searchsorted(self.classes_, y)
        parts = [explain_scan_batch(module, scans[b : b + batch_size], self.crop_length_,
                                    None if targets is None else targets[b : b + batch_size],
                                    device=self.model_.device).arrays()
                 for b in range(0, len(scans), batch_size)]
        out = {k: parts[0][k] if k == "pathway_names" else np.concatenate([p[k] for p in parts]) for k in parts[0]}
        out["pred"], out["target"] = self.classes_[out["pred"]], self.classes_[out["target"]]
        return out

    # -- save ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted model to one self-describing file (:func:`neurossm.load` reads it).

        The file holds the weights, the model and its options, the ROI count, crop length,
        classes, preprocessing, training settings, the neurossm version and a fingerprint of the
        training data; it is read without unpickling anything (``torch.load(weights_only=True)``).
        """
        check_is_fitted(self, "model_")
        info = describe(self.model_, classes=list(self.classes_), atlas=self.atlas, standardize=self.standardize,
                        training_data=self.training_data_)
        return write_model_file(path, info, self.model_.get_state())


class NeuroSSMClassifier(Classifier):
    """NeuroSSM (multiscale raw and difference pathways of bidirectional Mamba) as a scikit-learn classifier.

    ``Classifier(model="NeuroSSM")``: every parameter of :class:`Classifier` but ``model``, and
    NeuroSSM's options (``d_model``, ``scales``, ``n_layers``, ...; ``neurossm models --verbose``).

    References
    ----------
    F. Genç, B. İ. Macun, S. S. Özaslan, E. U. Saritas, T. Çukur, "NeuroSSM: Multiscale Differential
    State-Space Modeling for Context-Aware fMRI Analysis", arXiv:2601.01229, 2026.
    """

    def __init__(self, **params: Any) -> None:
        super().__init__("NeuroSSM", **params)

    # scikit-learn reads an estimator's parameters from its constructor's signature: Classifier's less `model`.
    __init__.__signature__ = inspect.signature(Classifier.__init__).replace(
        parameters=[p for name, p in inspect.signature(Classifier.__init__).parameters.items() if name != "model"])

    def _model_name(self) -> str:
        return "NeuroSSM"


def load(path: str | Path, device: str = "cpu") -> Classifier:
    """A fitted classifier from a saved model: a file of ``Classifier.save``, a fold's ``model.pt``
    of a ``neurossm train`` run, or a run folder holding one fold model.

    Parameters
    ----------
    path : str or Path
        The model file, or a run folder (``Results/<DATASET>/<MODEL>/<run>``) with one finished fold.
    device : str
        Where the model runs.

    Returns
    -------
    Classifier
        :class:`NeuroSSMClassifier` for a NeuroSSM model; its parameters are those it was trained with.
    """
    path = Path(path)
    if path.is_dir():
        paths = fold_model_paths(path)
        if len(paths) != 1:
            raise ConfigError(f"{path}: a run with {len(paths)} fold models; load one of them "
                              f"({paths[0]}), or all with neurossm.load_run / `neurossm predict --ensemble`")
        path = paths[0]
    info, est = load_estimator(path, resolve_device(device))
    training = info.training_config()
    params = dict(epochs=training.epochs, batch_size=training.batch_size, lr=training.lr,
                  weight_decay=training.weight_decay, patience=training.patience, val_fraction=training.val_fraction,
                  crop_length=info.crop_length, standardize=bool(info.preprocessing.get("standardize")),
                  atlas=info.atlas, device=device, random_state=int(info.training.get("seed", 0)))
    options = est.spec.validate_config(info.options)
    if est.spec.name == "NeuroSSM":
        clf: Classifier = NeuroSSMClassifier(**params, **options)
    else:
        clf = Classifier(est.spec.name, **params, **options)
    clf._set_fitted(est, np.asarray(info.classes), info.training_data)
    return clf


def fold_model_paths(run_dir: str | Path) -> list[Path]:
    """The saved model of every finished fold of a ``neurossm train`` run (an old run is refused)."""
    rd = RunDirectory(run_dir)
    rd.read_config()
    rd.check_model_format()
    paths = rd.model_paths()
    if not paths:
        raise ConfigError(f"{rd.root}: no finished fold with a saved model; finish the run "
                          f"(neurossm train --resume {rd.root})")
    return paths


def load_run(run_dir: str | Path, device: str = "cpu") -> list[Classifier]:
    """Every fold model of a ``neurossm train`` run (for an ensemble: :func:`predict_table`)."""
    return [load(p, device) for p in fold_model_paths(run_dir)]


def predict_table(models: Sequence[Classifier], X: Any, scan_ids: Sequence[str]) -> pd.DataFrame:
    """Predictions of one model, or the average of several (an ensemble of a run's folds).

    Returns a frame with ``scan``, ``predicted`` (a class) and ``prob_<class>`` per class; the
    models must share their classes, ROI count and crop length (the folds of one run do).
    """
    first = models[0]
    for m in models[1:]:
        if (m.classes_.tolist(), m.n_rois_) != (first.classes_.tolist(), first.n_rois_):
            raise ConfigError(f"the models to average differ: classes {first.classes_.tolist()} with {first.n_rois_} "
                              f"ROIs, and {m.classes_.tolist()} with {m.n_rois_}; average folds of one run only")
    ids = [str(s) for s in scan_ids]
    probs = np.mean([m.model_.predict_proba(m._scans(X, ids)) for m in models], axis=0)  # (n, C)
    frame = pd.DataFrame({"scan": ids, "predicted": first.classes_[probs.argmax(axis=1)]})
    for c, name in enumerate(first.classes_):
        frame[f"prob_{name}"] = probs[:, c]
    return frame
