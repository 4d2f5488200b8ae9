"""PPMI resting state, AAL3v2 ROI time series (166 ROIs); label: Parkinson's disease vs control.

File under the data root (the seed layout)::

    dataset_ppmi_atlas-AAL-3V2.pickle

**It is a pickle: loading a pickle runs code stored in it.** Load only a file you made yourself
(or got from someone you trust), from your own path. Accepted inner layouts are listed in
``docs/datasets.md`` and in :func:`neurossm.data.flatten_records`.

Cohorts other than PD and control (prodromal, SWEDD, genetic cohorts, ...) are dropped and
counted. A subject with several visits gives scans ``<subject>_1``, ``<subject>_2``, ... that
share the subject id, so that cross-validation keeps them in one fold.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

from ..config import ATLASES, TrainingConfig
from ..errors import DataFormatError, DataNotFoundError
from .records import atlas_for, flatten_records, number_ids, plain_scalar, prepare_timeseries
from .registry import DEFAULT_DATA_ROOT, DatasetSpec, register_dataset
from .scans import Drop, Scan, ScanDataset, assemble

PPMI_FILE = "dataset_ppmi_atlas-AAL-3V2.pickle"
CLASS_NAMES = ("Control", "PD")
LABEL_KEYS = ("label", "group", "cohort", "diagnosis", "dx", "class", "y")
AAL3_N_ROIS = ATLASES["aal3v2"].n_rois
PPMI_CROP = 100

_PD = {"pd", "parkinson", "parkinsons", "parkinsondisease", "parkinsonsdisease", "parkinsonian"}
_CONTROL = {"control", "controls", "hc", "healthycontrol", "healthycontrols", "healthy", "nc",
            "normalcontrol", "cn", "normal"}


def load_ppmi(data_root: str | Path, *, n_rois: int = AAL3_N_ROIS,
              crop_length: int | None = PPMI_CROP) -> ScanDataset:
    """PPMI scans labelled ``Control`` (0) or ``PD`` (1); other cohorts dropped and counted."""
    root = Path(data_root)
    path = root / PPMI_FILE
    records = flatten_records(_load_pickle(path, root), str(path), label_keys=LABEL_KEYS)
    labels = [ppmi_label(r.label) for r in records]
    unlabelled = [r.subject for r, lab in zip(records, labels) if r.label is None]
    if unlabelled:
        raise DataFormatError(
            f"{path}: {len(unlabelled)} scan(s) (subject {unlabelled[0]}, ...) have no label; store the "
            f"cohort under one of the keys {', '.join(LABEL_KEYS)} ('PD', 'Control', ...)"
        )
    odd = sorted({lab for lab in labels if isinstance(lab, int) and lab not in (0, 1)})
    if odd:
        raise DataFormatError(
            f"{path}: integer label(s) {odd}: only 0 (control) and 1 (PD) are read as numbers; store the "
            "cohort as text instead ('PD', 'Control', 'Prodromal', 'SWEDD', ...)"
        )
    scans, dropped = [], []
    for rec, label, sid in zip(records, labels, number_ids(r.subject for r in records)):
        if not isinstance(label, int):
            dropped.append(Drop(sid, f"cohort {label!r} is neither PD nor control"))
            continue
        where = f"{path}: scan {sid}" + (" (AAL3v2)" if n_rois == AAL3_N_ROIS else "")
        ts = prepare_timeseries(rec.array, n_rois, where)
        scans.append(Scan(sid, rec.subject, label, ts, {"source": str(path), "cohort": str(rec.label)}))
    return assemble("PPMI", scans, CLASS_NAMES, atlas=atlas_for("aal3v2", AAL3_N_ROIS, n_rois),
                    n_rois=n_rois, crop_length=crop_length, dropped=dropped, source=str(path))


def ppmi_label(value: Any) -> int | str | None:
    """0 (control), 1 (PD), another integer as given, the cohort text when it is neither, ``None`` if missing.

    Spellings are matched ignoring case, spaces and punctuation: ``"PD"``, ``"Parkinson's Disease"``,
    ``1`` → 1; ``"HC"``, ``"Healthy Control"``, ``"Control"``, ``0`` → 0.
    """
    if value is None:
        return None
    value = plain_scalar(value)
    if isinstance(value, int):
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    key = re.sub(r"[^a-z0-9]", "", text.lower())
    if key in _PD:
        return 1
    if key in _CONTROL:
        return 0
    return text


def _load_pickle(path: Path, root: Path) -> Any:
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} not found; expected the seed layout under {root}: {PPMI_FILE} "
            "(or pass --data-root; see docs/datasets.md)"
        )
    try:
        with open(path, "rb") as fh:
            obj = pickle.load(fh)  # the user's own file, from the user's own path (see module docstring)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as exc:
        raise DataFormatError(f"{path}: cannot be read as a pickle ({type(exc).__name__}: {exc})") from exc
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):
        # a pandas DataFrame, one row per scan
        obj = obj.to_dict("records")
    return obj


def _load(data_root, *, n_rois, crop_length, seed, **options):
    return load_ppmi(data_root or DEFAULT_DATA_ROOT, n_rois=n_rois or AAL3_N_ROIS, crop_length=crop_length)


register_dataset(DatasetSpec(
    "PPMI", "aal3v2", AAL3_N_ROIS, PPMI_CROP, "diagnosis",
    "PPMI resting state, AAL3v2 ROIs, label: Parkinson's disease vs control", _load, class_names=CLASS_NAMES,
    training=TrainingConfig(epochs=30, batch_size=16, lr=5e-4),
    # Controls map to no term on purpose: no meta-analytic map describes "healthy".
    terms={"PD": ["parkinson"], "PARKINSON": ["parkinson"], "CONTROL": [], "HC": []}))
