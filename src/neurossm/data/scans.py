"""The one record type that carries a scan everywhere, and the checks every loader shares.

Every loader (seed files, a user's folder, synthetic data) ends by calling :func:`assemble`,
so that orientation, NaN/Inf, duplicate ids, short scans, class counts and the log of what was
dropped are handled once, the same way, whatever the file format was.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import DataFormatError
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
    """Return ``array`` as float32 ``(n_rois, n_times)``, transposing when the ROI count decides it.

    ``where`` names the file and scan for the error message. With ``n_rois=None`` the array is
    taken as given (ROI first).
    """
    arr = np.asarray(array)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise DataFormatError(f"{where}: expected a numeric array (n_rois, n_times), found dtype {arr.dtype}")
    arr = np.squeeze(arr)
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
    return np.ascontiguousarray(arr, dtype=np.float32)


def check_finite(x: np.ndarray, where: str) -> None:
    """Refuse NaN/Inf, naming the scan and the ROIs that hold them."""
    bad = ~np.isfinite(x)
    if bad.any():
        rois = np.unique(np.nonzero(bad)[0])
        raise DataFormatError(
            f"{where} has {int(bad.sum())} NaN/Inf value(s) in ROI(s) {rois[:10].tolist()}; "
            "fix or interpolate them before loading (ROIs outside the field of view are a common cause)"
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

    - duplicate scan ids are an error (they would leak between folds);
    - NaN/Inf values are an error naming the scan and ROI;
    - every scan must have the same ROI count (``n_rois`` if given, else the first scan's);
    - scans shorter than the crop length are dropped and counted; ``crop_length=None`` means the
      shortest scan's length;
    - an empty dataset, or one with a single class, is an error.
    """
    dropped = list(dropped or [])
    scans = list(records)
    seen: dict[str, int] = {}
    for i, s in enumerate(scans):
        if s.scan_id in seen:
            src = s.meta.get("source", name)
            raise DataFormatError(
                f"{src}: scan id {s.scan_id!r} appears twice; scan ids must be unique "
                "(subjects may have several scans, each with its own id)"
            )
        seen[s.scan_id] = i
    if not scans:
        raise DataFormatError(f"{name}: no scans left to use ({_drop_text(dropped)})")

    expected = n_rois if n_rois is not None else scans[0].n_rois
    for s in scans:
        where = f"{s.meta.get('source', name)}: scan {s.scan_id}"
        if s.timeseries.ndim != 2 or s.n_rois != expected:
            raise DataFormatError(
                f"{where} has shape {s.timeseries.shape}; expected ({expected}, n_times) like the other scans"
            )
        check_finite(s.timeseries, where)

    if crop_length is None:
        crop_length = min(s.n_times for s in scans)
    floor = max(crop_length, min_length or 1)
    kept = []
    for s in scans:
        if s.n_times < floor:
            dropped.append(Drop(s.scan_id, f"shorter than crop length {floor}"))
        else:
            kept.append(s)
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


def _drop_text(dropped: list[Drop]) -> str:
    if not dropped:
        return "nothing was found"
    counts = Counter(d.reason for d in dropped)
    return "dropped: " + "; ".join(f"{n} × {r}" for r, n in counts.items())
