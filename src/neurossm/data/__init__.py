"""Load a named dataset as a :class:`~neurossm.data.scans.ScanDataset`.

``load_dataset("HCP_TASK")`` reads the seed layout under ``Dataset/Data/``; ``CUSTOM`` reads a
folder of per-scan files plus ``labels.csv``; ``SYNTHETIC`` generates scans with known ground
truth. Every loader orients each scan to ``(n_rois, n_times)``, refuses NaN/Inf, z-scores each
ROI over the whole scan and ends in :func:`~neurossm.data.scans.assemble`.

The seed files ``dataset_hcp*_schaefer.npy`` (object arrays) and
``dataset_ppmi_atlas-AAL-3V2.pickle`` are pickles: loading a pickle runs code stored in it, so
load only files you made yourself or received from someone you trust. The format reference is
``docs/datasets.md``.

Each loader module registers its dataset(s) in :mod:`neurossm.data.registry` (atlas, ROI
count, crop length, target, class names, options, training defaults, reference terms); the
helpers the file loaders share live in :mod:`neurossm.data.records`. The loader modules are
imported on the first look-up, so that importing this package imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .registry import (DEFAULT_DATA_ROOT, DatasetOption, DatasetSpec, get_dataset, list_datasets, register_dataset,
                       training_defaults)
from .scans import Drop, Scan, ScanDataset

__all__ = [
    "DEFAULT_DATA_ROOT",
    "DatasetOption",
    "DatasetSpec",
    "Drop",
    "Scan",
    "ScanDataset",
    "get_dataset",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "training_defaults",
]


def load_dataset(
    name: str,
    data_root: str | Path | None = None,
    *,
    crop_length: int | None = None,
    n_rois: int | None = None,
    seed: int = 0,
    **options: Any,
) -> ScanDataset:
    """Load dataset ``name`` (case-insensitive: HCP_REST, HCP_TASK, PPMI, CUSTOM, SYNTHETIC, or any
    dataset a module registered).

    Parameters
    ----------
    name : str
        Dataset name; :func:`~neurossm.data.registry.get_dataset` gives its atlas, ROI count and crop.
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
        Loader options, listed in the dataset's ``options``; strings are parsed as on the command line.
    """
    spec = get_dataset(name)
    known = spec.options
    unknown = sorted(set(options) - set(known))
    if unknown:
        listed = ", ".join(known) or "none"
        raise ConfigError(f"{spec.name}: unknown option(s) {unknown}; its options are: {listed}")
    opts = {k: known[k].convert(k, v) for k, v in options.items()}
    n_rois = int(n_rois) if n_rois is not None else None
    crop_length = int(crop_length) if crop_length is not None else spec.crop_length
    if crop_length is not None and crop_length < 1:
        raise ConfigError(f"crop_length must be a positive number of time points, got {crop_length}")
    return spec.loader(data_root, n_rois=n_rois, crop_length=crop_length, seed=seed, **opts)
