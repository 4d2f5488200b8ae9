"""Load a named dataset as a :class:`~neurossm.data.scans.ScanDataset`.

``load_dataset("HCP_TASK")`` reads the seed layout under ``Dataset/Data/``; ``CUSTOM`` reads a
folder of per-scan files plus ``labels.csv``; ``SYNTHETIC`` generates scans with known ground
truth. Every loader orients each scan to ``(n_rois, n_times)``, refuses NaN/Inf, z-scores each
ROI over the whole scan and ends in :func:`~neurossm.data.scans.assemble`.

The seed files ``dataset_hcp*_schaefer.npy`` (object arrays) and
``dataset_ppmi_atlas-AAL-3V2.pickle`` are pickles: loading a pickle runs code stored in it, so
load only files you made yourself or received from someone you trust. The format reference is
``docs/datasets.md``.

The helpers the file loaders share live in :mod:`neurossm.data.records`; the loader modules are
imported lazily so that this package imports nothing heavy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import dataset_info
from ..errors import ConfigError
from .scans import Drop, Scan, ScanDataset

__all__ = [
    "DATASET_OPTIONS",
    "DEFAULT_DATA_ROOT",
    "DatasetOption",
    "Drop",
    "Scan",
    "ScanDataset",
    "load_dataset",
]

DEFAULT_DATA_ROOT = Path("Dataset/Data")


def _optional_str(value: str) -> str | None:
    return None if value.strip().lower() in ("", "none", "all") else value.strip()


def _int_lists(value: str) -> list[list[int]]:
    # "0,1,2;5,6" -> [[0, 1, 2], [5, 6]]: one group of ROI indices per class
    return [[int(v) for v in group.split(",") if v.strip()] for group in value.split(";")]


def _names(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _optional_int(value: str) -> int | None:
    return None if value.strip().lower() in ("", "none") else int(value)


def _optional_float(value: str) -> float | None:
    return None if value.strip().lower() in ("", "none") else float(value)


@dataclass(frozen=True)
class DatasetOption:
    """One extra option of a loader, as the command line shows it.

    ``parse`` turns the command-line string into the value; values that are not strings (from
    Python callers) pass through unchanged.
    """

    default: Any
    parse: Callable[[str], Any]
    help: str
    choices: tuple[str, ...] | None = None

    def convert(self, name: str, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = self.parse(value)
            except ValueError as exc:
                raise ConfigError(f"option {name}={value!r}: {exc}") from exc
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"option {name}={value!r}; choose one of {', '.join(self.choices)}")
        return value


DATASET_OPTIONS: dict[str, dict[str, DatasetOption]] = {
    "HCP_REST": {},
    "HCP_TASK": {
        "task_release": DatasetOption(
            "Q1", _optional_str,
            "keep subjects whose pheno.csv Release equals this value (the original code kept 'Q1'); "
            "'all' keeps every subject"),
    },
    "PPMI": {},
    "CUSTOM": {
        "atlas": DatasetOption("custom", str, "atlas name recorded with the data (e.g. aal3v2, schaefer400)"),
    },
    "SYNTHETIC": {
        "n_scans": DatasetOption(120, int, "number of scans"),
        "n_subjects": DatasetOption(None, _optional_int, "number of subjects (default: one per scan)"),
        "n_times": DatasetOption(200, int, "time points per scan"),
        "n_classes": DatasetOption(2, int, "number of classes (balanced)"),
        "signal_form": DatasetOption("diff", str, "where the class signal lives",
                                     choices=("diff", "raw", "connectivity", "events", "mixture")),
        "n_signal_rois": DatasetOption(4, int, "signal ROIs per class"),
        "signal_rois": DatasetOption(None, _int_lists,
                                     "signal ROIs per class, e.g. '0,1,2;5,6' (default: drawn from the seed)"),
        "scale": DatasetOption(1, int, "temporal scale: samples per level block (diff) or period multiplier (raw)"),
        "amplitude": DatasetOption(1.0, float, "signal std relative to the ROI's own noise std"),
        "noise": DatasetOption("ar1", str, "private ROI noise", choices=("ar1", "white")),
        "class_names": DatasetOption(None, _names, "class names, e.g. 'rest,task' (default: class0, class1, ...)"),
        "atlas": DatasetOption("synthetic", str, "atlas the ROIs stand for (aal3v2 needs n_rois=166)"),
        "signal_fraction": DatasetOption(None, _optional_float,
                                         "signal ROIs per class as a fraction of n_rois (replaces n_signal_rois)"),
        "background": DatasetOption(None, _optional_str, "shared noise: global, or factors (default for "
                                    "events and mixture)", choices=(None, "global", "factors")),
        "n_factors": DatasetOption(8, int, "factors background: latent AR(1) factors"),
        "factor_phi": DatasetOption(0.9, float, "factors background: AR(1) coefficient of the factors"),
        "factor_ratio": DatasetOption(5.0, float, "factors background: factor variance over the ROI's own noise"),
        "event_width": DatasetOption(3, int, "events: widest event in samples (widths 1 to it)"),
        "n_events": DatasetOption(5, int, "events: events per signal ROI per scan"),
    },
}


def load_dataset(
    name: str,
    data_root: str | Path | None = None,
    *,
    crop_length: int | None = None,
    n_rois: int | None = None,
    seed: int = 0,
    **options: Any,
) -> ScanDataset:
    """Load dataset ``name`` (case-insensitive: HCP_REST, HCP_TASK, PPMI, CUSTOM, SYNTHETIC).

    Parameters
    ----------
    name : str
        Dataset name; :data:`neurossm.config.DATASETS` holds each one's atlas, ROI count and crop.
    data_root : str or Path, optional
        Folder of the seed files (default ``Dataset/Data``), or the CUSTOM folder (required there).
        SYNTHETIC ignores it.
    crop_length : int, optional
        Training crop length; scans shorter than it are dropped and counted. Default: the
        dataset's (600 HCP_REST, 150 HCP_TASK, 100 PPMI), else the shortest scan's length.
    n_rois : int, optional
        ROI count; decides which axis of a stored array holds the ROIs. Default: the atlas'
        (400 Schaefer-400, 166 AAL3v2); CUSTOM infers it when it can; SYNTHETIC generates it (32).
    seed : int
        Seed of the SYNTHETIC generator (file loaders are deterministic and ignore it).
    **options
        Loader options, listed in :data:`DATASET_OPTIONS`; strings are parsed as on the command line.
    """
    info = dataset_info(name)
    known = DATASET_OPTIONS[info.name]
    unknown = sorted(set(options) - set(known))
    if unknown:
        listed = ", ".join(known) or "none"
        raise ConfigError(f"{info.name}: unknown option(s) {unknown}; its options are: {listed}")
    opts = {k: known[k].convert(k, v) for k, v in options.items()}
    n_rois = int(n_rois) if n_rois is not None else None
    crop_length = int(crop_length) if crop_length is not None else info.crop_length
    if crop_length is not None and crop_length < 1:
        raise ConfigError(f"crop_length must be a positive number of time points, got {crop_length}")

    if info.name == "SYNTHETIC":
        from .synthetic import make_synthetic

        if n_rois is not None:
            opts["n_rois"] = n_rois
        return make_synthetic(seed=seed, crop_length=crop_length, **opts)
    if info.name == "CUSTOM":
        if data_root is None:
            raise ConfigError("CUSTOM needs --data-root DIR: a folder of per-scan files plus labels.csv "
                              "(see docs/datasets.md)")
        from .folder import load_folder

        return load_folder(data_root, n_rois=n_rois, crop_length=crop_length, **opts)

    root = Path(data_root) if data_root is not None else DEFAULT_DATA_ROOT
    loaders = {"HCP_REST": ("hcp", "load_hcp_rest"), "HCP_TASK": ("hcp", "load_hcp_task"),
               "PPMI": ("ppmi", "load_ppmi")}
    module, func = loaders[info.name]
    loader = getattr(importlib.import_module(f"{__name__}.{module}"), func)
    return loader(root, n_rois=n_rois if n_rois is not None else info.n_rois, crop_length=crop_length, **opts)
