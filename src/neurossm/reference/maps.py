"""ROI-space maps written as NIfTI volumes on the atlas grid (atomic writes, explicit dtypes)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atlas import Atlas
from ..io import atomic_path

MAP_FILES = {
    "reference": "neurosynth_reference_score.nii.gz",
    "reference_mask": "neurosynth_reference_top25_mask.nii.gz",
    "cpa": "cpa_score.nii.gz",
    "cpa_mask": "cpa_score_top25_mask.nii.gz",
    "dominant": "cpa_dominant_pathway.nii.gz",
}


def write_roi_map(atlas: Atlas, roi_values, path: str | os.PathLike, dtype=np.float32) -> Path:
    """Paint ``(R,)`` values into the atlas and save; NaN (an ROI without data) becomes 0, the background."""
    values = np.nan_to_num(np.asarray(roi_values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    img = atlas.to_image(values, dtype=dtype, background=0)
    with atomic_path(path) as tmp:
        img.to_filename(str(tmp))
    return Path(path)


def write_roi_mask(atlas: Atlas, roi_mask, path: str | os.PathLike) -> Path:
    """A boolean ``(R,)`` ROI selection as a uint8 0/1 volume."""
    return write_roi_map(atlas, np.asarray(roi_mask, dtype=bool).astype(np.uint8), path, dtype=np.uint8)
