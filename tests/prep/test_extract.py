"""Per-file extraction: ROI means, confound regression, field of view, header checks."""

from __future__ import annotations

import numpy as np
import pytest

from neurossm.errors import ConfigError, DataFormatError, DataNotFoundError
from neurossm.prep.extract import (
    ExtractOptions,
    extract_file,
    extract_timeseries,
    find_confounds,
    load_confounds,
    repetition_time,
)

NONE = ExtractOptions(confounds_strategy="none")


def test_values_are_the_hand_computed_roi_means_in_atlas_order(atlas, rng, tools):
    data = rng.standard_normal((10, 10, 10, 40)).astype(np.float32)
    import nibabel as nib

    ts, n_voxels = extract_timeseries(nib.Nifti1Image(data, tools.affine), atlas)
    lab = tools.label_array()
    expected = np.stack([data[lab == v].mean(axis=0) for v in atlas.values])  # (R, T)
    assert ts.dtype == np.float32 and ts.shape == (4, 40)
    np.testing.assert_allclose(ts, expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(n_voxels, [(lab == v).sum() for v in atlas.values])


def test_extract_file_checks_and_reads_the_header_tr(atlas, rng, tmp_path, tools):
    path = tools.save_bold(tmp_path / "sub-01_task-rest_bold.nii.gz", rng.standard_normal((10, 10, 10, 30)), tr=0.72)
    ext = extract_file(path, atlas, NONE, "sub-01_task-rest", "01")
    assert ext.timeseries.shape == (4, 30)
    assert ext.tr == pytest.approx(0.72)
    assert ext.empty_rois.size == 0 and ext.confounds_file == ""


def test_tr_in_milliseconds_is_converted_and_tr_flag_overrides(rng, tmp_path, tools):
    import nibabel as nib

    path = tools.save_bold(tmp_path / "a_bold.nii.gz", rng.standard_normal((4, 4, 4, 12)), tr=800.0, unit="msec")
    img = nib.load(str(path))
    assert repetition_time(img) == pytest.approx(0.8)
    assert repetition_time(img, override=2.0) == 2.0


def test_planted_confound_is_regressed_out(atlas, rng, tmp_path, tools):
    n = 60
    csf = rng.standard_normal(n)
    data = rng.standard_normal((10, 10, 10, n)) + 100.0 + 5.0 * csf  # every voxel carries it
    bold = tools.save_bold(tmp_path / "sub-01_task-rest_space-MNI_desc-preproc_bold.nii.gz", data)
    tools.save_confounds(tmp_path / "sub-01_task-rest_desc-confounds_timeseries.tsv", n, rng, csf=csf)

    raw = extract_file(bold, atlas, NONE, "sub-01_task-rest_space-MNI_desc-preproc", "01").timeseries
    clean = extract_file(bold, atlas, ExtractOptions(), "sub-01_task-rest_space-MNI_desc-preproc", "01")
    assert clean.confound_columns[-2:] == ["white_matter", "csf"] and len(clean.confound_columns) == 14
    for before, after in zip(raw, clean.timeseries):
        assert np.corrcoef(before, csf)[0, 1] > 0.9
        assert abs(np.corrcoef(after, csf)[0, 1]) < 1e-3


def test_derivatives_are_computed_when_missing_and_first_row_nan_becomes_zero(tmp_path, rng):
    import pandas as pd

    path = tmp_path / "x_desc-confounds_timeseries.tsv"
    base = {c: rng.standard_normal(20) for c in ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]}
    pd.DataFrame(base).to_csv(path, sep="\t", index=False)
    matrix, cols = load_confounds(path, "motion", 20)
    assert matrix.shape == (20, 12) and np.isfinite(matrix).all()
    np.testing.assert_allclose(matrix[1:, 6], np.diff(base["trans_x"]))
    assert matrix[0, 6] == 0.0
    with pytest.raises(DataFormatError, match="white_matter, csf"):
        load_confounds(path, "motion+wmcsf", 20)
    with pytest.raises(DataFormatError, match="20 confound rows for 25 volumes"):
        load_confounds(path, "motion", 25)


def test_confounds_file_is_found_beside_the_bold_or_by_pattern(tmp_path):
    bold = tmp_path / "sub-01_ses-1_task-rest_space-MNI152NLin6Asym_res-2_desc-preproc_bold.nii.gz"
    scan = bold.name[: -len("_bold.nii.gz")]
    conf = tmp_path / "sub-01_ses-1_task-rest_desc-confounds_timeseries.tsv"
    conf.write_text("csf\n1\n")
    assert find_confounds(bold, scan, "01", None) == conf
    other = tmp_path / "conf" / "01.tsv"
    other.parent.mkdir()
    other.write_text("csf\n1\n")
    assert find_confounds(bold, scan, "01", str(tmp_path / "conf" / "{subject}.tsv")) == other
    assert find_confounds(bold, scan, "01", str(tmp_path / "conf" / "*.tsv")) == other
    assert find_confounds(bold, scan, "02", str(tmp_path / "conf" / "{subject}.tsv")) is None


def test_missing_confounds_file_fails_with_the_way_out(atlas, rng, tmp_path, tools):
    bold = tools.save_bold(tmp_path / "sub-01_bold.nii.gz", rng.standard_normal((10, 10, 10, 20)))
    with pytest.raises(DataNotFoundError, match="--confounds-strategy none"):
        extract_file(bold, atlas, ExtractOptions(), "sub-01", "01")


def test_roi_outside_the_field_of_view_is_a_zero_row(atlas, rng, tmp_path, tools):
    data = rng.standard_normal((8, 10, 10, 20)) + 50.0  # x < 8: misses ROI "Edge" (value 9)
    bold = tools.save_bold(tmp_path / "sub-01_bold.nii.gz", data)
    ext = extract_file(bold, atlas, NONE, "sub-01", "01")
    assert ext.empty_rois.tolist() == [3] and ext.zero_rois.tolist() == [3]
    assert not ext.timeseries[3].any()
    lab = tools.label_array()[:8]
    np.testing.assert_allclose(ext.timeseries[2], data[lab == 5].mean(axis=0), atol=1e-4)


def test_three_d_image_and_too_few_volumes_fail(atlas, rng, tmp_path, tools):
    flat = tools.save_bold(tmp_path / "sub-01_bold.nii.gz", rng.standard_normal((10, 10, 10)))
    with pytest.raises(DataFormatError, match="3D image"):
        extract_file(flat, atlas, NONE, "sub-01", "01")
    short = tools.save_bold(tmp_path / "sub-02_bold.nii.gz", rng.standard_normal((10, 10, 10, 5)))
    with pytest.raises(DataFormatError, match="too few volumes: 5 < --min-volumes 10"):
        extract_file(short, atlas, NONE, "sub-02", "02")


def test_filtering_needs_a_tr(atlas, rng, tmp_path, tools):
    bold = tools.save_bold(tmp_path / "sub-01_bold.nii.gz", rng.standard_normal((10, 10, 10, 30)), tr=0.0)
    options = ExtractOptions(confounds_strategy="none", low_pass=0.1)
    with pytest.raises(DataFormatError, match="pass --tr"):
        extract_file(bold, atlas, options, "sub-01", "01")
    ext = extract_file(bold, atlas, ExtractOptions(confounds_strategy="none", low_pass=0.1, tr=2.0), "sub-01", "01")
    assert ext.tr == 2.0 and np.isfinite(ext.timeseries).all()


@pytest.mark.parametrize("kwargs, match", [
    ({"confounds_strategy": "fancy"}, "unknown"),
    ({"high_pass": 0.1, "low_pass": 0.01}, "must be below"),
    ({"confounds_strategy": "none", "confounds_pattern": "{dir}/x.tsv"}, "drop one"),
])
def test_options_that_make_no_sense_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ExtractOptions(**kwargs)
