"""Your own data: a folder of per-scan ROI time series plus ``labels.csv``.

Layout::

    DIR/
      labels.csv          columns scan,subject,label (one row per scan)
      <scan>.npy          one array (n_rois, n_times), or (n_times, n_rois)
      <scan>.npz          ... or an .npz holding exactly one array
      <scan>.csv|.tsv     ... or a delimited text file without a header row

Labels are numbers (class names are their values as text, in increasing order; ``1`` and ``1.0``
are one class, ``1``) or class names (sorted). Scan ids are file names, never paths: an id with a
folder in it (``/``, ``..``, an absolute path) is refused, naming its line. ``labels.csv`` is read
as UTF-8 (an Excel "CSV UTF-8" file's BOM is fine). ``.npy`` files are read with
``allow_pickle=False``, and their header is checked against the file's size before anything is
allocated: nothing here runs stored code, and a forged header cannot claim a terabyte.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import TrainingConfig
from ..errors import ConfigError, DataFormatError, DataNotFoundError
from ..io import name_problem, path_in
from ..log import get_logger
from .records import prepare_timeseries, subject_str
from .registry import DatasetOption, DatasetSpec, register_dataset
from .scans import Drop, Scan, ScanDataset, assemble, squeeze_extra_axes

log = get_logger(__name__)

LABELS_FILE = "labels.csv"
EXTENSIONS = (".npy", ".npz", ".csv", ".tsv")
# Index and report files that live beside the scans (``neurossm prep`` writes the last two).
NOT_SCANS = (LABELS_FILE, "scans.csv", "prep_report.csv")
COLUMNS = ("scan", "subject", "label")


def load_folder(data_root: str | Path, *, n_rois: int | None = None, crop_length: int | None = None,
                atlas: str = "custom", name: str = "CUSTOM") -> ScanDataset:
    """Load a folder of per-scan files described by ``labels.csv``.

    Parameters
    ----------
    data_root : str or Path
        The folder.
    n_rois : int, optional
        ROI count; decides each file's orientation. When not given it is inferred: the axis whose
        size is the same in every file holds the ROIs. When that cannot be decided (every file
        square, or every file the same shape) it stops and asks for ``--n-rois``.
    crop_length : int, optional
        Training crop length; default the shortest scan's length. Shorter scans are dropped.
    atlas : str
        Atlas name recorded with the dataset (CPA's reference step uses it).
    """
    root = Path(data_root)
    if not root.is_dir():
        raise DataNotFoundError(f"{root}: folder not found; CUSTOM expects a folder holding {LABELS_FILE} "
                                "and one file per scan (see docs/datasets.md)")
    table = read_labels(root / LABELS_FILE)
    class_names, label_index = _classes(table["label"].tolist())

    paths = [_scan_file(root, scan) for scan in table["scan"]]
    listed = {p.name for p in paths}
    extra = sorted(p.name for p in root.iterdir()
                   if p.is_file() and p.suffix.lower() in EXTENSIONS and p.name not in NOT_SCANS and p.name not in listed)
    if extra:
        log.warning("%s: %d file(s) not listed in %s are ignored (%s%s)", root, len(extra), LABELS_FILE,
                    ", ".join(extra[:5]), ", ..." if len(extra) > 5 else "")
    dropped = [Drop(f, f"file not listed in {LABELS_FILE}") for f in extra]

    arrays = [squeeze_extra_axes(read_array(p)) for p in paths]
    if n_rois is None:
        n_rois, roi_axis = infer_n_rois([a.shape for a in arrays], root, paths)
        if roi_axis == 1:
            # decided for the whole folder, so that a square scan among time × ROI files is turned too
            arrays = [a.T for a in arrays]
    scans = []
    for scan, subject, label, path, array in zip(table["scan"], table["subject"], table["label"], paths, arrays):
        ts = prepare_timeseries(array, n_rois, f"{path}: scan {scan}")
        scans.append(Scan(scan, subject_str(subject), label_index[label], ts, {"source": str(path)}))
    return assemble(name, scans, class_names, atlas=atlas, n_rois=n_rois, crop_length=crop_length,
                    dropped=dropped, source=str(root))


def read_labels(path: Path) -> pd.DataFrame:
    """``labels.csv`` as text columns ``scan, subject, label``, checked for gaps and repeats."""
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} not found; CUSTOM needs a CSV with columns scan,subject,label (one row per scan, "
            "scan = the file name without extension)"
        )
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: is not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at byte "
                              f"{exc.start}); save it as UTF-8 (e.g. Excel's \"CSV UTF-8\"), since scan ids must "
                              "match the file names exactly") from None
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: is empty; expected a header row scan,subject,label and one row per "
                              "scan") from None
    except (pd.errors.ParserError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise DataFormatError(f"{path}: cannot be read as CSV ({reason}); expected columns scan,subject,label "
                              "separated by commas, one row per scan") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}; "
                              "expected a header row scan,subject,label")
    frame = frame[list(COLUMNS)].apply(lambda col: col.str.strip())
    if frame.empty:
        raise DataFormatError(f"{path}: lists no scans")
    for column in COLUMNS:
        empty = (frame[column] == "").to_numpy().nonzero()[0]
        if len(empty):
            rows = (empty + 2).tolist()  # +2: header line, 1-based lines
            raise DataFormatError(f"{path}: empty {column} on line(s) {rows[:10]}; every scan needs a scan id, "
                                  "a subject id and a label")
    for line, scan in enumerate(frame["scan"], start=2):
        problem = name_problem(scan)
        if problem is not None:
            raise DataFormatError(f"{path}, line {line}: scan id {scan!r} {problem}; a scan id is the name of a "
                                  f"file in {path.parent} without its extension (e.g. sub-01_run-1), never a path")
    repeated = frame["scan"][frame["scan"].duplicated()].unique().tolist()
    if repeated:
        raise DataFormatError(f"{path}: scan id(s) {repeated[:10]} listed more than once; scan ids must be unique "
                              "(a subject with several scans gets one row per scan, each with its own id)")
    return frame


def read_array(path: Path) -> np.ndarray:
    """One scan's array from ``.npy``, single-array ``.npz``, or header-less ``.csv``/``.tsv``."""
    suffix = path.suffix.lower()
    try:
        if path.stat().st_size == 0:
            raise DataFormatError(f"{path}: is empty (0 bytes); an interrupted copy or download leaves such files. "
                                  "Copy the scan again, or remove its row from labels.csv")
        if suffix == ".npy":
            with open(path, "rb") as fh:
                _check_npy_header(fh, path.stat().st_size, str(path))
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.infolist() if m.filename.endswith(".npy")]
                if len(members) != 1:
                    keys = [m.filename[:-4] for m in members]
                    raise DataFormatError(f"{path}: holds {len(keys)} arrays {keys[:10]}; expected exactly one "
                                          "(n_rois, n_times) array per .npz file")
                with archive.open(members[0]) as fh:
                    _check_npy_header(fh, members[0].file_size, f"{path} (array {members[0].filename[:-4]!r})")
            with np.load(path, allow_pickle=False) as archive:
                return archive[archive.files[0]]
        frame = pd.read_csv(path, header=None, sep="\t" if suffix == ".tsv" else ",")
        return frame.to_numpy(dtype=np.float64)
    except DataFormatError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataFormatError(f"{path}: cannot be read ({reason}); the file is damaged or truncated: write it "
                              "again (np.save / np.savez)") from exc
    except ValueError as exc:
        hint = ("store numbers only, no header row" if suffix in (".csv", ".tsv")
                else "save a numeric array with np.save (object arrays are pickles and are refused)")
        reason = " ".join(str(exc).split())
        raise DataFormatError(f"{path}: cannot read a numeric array ({reason}); {hint}") from exc


def _check_npy_header(fh, size: int, where: str) -> None:
    """Refuse a ``.npy`` stream whose header asks for more bytes than it holds, or for objects.

    Read before ``np.load``, which allocates what the header claims: a truncated file or a forged
    header (10^12 values) is named here instead of ending in a MemoryError.
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = fmt.read_array_header_2_0(fh)
    except ValueError as exc:
        raise DataFormatError(f"{where}: is not a .npy array ({' '.join(str(exc).split())}); save each scan "
                              "with np.save") from None
    if dtype.hasobject:
        raise DataFormatError(f"{where}: cannot read a numeric array (it holds Python objects, dtype {dtype}, which "
                              "are pickles and are refused); "
                              "save a numeric array (n_rois, n_times) with np.save")
    needed = math.prod(shape) * dtype.itemsize
    available = size - fh.tell()
    if needed > available:
        raise DataFormatError(f"{where}: its header says shape {shape} of {dtype} ({_bytes_text(needed)}), but "
                              f"the file holds {_bytes_text(max(available, 0))} of data: it is truncated or its header "
                              "is corrupt; write it again with np.save")


def _bytes_text(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"


def infer_n_rois(shapes: list[tuple[int, ...]], root: Path, paths: list[Path] | None = None) -> tuple[int, int]:
    """``(n_rois, roi_axis)``: the size and index of the one axis that is the same in every file.

    ``paths`` (one per shape) lets the errors name the files at fault.
    """
    names = [str(p) for p in paths] if paths is not None else [f"{root}: scan {i}" for i in range(len(shapes))]
    for name, shape in zip(names, shapes):
        if len(shape) != 2:
            raise DataFormatError(f"{name}: shape {shape}; expected a 2-D array (n_rois, n_times), one scan per "
                                  "file (a 1-D array holds a single ROI or a single time point)")
    rows = {s[0] for s in shapes}
    cols = {s[1] for s in shapes}
    fix = "pass --n-rois N (the atlas' ROI count) to say which axis holds the ROIs"
    if len(rows) == 1 and len(cols) == 1:
        (r,), (c,) = rows, cols
        if r == c:
            raise DataFormatError(f"{root}: cannot tell which axis holds the ROIs: every scan is square "
                                  f"({r} × {c}); {fix}")
        # Nothing in the files tells the axes apart: follow the documented (n_rois, n_times) convention.
        log.warning("%s: every scan has shape (%d, %d); reading it as (n_rois, n_times) = (%d, %d) by "
                    "convention; pass --n-rois if the files are (n_times, n_rois)", root, r, c, r, c)
        return r, 0
    if len(rows) == 1:
        return rows.pop(), 0
    if len(cols) == 1:
        return cols.pop(), 1
    common = set.intersection(*(set(s) for s in shapes))
    if len(common) == 1:
        # One size is in every file, on either axis: the ROI count, stored in both orientations.
        (n,) = common
        first = [name for name, s in zip(names, shapes) if s[0] == n]
        second = [name for name, s in zip(names, shapes) if s[0] != n]
        raise DataFormatError(
            f"{root}: orientation is mixed: every scan has an axis of length {n} (the ROI count {n}, it seems), "
            f"but {len(first)} file(s) store it first (e.g. {', '.join(first[:2])}) and {len(second)} second "
            f"(e.g. {', '.join(second[:2])}); store every scan as (n_rois, n_times), or pass --n-rois {n} to "
            "turn each file by its own shape"
        )
    examples = sorted(set(shapes))[:4]
    raise DataFormatError(f"{root}: no axis has the same size in every scan (shapes {examples} ...); every "
                          f"scan must have the same ROI count; {fix} to find the odd ones")


def _scan_file(root: Path, scan: str) -> Path:
    names = [scan] if Path(scan).suffix.lower() in EXTENSIONS else []
    names += [f"{scan}{ext}" for ext in EXTENSIONS]
    found = [p for p in (path_in(root, n, "scan file") for n in names) if p.is_file()]
    if not found:
        raise DataNotFoundError(f"{root}: scan {scan!r} is listed in {LABELS_FILE} but no file was found; "
                                f"expected one of {', '.join(names)}")
    if len(found) > 1:
        raise DataFormatError(f"{root}: scan {scan!r} has several files ({', '.join(p.name for p in found)}); "
                              "keep exactly one")
    return found[0]


def _classes(labels: list[str]) -> tuple[tuple[str, ...], dict[str, int]]:
    """Class names and the label → index map: numbers in value order, other labels sorted as text.

    A number is one class however it is written (``1``, ``1.0``, ``+1``, ``1e0``: class ``1``), as
    a spreadsheet may write the same label both ways; the merge is logged.
    """
    values = {lab: _number(lab) for lab in set(labels)}
    if all(v is not None for v in values.values()):
        order = sorted(set(values.values()))
        names = tuple(_number_text(v) for v in order)
        index = {lab: order.index(v) for lab, v in values.items()}
    else:
        names = tuple(sorted(set(labels)))
        index = {n: i for i, n in enumerate(names)}
    spellings: dict[int, list[str]] = {}
    for lab, i in index.items():
        spellings.setdefault(i, []).append(lab)
    for i, labs in sorted(spellings.items()):
        if len(labs) > 1:
            log.info("labels %s are one class, %r (the same number written differently)",
                     ", ".join(repr(lab) for lab in sorted(labs)), names[i])
    return names, index


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _load(data_root, *, n_rois, crop_length, seed, **options):
    if data_root is None:
        raise ConfigError("CUSTOM needs --data-root DIR: a folder of per-scan files plus labels.csv "
                          "(see docs/datasets.md)")
    return load_folder(data_root, n_rois=n_rois, crop_length=crop_length, **options)


register_dataset(DatasetSpec(
    "CUSTOM", "custom", None, None, "label",
    "your own ROI time series: a folder of per-scan files and labels.csv", _load,
    options={"atlas": DatasetOption("custom", str, "atlas name recorded with the data (e.g. aal3v2, schaefer400)")},
    # Your own data is often small (a hundred scans): a longer budget that early stopping cuts short
    # once the inner validation score has stalled, rather than a fixed count that overfits.
    training=TrainingConfig(epochs=40, patience=8)))
