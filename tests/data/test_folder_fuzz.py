"""Fuzzing the CUSTOM loader: whatever a folder holds (shapes, dtypes, values, file names,
labels.csv contents), loading ends in finite float32 scans or in a NeuroSSMError with a message
(exit code 2 on the command line), never another exception, and reads or writes nothing outside
its folder (docs/reliability.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from neurossm.data import load_dataset  # noqa: E402
from neurossm.errors import NeuroSSMError  # noqa: E402

DTYPES = ["float64", "float32", "float16", "int16", "int64", "uint8", "bool", "complex64", "complex128"]
SPECIAL = [0.0, 1.0, -1.0, 1e-25, 1e-40, 1e20, 1e30, 1e39, 3.5e38, np.nan, np.inf, -np.inf]
# Scan ids as a hostile labels.csv may spell them: paths, dots, separators, control characters, long.
ID_PARTS = st.sampled_from(list("ab01_-. /\\\n\t\x00é") + ["..", "../", "/tmp/", "x" * 120])
BAD_LABELS = st.sampled_from(["", " ", "c,d", '"q"', "nan", "1e400", "é", "<b>x</b>"])
BAD_SUBJECTS = st.sampled_from(["7", "007", "", "p 4", "7.0", "+7"])
HEADERS = st.sampled_from(["scan,subject", "Scan, Subject , LABEL", "label,scan,subject", "", "scan;subject;label"])
ENCODINGS = st.sampled_from(["utf-8-sig", "latin-1", "utf-16"])
FAULTS = ["id", "shape", "dtype", "value", "file", "label", "subject", "header", "encoding"]


@st.composite
def scan_folders(draw):
    """A well-formed folder (balanced classes, one subject per scan), then 0-3 faults applied to it,
    so that both answers (loaded, refused) are reached."""
    n = draw(st.integers(4, 8))
    n_rois = draw(st.integers(1, 5))
    numeric = draw(st.booleans())
    spellings = (["0", "0.0", "-0"], ["1", "1.0", "+1", "1e0"]) if numeric else (["a"], ["b"])
    scans, rows = [], []
    for i in range(n):
        shape = (n_rois, draw(st.integers(10, 24)))
        scans.append([f"s{i}", shape, draw(st.sampled_from(["float64", "float32", "int16"])), None,
                      draw(st.sampled_from([".npy", ".npz", ".csv"]))])
        rows.append([f"s{i}", f"p{i}", draw(st.sampled_from(spellings[i % 2]))])
    header, encoding = "scan,subject,label", "utf-8"
    for fault in draw(st.lists(st.sampled_from(FAULTS), max_size=3)):
        i = draw(st.integers(0, n - 1))
        if fault == "id":
            scans[i][0] = rows[i][0] = "".join(draw(st.lists(ID_PARTS, min_size=0, max_size=5)))
        elif fault == "shape":
            scans[i][1] = draw(st.sampled_from([(n_rois, 3), (n_rois, 0), (12, n_rois), (12,), (2, 3, 4), ()]))
        elif fault == "dtype":
            scans[i][2] = draw(st.sampled_from(DTYPES))
        elif fault == "value":
            scans[i][3] = draw(st.sampled_from(SPECIAL))
        elif fault == "file":
            scans[i][4] = draw(st.sampled_from(["0-byte", "huge-header", "truncated"]))
        elif fault == "label":
            rows[i][2] = draw(BAD_LABELS)
        elif fault == "subject":
            rows[i][1] = draw(BAD_SUBJECTS)
        elif fault == "header":
            header = draw(HEADERS)
        else:
            encoding = draw(ENCODINGS)
    return [tuple(s) for s in scans], [tuple(r) for r in rows], header, encoding


def _write(folder: Path, scans, rows, header, encoding, rng) -> None:
    for sid, shape, dtype, special, fmt in scans:
        if "/" in sid or "\\" in sid or "\x00" in sid or sid in ("", ".", ".."):
            continue  # such a name cannot even be a file here; labels.csv still lists it
        x = rng.standard_normal(shape) * 100
        if special is not None and x.size:
            x.flat[rng.integers(x.size)] = special
        with np.errstate(all="ignore"):
            x = x.astype(dtype)
        path = folder / f"{sid}{fmt if fmt in ('.npy', '.npz', '.csv') else '.npy'}"
        try:
            if fmt == ".npy":
                np.save(path, x)
            elif fmt == ".npz":
                np.savez(path, x=x)
            elif fmt == ".csv":
                np.savetxt(path, np.atleast_2d(x).real if x.ndim <= 2 else x.reshape(len(x), -1).real, delimiter=",")
            elif fmt == "0-byte":
                path.write_bytes(b"")
            elif fmt == "huge-header":
                with open(path, "wb") as fh:
                    np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                              "shape": (10**6, 10**6)})
            else:
                np.save(path, x)
                path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size - 7)])
        except (OSError, ValueError):
            continue  # a name this file system refuses
    lines = [header] + [",".join(r) for r in rows]
    (folder / "labels.csv").write_bytes("\n".join(lines).encode(encoding, errors="replace"))


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scan_folders())
def test_the_custom_loader_loads_or_explains_and_stays_in_its_folder(example):
    scans, rows, header, encoding = example
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Path(tmp)
        folder = sandbox / "data"
        folder.mkdir()
        (sandbox / "outside.npy").write_bytes(b"")  # what a path id would reach: must stay untouched
        _write(folder, scans, rows, header, encoding, np.random.default_rng(0))
        before = {p: p.stat().st_mtime_ns for p in sandbox.rglob("*")}
        try:
            ds = load_dataset("CUSTOM", folder)
        except NeuroSSMError as exc:
            message = str(exc)
            assert message.strip() and "Traceback" not in message
        else:
            assert len(ds.scans) >= 2 and len(ds.class_names) >= 2
            for scan in ds.scans:
                assert scan.timeseries.dtype == np.float32 and np.isfinite(scan.timeseries).all()
                assert Path(scan.meta["source"]).parent == folder
        assert {p: p.stat().st_mtime_ns for p in sandbox.rglob("*")} == before
