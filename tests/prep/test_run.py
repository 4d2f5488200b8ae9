"""The ``neurossm prep`` batch: layouts, labels, resume, parallel jobs, report, exit codes."""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd
import pytest

from neurossm.cli import main, standalone_parser
from neurossm.prep.run import discover, read_labels, scan_identity


def prep_parser() -> argparse.ArgumentParser:
    """The ``neurossm prep`` parser alone: ``neurossm.cli.main`` with it handles errors and exit
    codes as the console script does, without importing every other subcommand (torch, ...)."""
    return standalone_parser("prep")


@pytest.fixture
def prep(atlas_files, bids, tmp_path):
    """``neurossm prep`` on the BIDS fixture with the tiny atlas; extra flags appended."""
    atlas_img, atlas_table = atlas_files

    def call(*extra: str) -> int:
        argv = ["--bold", str(bids), "--atlas", str(atlas_img), "--atlas-labels", str(atlas_table),
                "--out", str(call.out), "--quiet", *extra]
        return main(argv, prep_parser())

    call.out = tmp_path / "out"
    return call


def labels_args(bids):
    return ["--labels", str(bids / "participants.tsv"), "--label-col", "group"]


def test_custom_layout_with_bids_participants(prep, bids):
    assert prep(*labels_args(bids)) == 0
    labels = pd.read_csv(prep.out / "labels.csv", dtype=str)
    assert list(labels.columns) == ["scan", "subject", "label"] and len(labels) == 8
    first = labels.iloc[0]
    assert first.scan == "sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc"
    assert first.subject == "01" and first.label == "control"  # "sub-01" in participants.tsv
    arr = np.load(prep.out / f"{first.scan}.npy")
    assert arr.dtype == np.float32 and arr.shape == (4, 40)
    report = pd.read_csv(prep.out / "prep_report.csv")
    assert (report.status == "written").all() and (report.n_confounds == 14).all()
    assert not list(prep.out.glob(".*tmp*"))


def test_resume_skips_existing_and_overwrite_redoes(prep, bids):
    assert prep(*labels_args(bids)) == 0
    target = next(prep.out.glob("sub-03*.npy"))
    np.save(target, np.full((4, 40), 7.0, dtype=np.float32))  # a marker the rerun must keep
    assert prep(*labels_args(bids)) == 0
    report = pd.read_csv(prep.out / "prep_report.csv")
    assert (report.status == "skipped").all() and (report.n_confounds == 14).all()
    assert np.load(target)[0, 0] == 7.0
    assert prep(*labels_args(bids), "--overwrite") == 0
    assert np.load(target)[0, 0] != 7.0
    assert (pd.read_csv(prep.out / "prep_report.csv").status == "written").all()


def test_changed_settings_on_resume_are_refused(prep, bids, caplog):
    assert prep(*labels_args(bids)) == 0
    with caplog.at_level(logging.ERROR, logger="neurossm"):
        assert prep(*labels_args(bids), "--detrend") == 2
    assert "other settings (detrend: False then, True now)" in caplog.text


@pytest.mark.slow  # worker processes import nilearn: seconds, not milliseconds
def test_parallel_jobs_give_the_same_files(prep, bids, tmp_path):
    assert prep(*labels_args(bids)) == 0
    serial = {p.name: np.load(p) for p in prep.out.glob("*.npy")}
    prep.out = tmp_path / "out2"
    assert prep(*labels_args(bids), "--jobs", "2") == 0
    parallel = {p.name: np.load(p) for p in prep.out.glob("*.npy")}
    assert serial.keys() == parallel.keys() and len(serial) == 8
    for name in serial:
        np.testing.assert_array_equal(serial[name], parallel[name])
    assert (tmp_path / "out" / "labels.csv").read_text() == (tmp_path / "out2" / "labels.csv").read_text()


def test_bad_files_fail_with_reasons_and_the_rest_is_written(prep, bids, tools, rng):
    func = bids / "sub-01" / "func"
    for f in func.glob("*_bold.nii.gz"):
        tools.save_bold(f, rng.standard_normal((10, 10, 10)))  # 3D
    for f in (bids / "sub-02" / "func").glob("*_bold.nii.gz"):
        tools.save_bold(f, rng.standard_normal((10, 10, 10, 6)))  # too short
    for f in (bids / "sub-03" / "func").glob("*_bold.nii.gz"):
        tools.save_bold(f, rng.standard_normal((8, 10, 10, 40)))  # misses ROI "Edge"
    (bids / "sub-04" / "func" / "sub-04_task-rest_desc-confounds_timeseries.tsv").unlink()
    assert prep(*labels_args(bids)) == 0
    report = pd.read_csv(prep.out / "prep_report.csv", dtype=str, keep_default_na=False).set_index("subject")
    assert report.loc["01", "status"] == "failed" and "3D image" in report.loc["01", "reason"]
    assert report.loc["02", "status"] == "failed" and "too few volumes" in report.loc["02", "reason"]
    assert report.loc["04", "status"] == "failed" and "no confounds file" in report.loc["04", "reason"]
    row = report.loc["03"]
    assert row.status == "written" and row.n_rois_empty == "1" and row.empty_rois == "Edge" and row.flagged == "True"
    assert not np.load(row.output)[3].any()
    labels = pd.read_csv(prep.out / "labels.csv", dtype=str)
    assert sorted(labels.subject) == ["03", "05", "06", "07", "08"]


def test_every_scan_failing_exits_non_zero(prep, bids):
    assert prep(*labels_args(bids), "--min-volumes", "100") == 1
    report = pd.read_csv(prep.out / "prep_report.csv")
    assert (report.status == "failed").all() and len(report) == 8


def test_no_labels_writes_scans_csv_and_labels_are_otherwise_required(prep, bids, caplog):
    with caplog.at_level(logging.ERROR, logger="neurossm"):
        assert prep("--confounds-strategy", "none") == 2
    assert "--no-labels" in caplog.text
    assert prep("--no-labels", "--confounds-strategy", "none") == 0
    scans = pd.read_csv(prep.out / "scans.csv", dtype=str)
    assert list(scans.columns) == ["scan", "subject"] and scans.subject.tolist()[:2] == ["01", "02"]
    assert not (prep.out / "labels.csv").exists()
    assert (pd.read_csv(prep.out / "prep_report.csv").n_confounds == 0).all()


def test_hcp_layout_is_a_dict_of_subject_arrays(prep, bids, tools, rng):
    func = bids / "sub-02" / "func"
    tools.save_bold(func / "sub-02_task-rest_run-2_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
                    rng.standard_normal((10, 10, 10, 30)))
    assert prep("--layout", "hcp", "--confounds-strategy", "none") == 0
    data = np.load(prep.out / "dataset_hcpRest_schaefer.npy", allow_pickle=True).item()
    assert isinstance(data, dict) and sorted(data) == [f"{i:02d}" for i in range(1, 9)]
    assert data["01"].shape == (4, 40) and data["01"].dtype == np.float32
    assert [a.shape for a in data["02"]] == [(4, 30), (4, 40)]  # two runs: a list, in scan id order


def test_hcp_layout_loads_with_the_hcp_loader(prep, bids):
    pytest.importorskip("neurossm.data.hcp")
    from neurossm.data import load_dataset

    assert prep("--layout", "hcp") == 0
    pheno = prep.out / "HCP_1200" / "Preprocessed" / "pheno.csv"
    pheno.parent.mkdir(parents=True)
    pd.DataFrame({"Subject": [f"{i:02d}" for i in range(1, 9)], "Release": "Q1",
                  "Gender": list("MF" * 4)}).to_csv(pheno, index=False)
    ds = load_dataset("HCP_REST", data_root=prep.out, n_rois=4, crop_length=20)
    assert len(ds) == 8 and ds.class_names == ("F", "M") and ds.n_rois == 4


def test_missing_atlas_is_exit_code_2_with_a_message(prep, bids, tmp_path, caplog):
    argv = ["--bold", str(bids), "--atlas", str(tmp_path / "nowhere.nii.gz"), "--out",
            str(tmp_path / "o"), "--no-labels", "--quiet"]
    with caplog.at_level(logging.ERROR, logger="neurossm"):
        assert main(argv, prep_parser()) == 2
    assert "atlas not found" in caplog.text and "Traceback" not in caplog.text


def test_identity_discovery_and_label_tables(tmp_path, tools, rng):
    assert scan_identity(tmp_path / "sub-0A_ses-2_task-rest_run-1_bold.nii.gz") == (
        "sub-0A_ses-2_task-rest_run-1", "0A")
    assert scan_identity(tmp_path / "subject7.nii") == ("subject7", "subject7")
    for space in ("MNI", "T1w"):
        tools.save_bold(tmp_path / "d" / f"sub-01_space-{space}_bold.nii.gz", rng.standard_normal((2, 2, 2, 3)))
    with pytest.raises(Exception, match="2 spaces"):
        discover([str(tmp_path / "d")])
    assert len(discover([str(tmp_path / "d" / "*MNI*_bold.nii.gz")])) == 1
    table = tmp_path / "pheno.csv"
    pd.DataFrame({"Subject": ["100206", "sub-100307"], "Gender": ["M", "F"]}).to_csv(table, index=False)
    assert read_labels(table, "Subject", "Gender") == {"100206": "M", "100307": "F"}


def test_prep_output_loads_as_custom_dataset_and_trains(prep, bids, tmp_path):
    from neurossm.data import load_dataset
    from neurossm.pipeline import ExperimentOptions, run_experiment

    assert prep(*labels_args(bids)) == 0
    ds = load_dataset("CUSTOM", data_root=prep.out)  # (4, 40) scans: ROI-first by convention
    assert len(ds) == 8 and ds.n_classes == 2 and ds.n_rois == 4 and not ds.dropped
    assert sorted(set(ds.subjects.tolist())) == [f"{i:02d}" for i in range(1, 9)]
    res = run_experiment(ExperimentOptions(dataset="CUSTOM", model="FC_LR", data_root=str(prep.out), folds=2,
                                           results_root=str(tmp_path / "Results"), run_name="r"))
    assert res.summary["complete"] and res.summary["n_folds_done"] == 2


def test_prep_is_a_subcommand_of_the_console_script():
    from neurossm.cli import SUBCOMMANDS, build_parser

    assert SUBCOMMANDS["prep"][0] == "prep"
    assert "prep" in build_parser().parse_args(["prep", "--bold", "x", "--atlas", "a", "--out", "o"]).command
