"""HCP-Rest and HCP-Task loaders on tiny seed-layout files written into tmp_path."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from neurossm.data import load_dataset
from neurossm.data.hcp import REST_FILE, TASKS, task_name
from neurossm.errors import DataFormatError, DataNotFoundError

N_SCHAEFER, N_TIMES = 400, 40
SUBJECTS = [str(100000 + i) for i in range(12)]  # as in conftest


def rest(root, **kw):
    return load_dataset("HCP_REST", root, crop_length=kw.pop("crop_length", 20), **kw)


def task(root, **kw):
    return load_dataset("HCP_TASK", root, crop_length=kw.pop("crop_length", 20), **kw)


def test_rest_dict_loads_with_gender_labels(hcp_root, rest_data):
    ds = rest(hcp_root)
    assert ds.class_names == ("F", "M")
    assert len(ds) == 12 and ds.n_rois == N_SCHAEFER and ds.atlas == "schaefer400"
    by_id = {s.scan_id: s for s in ds.scans}
    # write_pheno: even rows M, odd rows F
    assert by_id[SUBJECTS[0]].label == 1 and by_id[SUBJECTS[1]].label == 0
    ts = by_id[SUBJECTS[3]].timeseries
    assert ts.shape == (N_SCHAEFER, N_TIMES) and ts.dtype == np.float32
    np.testing.assert_allclose(ts.std(axis=1), 1, atol=1e-4)
    expected = rest_data[int(SUBJECTS[3])]
    np.testing.assert_allclose(ts[5], (expected[5] - expected[5].mean()) / expected[5].std(), atol=1e-4)


def test_rest_transposed_arrays_are_turned(tmp_path, rest_data, lay):
    np.save(tmp_path / REST_FILE, {k: v.T for k, v in rest_data.items()}, allow_pickle=True)
    lay.write_pheno(tmp_path)
    ds = rest(tmp_path)
    assert all(s.timeseries.shape == (N_SCHAEFER, N_TIMES) for s in ds.scans)


def test_rest_list_of_dicts_with_nested_pheno(tmp_path, rest_data, lay):
    records = [{"roiTimeseries": v, "pheno": {"subjectId": k, "gender": "ignored"}} for k, v in rest_data.items()]
    lay.save_object(tmp_path / REST_FILE, records)
    lay.write_pheno(tmp_path)
    ds = rest(tmp_path)
    assert sorted(ds.scan_ids) == sorted(SUBJECTS)


def test_rest_several_arrays_per_subject_get_numbered_ids(tmp_path, rng, lay):
    data = {int(s): [rng.standard_normal((N_SCHAEFER, N_TIMES)) for _ in range(2)] for s in SUBJECTS[:4]}
    np.save(tmp_path / REST_FILE, data, allow_pickle=True)
    lay.write_pheno(tmp_path)
    ds = rest(tmp_path)
    assert sorted(ds.scan_ids)[:2] == [f"{SUBJECTS[0]}_1", f"{SUBJECTS[0]}_2"]
    assert {s.subject_id for s in ds.scans if s.scan_id.startswith(SUBJECTS[0])} == {SUBJECTS[0]}


def test_rest_subjects_missing_from_pheno_are_dropped_and_counted(tmp_path, rest_data, caplog, lay):
    np.save(tmp_path / REST_FILE, rest_data, allow_pickle=True)
    lay.write_pheno(tmp_path, subjects=SUBJECTS[:9])
    with caplog.at_level(logging.INFO, logger="neurossm"):
        ds = rest(tmp_path)
    assert len(ds) == 9
    assert [d.reason for d in ds.dropped] == ["subject not in pheno.csv"] * 3
    assert ds.summary()["dropped_by_reason"] == {"subject not in pheno.csv": 3}
    assert "dropped 3 item(s): subject not in pheno.csv" in caplog.text


def test_rest_gender_other_than_m_f_is_dropped(tmp_path, rest_data, lay):
    np.save(tmp_path / REST_FILE, rest_data, allow_pickle=True)
    lay.write_pheno(tmp_path, genders=["M", "F", "", "female", "Male", "X"] * 2)
    ds = rest(tmp_path)
    assert len(ds) == 8
    assert {d.reason for d in ds.dropped} == {"Gender in pheno.csv is not M or F"}


def test_rest_missing_file(tmp_path, lay):
    lay.write_pheno(tmp_path)
    with pytest.raises(DataNotFoundError, match=r"dataset_hcpRest_schaefer\.npy not found; expected the seed layout"):
        rest(tmp_path)


def test_rest_missing_pheno(tmp_path, rest_data):
    np.save(tmp_path / REST_FILE, rest_data, allow_pickle=True)
    with pytest.raises(DataNotFoundError, match=r"pheno\.csv not found"):
        rest(tmp_path)


def test_rest_pheno_without_gender_column(tmp_path, rest_data, lay):
    np.save(tmp_path / REST_FILE, rest_data, allow_pickle=True)
    lay.write_pheno(tmp_path, columns=["Subject", "Release"])
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['Gender'\]; found \['Subject', 'Release'\]"):
        rest(tmp_path)


def test_rest_plain_numeric_array_is_refused(tmp_path, rng, lay):
    np.save(tmp_path / REST_FILE, rng.standard_normal((3, N_SCHAEFER, 10)))
    lay.write_pheno(tmp_path)
    with pytest.raises(DataFormatError, match=r"plain numeric array of shape \(3, 400, 10\).*no subject ids"):
        rest(tmp_path)


def test_rest_unknown_inner_structure(tmp_path, lay):
    lay.save_object(tmp_path / REST_FILE, ["a", "b"])
    lay.write_pheno(tmp_path)
    with pytest.raises(DataFormatError, match=r"unrecognised structure: list of 2 item\(s\), first item: str"):
        rest(tmp_path)


def test_rest_wrong_roi_count(tmp_path, rest_data, lay):
    rest_data[int(SUBJECTS[2])] = rest_data[int(SUBJECTS[2])][:399]
    np.save(tmp_path / REST_FILE, rest_data, allow_pickle=True)
    lay.write_pheno(tmp_path)
    with pytest.raises(DataFormatError, match=rf"scan {SUBJECTS[2]} \(Schaefer-400\): shape \(399, 40\) has no "
                                              r"axis of length 400.*n_rois=400"):
        rest(tmp_path)


def test_rest_nan(tmp_path, rest_data, lay):
    rest_data[int(SUBJECTS[1])][17, 3] = np.nan
    np.save(tmp_path / REST_FILE, rest_data, allow_pickle=True)
    lay.write_pheno(tmp_path)
    with pytest.raises(DataFormatError, match=rf"scan {SUBJECTS[1]} .*1 NaN/Inf value\(s\) in ROI\(s\) \[17\]"):
        rest(tmp_path)


def test_rest_constant_roi_becomes_zeros(tmp_path, rest_data, lay):
    rest_data[int(SUBJECTS[0])][4] = 7.0
    np.save(tmp_path / REST_FILE, rest_data, allow_pickle=True)
    lay.write_pheno(tmp_path)
    scan = next(s for s in rest(tmp_path).scans if s.scan_id == SUBJECTS[0])
    assert np.all(scan.timeseries[4] == 0)


def test_rest_short_scans_are_dropped_and_counted(tmp_path, rest_data, lay):
    for s in SUBJECTS[:3]:
        rest_data[int(s)] = rest_data[int(s)][:, :15]
    np.save(tmp_path / REST_FILE, rest_data, allow_pickle=True)
    lay.write_pheno(tmp_path)
    ds = rest(tmp_path, crop_length=20)
    assert len(ds) == 9
    assert {d.item for d in ds.dropped} == set(SUBJECTS[:3])
    assert ds.dropped[0].reason == "shorter than crop length 20"


def test_rest_single_class(tmp_path, rest_data, lay):
    np.save(tmp_path / REST_FILE, rest_data, allow_pickle=True)
    lay.write_pheno(tmp_path, genders=["M"] * 12)
    with pytest.raises(DataFormatError, match=r"only one class \('M'\)"):
        rest(tmp_path)


def test_rest_empty_after_filtering(tmp_path, rest_data, lay):
    np.save(tmp_path / REST_FILE, rest_data, allow_pickle=True)
    lay.write_pheno(tmp_path, subjects=["1", "2"])
    with pytest.raises(DataFormatError, match=r"no scans left to use \(dropped: 12 × subject not in pheno\.csv\)"):
        rest(tmp_path)


def test_task_name_matching():
    assert task_name("tfMRI_MOTOR_LR") == "MOTOR"
    assert task_name("wm") == "WM"
    assert task_name("Relational") == "RELATIONAL"
    assert task_name("rest") is None and task_name(7) is None and task_name(True) is None
    assert task_name(0) == "EMOTION" and task_name(np.int64(3)) == "MOTOR" and task_name(6) == "WM"
    assert task_name("MOTOR_WM") is None


@pytest.mark.parametrize("layout", ["task_first", "subject_first", "records"])
def test_task_layouts_give_the_same_scans(tmp_path, task_data, layout, lay):
    if layout == "task_first":
        obj = task_data
    elif layout == "subject_first":
        obj = {}
        for t, by_subject in task_data.items():
            for s, arr in by_subject.items():
                obj.setdefault(s, {})[t] = arr
    else:
        obj = [{"timeseries": arr, "subject": s, "task": t} for t, d in task_data.items() for s, arr in d.items()]
    lay.save_task(tmp_path, obj)
    lay.write_pheno(tmp_path)
    ds = task(tmp_path, task_release=None)
    assert ds.class_names == TASKS
    assert len(ds) == 18
    assert f"{SUBJECTS[0]}_MOTOR" in ds.scan_ids
    motor = next(s for s in ds.scans if s.scan_id == f"{SUBJECTS[0]}_MOTOR")
    assert motor.label == TASKS.index("MOTOR") and motor.subject_id == SUBJECTS[0]
    assert motor.meta["task"] == "MOTOR"


def test_task_release_filter_keeps_q1_and_logs(tmp_path, task_data, caplog, lay):
    lay.save_task(tmp_path, task_data)
    lay.write_pheno(tmp_path)  # releases: Q2 for subjects 0 and 3, Q1 otherwise
    with caplog.at_level(logging.INFO, logger="neurossm"):
        ds = task(tmp_path)
    assert {s.subject_id for s in ds.scans} == {SUBJECTS[i] for i in (1, 2, 4, 5)}
    assert len(ds) == 12
    assert [d.reason for d in ds.dropped] == ["Release is not Q1"] * 6
    assert "kept 12 scan(s) of 4 subject(s), dropped 6 scan(s) of 2 subject(s)" in caplog.text
    assert len(task(tmp_path, task_release="all")) == 18
    assert len(task(tmp_path, task_release="q2")) == 6


def test_task_release_filter_needs_the_release_column(tmp_path, task_data, lay):
    lay.save_task(tmp_path, task_data)
    lay.write_pheno(tmp_path, columns=["Subject", "Gender"])
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['Release'\]"):
        task(tmp_path)
    assert len(task(tmp_path, task_release=None)) == 18


def test_task_runs_of_one_task_get_numbered_ids(tmp_path, task_data, lay):
    task_data["tfMRI_MOTOR_RL"] = task_data["tfMRI_MOTOR_LR"]
    lay.save_task(tmp_path, task_data)
    lay.write_pheno(tmp_path)
    ds = task(tmp_path, task_release=None)
    assert {f"{SUBJECTS[0]}_MOTOR_1", f"{SUBJECTS[0]}_MOTOR_2", f"{SUBJECTS[0]}_WM"} <= set(ds.scan_ids)


def test_task_unknown_task_label(tmp_path, rng, lay):
    records = [{"timeseries": rng.standard_normal((N_SCHAEFER, N_TIMES)), "subject": s, "task": "rest"}
               for s in SUBJECTS[:2]]
    lay.save_task(tmp_path, records)
    lay.write_pheno(tmp_path)
    with pytest.raises(DataFormatError, match=r"task label 'rest'; expected one of EMOTION, GAMBLING"):
        task(tmp_path)


def test_task_integer_labels_outside_bolts_codes_are_refused(tmp_path, rng, lay):
    records = [{"timeseries": rng.standard_normal((N_SCHAEFER, N_TIMES)), "subject": s, "label": 9}
               for s in SUBJECTS[:2]]
    lay.save_task(tmp_path, records)
    lay.write_pheno(tmp_path)
    with pytest.raises(DataFormatError, match="task label 9; .*BolT's integer code 0-6"):
        task(tmp_path)


def _bolt_records(rng, subjects, task_codes=None):
    """BolT's own layout: roiTimeseries time × ROI, pheno with subjectId, gender (0 F, 1 M) and task."""
    out = []
    for i, s in enumerate(subjects):
        pheno = {"subjectId": int(s), "gender": i % 2}
        if task_codes is not None:
            pheno["task"] = task_codes[i]
        out.append({"roiTimeseries": rng.standard_normal((N_TIMES, N_SCHAEFER)), "pheno": pheno})
    return out


@pytest.mark.parametrize("writer", ["torch.save", "np.save"])
def test_bolt_task_file_with_integer_tasks(tmp_path, rng, writer, lay):
    import torch

    subjects = [s for s in SUBJECTS[:4] for _ in range(7)]
    records = _bolt_records(rng, subjects, task_codes=list(range(7)) * 4)
    if writer == "torch.save":
        torch.save(records, tmp_path / "dataset_hcpTask_schaefer7_400.save")  # BolT's own name
    else:
        lay.save_task(tmp_path, records)
    ds = task(tmp_path, task_release=None)  # no pheno.csv: every subject kept
    assert ds.class_names == TASKS and len(ds) == 28
    by_id = {s.scan_id: s for s in ds.scans}
    assert by_id[f"{SUBJECTS[0]}_MOTOR"].label == TASKS.index("MOTOR") == 3
    assert by_id[f"{SUBJECTS[0]}_EMOTION"].timeseries.shape == (N_SCHAEFER, N_TIMES)


def test_bolt_rest_file_takes_the_stored_gender_without_pheno_csv(tmp_path, rng):
    import torch

    torch.save(_bolt_records(rng, SUBJECTS), tmp_path / "dataset_hcpRest_schaefer7_400.save")
    ds = rest(tmp_path)
    assert ds.class_names == ("F", "M")
    by_id = {s.scan_id: s for s in ds.scans}
    assert by_id[SUBJECTS[0]].label == 0 and by_id[SUBJECTS[1]].label == 1  # BolT: 0 female, 1 male


def test_task_without_pheno_csv_needs_the_release_filter_off(tmp_path, rng, lay):
    lay.save_task(tmp_path, _bolt_records(rng, SUBJECTS[:2], task_codes=[0, 1]))
    with pytest.raises(DataNotFoundError, match="pheno.csv not found.*--task-release all"):
        task(tmp_path)


def test_task_missing_subject_id(tmp_path, rng, lay):
    lay.save_task(tmp_path, [{"timeseries": rng.standard_normal((N_SCHAEFER, N_TIMES)), "task": "WM"}])
    lay.write_pheno(tmp_path)
    with pytest.raises(DataFormatError, match=r"item 0 has keys \['timeseries', 'task'\] but no subject id"):
        task(tmp_path)


def test_task_subjects_missing_from_pheno(tmp_path, task_data, lay):
    lay.save_task(tmp_path, task_data)
    lay.write_pheno(tmp_path, subjects=SUBJECTS[1:6])
    ds = task(tmp_path, task_release=None)
    assert len(ds) == 15
    assert [d.item for d in ds.dropped if d.reason == "subject not in pheno.csv"] == [
        f"{SUBJECTS[0]}_MOTOR", f"{SUBJECTS[0]}_WM", f"{SUBJECTS[0]}_EMOTION"]


def test_pheno_float_subject_ids_match(tmp_path, rest_data, lay):
    np.save(tmp_path / REST_FILE, rest_data, allow_pickle=True)
    path = lay.write_pheno(tmp_path)
    text = path.read_text().splitlines()
    path.write_text("\n".join([text[0]] + [line.replace(",", ".0,", 1) for line in text[1:]]) + "\n")
    assert len(rest(tmp_path)) == 12
