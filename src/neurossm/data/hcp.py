"""HCP-Rest (label: gender) and HCP-Task (label: one of seven tasks), Schaefer-400 ROI time series.

Files under the data root (the seed layout)::

    dataset_hcpRest_schaefer.npy
    dataset_hcpTask_schaefer.npy
    HCP_1200/Preprocessed/pheno.csv      columns Subject, Release, Gender (M/F) at least

The ``.npy`` files hold Python objects (a dict or a list of dicts), i.e. they are pickles:
loading them runs code stored in them, so load only your own files. Their accepted inner
layouts are listed in ``docs/datasets.md`` and in :func:`neurossm.data.flatten_records`.

BolT's own files (``dataset_hcpRest_schaefer7_400.save``, ``dataset_hcpTask_schaefer7_400.save``,
written by ``torch.save``) are read too, under either name: a list of dicts with
``roiTimeseries`` (time × ROI) and ``pheno`` holding ``subjectId``, ``gender`` (0 female, 1 male)
and, for HCP-Task, ``task`` as an integer 0–6 in BolT's order, which is :data:`TASKS`' order
(EMOTION, GAMBLING, LANGUAGE, MOTOR, RELATIONAL, SOCIAL, WM; BolT's ``labelToName`` in
``Analysis/TaskTimings/taskRelavance.py``). Without ``pheno.csv``, HCP-Rest takes the gender
stored with each scan, and HCP-Task keeps every subject when the release filter is off.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..config import ATLASES, TrainingConfig
from ..errors import DataFormatError, DataNotFoundError
from ..log import get_logger
from .records import (TIMESERIES_KEYS, Record, atlas_for, describe, flatten_records, load_stored_object,
                      number_ids, pick, plain_scalar, prepare_timeseries, split_runs, subject_str)
from .registry import DEFAULT_DATA_ROOT, DatasetOption, DatasetSpec, optional_str, register_dataset
from .scans import Drop, Scan, ScanDataset, assemble

log = get_logger(__name__)

REST_FILE = "dataset_hcpRest_schaefer.npy"
TASK_FILE = "dataset_hcpTask_schaefer.npy"
# The names BolT's own code gives the same data (torch.save output), read when the above are absent.
BOLT_FILES = {REST_FILE: "dataset_hcpRest_schaefer7_400.save", TASK_FILE: "dataset_hcpTask_schaefer7_400.save"}
PHENO_FILE = Path("HCP_1200") / "Preprocessed" / "pheno.csv"

GENDERS = ("F", "M")
# Also BolT's integer task codes 0-6, in this order (see the module docstring).
TASKS = ("EMOTION", "GAMBLING", "LANGUAGE", "MOTOR", "RELATIONAL", "SOCIAL", "WM")
TASK_KEYS = ("task", "task_name", "label", "condition")
GENDER_KEYS = ("gender", "sex")
SCHAEFER_N_ROIS = ATLASES["schaefer400"].n_rois
REST_CROP, TASK_CROP = 600, 150


def load_hcp_rest(data_root: str | Path, *, n_rois: int = SCHAEFER_N_ROIS,
                  crop_length: int | None = REST_CROP) -> ScanDataset:
    """HCP resting state; label: gender from ``pheno.csv`` (class names ``("F", "M")``).

    A subject stored with several arrays (a list) gives scans ``<subject>_1``, ``<subject>_2``, ...
    Subjects missing from ``pheno.csv``, or without an M/F gender there, are dropped and counted.
    """
    root = Path(data_root)
    path = _data_file(root, REST_FILE)
    records = flatten_records(_load_object(path, root), str(path), label_keys=GENDER_KEYS)
    stored = all(r.label is not None for r in records)
    if stored and not (root / PHENO_FILE).is_file():
        log.info("HCP_REST: no %s; taking each scan's gender from %s (0 or F female, 1 or M male)",
                 root / PHENO_FILE, path)
        pheno = None
    else:
        pheno = read_pheno(root / PHENO_FILE, ("Subject", "Gender"))
    scans, dropped = [], []
    for rec, sid in zip(records, number_ids(r.subject for r in records)):
        if pheno is None:
            gender, source = _stored_gender(rec.label), f"{path}"
        elif rec.subject not in pheno.index:
            dropped.append(Drop(sid, "subject not in pheno.csv"))
            continue
        else:
            gender, source = str(pheno.at[rec.subject, "Gender"]).strip().upper()[:1], "pheno.csv"
        if gender not in GENDERS:
            dropped.append(Drop(sid, f"Gender in {source} is not M or F"))
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
    path = _data_file(root, TASK_FILE)
    if task_release is not None and task_release.strip().lower() in ("", "all", "none"):
        task_release = None
    records = _task_records(_load_object(path, root), str(path))
    if task_release is None and not (root / PHENO_FILE).is_file():
        log.info("HCP_TASK: no %s and no release filter: every subject in %s is kept", root / PHENO_FILE, path)
        pheno = None
    else:
        pheno = read_pheno(root / PHENO_FILE, ("Subject",) + (("Release",) if task_release else ()),
                           "or pass --task-release all to keep every subject without it")
    ids = number_ids(f"{r.subject}_{r.label}" for r in records)
    scans, dropped = [], []
    kept_subjects, release_dropped = set(), []
    for rec, sid in zip(records, ids):
        if pheno is None:
            ts = prepare_timeseries(rec.array, n_rois, f"{path}: scan {sid}{_atlas_text(n_rois)}")
            scans.append(Scan(sid, rec.subject, TASKS.index(rec.label), ts, {"source": str(path), "task": rec.label}))
            continue
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
    """The HCP task a label refers to, else ``None``.

    Text: ``"motor"``, ``"tfMRI_MOTOR_LR"`` → ``"MOTOR"``. An integer 0–6 (BolT's codes):
    the task at that index of :data:`TASKS` (``3`` → ``"MOTOR"``).
    """
    value = plain_scalar(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return TASKS[value] if 0 <= value < len(TASKS) else None
    if not isinstance(value, str):
        return None
    text = value
    words = set(re.split(r"[^A-Z0-9]+", text.upper()))
    found = [t for t in TASKS if t in words]
    return found[0] if len(found) == 1 else None


def read_pheno(path: Path, columns: tuple[str, ...], alternative: str = "") -> pd.DataFrame:
    """``pheno.csv`` indexed by subject id (text), with the needed ``columns`` (matched ignoring case)."""
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} not found; the HCP loaders take labels (Gender) and the release filter (Release) from it. "
            f"Place a CSV with columns Subject, Release, Gender there (see docs/datasets.md)"
            + (f", {alternative}" if alternative else "")
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


def _data_file(root: Path, name: str) -> Path:
    """``root/name``, or BolT's name for the same data when only that one is there."""
    path, bolt = root / name, root / BOLT_FILES[name]
    if not path.is_file() and bolt.is_file():
        log.info("%s not found; reading BolT's file %s", path, bolt)
        return bolt
    return path


def _load_object(path: Path, root: Path) -> Any:
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} not found; expected the seed layout under {root}: {REST_FILE}, {TASK_FILE}, {PHENO_FILE} "
            f"(or BolT's {', '.join(BOLT_FILES.values())}; or pass --data-root; see docs/datasets.md)"
        )
    # np.save, pickle or torch.save output: a pickle, loaded only from the user's own path.
    return load_stored_object(path)


def _stored_gender(value: Any) -> str | None:
    """A gender stored with a scan: BolT's 0 (female) / 1 (male), or text starting with F or M."""
    value = plain_scalar(value)
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return GENDERS[value]
    text = str(value).strip().upper()[:1]
    return text if text in GENDERS else None


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
                f"{', '.join(TASKS)} (any case, e.g. 'motor' or 'tfMRI_MOTOR_LR') as text, or BolT's integer "
                f"code 0-{len(TASKS) - 1} in that order, under one of the keys {', '.join(TASK_KEYS)}"
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
