"""Tiny seeded fixtures of the reference analysis: an 8 mm MNI atlas, CPA files, Neurosynth files."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from neurossm.reference.neurosynth import NEUROSYNTH_FILES

# 8 mm voxels over the MNI152 box: small enough to resample and average in milliseconds.
AFFINE_8MM = np.array([[8.0, 0, 0, -90], [0, 8.0, 0, -126], [0, 0, 8.0, -72], [0, 0, 0, 1]])
SHAPE_8MM = (23, 28, 23)


def make_atlas_img(dtype=np.uint8) -> tuple[nib.Nifti1Image, np.ndarray]:
    """12 brain blocks (left/right x 3 front-back x 2 up-down) with gapped label values, plus one ROI
    (value 99) in a corner outside the brain, which no Neurosynth study can reach."""
    data = np.zeros(SHAPE_8MM, dtype=dtype)
    values = []
    value = 2
    for i0, i1 in ((4, 11), (12, 19)):
        for j0, j1 in ((5, 11), (11, 17), (17, 23)):
            for k0, k1 in ((5, 10), (10, 15)):
                data[i0:i1, j0:j1, k0:k1] = value
                values.append(value)
                value += 3  # gaps: label values are matched by value, never by position
    data[0:2, 0:2, 0:2] = 99
    values.append(99)
    return nib.Nifti1Image(data, AFFINE_8MM), np.array(values)


@pytest.fixture
def tiny_atlas_img():
    """``(img, values)``: the 8 mm test atlas (uint8 label image) and its ROI label values."""
    return make_atlas_img()


@pytest.fixture
def ref_atlas_files(tmp_path):
    img, values = make_atlas_img()
    nii = tmp_path / "atlas" / "tiny_atlas.nii.gz"
    nii.parent.mkdir()
    img.to_filename(nii)
    labels = tmp_path / "atlas" / "tiny_atlas.txt"
    labels.write_text("".join(f"{v} roi_{v}_name\n" for v in values))
    return nii, labels, values


@pytest.fixture
def neurosynth_fixture_dir(tmp_path):
    """NiMARE's Neurosynth v7 test fixture (20 studies, 100 terms), copied under NiMARE's names."""
    src = resources.files("nimare") / "tests" / "data"
    dst = tmp_path / "neurosynth_files"
    dst.mkdir()
    for name in NEUROSYNTH_FILES.values():
        with resources.as_file(src / name) as f:
            shutil.copy(f, dst / name)
    return dst


def write_cpa_file(path: Path, *, label: int, class_names, n_rois: int, atlas: str, rng, pathway_names=None,
                   signal=None):
    pathway_names = pathway_names or ["raw_s1", "diff_s1", "raw_s2"]
    n_paths = len(pathway_names)
    maps = rng.random((n_paths, n_rois))
    if signal is not None:
        maps += signal
    maps /= maps.sum(axis=1, keepdims=True)
    importance = rng.random(n_paths)
    importance /= importance.sum()
    cpa = importance @ maps
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path, scan_id=np.array(path.stem), subject_id=np.array(f"sub-{path.stem}"), label=np.array(label),
        pred=np.array(label), probs=np.full(len(class_names), 1.0 / len(class_names)),
        class_names=np.array(class_names), pathway_names=np.array(pathway_names), pathway_maps=maps,
        pathway_importance=importance, logit_full=np.array(1.0), logit_ablated=rng.random(n_paths),
        cpa_score=cpa, dominant_pathway=np.argmax(importance[:, None] * maps, axis=0), target=np.array(label),
        atlas=np.array(atlas), n_rois=np.array(n_rois),
    )


@pytest.fixture
def cpa_root(tmp_path, ref_atlas_files):
    """root/SYN/seed_0/fold_<k>/subj_*.npz: 4 classes x 3 scans over 2 folds, plus a one-class dataset."""
    nii, _, values = ref_atlas_files
    rng = np.random.default_rng(42)
    root = tmp_path / "Explainability"
    classes = ["alpha", "beta", "nothing", "unknown_term"]
    for i in range(12):
        label = i % len(classes)
        write_cpa_file(root / "SYN" / "seed_0" / f"fold_{i % 2}" / f"subj_{i:03d}.npz", label=label,
                       class_names=classes, n_rois=len(values), atlas=str(nii), rng=rng)
    for i in range(3):
        write_cpa_file(root / "ONE" / "seed_1" / f"subj_{i:03d}.npz", label=0, class_names=["alpha"],
                       n_rois=len(values), atlas=str(nii), rng=rng)
    return root


@pytest.fixture
def terms_file(tmp_path):
    path = tmp_path / "terms.yaml"
    path.write_text("alpha: [ACTIVATIONS]\nbeta: [acquisition, achieve, not_a_term]\nnothing: []\n"
                    "unknown_term: [zzz unknown]\n")
    return path
