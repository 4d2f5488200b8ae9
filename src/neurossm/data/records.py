"""Helpers shared by the file loaders (hcp, ppmi, folder): finding scans, ids and labels in
the loosely specified structures the seed files come in, and preparing each array."""

from __future__ import annotations

import pickle
import re
import zipfile
from collections import Counter
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import DataFormatError
from ..log import get_logger
from .preprocess import zscore
from .scans import check_finite, orient

log = get_logger(__name__)

# The first object of torch's legacy (pre-1.6, non-zip) serialisation format.
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def load_stored_object(path: Path) -> Any:
    """The Python object in a file written by ``np.save``, ``pickle.dump`` or ``torch.save``.

    Every one of these formats is a pickle inside, and **loading a pickle runs code stored in
    it**: call this only on the user's own files, from the path the user gave. The format is
    told by the file's first bytes, not its name (BolT's own files are ``torch.save`` output named
    ``*.save``). Tensors in a ``torch.save`` file become numpy arrays. ``.npz`` archives are
    refused (they hold arrays, not the records these files carry).
    """
    with open(path, "rb") as fh:
        head = fh.read(8)
    try:
        if head.startswith(b"\x93NUMPY"):
            obj = np.load(path, allow_pickle=True)  # the user's own file (see above)
            if obj.dtype != object:
                raise DataFormatError(
                    f"{path}: holds a plain numeric array of shape {obj.shape}, which carries no subject ids; "
                    "save a dict subject id -> array (n_rois, n_times) instead (see docs/datasets.md)"
                )
            return obj.item() if obj.ndim == 0 else list(obj)
        if head.startswith(b"PK"):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
            if not any(n.endswith("data.pkl") for n in names):
                raise DataFormatError(f"{path}: is a zip archive (.npz?) of {names[:5]}; save the records with "
                                      "np.save, pickle or torch.save (see docs/datasets.md)")
            return _torch_load(path)
        with open(path, "rb") as fh:
            obj = pickle.load(fh)  # the user's own file (see above)
        if isinstance(obj, int) and obj == _TORCH_LEGACY_MAGIC:
            return _torch_load(path)
        return obj
    except DataFormatError:
        raise
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, OSError,
            zipfile.BadZipFile, RuntimeError) as exc:
        raise DataFormatError(f"{path}: cannot be read as np.save, pickle or torch.save output "
                              f"({type(exc).__name__}: {exc})") from exc


def _torch_load(path: Path) -> Any:
    import torch

    # weights_only=False: BolT's files hold numpy arrays and dicts, which the safe loader refuses.
    obj = torch.load(path, map_location="cpu", weights_only=False)  # the user's own file
    log.info("%s: read as torch.save output", path)
    return _tensors_to_numpy(obj, torch)


def _tensors_to_numpy(obj: Any, torch: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy()
    if isinstance(obj, Mapping):
        return {k: _tensors_to_numpy(v, torch) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_tensors_to_numpy(v, torch) for v in obj)
    return obj

def prepare_timeseries(array: Any, n_rois: int | None, where: str) -> np.ndarray:
    """Orient to ``(n_rois, n_times)``, refuse NaN/Inf and values float32 cannot hold, z-score each
    ROI over the scan (in float64), and return float32.

    The checks come before z-scoring so that the error names the real problem.
    """
    x = orient(array, n_rois, where)
    check_finite(x, where)
    return zscore(x)


def _norm_key(key: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(key).lower())


def pick(record: Mapping, keys: Sequence[str], nested: str = "pheno") -> tuple[str, Any] | None:
    """The first of ``keys`` present in ``record`` (or in ``record[nested]``), as ``(key, value)``.

    Keys match ignoring case, ``_`` and ``-`` (``subject_id`` finds ``subjectId``).
    """
    wanted = [_norm_key(k) for k in keys]
    places = [record]
    if isinstance(record.get(nested), Mapping):
        places.append(record[nested])
    for place in places:
        present = {_norm_key(k): k for k in place}
        for w in wanted:
            if w in present:
                return present[w], place[present[w]]
    return None


TIMESERIES_KEYS = ("roiTimeseries", "roi_timeseries", "timeseries", "time_series", "ts", "data", "X", "bold")
SUBJECT_KEYS = ("subjectId", "subject_id", "subject", "subj", "sub", "PATNO", "participant_id", "id")


def plain_scalar(value: Any) -> Any:
    """A stored scalar as plain Python: bytes decoded, numpy scalars unwrapped, whole floats as int.

    Pickled and ``.npy`` files hold ids and labels as ``np.int64``, ``b"..."`` or ``100307.0``;
    every reader of such a value starts here.
    """
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value


def subject_str(value: Any) -> str:
    """A subject id as text: ``100307``, ``np.int64(100307)``, ``100307.0`` and ``"100307.0"`` give ``'100307'``."""
    text = str(plain_scalar(value)).strip()
    # spreadsheets turn integer ids into "100307.0"
    return text.split(".")[0] if re.fullmatch(r"\d+\.0*", text) else text


def split_runs(value: Any) -> list[Any]:
    """One stored value as a list of scans: a list/tuple of arrays holds several, anything else one."""
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 1:
        value = list(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, np.ndarray) for v in value):
        return list(value)
    return [value]


def number_ids(bases: Iterable[str]) -> list[str]:
    """Scan ids from base ids: unique bases stay as they are, repeated ones get ``_1``, ``_2``, ..."""
    bases = list(bases)
    counts = Counter(bases)
    seen: Counter = Counter()
    out = []
    for b in bases:
        if counts[b] == 1:
            out.append(b)
        else:
            seen[b] += 1
            out.append(f"{b}_{seen[b]}")
    return out


def describe(obj: Any, depth: int = 0) -> str:
    """A short account of a loaded object's structure, for error messages."""
    if isinstance(obj, np.ndarray):
        if obj.dtype == object and obj.ndim == 0 and depth < 2:
            return f"0-d object array holding {describe(obj.item(), depth + 1)}"
        return f"ndarray shape {obj.shape} dtype {obj.dtype}"
    if isinstance(obj, Mapping):
        keys = list(obj)[:5]
        text = f"{type(obj).__name__} with {len(obj)} key(s) {[str(k) for k in keys]}"
        if keys and depth < 2:
            text += f", first value: {describe(obj[keys[0]], depth + 1)}"
        return text
    if isinstance(obj, (list, tuple)):
        text = f"{type(obj).__name__} of {len(obj)} item(s)"
        if obj and depth < 2:
            text += f", first item: {describe(obj[0], depth + 1)}"
        return text
    return f"{type(obj).__name__} {str(obj)[:40]!r}"


def atlas_for(default_atlas: str, default_n_rois: int | None, n_rois: int | None) -> str:
    """The atlas name to record: the dataset's own, unless the user declared another ROI count."""
    if n_rois is None or n_rois == default_n_rois:
        return default_atlas
    return f"custom{n_rois}"


@dataclass
class Record:
    """One stored scan before checks: its subject, its raw array, and its stored label if any."""

    subject: str
    array: Any
    label: Any = None


def _plural(keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(keys) + tuple(f"{k}s" for k in keys)


def _is_scan_list(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.ndim == 3 or (value.dtype == object and value.ndim == 1)
    return isinstance(value, (list, tuple))


def flatten_records(obj: Any, where: str, label_keys: Sequence[str] = ()) -> list[Record]:
    """The scans of a loaded seed file, whatever the common layout it uses.

    Accepted layouts (``ts`` is any of :data:`TIMESERIES_KEYS`, ``subject`` any of
    :data:`SUBJECT_KEYS`, ``label`` any of ``label_keys``; keys may also sit in a nested
    ``pheno`` dict):

    - parallel lists: ``{"X": [...], "subjects": [...], "y": [...]}``;
    - subject → array, list of arrays (several runs/visits), ``{ts: ..., label: ...}``, or a
      list of such dicts;
    - a list of dicts ``{ts: ..., subject: ..., label: ...}``.

    Anything else raises :class:`DataFormatError` showing what was found.
    """
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.ndim == 0:
        obj = obj.item()
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.ndim == 1:
        obj = list(obj)
    looked = f"looked for {', '.join(TIMESERIES_KEYS)}"

    if isinstance(obj, Mapping) and obj:
        ts = pick(obj, TIMESERIES_KEYS)
        if ts is not None and _is_scan_list(ts[1]):
            return _parallel(obj, ts, where, label_keys)
        if ts is not None:
            raise DataFormatError(
                f"{where}: holds a single record ({describe(obj)}); save a list of such dicts, "
                "one per scan, or a dict subject id -> array"
            )
        records = []
        for key, value in obj.items():
            subject = subject_str(key)
            items = value if isinstance(value, (list, tuple)) and value and all(
                isinstance(v, Mapping) for v in value) else [value]
            for item in items:
                if isinstance(item, Mapping):
                    found = pick(item, TIMESERIES_KEYS)
                    if found is None:
                        raise DataFormatError(
                            f"{where}: subject {subject} holds {describe(item)}; expected an array "
                            f"(n_rois, n_times) or a dict with a time-series key ({looked})"
                        )
                    label = pick(item, label_keys) if label_keys else None
                    records += [Record(subject, a, label[1] if label else None) for a in split_runs(found[1])]
                elif isinstance(item, (np.ndarray, list, tuple)):
                    records += [Record(subject, a) for a in split_runs(item)]
                else:
                    raise DataFormatError(
                        f"{where}: subject {subject} holds {describe(item)}; expected an array (n_rois, n_times), "
                        f"a list of arrays, or a dict with a time-series key ({looked})"
                    )
        return records

    if isinstance(obj, (list, tuple)) and obj and all(isinstance(v, Mapping) for v in obj):
        records = []
        for i, item in enumerate(obj):
            found = pick(item, TIMESERIES_KEYS)
            if found is None:
                raise DataFormatError(f"{where}: item {i} has keys {list(map(str, item))[:10]}; "
                                      f"expected a time-series key ({looked})")
            subject = pick(item, SUBJECT_KEYS)
            if subject is None:
                raise DataFormatError(
                    f"{where}: item {i} has keys {list(map(str, item))[:10]} but no subject id "
                    f"(looked for {', '.join(SUBJECT_KEYS)}); scans need subject ids so that a "
                    "subject's scans stay in one fold"
                )
            label = pick(item, label_keys) if label_keys else None
            records += [Record(subject_str(subject[1]), a, label[1] if label else None) for a in split_runs(found[1])]
        return records

    raise DataFormatError(
        f"{where}: unrecognised structure: {describe(obj)}. Accepted: a dict subject id -> array "
        "(n_rois, n_times), a list of dicts with 'roiTimeseries' and 'subjectId' keys, or parallel "
        "lists {'X': [...], 'subjects': [...]}; see docs/datasets.md"
    )


def _parallel(obj: Mapping, ts: tuple[str, Any], where: str, label_keys: Sequence[str]) -> list[Record]:
    arrays = list(ts[1])
    subjects = pick(obj, _plural(SUBJECT_KEYS))
    if subjects is None:
        raise DataFormatError(
            f"{where}: parallel lists under {ts[0]!r} but no subject ids (keys {list(map(str, obj))[:10]}); "
            "add 'subjects': one id per scan, so that a subject's scans stay in one fold"
        )
    columns = {"subjects": list(subjects[1])}
    if label_keys:
        labels = pick(obj, _plural(label_keys) + ("y",))
        columns["labels"] = list(labels[1]) if labels is not None else [None] * len(arrays)
    for what, values in columns.items():
        if len(values) != len(arrays):
            raise DataFormatError(f"{where}: {len(arrays)} scans under {ts[0]!r} but {len(values)} {what}; "
                                  "the lists must be parallel (one entry per scan)")
    labels_list = columns.get("labels", [None] * len(arrays))
    return [Record(subject_str(s), a, lab) for a, s, lab in zip(arrays, columns["subjects"], labels_list)]
