"""Scans without labels: a folder of per-scan files to predict (``neurossm predict``).

The CUSTOM layout (:mod:`neurossm.data.folder`) without ``labels.csv``: every ``.npy``,
single-array ``.npz``, ``.csv`` or ``.tsv`` file in the folder is one scan, its name without the
extension is the scan id. Each is oriented, checked and z-scored as a labelled scan is.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, DataNotFoundError
from .folder import EXTENSIONS, NOT_SCANS, infer_n_rois, read_array
from .records import prepare_timeseries


def read_scan_folder(root: str | Path, n_rois: int | None = None) -> tuple[list[str], list[np.ndarray], int]:
    """``(scan ids, scans, n_rois)`` of every scan file in ``root``, in name order.

    Parameters
    ----------
    root : str or Path
        The folder.
    n_rois : int, optional
        ROI count; decides each file's orientation. Without it the axis of the same size in
        every file holds the ROIs (one file, or files of one shape: the first axis, by convention).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"{root}: folder not found; expected a folder of per-scan files "
                                f"({', '.join(EXTENSIONS)})")
    paths = sorted(p for p in root.iterdir()
                   if p.is_file() and p.suffix.lower() in EXTENSIONS and p.name not in NOT_SCANS)
    if not paths:
        raise DataNotFoundError(f"{root}: no scan files ({', '.join(EXTENSIONS)}) there")
    ids = [p.stem for p in paths]
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if repeated:
        raise DataFormatError(f"{root}: scan(s) {repeated[:5]} have several files (e.g. .npy and .csv); keep one each")
    arrays = [np.squeeze(read_array(p)) for p in paths]
    if n_rois is None:
        n_rois, roi_axis = infer_n_rois([a.shape for a in arrays], root, paths)
        if roi_axis == 1:
            arrays = [a.T for a in arrays]
    scans = [prepare_timeseries(a, n_rois, f"{p}: scan {i}") for p, i, a in zip(paths, ids, arrays)]
    return ids, scans, int(n_rois)
