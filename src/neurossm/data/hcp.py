"""HCP-Rest (label: gender) and HCP-Task (label: one of seven tasks), Schaefer-400 ROI time series.

Files under the data root (the seed layout)::

    dataset_hcpRest_schaefer.npy
    dataset_hcpTask_schaefer.npy
    HCP_1200/Preprocessed/pheno.csv      columns Subject, Release, Gender (M/F) at least

The ``.npy`` files hold Python objects (a dict or a list of dicts), i.e. they are pickles:
loading them runs code stored in them, so load only your own files. Their accepted inner
layouts are listed in ``docs/datasets.md`` and in :func:`neurossm.data.flatten_records`.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..config import ATLASES, TrainingConfig
from ..errors import DataFormatError, DataNotFoundError
from ..log import get_logger
from .records import (TIMESERIES_KEYS, Record, atlas_for, describe, flatten_records, number_ids, pick,
               prepare_timeseries, split_runs, subject_str)
from .registry import DEFAULT_DATA_ROOT, DatasetOption, DatasetSpec, optional_str, register_dataset
from .scans import Drop, Scan, ScanDataset, assemble

log = get_logger(__name__)

REST_FILE = "dataset_hcpRest_schaefer.npy"
TASK_FILE = "dataset_hcpTask_schaefer.npy"
PHENO_FILE = Path("HCP_1200") / "Preprocessed" / "pheno.csv"

GENDERS = ("F", "M")
TASKS = ("EMOTION", "GAMBLING", "LANGUAGE", "MOTOR", "RELATIONAL", "SOCIAL", "WM")
TASK_KEYS = ("task", "task_name", "label", "condition")
SCHAEFER_N_ROIS = ATLASES["schaefer400"].n_rois
REST_CROP, TASK_CROP = 600, 150


def load_hcp_rest(data_root: str | Path, *, n_rois: int = SCHAEFER_N_ROIS,
                  crop_length: int | None = REST_CROP) -> ScanDataset:
    """HCP resting state; label: gender from ``pheno.csv`` (class names ``("F", "M")``).

    A subject stored with several arrays (a list) gives scans ``<subject>_1``, ``<subject>_2``, ...
    Subjects missing from ``pheno.csv``, or without an M/F gender there, are dropped and counted.
    """
    root = Path(data_root)
    path = root / REST_FILE
    records = flatten_records(_load_object(path, root), str(path))
    pheno = read_pheno(root / PHENO_FILE, ("Subject", "Gender"))
    scans, dropped = [], []
    for rec, sid in zip(records, number_ids(r.subject for r in records)):
        if rec.subject not in pheno.index:
            dropped.append(Drop(sid, "subject not in pheno.csv"))
            continue
        gender = str(pheno.at[rec.subject, "Gender"]).strip().upper()[:1]
        if gender not in GENDERS:
            dropped.append(Drop(sid, "Gender in pheno.csv is not M or F"))
            continue
        ts = prepare_timeseries(rec.array, n_rois, f"{path}: scan {sid}{_atlas_text(n_rois)}")
        scans.append(Scan(sid, rec.subject, GENDERS.index(gender), ts, {"source": str(path)}))
    return assemble("HCP_REST", scans, GENDERS, atlas=atlas_for("schaefer400", SCHAEFER_N_ROIS, n_rois),
                    n_rois=n_rois, crop_length=crop_length, dropped=dropped, source=str(path))


def load_hcp_task(data_root: str | Path, *, n_rois: int = SCHAEFER_N_ROIS,
                  crop_length: int | None = TASK_CROP, task_release: str | None = "Q1") -> ScanDataset:
    """HCP task fMRI; label: the task (class names :data:`TASKS`, in that order).

    Parameters
    ----------
    task_release : str or None
        Keep only subjects whose ``Release`` in ``pheno.csv`` equals this value (case-insensitive).
        The original code kept ``"Q1"``; ``None`` or ``"all"`` keeps every subject. The scans it
        keeps and drops are logged; dropped ones are recorded in ``ScanDataset.dropped``.

    Scan ids are ``<subject>_<TASK>`` (``_1``, ``_2`` appended when a subject has several runs of
    a task).
    """
    root = Path(data_root)
    path = root / TASK_FILE
    if task_release is not None and task_release.strip().lower() in ("", "all", "none"):
        task_release = None
    records = _task_records(_load_object(path, root), str(path))
    pheno = read_pheno(root / PHENO_FILE, ("Subject",) + (("Release",) if task_release else ()))
    ids = number_ids(f"{r.subject}_{r.label}" for r in records)
    scans, dropped = [], []
    kept_subjects, release_dropped = set(), []
    for rec, sid in zip(records, ids):
        if rec.subject not in pheno.index:
            dropped.append(Drop(sid, "subject not in pheno.csv"))
            continue
        meta = {"source": str(path), "task": rec.label}
        if "Release" in pheno.columns:
            meta["release"] = str(pheno.at[rec.subject, "Release"]).strip()
        if task_release is not None and meta["release"].upper() != task_release.strip().upper():
            release_dropped.append(rec.subject)
            dropped.append(Drop(sid, f"Release is not {task_release}"))
            continue
        ts = prepare_timeseries(rec.array, n_rois, f"{path}: scan {sid}{_atlas_text(n_rois)}")
        scans.append(Scan(sid, rec.subject, TASKS.index(rec.label), ts, meta))
        kept_subjects.add(rec.subject)
    if task_release is not None:
        log.info("HCP_TASK: release filter Release == %r kept %d scan(s) of %d subject(s), dropped %d scan(s) "
                 "of %d subject(s)", task_release, len(scans), len(kept_subjects), len(release_dropped),
                 len(set(release_dropped)))
    return assemble("HCP_TASK", scans, TASKS, atlas=atlas_for("schaefer400", SCHAEFER_N_ROIS, n_rois),
                    n_rois=n_rois, crop_length=crop_length, dropped=dropped, source=str(path))


def task_name(value: Any) -> str | None:
    """The HCP task a name refers to (``"motor"``, ``"tfMRI_MOTOR_LR"`` → ``"MOTOR"``), else ``None``."""
    if not isinstance(value, (str, bytes, np.str_, np.bytes_)):
        return None
    text = value.decode() if isinstance(value, (bytes, np.bytes_)) else str(value)
    words = set(re.split(r"[^A-Z0-9]+", text.upper()))
    found = [t for t in TASKS if t in words]
    return found[0] if len(found) == 1 else None


def read_pheno(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """``pheno.csv`` indexed by subject id (text), with the needed ``columns`` (matched ignoring case)."""
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} not found; the HCP loaders take labels (Gender) and the release filter (Release) from it. "
            "Place a CSV with columns Subject, Release, Gender there (see docs/datasets.md)"
        )
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    by_lower = {str(c).strip().lower(): c for c in frame.columns}
    missing = [c for c in columns if c.lower() not in by_lower]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; found {[str(c) for c in frame.columns]}; "
                              f"the HCP loaders need {list(columns)}")
    frame = frame.rename(columns={by_lower[c.lower()]: c for c in columns})[list(columns)]
    frame["Subject"] = [subject_str(s) for s in frame["Subject"]]
    frame = frame.drop_duplicates()
    repeated = frame["Subject"][frame["Subject"].duplicated()].unique().tolist()
    if repeated:
        raise DataFormatError(f"{path}: subject(s) {repeated[:5]} appear on several rows with different "
                              "values; keep one row per subject")
    return frame.set_index("Subject")


def _load_object(path: Path, root: Path) -> Any:
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} not found; expected the seed layout under {root}: {REST_FILE}, {TASK_FILE}, {PHENO_FILE} "
            "(or pass --data-root; see docs/datasets.md)"
        )
    try:
        obj = np.load(path, allow_pickle=True)
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise DataFormatError(f"{path}: not a readable .npy file ({exc})") from exc
    if isinstance(obj, np.lib.npyio.NpzFile):
        raise DataFormatError(f"{path}: is an .npz archive; save a dict or list with np.save (see docs/datasets.md)")
    if obj.dtype != object:
        raise DataFormatError(
            f"{path}: holds a plain numeric array of shape {obj.shape}, which carries no subject ids; "
            "save a dict subject id -> array (n_rois, n_times) instead (see docs/datasets.md)"
        )
    return obj.item() if obj.ndim == 0 else list(obj)


def _task_records(obj: Any, where: str) -> list[Record]:
    """HCP-Task layouts: task → subject → array, subject → task → array, or flat records with a task."""
    if isinstance(obj, Mapping) and obj and all(task_name(k) for k in obj):
        records = []
        for key, inner in obj.items():
            if not isinstance(inner, Mapping):
                raise DataFormatError(f"{where}: task {key!r} holds {describe(inner)}; expected a dict "
                                      "subject id -> array (n_rois, n_times)")
            for rec in flatten_records(inner, f"{where}[{key!r}]"):
                records.append(Record(rec.subject, rec.array, task_name(key)))
        return records
    if isinstance(obj, Mapping) and obj and all(
            isinstance(v, Mapping) and v and all(task_name(k) for k in v) for v in obj.values()):
        return [Record(subject_str(subject), array, task_name(key))
                for subject, inner in obj.items() for key, value in inner.items() for array in _runs(value)]
    records = flatten_records(obj, where, label_keys=TASK_KEYS)
    for rec in records:
        task = task_name(rec.label)
        if task is None:
            raise DataFormatError(
                f"{where}: subject {rec.subject} has task label {rec.label!r}; expected one of "
                f"{', '.join(TASKS)} (any case, e.g. 'motor' or 'tfMRI_MOTOR_LR'), stored as text under "
                f"one of the keys {', '.join(TASK_KEYS)}"
            )
        rec.label = task
    return records


def _runs(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        found = pick(value, TIMESERIES_KEYS)
        value = found[1] if found is not None else value
    return split_runs(value)


def _atlas_text(n_rois: int | None) -> str:
    return " (Schaefer-400)" if n_rois == SCHAEFER_N_ROIS else ""


def _rest(data_root, *, n_rois, crop_length, seed, **options):
    return load_hcp_rest(data_root or DEFAULT_DATA_ROOT, n_rois=n_rois or SCHAEFER_N_ROIS, crop_length=crop_length)


def _task(data_root, *, n_rois, crop_length, seed, **options):
    return load_hcp_task(data_root or DEFAULT_DATA_ROOT, n_rois=n_rois or SCHAEFER_N_ROIS, crop_length=crop_length,
                         **options)


register_dataset(DatasetSpec(
    "HCP_REST", "schaefer400", SCHAEFER_N_ROIS, REST_CROP, "gender",
    "HCP-1200 resting state, Schaefer-400 ROIs, label: gender (F/M)", _rest, class_names=GENDERS,
    training=TrainingConfig(epochs=20, batch_size=16, lr=5e-4)))
register_dataset(DatasetSpec(
    "HCP_TASK", "schaefer400", SCHAEFER_N_ROIS, TASK_CROP, "task",
    "HCP-1200 task fMRI, Schaefer-400 ROIs, label: one of 7 tasks", _task, class_names=TASKS,
    options={"task_release": DatasetOption(
        "Q1", optional_str,
        "keep subjects whose pheno.csv Release equals this value (the original code kept 'Q1'); "
        "'all' keeps every subject")},
    training=TrainingConfig(epochs=20, batch_size=16, lr=1e-3),
    terms={"EMOTION": ["emotion", "emotional", "faces"], "GAMBLING": ["reward", "gambling"],
           "LANGUAGE": ["language", "semantic"], "MOTOR": ["motor"], "RELATIONAL": ["reasoning", "relational"],
           "SOCIAL": ["social", "theory mind"], "WM": ["working memory"]}))
