"""neurossm: multi-pathway state-space classification of ROI-wise fMRI time series.

From Python::

    from neurossm import NeuroSSMClassifier, load
    clf = NeuroSSMClassifier(epochs=20).fit(X, y, groups=subjects)   # X: (n_scans, n_rois, n_times)
    clf.save("model.pt"); load("model.pt").predict(X_new)

(docs/python-api.md); ``neurossm --help`` for the command line.
"""

import importlib

__version__ = "0.2.0"

# The estimator API, imported on first use, so that `import neurossm` (and the version) costs
# nothing: torch and scikit-learn load only when an estimator is asked for.
_API = {"Classifier": "classifier", "NeuroSSMClassifier": "classifier", "load": "classifier",
        "load_run": "classifier"}
__all__ = ["Classifier", "NeuroSSMClassifier", "__version__", "load", "load_run"]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
