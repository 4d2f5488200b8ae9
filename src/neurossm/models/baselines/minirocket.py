"""MiniRocket: random convolutional features + ridge classifier, ridge strength by nested CV.

The multivariate MiniRocket transform (Dempster et al., 2021; aeon's implementation) convolves
each scan with a fixed set of 84 short kernels at several dilations over random subsets of
ROIs and keeps the proportion of positive values (PPV) of each output against biases drawn from
the training data: about 10 000 features per scan. The features are standardised and fed to a
ridge classifier whose ``alpha`` is chosen by subject-grouped inner cross-validation on the
whole training fold (:mod:`neurossm.models.linear`); Dempster et al. use a ridge classifier
with the same grid of ``alpha`` values, selected by leave-one-out CV.

MiniRocket is an optional baseline: aeon pins numpy below 2.4, so it lives in the extra
``neurossm[ts]`` (``pip install 'neurossm[ts]'``). Without aeon the model is still registered
and says so when it is built.

Lengths: the transform is fitted at one length ``L``, the shortest training scan. A scan of
length ``L`` is transformed as it is; a longer scan is cut into ``⌈T / L⌉`` windows of length
``L`` spread evenly from its start to its end, and its features are the mean over them (PPV
features are proportions, so the mean is the proportion over the windows). A test scan shorter
than ``L`` is refused with an error.

References
----------
Dempster, A., Schmidt, D. F., & Webb, G. I. (2021). MiniRocket: A very fast (almost)
deterministic transform for time series classification. *KDD 2021*, 248–257.
Middlehurst, M., Ismail-Fawaz, A., Guillaume, A., et al. (2024). aeon: a Python toolkit for
learning from time series. *JMLR*, 25(289), 1–10.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.linear_model import RidgeClassifier

from ...errors import ConfigError, DataFormatError
from ..linear import NestedCVLinearClassifier
from ..registry import register_model

#: Ridge strengths searched: Dempster et al.'s grid, 10 values log-spaced over 1e-3 … 1e3.
ALPHA_GRID = tuple(float(a) for a in np.logspace(-3, 3, 10))
# MiniRocket's kernels have 9 taps; shorter series cannot be convolved.
MIN_LENGTH = 9
_PARAMETER_NAMES = ("n_channels_per_combination", "channel_indices", "dilations", "n_features_per_dilation", "biases")


def _minirocket_class():
    """aeon's MiniRocket, or a clear error naming the extra that installs it."""
    try:
        from aeon.transformations.collection.convolution_based import MiniRocket
    except ImportError as exc:
        raise ConfigError(
            "model MiniRocket needs the optional package aeon, which is not installed "
            f"({exc}); install the extra: pip install 'neurossm[ts]'"
        ) from exc
    return MiniRocket


def window_starts_even(n_times: int, length: int) -> np.ndarray:
    """Starts of ``⌈n_times / length⌉`` windows of ``length`` spread evenly over the scan."""
    n_windows = -(-n_times // length)
    return np.round(np.linspace(0, n_times - length, n_windows)).astype(int)


@register_model(
    "MiniRocket",
    kind="features",
    description="multivariate MiniRocket transform (aeon; needs neurossm[ts]) + ridge classifier, "
                "alpha by subject-grouped nested CV",
    reference="Dempster et al. (2021) KDD 2021:248-257",
)
class MiniRocketClassifier(NestedCVLinearClassifier):
    """aeon's multivariate MiniRocket features + ridge classifier.

    Parameters
    ----------
    alpha_grid : tuple of float
        Candidate ridge strengths (Dempster et al.'s ten values from 1e-3 to 1e3); inner CV picks
        one (ties → the stronger penalty).
    inner_folds : int
        Inner subject-grouped folds on the training fold (5).
    n_kernels : int
        Features of the transform (10 000, rounded down to a multiple of 84 by MiniRocket).
    max_dilations_per_kernel : int
        MiniRocket's dilation cap (32).
    random_state : int
        Seed of the transform's random ROI subsets and bias draws (0).
    n_jobs : int
        Threads of the transform (1).
    """

    param_name = "alpha"
    grid_name = "alpha_grid"

    def __init__(self, alpha_grid: tuple[float, ...] = ALPHA_GRID, inner_folds: int = 5, n_kernels: int = 10_000,
                 max_dilations_per_kernel: int = 32, random_state: int = 0, n_jobs: int = 1) -> None:
        super().__init__(inner_folds)
        self._cls = _minirocket_class()
        # Largest alpha first: GridSearchCV resolves ties to the first candidate, the strongest penalty.
        self.alpha_grid = tuple(sorted((float(a) for a in alpha_grid), reverse=True))
        self.n_kernels, self.max_dilations_per_kernel = int(n_kernels), int(max_dilations_per_kernel)
        self.random_state, self.n_jobs = int(random_state), int(n_jobs)
        self.transform_ = None
        self.length_: int | None = None

    def _new_transform(self):
        return self._cls(n_kernels=self.n_kernels, max_dilations_per_kernel=self.max_dilations_per_kernel,
                         n_jobs=self.n_jobs, random_state=self.random_state)

    def fit_features(self, X: Sequence[np.ndarray], y: np.ndarray) -> np.ndarray:
        self.length_ = int(min(np.shape(x)[-1] for x in X))
        if self.length_ < MIN_LENGTH:
            raise DataFormatError(f"MiniRocket needs scans of at least {MIN_LENGTH} time points; "
                                  f"the shortest training scan has {self.length_}")
        # Fitted (dilations, biases) on the first L points of every training scan.
        first = np.stack([np.asarray(x, dtype=np.float32)[:, : self.length_] for x in X])  # (n, R, L)
        self.transform_ = self._new_transform().fit(first)
        return self.features(X)

    def features(self, X: Sequence[np.ndarray]) -> np.ndarray:
        L = self.length_
        owners, wins = [], []
        for i, x in enumerate(X):
            x = np.asarray(x, dtype=np.float32)
            if x.shape[-1] < L:
                raise DataFormatError(f"MiniRocket was fitted on scans of {L} time points; a scan of shape "
                                      f"{x.shape} is shorter. Crop the training scans to the shortest length")
            for s in window_starts_even(x.shape[-1], L):
                owners.append(i)
                wins.append(x[:, s : s + L])
        feats = self.transform_.transform(np.stack(wins)).astype(np.float64)  # (n_windows, F)
        owners = np.asarray(owners)
        out = np.zeros((len(X), feats.shape[1]))
        np.add.at(out, owners, feats)
        return out / np.bincount(owners, minlength=len(X))[:, None]  # (n_scans, F)

    def _estimator(self) -> RidgeClassifier:
        return RidgeClassifier()

    def _feature_state(self) -> dict[str, np.ndarray]:
        return {"length": np.array(self.length_), "n_rois": np.array(self._n_rois),
                **dict(zip(_PARAMETER_NAMES, self.transform_.parameters))}

    @property
    def _n_rois(self) -> int:
        return int(self.transform_.metadata_["n_channels"])

    def _set_feature_state(self, state: dict[str, np.ndarray]) -> None:
        self.length_ = int(state["length"])
        # aeon has no loader for a fitted transform: fit one on a zero batch of the right shape
        # (so that its shape checks know the ROI count and length), then put the saved
        # dilations, ROI subsets and biases in place of the ones it drew.
        self.transform_ = self._new_transform().fit(np.zeros((1, int(state["n_rois"]), self.length_), np.float32))
        self.transform_.parameters = tuple(state[k] for k in _PARAMETER_NAMES)
