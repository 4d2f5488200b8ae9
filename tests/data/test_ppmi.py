"""PPMI loader on tiny pickles written into tmp_path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurossm.data import load_dataset
from neurossm.data.ppmi import PPMI_FILE, ppmi_label
from neurossm.errors import DataFormatError, DataNotFoundError

N_AAL, N_TIMES = 166, 40


def ppmi(root, **kw):
    return load_dataset("PPMI", root, crop_length=kw.pop("crop_length", 20), **kw)


def test_list_of_dicts_keeps_pd_and_control_and_counts_other_cohorts(tmp_path, ppmi_records, lay):
    lay.save_ppmi(tmp_path, ppmi_records)
    ds = ppmi(tmp_path)
    assert ds.class_names == ("Control", "PD") and ds.atlas == "aal3v2" and ds.n_rois == N_AAL
    assert len(ds) == 10
    assert sorted(d.reason for d in ds.dropped) == ["cohort 'Prodromal' is neither PD nor control",
                                                    "cohort 'SWEDD' is neither PD nor control"]
    first = next(s for s in ds.scans if s.scan_id == "3000")
    assert first.label == 1 and first.subject_id == "3000" and first.meta["cohort"] == "PD"
    np.testing.assert_allclose(first.timeseries.std(axis=1), 1, atol=1e-4)


@pytest.mark.parametrize("value, expected", [
    ("PD", 1), ("Parkinson's Disease", 1), ("parkinson", 1), (1, 1), (np.int64(1), 1), (1.0, 1), ("1", 1),
    ("HC", 0), ("Healthy Control", 0), ("control", 0), (0, 0), ("0", 0),
    ("Prodromal", "Prodromal"), ("SWEDD", "SWEDD"), (3, 3), (None, None),
])
def test_label_spellings(value, expected):
    assert ppmi_label(value) == expected


def test_subject_dict_layout(tmp_path, ppmi_records, lay):
    obj = {r["subjectId"]: {"timeseries": r["roiTimeseries"], "diagnosis": r["group"]} for r in ppmi_records}
    lay.save_ppmi(tmp_path, obj)
    assert len(ppmi(tmp_path)) == 10


def test_parallel_lists_layout(tmp_path, ppmi_records, lay):
    obj = {"X": [r["roiTimeseries"] for r in ppmi_records], "y": [r["group"] for r in ppmi_records],
           "subjects": [r["subjectId"] for r in ppmi_records]}
    lay.save_ppmi(tmp_path, obj)
    assert len(ppmi(tmp_path)) == 10


def test_dataframe_layout(tmp_path, ppmi_records, lay):
    lay.save_ppmi(tmp_path, pd.DataFrame(ppmi_records))
    assert len(ppmi(tmp_path)) == 10


def test_visits_share_the_subject_and_get_numbered_ids(tmp_path, rng, lay):
    obj = {f"P{i}": [{"data": rng.standard_normal((N_AAL, N_TIMES)), "cohort": "PD" if i % 2 else "HC"}
                     for _ in range(2)] for i in range(4)}
    lay.save_ppmi(tmp_path, obj)
    ds = ppmi(tmp_path)
    assert sorted(ds.scan_ids) == [f"P{i}_{k}" for i in range(4) for k in (1, 2)]
    assert {s.subject_id for s in ds.scans} == {"P0", "P1", "P2", "P3"}


def test_transposed_scans_are_turned(tmp_path, ppmi_records, lay):
    for r in ppmi_records:
        r["roiTimeseries"] = r["roiTimeseries"].T
    lay.save_ppmi(tmp_path, ppmi_records)
    assert all(s.timeseries.shape == (N_AAL, N_TIMES) for s in ppmi(tmp_path).scans)


def test_cohort_codes_beyond_0_1_are_refused(tmp_path, ppmi_records, lay):
    for i, r in enumerate(ppmi_records):
        r["group"] = 1 + i % 2  # PPMI's own COHORT codes: 1 PD, 2 HC
    lay.save_ppmi(tmp_path, ppmi_records)
    with pytest.raises(DataFormatError, match=r"integer label\(s\) \[2\]: only 0 \(control\) and 1 \(PD\)"):
        ppmi(tmp_path)


def test_missing_labels(tmp_path, ppmi_records, lay):
    for r in ppmi_records:
        del r["group"]
    lay.save_ppmi(tmp_path, ppmi_records)
    with pytest.raises(DataFormatError, match=r"12 scan\(s\) \(subject 3000, \.\.\.\) have no label"):
        ppmi(tmp_path)


def test_missing_subject_ids_in_parallel_lists(tmp_path, ppmi_records, lay):
    lay.save_ppmi(tmp_path, {"X": [r["roiTimeseries"] for r in ppmi_records], "y": [1] * 12})
    with pytest.raises(DataFormatError, match="no subject ids.*add 'subjects'"):
        ppmi(tmp_path)


def test_parallel_lists_of_different_lengths(tmp_path, ppmi_records, lay):
    lay.save_ppmi(tmp_path, {"X": [r["roiTimeseries"] for r in ppmi_records], "y": [1] * 11,
                             "subjects": list(range(12))})
    with pytest.raises(DataFormatError, match=r"12 scans under 'X' but 11 labels"):
        ppmi(tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(DataNotFoundError, match=rf"{PPMI_FILE} not found"):
        ppmi(tmp_path)


def test_not_a_pickle(tmp_path):
    (tmp_path / PPMI_FILE).write_bytes(b"not a pickle at all")
    with pytest.raises(DataFormatError, match="cannot be read as np.save, pickle or torch.save output"):
        ppmi(tmp_path)


def test_unknown_structure(tmp_path, lay):
    lay.save_ppmi(tmp_path, {"a": "b"})
    with pytest.raises(DataFormatError, match=r"subject a holds str 'b'; expected an array"):
        ppmi(tmp_path)
    lay.save_ppmi(tmp_path, 42)
    with pytest.raises(DataFormatError, match=r"unrecognised structure: int '42'"):
        ppmi(tmp_path)


def test_wrong_roi_count(tmp_path, ppmi_records, lay):
    ppmi_records[4]["roiTimeseries"] = ppmi_records[4]["roiTimeseries"][:116]
    lay.save_ppmi(tmp_path, ppmi_records)
    with pytest.raises(DataFormatError, match=r"scan 3004 \(AAL3v2\): shape \(116, 40\) has no axis of length 166"):
        ppmi(tmp_path)


def test_inf_values(tmp_path, ppmi_records, lay):
    ppmi_records[0]["roiTimeseries"][3, 3] = np.inf
    lay.save_ppmi(tmp_path, ppmi_records)
    with pytest.raises(DataFormatError, match=r"scan 3000 .*NaN/Inf value\(s\) in ROI\(s\) \[3\]"):
        ppmi(tmp_path)


def test_only_pd_left(tmp_path, ppmi_records, lay):
    lay.save_ppmi(tmp_path, [r for r in ppmi_records if r["group"] != "Control"])
    with pytest.raises(DataFormatError, match=r"only one class \('PD'\)"):
        ppmi(tmp_path)


def test_duplicate_subject_records_become_visits(tmp_path, ppmi_records, lay):
    ppmi_records[1]["subjectId"] = ppmi_records[0]["subjectId"]
    lay.save_ppmi(tmp_path, ppmi_records)
    ds = ppmi(tmp_path)
    assert {"3000_1", "3000_2"} <= set(ds.scan_ids)
