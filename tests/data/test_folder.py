"""CUSTOM: a folder of per-scan files plus labels.csv."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from neurossm.data import load_dataset
from neurossm.errors import DataFormatError, DataNotFoundError


def custom(root, **kw):
    return load_dataset("CUSTOM", root, **kw)


def test_loads_with_sorted_class_names_and_shortest_crop(tmp_path, folder_arrays, folder_labels, lay):
    root = lay.write_folder(tmp_path / "d", folder_arrays, folder_labels)
    ds = custom(root)
    assert ds.class_names == ("control", "patient")
    assert len(ds) == 12 and ds.n_rois == 10 and ds.atlas == "custom"
    assert ds.crop_length == 30  # the shortest scan
    s = ds.scans[1]
    assert s.scan_id == "scan01" and s.subject_id == "sub0" and s.label == 1
    np.testing.assert_allclose(s.timeseries.std(axis=1), 1, atol=1e-4)


def test_integer_labels_keep_their_value_order(tmp_path, folder_arrays, lay):
    labels = {s: (10 if i % 3 == 0 else 2 if i % 3 == 1 else 7) for i, s in enumerate(folder_arrays)}
    ds = custom(lay.write_folder(tmp_path, folder_arrays, labels))
    assert ds.class_names == ("2", "7", "10")
    assert [s.label for s in ds.scans[:3]] == [2, 0, 1]


@pytest.mark.parametrize("ext", [".npz", ".csv", ".tsv"])
def test_other_file_formats(tmp_path, folder_arrays, folder_labels, ext, lay):
    ds = custom(lay.write_folder(tmp_path, folder_arrays, folder_labels, ext=ext))
    assert len(ds) == 12 and ds.n_rois == 10


def test_transposed_files_are_turned_when_the_time_axis_varies(tmp_path, folder_arrays, folder_labels, lay):
    arrays = {k: v.T for k, v in folder_arrays.items()}
    arrays["scan00"] = folder_arrays["scan00"][:, :10].T  # a square scan among time × ROI files
    ds = custom(lay.write_folder(tmp_path, arrays, folder_labels), crop_length=10)
    assert ds.n_rois == 10
    assert ds.scans[1].n_times == 31
    np.testing.assert_allclose(ds.scans[0].timeseries[0, 0], (lambda r: (r[0] - r.mean()) / r.std())(
        folder_arrays["scan00"][0, :10]), atol=1e-5)


def test_same_shape_everywhere_follows_the_roi_first_convention_and_says_so(tmp_path, rng, folder_labels, lay,
                                                                               caplog):
    arrays = {s: rng.standard_normal((10, 30)) for s in folder_labels}
    root = lay.write_folder(tmp_path, arrays, folder_labels)
    assert custom(root).scans[0].timeseries.shape == (10, 30)
    assert "by convention; pass --n-rois" in caplog.text
    assert custom(root, n_rois=10).scans[0].timeseries.shape == (10, 30)
    assert custom(root, n_rois=30).scans[0].timeseries.shape == (30, 10)


def test_square_scans_ask_for_n_rois(tmp_path, rng, folder_labels, lay):
    arrays = {s: rng.standard_normal((10, 10)) for s in folder_labels}
    with pytest.raises(DataFormatError, match=r"every scan is square \(10 × 10\); pass --n-rois"):
        custom(lay.write_folder(tmp_path, arrays, folder_labels))


def test_no_constant_axis(tmp_path, rng, folder_labels, lay):
    arrays = {s: rng.standard_normal((10 + i, 30 + i)) for i, s in enumerate(folder_labels)}
    with pytest.raises(DataFormatError, match="no axis has the same size in every scan"):
        custom(lay.write_folder(tmp_path, arrays, folder_labels))


def test_wrong_roi_count_with_n_rois_given(tmp_path, folder_arrays, folder_labels, lay):
    root = lay.write_folder(tmp_path, folder_arrays, folder_labels)
    with pytest.raises(DataFormatError, match=r"scan00\.npy: scan scan00: shape \(10, 30\) has no axis of length 12"):
        custom(root, n_rois=12)


def test_missing_folder(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"nowhere: folder not found"):
        custom(tmp_path / "nowhere")


def test_missing_labels_csv(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"labels\.csv not found; CUSTOM needs a CSV with columns scan,subject"):
        custom(tmp_path)


def test_missing_columns(tmp_path):
    (tmp_path / "labels.csv").write_text("scan,group\na,1\n")
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['subject', 'label'\]; found \['scan', 'group'\]"):
        custom(tmp_path)


def test_listed_scan_without_file(tmp_path, folder_arrays, folder_labels, lay):
    root = lay.write_folder(tmp_path, folder_arrays, folder_labels)
    (root / "scan05.npy").unlink()
    with pytest.raises(DataNotFoundError, match=r"scan 'scan05' is listed in labels\.csv but no file was found; "
                                                r"expected one of scan05\.npy, scan05\.npz, scan05\.csv, scan05\.tsv"):
        custom(root)


def test_unlisted_files_are_warned_and_counted(tmp_path, folder_arrays, folder_labels, caplog, lay):
    root = lay.write_folder(tmp_path, folder_arrays, folder_labels)
    np.save(root / "stray.npy", np.zeros((10, 30)))
    (root / "notes.txt").write_text("ignored quietly: not a scan file type")
    with caplog.at_level(logging.WARNING, logger="neurossm"):
        ds = custom(root)
    assert [(d.item, d.reason) for d in ds.dropped] == [("stray.npy", "file not listed in labels.csv")]
    assert "1 file(s) not listed in labels.csv are ignored (stray.npy)" in caplog.text


def test_duplicate_scan_ids(tmp_path, folder_arrays, folder_labels, lay):
    root = lay.write_folder(tmp_path, folder_arrays, folder_labels)
    table = pd.read_csv(root / "labels.csv")
    pd.concat([table, table.iloc[[3]]]).to_csv(root / "labels.csv", index=False)
    with pytest.raises(DataFormatError, match=r"scan id\(s\) \['scan03'\] listed more than once"):
        custom(root)


def test_empty_label(tmp_path, folder_arrays, folder_labels, lay):
    folder_labels["scan04"] = ""
    root = lay.write_folder(tmp_path, folder_arrays, folder_labels)
    with pytest.raises(DataFormatError, match=r"empty label on line\(s\) \[6\]"):
        custom(root)


def test_nan_in_a_file(tmp_path, folder_arrays, folder_labels, lay):
    folder_arrays["scan07"][2, 5] = np.nan
    with pytest.raises(DataFormatError, match=r"scan07\.npy: scan scan07 has 1 NaN/Inf value\(s\) in ROI\(s\) \[2\]"):
        custom(lay.write_folder(tmp_path, folder_arrays, folder_labels))


def test_constant_roi_is_zeros(tmp_path, folder_arrays, folder_labels, lay):
    folder_arrays["scan02"][9] = 1.5
    ds = custom(lay.write_folder(tmp_path, folder_arrays, folder_labels))
    assert np.all(ds.scans[2].timeseries[9] == 0)


def test_short_scans_dropped_and_counted(tmp_path, folder_arrays, folder_labels, lay):
    ds = custom(lay.write_folder(tmp_path, folder_arrays, folder_labels), crop_length=35)
    assert len(ds) == 7
    assert [d.item for d in ds.dropped] == [f"scan{i:02d}" for i in range(5)]
    assert ds.summary()["dropped_by_reason"] == {"shorter than crop length 35": 5}


def test_single_class(tmp_path, folder_arrays, lay):
    labels = {s: "control" for s in folder_arrays}
    with pytest.raises(DataFormatError, match=r"only one class \('control'\)"):
        custom(lay.write_folder(tmp_path, folder_arrays, labels))


def test_npz_with_two_arrays(tmp_path, folder_arrays, folder_labels, lay):
    root = lay.write_folder(tmp_path, folder_arrays, folder_labels)
    (root / "scan00.npy").unlink()
    np.savez(root / "scan00.npz", a=np.zeros((10, 30)), b=np.zeros(3))
    with pytest.raises(DataFormatError, match=r"scan00\.npz: holds 2 arrays \['a', 'b'\]; expected exactly one"):
        custom(root)


def test_csv_with_a_header(tmp_path, folder_arrays, folder_labels, lay):
    root = lay.write_folder(tmp_path, folder_arrays, folder_labels, ext=".csv")
    path = root / "scan03.csv"
    path.write_text("roi_a,roi_b\n" + path.read_text())
    with pytest.raises(DataFormatError, match=r"scan03\.csv: cannot read a numeric array .*no header row"):
        custom(root)


def test_object_npy_is_refused(tmp_path, folder_arrays, folder_labels, lay):
    root = lay.write_folder(tmp_path, folder_arrays, folder_labels)
    np.save(root / "scan01.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFormatError, match=r"scan01\.npy: cannot read a numeric array .*pickles"):
        custom(root)


def test_two_files_for_one_scan(tmp_path, folder_arrays, folder_labels, lay):
    root = lay.write_folder(tmp_path, folder_arrays, folder_labels)
    np.savetxt(root / "scan02.csv", folder_arrays["scan02"], delimiter=",")
    with pytest.raises(DataFormatError, match=r"scan 'scan02' has several files \(scan02\.npy, scan02\.csv\)"):
        custom(root)


def test_atlas_option(tmp_path, folder_arrays, folder_labels, lay):
    ds = custom(lay.write_folder(tmp_path, folder_arrays, folder_labels), atlas="aal3v2")
    assert ds.atlas == "aal3v2"
