"""Tiny BOLD images, a 4-label atlas and a BIDS-like folder, written into ``tmp_path``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neurossm.atlas import Atlas

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
# Label values out of order and with gaps, so that a position-for-value mix-up shows.
ATLAS_VALUES = np.array([7, 2, 5, 9])
ATLAS_NAMES = ["Vis", "Motor", "DMN", "Edge"]
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


def label_array() -> np.ndarray:
    """10×10×10 labels; ROI ``Edge`` (9) sits at x ≥ 8 so that a cropped image misses it."""
    lab = np.zeros((10, 10, 10), dtype=np.int16)
    lab[1:4, 1:4, 1:4] = 7
    lab[4:7, 1:4, 1:4] = 2
    lab[1:5, 5:9, 5:9] = 5
    lab[8:10, 5:9, 1:4] = 9
    return lab


def save_bold(path: Path, data: np.ndarray, tr: float = 2.0, unit: str = "sec") -> Path:
    img = nib.Nifti1Image(data.astype(np.float32), AFFINE)
    img.header.set_zooms((2.0, 2.0, 2.0, tr)[: data.ndim])
    img.header.set_xyzt_units("mm", unit)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def save_confounds(path: Path, n_volumes: int, rng: np.random.Generator, **planted: np.ndarray) -> Path:
    """An fMRIPrep-like confounds TSV; ``planted`` columns replace random ones."""
    cols = {c: rng.standard_normal(n_volumes) for c in MOTION + ["white_matter", "csf", "global_signal"]}
    cols.update(planted)
    frame = pd.DataFrame(cols)
    for c in MOTION:
        frame[f"{c}_derivative1"] = frame[c].diff()  # first row NaN, as fMRIPrep writes it
    frame.to_csv(path, sep="\t", index=False, na_rep="n/a")
    return path


@pytest.fixture
def tools():
    """The helpers above, for tests (a test module cannot import conftest by name)."""
    return SimpleNamespace(affine=AFFINE, label_array=label_array, save_bold=save_bold,
                           save_confounds=save_confounds)


@pytest.fixture
def rng():
    return np.random.default_rng(42)


@pytest.fixture
def atlas() -> Atlas:
    return Atlas("tiny", nib.Nifti1Image(label_array(), AFFINE), ATLAS_VALUES, ATLAS_NAMES)


@pytest.fixture
def atlas_files(tmp_path) -> tuple[Path, Path]:
    """The tiny atlas as a NIfTI label image and a ``index name`` TSV table."""
    img_path = tmp_path / "atlas" / "tiny_atlas.nii.gz"
    img_path.parent.mkdir()
    nib.save(nib.Nifti1Image(label_array(), AFFINE), str(img_path))
    table = img_path.parent / "tiny_atlas.tsv"
    pd.DataFrame({"index": ATLAS_VALUES, "name": ATLAS_NAMES}).to_csv(table, sep="\t", index=False)
    return img_path, table


@pytest.fixture
def bids(tmp_path, rng) -> Path:
    """A BIDS/fMRIPrep-like folder: 8 subjects (4 per class), one 40-volume run each, with
    confounds files and a ``participants.tsv`` whose ids carry the ``sub-`` prefix."""
    root = tmp_path / "bids"
    rows = []
    for i in range(8):
        sub = f"{i + 1:02d}"
        func = root / f"sub-{sub}" / "func"
        stem = f"sub-{sub}_task-rest"
        save_bold(func / f"{stem}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
                  rng.standard_normal((10, 10, 10, 40)) + 100.0)
        save_confounds(func / f"{stem}_desc-confounds_timeseries.tsv", 40, rng)
        rows.append((f"sub-{sub}", "patient" if i % 2 else "control", 20 + i))
    pd.DataFrame(rows, columns=["participant_id", "group", "age"]).to_csv(
        root / "participants.tsv", sep="\t", index=False)
    return root
