"""ROI-mean time series from one 4D BOLD image: checks, confounds, nilearn extraction.

One function, :func:`extract_file`, turns a 4D NIfTI file into a float32 ``(n_rois, n_times)``
array whose row ``r`` is the atlas ROI with label value ``atlas.values[r]``. Extraction is
nilearn's :class:`~nilearn.maskers.NiftiLabelsMasker` (strategy ``mean``, the atlas resampled to
the data with nearest-neighbour interpolation); cleaning (confound regression, detrending,
band-pass filtering, standardisation) is nilearn's ``signal.clean`` through the same masker.

nilearn returns one column per label *present* in the resampled atlas, so an ROI outside the
image's field of view would silently shift every later column. The masker's ``region_ids_`` are
therefore mapped back to ``atlas.values`` explicitly, and missing ROIs are kept as zero rows and
counted (:attr:`Extraction.empty_rois`).

Confounds follow fMRIPrep's ``*_desc-confounds_timeseries.tsv``; see :data:`CONFOUND_STRATEGIES`.
"""

from __future__ import annotations

import contextlib
import gc
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from ..errors import ConfigError, DataFormatError, DataNotFoundError

MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")

# Column sets of each named strategy. "_derivative1" / "_power2" columns are computed from their
# base column when a file lacks them (fMRIPrep < 1.2 wrote only the base columns).
CONFOUND_STRATEGIES: dict[str, tuple[str, ...]] = {
    "none": (),
    "motion": MOTION + tuple(f"{c}_derivative1" for c in MOTION),
    "motion+wmcsf": MOTION + tuple(f"{c}_derivative1" for c in MOTION) + ("white_matter", "csf"),
    "motion+wmcsf+gs": MOTION + tuple(f"{c}_derivative1" for c in MOTION)
    + ("white_matter", "csf", "global_signal"),
    "motion24+wmcsf": MOTION
    + tuple(f"{c}_derivative1" for c in MOTION)
    + tuple(f"{c}_power2" for c in MOTION)
    + tuple(f"{c}_derivative1_power2" for c in MOTION)
    + ("white_matter", "csf"),
}
DEFAULT_STRATEGY = "motion+wmcsf"

# fMRIPrep < 1.2 (``*_bold_confounds.tsv`` / ``*_desc-confounds_regressors.tsv``) column names.
_LEGACY_NAMES = {
    "trans_x": "X", "trans_y": "Y", "trans_z": "Z",
    "rot_x": "RotX", "rot_y": "RotY", "rot_z": "RotZ",
    "white_matter": "WhiteMatter", "csf": "CSF", "global_signal": "GlobalSignal",
}
CONFOUND_SUFFIXES = ("_desc-confounds_timeseries.tsv", "_desc-confounds_regressors.tsv")
# Entities fMRIPrep keeps in a BOLD file's name but drops from its confounds file's name.
_SPACE_ENTITIES = re.compile(r"_(space|res|den|desc|cohort)-[A-Za-z0-9]+")


def strategy_columns(strategy: str) -> tuple[str, ...]:
    """The confound columns a strategy name stands for (``columns:a,b,c`` lists them)."""
    if strategy.startswith("columns:"):
        cols = tuple(c.strip() for c in strategy[len("columns:"):].split(",") if c.strip())
        if not cols:
            raise ConfigError("--confounds-strategy columns: names no column; e.g. columns:trans_x,csf")
        return cols
    if strategy not in CONFOUND_STRATEGIES:
        raise ConfigError(
            f"--confounds-strategy {strategy!r} is unknown; choose one of "
            f"{', '.join(CONFOUND_STRATEGIES)} or columns:NAME,NAME,..."
        )
    return CONFOUND_STRATEGIES[strategy]


@dataclass(frozen=True)
class ExtractOptions:
    """What to do to every scan; a run's ``prep_config.json`` records these.

    Parameters
    ----------
    confounds_strategy : str
        A key of :data:`CONFOUND_STRATEGIES` or ``columns:NAME,NAME``.
    confounds_pattern : str or None
        Where each scan's confounds file is: a path template with ``{dir}`` (the BOLD file's
        folder), ``{scan}``, ``{subject}`` and ``{stem}`` (the BOLD name without space/desc
        entities), glob characters allowed in the file name; ``None`` looks beside the BOLD file.
    detrend : bool
        Remove a linear trend from every ROI (and from the confounds).
    high_pass, low_pass : float or None
        Butterworth band edges in Hz; both need the repetition time.
    tr : float or None
        Repetition time in seconds, overriding the header's.
    standardize : bool
        z-score each ROI over time (training z-scores again anyway; off by default).
    min_volumes : int
        Scans with fewer volumes fail.
    """

    confounds_strategy: str = DEFAULT_STRATEGY
    confounds_pattern: str | None = None
    detrend: bool = False
    high_pass: float | None = None
    low_pass: float | None = None
    tr: float | None = None
    standardize: bool = False
    min_volumes: int = 10

    def __post_init__(self) -> None:
        strategy_columns(self.confounds_strategy)
        if self.confounds_strategy == "none" and self.confounds_pattern:
            raise ConfigError("--confounds was given with --confounds-strategy none; drop one of them")
        for name in ("high_pass", "low_pass", "tr"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.high_pass and self.low_pass and self.high_pass >= self.low_pass:
            raise ConfigError(f"--high-pass {self.high_pass} Hz must be below --low-pass {self.low_pass} Hz")
        if self.min_volumes < 2:
            raise ConfigError(f"--min-volumes must be at least 2, got {self.min_volumes}")

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Extraction:
    """One scan's ROI time series and what a report says about it."""

    timeseries: np.ndarray  # (R, T) float32
    n_voxels: np.ndarray  # (R,) voxels of each ROI in the image's grid
    tr: float | None
    confounds_file: str = ""
    confound_columns: list[str] = field(default_factory=list)

    @property
    def empty_rois(self) -> np.ndarray:
        """Indices of ROIs with no voxel in the image's field of view (zero rows)."""
        return np.flatnonzero(self.n_voxels == 0)

    @property
    def zero_rois(self) -> np.ndarray:
        """Indices of ROIs whose time series is all zero (empty, or only zero-valued voxels)."""
        return np.flatnonzero(~np.any(self.timeseries != 0, axis=1))


def repetition_time(img: nib.Nifti1Image, override: float | None = None) -> float | None:
    """TR in seconds: ``override``, else the header's 4th zoom with its time unit applied.

    ``None`` when the header has none (a zero or missing 4th zoom).
    """
    if override is not None:
        return float(override)
    zooms = img.header.get_zooms()
    if len(zooms) < 4 or not zooms[3] > 0:
        return None
    tr = float(zooms[3])
    unit = img.header.get_xyzt_units()[1]
    # NIfTI allows ms and µs; "unknown" is taken as seconds, the convention of every converter.
    return tr / {"msec": 1e3, "usec": 1e6}.get(unit, 1.0)


def find_confounds(bold: Path, scan: str, subject: str, pattern: str | None) -> Path | None:
    """The confounds TSV of ``bold``: from ``pattern`` or fMRIPrep's name beside the BOLD file."""
    stem = _SPACE_ENTITIES.sub("", scan)
    if pattern:
        try:
            filled = pattern.format(dir=bold.parent, scan=scan, subject=subject, stem=stem)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"--confounds {pattern!r}: unknown placeholder {exc}; use {{dir}}, {{scan}}, {{subject}}, {{stem}}"
            ) from exc
        target = Path(filled)
        if any(c in filled for c in "*?["):
            matches = sorted(target.parent.glob(target.name))
        else:
            matches = [target] if target.is_file() else []
        if len(matches) > 1:
            raise DataFormatError(
                f"--confounds {pattern!r} matches {len(matches)} files for scan {scan} "
                f"({', '.join(m.name for m in matches[:3])}, ...); make the pattern select one"
            )
        return matches[0] if matches else None
    for candidate in (stem, scan):
        for suffix in CONFOUND_SUFFIXES:
            path = bold.parent / f"{candidate}{suffix}"
            if path.is_file():
                return path
    return None


def _column(frame: pd.DataFrame, name: str) -> np.ndarray | None:
    """A confound column, derived from its base column when the file lacks it."""
    if name in frame.columns:
        return frame[name].to_numpy(dtype=np.float64)
    if name in _LEGACY_NAMES and _LEGACY_NAMES[name] in frame.columns:
        return frame[_LEGACY_NAMES[name]].to_numpy(dtype=np.float64)
    for suffix in ("_power2", "_derivative1"):
        if name.endswith(suffix):
            base = _column(frame, name[: -len(suffix)])
            if base is None:
                return None
            if suffix == "_power2":
                return base**2
            # fMRIPrep's backward difference; its first row is undefined and becomes 0 below.
            return np.concatenate([[np.nan], np.diff(base)])
    return None


def load_confounds(path: Path, strategy: str, n_volumes: int) -> tuple[np.ndarray, list[str]]:
    """``(n_volumes, n_confounds)`` regressors of ``strategy`` from an fMRIPrep confounds TSV.

    NaN (the first row of every derivative) becomes 0, as nilearn's ``load_confounds`` does.
    """
    columns = list(strategy_columns(strategy))
    try:
        frame = pd.read_csv(path, sep="\t")
    except Exception as exc:
        raise DataFormatError(f"{path}: cannot read as a tab-separated confounds table ({exc})") from exc
    values, missing = [], []
    for name in columns:
        col = _column(frame, name)
        if col is None:
            missing.append(name)
        else:
            values.append(col)
    if missing:
        raise DataFormatError(
            f"{path.name}: confounds strategy {strategy!r} needs column(s) {', '.join(missing)}, "
            f"missing from the file (it has {', '.join(map(str, frame.columns[:8]))}, ...); "
            "choose another --confounds-strategy"
        )
    if len(frame) != n_volumes:
        raise DataFormatError(
            f"{path.name}: {len(frame)} confound rows for {n_volumes} volumes; "
            "the confounds file must belong to this BOLD run (check --confounds)"
        )
    matrix = np.nan_to_num(np.column_stack(values), nan=0.0)
    return matrix, columns


@contextlib.contextmanager
def _gc_frozen():
    """Exclude the objects alive now from garbage collection for the duration of the block.

    nilearn calls ``gc.collect()`` on every image access (7 times per scan); each call walks the
    whole heap, which costs ~0.1 s in a process with pandas and torch loaded, far more than
    extracting a small image. Frozen objects are skipped; objects made inside are collected as usual.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def extract_timeseries(
    img: nib.Nifti1Image,
    atlas,
    confounds: np.ndarray | None = None,
    *,
    tr: float | None = None,
    detrend: bool = False,
    high_pass: float | None = None,
    low_pass: float | None = None,
    standardize: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """ROI means of a 4D image: ``(R, T)`` float32 time series and ``(R,)`` voxel counts.

    ``atlas`` is a :class:`neurossm.atlas.Atlas` (``img`` and ``values`` are used). Rows follow
    ``atlas.values``; an ROI with no voxel on the image's grid is a zero row with count 0.
    """
    from nilearn.maskers import NiftiLabelsMasker

    masker = NiftiLabelsMasker(
        labels_img=atlas.img,
        background_label=0,
        strategy="mean",
        resampling_target="data",
        standardize="zscore_sample" if standardize else None,
        detrend=detrend,
        high_pass=high_pass,
        low_pass=low_pass,
        t_r=tr,
        reports=False,
        verbose=0,
    )
    with warnings.catch_warnings(), _gc_frozen():
        # Labels lost in resampling are counted below; nilearn's per-scan warnings would only
        # repeat that, once per worker.
        warnings.simplefilter("ignore")
        signals = masker.fit_transform(img, confounds=confounds)  # (T, n_present)
        region_ids = masker.region_ids_
        grid_labels = np.asanyarray(masker.labels_img_.dataobj)
    signals = np.asarray(signals)
    n_times = signals.shape[0]

    row_of = {int(v): r for r, v in enumerate(atlas.values)}
    out = np.zeros((atlas.n_rois, n_times), dtype=np.float32)  # (R, T)
    for column, value in region_ids.items():
        if column == "background":
            continue
        row = row_of.get(int(value))
        if row is not None:  # labels in the image but not in the atlas table are not ROIs
            out[row] = signals[:, column]

    present, counts = np.unique(np.rint(grid_labels).astype(np.int64), return_counts=True)
    lookup = dict(zip(present.tolist(), counts.tolist()))
    n_voxels = np.array([lookup.get(int(v), 0) for v in atlas.values], dtype=np.int64)
    return out, n_voxels


def extract_file(bold: Path, atlas, options: ExtractOptions, scan: str, subject: str) -> Extraction:
    """Check, clean and extract one BOLD file; raises a :class:`DataFormatError` saying why not."""
    try:
        img = nib.load(str(bold))
    except Exception as exc:
        raise DataFormatError(f"cannot read as NIfTI ({type(exc).__name__}: {exc})") from exc
    shape = img.shape
    if len(shape) == 3 or (len(shape) == 4 and shape[3] == 1):
        raise DataFormatError(f"3D image (shape {shape}); expected a 4D BOLD series (x, y, z, time)")
    if len(shape) != 4:
        raise DataFormatError(f"{len(shape)}D image (shape {shape}); expected a 4D BOLD series (x, y, z, time)")
    n_volumes = int(shape[3])
    if n_volumes < options.min_volumes:
        raise DataFormatError(f"too few volumes: {n_volumes} < --min-volumes {options.min_volumes}")

    tr = repetition_time(img, options.tr)
    if (options.high_pass or options.low_pass) and tr is None:
        raise DataFormatError("no repetition time in the header (4th zoom is 0); pass --tr SECONDS to filter")

    confounds, columns, confounds_file = None, [], ""
    if options.confounds_strategy != "none":
        path = find_confounds(bold, scan, subject, options.confounds_pattern)
        if path is None:
            where = f"--confounds {options.confounds_pattern!r}" if options.confounds_pattern else \
                f"beside the BOLD file (*{CONFOUND_SUFFIXES[0]} or *{CONFOUND_SUFFIXES[1]})"
            raise DataNotFoundError(
                f"no confounds file found {where}; pass --confounds PATTERN, "
                "or --confounds-strategy none to extract without confound regression"
            )
        confounds, columns = load_confounds(path, options.confounds_strategy, n_volumes)
        confounds_file = str(path)

    timeseries, n_voxels = extract_timeseries(
        img, atlas, confounds, tr=tr, detrend=options.detrend,
        high_pass=options.high_pass, low_pass=options.low_pass, standardize=options.standardize,
    )
    if not n_voxels.any():
        raise DataFormatError(
            f"no atlas ROI overlaps the image's field of view (atlas {atlas.name}); "
            "is the image in the atlas' space (MNI)?"
        )
    bad = ~np.isfinite(timeseries)
    if bad.any():
        rois = np.unique(np.nonzero(bad)[0])
        raise DataFormatError(
            f"NaN/Inf in the extracted time series of {len(rois)} ROI(s) "
            f"({', '.join(atlas.names[r] for r in rois[:5])}); the image holds non-finite voxels"
        )
    return Extraction(timeseries, n_voxels, tr, confounds_file, columns)
