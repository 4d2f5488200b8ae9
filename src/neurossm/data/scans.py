"""The one record type that carries a scan everywhere, and the checks every loader shares.

Every loader (seed files, a user's folder, synthetic data) ends by calling :func:`assemble`,
so that orientation, NaN/Inf, duplicate ids, short scans, class counts and the log of what was
dropped are handled once, the same way, whatever the file format was.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import DataFormatError
from ..io import name_problem
from ..log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, eq=False)
class Scan:
    """One scan: ROI time series plus who it belongs to and its label.

    Parameters
    ----------
    scan_id : str
        Unique within a dataset (HCP-Task: ``<subject>_<task>``).
    subject_id : str
        Cross-validation groups by this id: scans of one subject never straddle train and test.
    label : int
        Index into the dataset's ``class_names``.
    timeseries : ndarray of float32, shape (n_rois, n_times)
        Canonical orientation, ROI first.
    meta : dict
        Free-form extras (source file, task, release, ...).
    """

    scan_id: str
    subject_id: str
    label: int
    timeseries: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rois(self) -> int:
        return int(self.timeseries.shape[0])

    @property
    def n_times(self) -> int:
        return int(self.timeseries.shape[1])


@dataclass(frozen=True)
class Drop:
    """A scan or subject left out on purpose, and why (logged and counted, never silent)."""

    item: str
    reason: str


@dataclass
class ScanDataset:
    """The scans of one dataset and what is known about them.

    ``ground_truth`` is filled by the synthetic generator (which ROIs carry the class signal, in
    which form and scale) and is ``None`` for real data.
    """

    name: str
    scans: list[Scan]
    class_names: tuple[str, ...]
    n_rois: int
    atlas: str
    crop_length: int
    dropped: list[Drop] = field(default_factory=list)
    ground_truth: dict[str, Any] | None = None
    source: str = ""

    def __len__(self) -> int:
        return len(self.scans)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.scans], dtype=np.int64)

    @property
    def subjects(self) -> np.ndarray:
        return np.array([s.subject_id for s in self.scans], dtype=object)

    @property
    def scan_ids(self) -> list[str]:
        return [s.scan_id for s in self.scans]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def subset(self, indices: Sequence[int]) -> list[Scan]:
        return [self.scans[i] for i in indices]

    def summary(self) -> dict[str, Any]:
        """Counts a report or a log line shows: scans, subjects, classes, lengths, drops."""
        lengths = np.array([s.n_times for s in self.scans])
        per_class = Counter(self.class_names[s.label] for s in self.scans)
        reasons = Counter(d.reason for d in self.dropped)
        return {
            "dataset": self.name,
            "source": self.source,
            "atlas": self.atlas,
            "n_scans": len(self.scans),
            "n_subjects": len(set(self.subjects.tolist())),
            "n_rois": self.n_rois,
            "class_names": list(self.class_names),
            "scans_per_class": {c: int(per_class.get(c, 0)) for c in self.class_names},
            "n_times": {"min": int(lengths.min()), "median": float(np.median(lengths)), "max": int(lengths.max())},
            "crop_length": self.crop_length,
            "n_dropped": len(self.dropped),
            "dropped_by_reason": dict(reasons),
        }


def orient(array: Any, n_rois: int | None, where: str) -> np.ndarray:
    """Return ``array`` as float64 ``(n_rois, n_times)``, transposing when the ROI count decides it.

    ``where`` names the file and scan for the error message. With ``n_rois=None`` the array is
    taken as given (ROI first). Float64, not the float32 a scan is kept in: values float32
    cannot hold (1e39), or whose variance it cannot (1e-25), must reach the checks and the
    z-scoring intact. Complex values are refused rather than cut to their real part.
    """
    arr = np.asarray(array)
    if np.iscomplexobj(arr):
        raise DataFormatError(f"{where}: holds complex values (dtype {arr.dtype}); expected real BOLD time series. "
                              "Store the real part (or the magnitude, np.abs) if that is the signal")
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise DataFormatError(f"{where}: expected a numeric array (n_rois, n_times), found dtype {arr.dtype}")
    arr = squeeze_extra_axes(arr)
    if arr.ndim != 2:
        raise DataFormatError(
            f"{where}: expected a 2-D array (n_rois, n_times), found shape {np.shape(array)}; "
            "store one scan per array, ROI × time"
        )
    if n_rois is not None:
        rows_match, cols_match = arr.shape[0] == n_rois, arr.shape[1] == n_rois
        if rows_match and cols_match:
            pass  # square: ROI-first is the documented convention
        elif cols_match:
            arr = arr.T
        elif not rows_match:
            raise DataFormatError(
                f"{where}: shape {arr.shape} has no axis of length {n_rois}; expected "
                f"(n_rois, n_times) with n_rois={n_rois}. Check the atlas, or pass --n-rois"
            )
    if arr.size == 0:
        raise DataFormatError(f"{where}: shape {arr.shape} holds no values; expected (n_rois, n_times) with time "
                              "points in it. Remove the scan, or write it again")
    return np.ascontiguousarray(arr, dtype=np.float64)


def squeeze_extra_axes(arr: np.ndarray) -> np.ndarray:
    """Drop length-1 axes of an array with more than two (``(1, R, T)``, ``(R, T, 1)``); a 2-D array
    keeps both, so that a single-ROI scan ``(1, n_times)`` is not taken for a 1-D array."""
    return np.squeeze(arr) if arr.ndim > 2 else arr


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_finite(x: np.ndarray, where: str) -> None:
    """Refuse NaN/Inf, and finite values beyond what float32 holds, naming the scan and the ROIs.

    A scan is kept in float32 after z-scoring; a raw value above ~3.4e38 would become Inf on the
    way, so it is reported as what it is (the largest magnitude), as scikit-learn's
    ``check_array`` does, not as NaN/Inf.
    """
    bad = ~np.isfinite(x)
    if bad.any():
        rois = np.unique(np.nonzero(bad)[0])
        raise DataFormatError(
            f"{where} has {int(bad.sum())} NaN/Inf value(s) in ROI(s) {rois[:10].tolist()}; "
            "fix or interpolate them before loading (ROIs outside the field of view are a common cause)"
        )
    huge = np.abs(x) > FLOAT32_MAX
    if huge.any():
        rois = np.unique(np.nonzero(huge)[0])
        raise DataFormatError(
            f"{where} has {int(huge.sum())} value(s) too large for float32 (largest magnitude "
            f"{float(np.abs(x).max()):.3g}; float32 holds up to {FLOAT32_MAX:.3g}) in ROI(s) {rois[:10].tolist()}; "
            "rescale the data (BOLD signal is usually within ±1e5), or fix the file if these values are errors"
        )


def assemble(
    name: str,
    records: Iterable[Scan],
    class_names: Sequence[str],
    *,
    atlas: str,
    n_rois: int | None,
    crop_length: int | None,
    dropped: list[Drop] | None = None,
    ground_truth: dict[str, Any] | None = None,
    source: str = "",
    min_length: int | None = None,
) -> ScanDataset:
    """Check loaded scans and build the dataset; the shared last step of every loader.

    - duplicate scan ids are an error (they would leak between folds), and so is a scan id that is
      not a plain file name (CPA files are named after it: :func:`neurossm.io.name_problem`);
    - one subject written two ways (``007`` and ``7``) is an error naming both spellings;
    - NaN/Inf values are an error naming the scan and ROI;
    - every scan must have the same ROI count (``n_rois`` if given, else the first scan's);
    - scans shorter than the crop length are dropped, named in a warning and counted;
      ``crop_length=None`` means the shortest scan's length, unless the shortest scans are less
      than half the median length: then they are named and the user chooses (drop them, or pass
      a crop length), rather than every training crop shrinking to them;
    - an empty dataset, or one with a single class, is an error.
    """
    dropped = list(dropped or [])
    scans = list(records)
    seen: dict[str, int] = {}
    for i, s in enumerate(scans):
        problem = name_problem(s.scan_id)
        if problem is not None:
            raise DataFormatError(f"{s.meta.get('source', name)}: scan id {s.scan_id!r} {problem}; scan ids name "
                                  "the files written for a scan (CPA maps), so they must be plain names")
        if s.scan_id in seen:
            src = s.meta.get("source", name)
            raise DataFormatError(
                f"{src}: scan id {s.scan_id!r} appears twice; scan ids must be unique "
                "(subjects may have several scans, each with its own id)"
            )
        seen[s.scan_id] = i
    if not scans:
        raise DataFormatError(f"{name}: no scans left to use ({_drop_text(dropped)})")
    _check_subject_spellings(name, scans)

    expected = n_rois if n_rois is not None else scans[0].n_rois
    for s in scans:
        where = f"{s.meta.get('source', name)}: scan {s.scan_id}"
        if s.timeseries.ndim != 2 or s.n_rois != expected:
            raise DataFormatError(
                f"{where} has shape {s.timeseries.shape}; expected ({expected}, n_times) like the other scans"
            )
        check_finite(s.timeseries, where)

    if crop_length is None:
        _check_no_outlying_short_scans(name, scans)
        crop_length = min(s.n_times for s in scans)
    floor = max(crop_length, min_length or 1)
    kept, short = [], []
    for s in scans:
        if s.n_times < floor:
            dropped.append(Drop(s.scan_id, f"shorter than crop length {floor}"))
            short.append(s)
        else:
            kept.append(s)
    if short and kept:
        log.warning("%s: %d scan(s) shorter than the crop length %d are left out: %s; pass a smaller --crop-length "
                    "to keep them", name, len(short), floor, _scans_text(short))
    if not kept:
        raise DataFormatError(
            f"{name}: every scan is shorter than the crop length {floor}; pass a smaller --crop-length"
        )
    present = sorted({s.label for s in kept})
    if len(present) < 2:
        only = class_names[present[0]] if present and present[0] < len(class_names) else present
        raise DataFormatError(
            f"{name}: only one class ({only!r}) is left after loading and filtering; "
            "classification needs at least two"
        )
    for reason, count in Counter(d.reason for d in dropped).items():
        log.info("%s: dropped %d item(s): %s", name, count, reason)
    return ScanDataset(
        name=name,
        scans=kept,
        class_names=tuple(class_names),
        n_rois=expected,
        atlas=atlas,
        crop_length=int(crop_length),
        dropped=dropped,
        ground_truth=ground_truth,
        source=source,
    )


def _scans_text(scans: Sequence[Scan], limit: int = 5) -> str:
    text = ", ".join(f"{s.scan_id} ({s.n_times} time points{', ' + s.meta['source'] if 'source' in s.meta else ''})"
                     for s in scans[:limit])
    return text + (f" and {len(scans) - limit} more" if len(scans) > limit else "")


def _check_no_outlying_short_scans(name: str, scans: Sequence[Scan]) -> None:
    """Refuse a default crop length set by a few scans far shorter than the rest (a 3-point scan
    among 300-point ones would make every training crop 3 points long)."""
    median = float(np.median([s.n_times for s in scans]))
    short = sorted((s for s in scans if s.n_times < median / 2), key=lambda s: s.n_times)
    if short:
        raise DataFormatError(
            f"{name}: {len(short)} scan(s) are less than half the median length ({median:g} time points): "
            f"{_scans_text(short)}. The training crop length defaults to the shortest scan, so every crop would be "
            f"{short[0].n_times} points long. Drop these scans (remove their rows from labels.csv), or pass "
            "--crop-length N: scans shorter than N are then left out and counted"
        )


def _subject_key(subject: str) -> str:
    """Spellings of one subject id that a spreadsheet produces: ``007``, ``7``, ``+7``."""
    return str(int(subject)) if re.fullmatch(r"[+-]?\d+", subject) else subject


def _check_subject_spellings(name: str, scans: Sequence[Scan]) -> None:
    """Refuse one subject id written two ways (``007`` and ``7``): they would be two people, and one
    person's scans could land on both sides of a split. Which spelling is right is the user's to say."""
    spellings: dict[str, dict[str, Scan]] = {}
    for s in scans:
        spellings.setdefault(_subject_key(s.subject_id), {}).setdefault(s.subject_id, s)
    clashes = [group for group in spellings.values() if len(group) > 1]
    if clashes:
        shown = "; ".join(" and ".join(f"{sid!r} (scan {s.scan_id}{', ' + s.meta['source'] if 'source' in s.meta else ''})"
                                       for sid, s in group.items()) for group in clashes[:3])
        raise DataFormatError(
            f"{name}: subject ids differ only in leading zeros or sign: {shown}. Are they one person? A spreadsheet "
            "drops leading zeros, and cross-validation would take them for two subjects, so one person's scans "
            "could be trained and tested on. Write each subject's id the same way in every row"
        )


def _drop_text(dropped: list[Drop]) -> str:
    if not dropped:
        return "nothing was found"
    counts = Counter(d.reason for d in dropped)
    return "dropped: " + "; ".join(f"{n} × {r}" for r, n in counts.items())
