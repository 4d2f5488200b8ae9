"""load_dataset dispatch, option handling, and the per-scan preparation shared by the file loaders."""

from __future__ import annotations

import numpy as np
import pytest

from neurossm.data import get_dataset, list_datasets, load_dataset
from neurossm.data.records import flatten_records, number_ids, prepare_timeseries
from neurossm.errors import ConfigError, DataFormatError, DataNotFoundError


def test_every_builtin_dataset_is_registered_with_its_defaults():
    assert list_datasets()[:5] == ["HCP_REST", "HCP_TASK", "PPMI", "CUSTOM", "SYNTHETIC"]
    for name in list_datasets():
        spec = get_dataset(name.lower())
        assert spec.name == name and callable(spec.loader) and spec.description and spec.target
        assert spec.training.epochs > 0


def test_unknown_dataset_is_refused():
    with pytest.raises(ConfigError, match="unknown dataset 'ABIDE'"):
        load_dataset("ABIDE")


def test_unknown_option_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['include_cohorts'\].*none"):
        load_dataset("PPMI", include_cohorts=["prodromal"])
    with pytest.raises(ConfigError, match="task_release"):
        load_dataset("HCP_TASK", release="Q1")


def test_name_is_case_insensitive_and_default_root_is_the_seed_layout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataNotFoundError, match=r"Dataset/Data/dataset_hcpRest_schaefer\.npy not found"):
        load_dataset("hcp_rest")


def test_dataset_crop_length_default_applies(hcp_root):
    # HCP_REST crops 600 time points; the 40-point fixture scans are all too short
    with pytest.raises(DataFormatError, match="shorter than the crop length 600"):
        load_dataset("HCP_REST", hcp_root)
    assert load_dataset("HCP_REST", hcp_root, crop_length=20).crop_length == 20


def test_bad_crop_length_is_refused():
    with pytest.raises(ConfigError, match="crop_length must be a positive"):
        load_dataset("SYNTHETIC", crop_length=0)


def test_command_line_strings_are_parsed():
    ds = load_dataset("synthetic", n_scans="12", n_times="40", n_rois="8", signal_rois="0,1;2,3",
                      amplitude="2.5", class_names="rest,task")
    assert len(ds) == 12 and ds.n_rois == 8
    assert ds.class_names == ("rest", "task")
    assert ds.ground_truth["signal_rois"] == {"rest": [0, 1], "task": [2, 3]}
    assert ds.ground_truth["amplitude"] == 2.5


def test_choices_are_checked():
    with pytest.raises(ConfigError, match="choose one of diff, raw, connectivity"):
        load_dataset("SYNTHETIC", signal_form="spikes")


def test_custom_needs_a_data_root():
    with pytest.raises(ConfigError, match="CUSTOM needs --data-root"):
        load_dataset("CUSTOM")


def test_task_release_all_parses_to_none():
    assert get_dataset("HCP_TASK").options["task_release"].convert("task_release", "all") is None
    assert get_dataset("HCP_TASK").options["task_release"].convert("task_release", "Q3") == "Q3"


def test_prepare_transposes_when_the_roi_count_decides(rng):
    x = rng.standard_normal((50, 7))
    out = prepare_timeseries(x, 7, "f.npy: scan a")
    assert out.shape == (7, 50) and out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=1), 1, atol=1e-4)


def test_prepare_turns_a_constant_roi_into_zeros(rng):
    x = rng.standard_normal((5, 30))
    x[2] = 3.0
    out = prepare_timeseries(x, 5, "f.npy: scan a")
    assert np.all(out[2] == 0) and np.isfinite(out).all()


def test_prepare_names_nan_before_zscoring(rng):
    x = rng.standard_normal((5, 30))
    x[3, 4] = np.nan
    x[1, 0] = np.inf
    with pytest.raises(DataFormatError, match=r"f\.npy: scan a has 2 NaN/Inf value\(s\) in ROI\(s\) \[1, 3\]"):
        prepare_timeseries(x, 5, "f.npy: scan a")


def test_prepare_refuses_the_wrong_roi_count(rng):
    with pytest.raises(DataFormatError, match=r"shape \(6, 30\) has no axis of length 5"):
        prepare_timeseries(rng.standard_normal((6, 30)), 5, "f.npy: scan a")


def test_unknown_structure_shows_what_was_found():
    with pytest.raises(DataFormatError, match=r"x\.npy: unrecognised structure: list of 2 item\(s\), first item: int"):
        flatten_records([1, 2], "x.npy")
    with pytest.raises(DataFormatError, match=r"subject 7 holds dict with 1 key\(s\) \['meta'\]"):
        flatten_records({7: {"meta": 1}}, "x.npy")


def test_single_record_is_refused(rng):
    with pytest.raises(DataFormatError, match="holds a single record"):
        flatten_records({"roiTimeseries": rng.standard_normal((4, 9)), "subject": 1}, "x.npy")


def test_number_ids_suffixes_repeats_only():
    assert number_ids(["a", "b", "a", "c", "a"]) == ["a_1", "b", "a_2", "c", "a_3"]
