"""Class reference maps from a term-annotated NiMARE studyset (offline; the demo's literature side).

NiMARE ships a small NeuroStore studyset, ``nback_vs_flanker_studyset_2026-07``: 906 coordinate
analyses of 320 studies, each annotated with the task it compares (``comparison_task``,
``"n-back"`` or ``"flanker"``). Unlike Neurosynth it needs no download, so the demo and the tests
can build a literature reference map for each of its two classes on any machine.

What is done with it, per class ``c``:

1. The parquet release is read with :class:`nimare.nimads.Studyset` (NiMARE's successor of the
   deprecated ``Dataset``; ``mkda_chi2_map`` and ``dataset_mask`` take either).
2. Analyses are merged into one per study (``combine_analyses``), so that a paper reporting ten
   contrasts counts once, as every paper does in Neurosynth. No study compares both tasks, so
   merging never mixes classes.
3. Foci in MNI space are kept, Talairach foci are converted with NiMARE's ``tal2mni``; foci in
   ``OTHER``/``UNKNOWN`` space (NiMARE would keep them unconverted, labelled MNI) are dropped
   and counted. Studies left without a focus take no part (as in :func:`neurosynth.select_studies`).
4. MKDA chi-square of the class' studies against every other class' studies
   (:func:`neurosynth.mkda_chi2_map`), ``z_desc-association``, averaged inside each atlas ROI
   (:func:`scoring.roi_means`).

With two classes the association test is symmetric, so the two maps are each other's negative:
what is more often reported for n-back than for flanker, and the reverse.

The ROI scores are cached as CSV with a JSON sidecar holding a fingerprint of the studyset
files, the atlas and the NiMARE version; a cache that does not match is recomputed.

References
----------
Salo, T. et al. (2023). NiMARE: Neuroimaging Meta-Analysis Research Environment. Aperture
Neuro 3.
Wager, T. D. et al. (2007). Meta-analysis of functional neuroimaging data: current and future
directions. SCAN 2, 150-158 (MKDA).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..atlas import Atlas
from ..errors import ConfigError, DataFormatError, DataNotFoundError
from ..io import read_json, write_dataframe, write_json
from ..log import get_logger
from . import neurosynth, scoring

log = get_logger(__name__)

STUDYSET_NAME = "nback_vs_flanker_studyset_2026-07"
LABEL_FIELD = "comparison_task"
KEPT_SPACES = ("MNI", "TAL")
SCORES_FILE = "studyset_reference_scores.csv"
_ROI_COLUMNS = ("roi", "label_value", "roi_name", "roi_volume_mm3")
# Bumped when the way the scores are computed changes, so that old caches are recomputed.
METHOD_VERSION = "mkda_chi2-z_association-roi_mean-study_level-v1"


def studyset_path() -> Path:
    """The folder of the studyset shipped with NiMARE (``nimare/resources/<STUDYSET_NAME>``)."""
    # Found without importing NiMARE (seconds of imports), so that a cached table costs nothing.
    spec = importlib.util.find_spec("nimare")
    if spec is None or not spec.submodule_search_locations:
        raise DataNotFoundError("NiMARE is not installed; install neurossm's dependencies (pip install -e .)")
    path = Path(list(spec.submodule_search_locations)[0]) / "resources" / STUDYSET_NAME
    if not (path / "studyset.json").is_file():
        raise DataNotFoundError(
            f"{path}: the studyset {STUDYSET_NAME} is not in NiMARE {_nimare_version()}'s resources; "
            "install the NiMARE version pinned in pyproject.toml, or pass the folder of a parquet studyset release"
        )
    return path


@dataclass
class LabelledStudyset:
    """A NiMARE studyset, one analysis per study, with a class label per analysis id.

    Parameters
    ----------
    studyset : nimare.nimads.Studyset
        Foci in MNI152 space (MNI kept, Talairach converted, other spaces dropped).
    labels : dict
        ``{analysis id: class name}`` for every analysis with at least one focus.
    classes : tuple of str
        Class names, sorted.
    path : Path
        The parquet release folder.
    dropped_points : dict
        ``{space: count}`` of foci left out because their space cannot be converted to MNI.
    n_without_points : int
        Studies left out because none of their foci is in a usable space.
    """

    studyset: object
    labels: dict[str, str]
    classes: tuple[str, ...]
    path: Path
    dropped_points: dict[str, int] = field(default_factory=dict)
    n_without_points: int = 0

    def ids_of(self, cls: str) -> list[str]:
        return sorted(i for i, c in self.labels.items() if c == cls)

    def selection(self, cls: str) -> neurosynth.StudySelection:
        """Studies of ``cls`` against the studies of every other class."""
        if cls not in self.classes:
            raise ConfigError(f"class {cls!r} is not in the studyset; its classes are {list(self.classes)}")
        others = sorted(i for i, c in self.labels.items() if c != cls)
        return neurosynth.StudySelection([cls], [cls], [], self.ids_of(cls), others)


def load_labelled_studyset(path: str | os.PathLike | None = None, label_field: str = LABEL_FIELD,
                           spaces: Sequence[str] = KEPT_SPACES) -> LabelledStudyset:
    """Read a parquet studyset release and label each study by ``label_field`` of its metadata.

    Parameters
    ----------
    path : path, optional
        A parquet release folder (``studyset.json`` and ``*.parquet``); default :func:`studyset_path`.
    label_field : str
        Analysis metadata column holding the class of each analysis.
    spaces : sequence of str
        Raw coordinate spaces to keep; NiMARE converts ``TAL`` to MNI, the rest are dropped.
    """
    from nimare.nimads import Studyset

    path = Path(path).expanduser() if path is not None else studyset_path()
    if not (path / "studyset.json").is_file():
        raise DataNotFoundError(f"{path}: no studyset.json; expected a parquet studyset release folder")
    log.info("reading the studyset %s", path.name)
    with _quiet_nimare():
        combined = Studyset(str(path)).combine_analyses()
        store = combined.store
        raw_space = np.asarray(store.space_dict.decode(store.point_space), dtype=str)
        keep = np.isin(raw_space, list(spaces))
        dropped = dict(zip(*np.unique(raw_space[~keep], return_counts=True)))
        studyset = combined.select_points(keep)
        meta = studyset.metadata
        with_points = set(studyset.coordinates["id"].astype(str))
    if label_field not in meta.columns:
        raise DataFormatError(f"{path}: analysis metadata has no column {label_field!r}; "
                              "expected a class label per analysis there")
    ids = meta["id"].astype(str).to_numpy()
    values = meta[label_field]
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataFormatError(f"{path}: {int(missing.sum())} analyses have no {label_field!r} "
                              f"(e.g. {ids[missing][:3].tolist()}); expected a class for every analysis")
    labels = {i: str(v) for i, v in zip(ids, values.astype(str)) if i in with_points}
    classes = tuple(sorted(set(labels.values())))
    if len(classes) < 2:
        raise DataFormatError(f"{path}: {label_field!r} takes the value(s) {list(classes)}; "
                              "a class-versus-rest contrast needs at least two")
    n_without = len(ids) - len(labels)
    log.info("studyset %s: %d studies with foci (%s); %d foci dropped (spaces %s), %d studies left without foci",
             path.name, len(labels), ", ".join(f"{c}: {sum(v == c for v in labels.values())}" for c in classes),
             sum(dropped.values()), {str(k): int(v) for k, v in dropped.items()}, n_without)
    return LabelledStudyset(studyset, labels, classes, path, {str(k): int(v) for k, v in dropped.items()}, n_without)


def class_reference_scores(atlas: Atlas, labelled: LabelledStudyset | None = None) -> pd.DataFrame:
    """ROI-wise reference score of every class: MKDA chi-square ``z_desc-association`` ROI means.

    Returns
    -------
    DataFrame
        One row per atlas ROI, in ROI order: ``roi`` (index), ``label_value``, ``roi_name``,
        ``roi_volume_mm3``, then one column per class (NaN where the ROI lies outside the
        meta-analysis mask).
    """
    labelled = labelled if labelled is not None else load_labelled_studyset()
    mask_img = neurosynth.dataset_mask(labelled.studyset)
    table = pd.DataFrame({"roi": np.arange(atlas.n_rois), "label_value": atlas.values,
                          "roi_name": atlas.names, "roi_volume_mm3": roi_volumes_mm3(atlas)})
    for cls in labelled.classes:
        sel = labelled.selection(cls)
        log.info("studyset reference %s: MKDA chi-square, %d studies against %d others", cls,
                 len(sel.selected), len(sel.unselected))
        with _quiet_nimare():
            img = neurosynth.mkda_chi2_map(labelled.studyset, sel)
        table[cls] = scoring.roi_means(img, atlas, mask_img)
    return table


def cached_class_reference_scores(atlas: Atlas, cache_file: str | os.PathLike,
                                  path: str | os.PathLike | None = None) -> pd.DataFrame:
    """:func:`class_reference_scores`, read from ``cache_file`` when its sidecar matches the inputs.

    The sidecar (``cache_file`` + ``.json``) holds the fingerprint (studyset files, atlas, NiMARE
    version, method) and provenance: studies per class, dropped foci.
    """
    cache_file = Path(cache_file)
    sidecar = cache_file.with_name(cache_file.name + ".json")
    folder = Path(path).expanduser() if path is not None else studyset_path()
    fingerprint = _fingerprint(folder, atlas, _nimare_version())
    if cache_file.is_file() and sidecar.is_file():
        try:
            if read_json(sidecar).get("fingerprint") == fingerprint:
                table = pd.read_csv(cache_file)
                _check_table(table, atlas, cache_file)
                log.info("studyset reference scores: cached in %s", cache_file)
                return table
        except (OSError, ValueError, DataFormatError) as exc:  # an unreadable cache is rebuilt, never trusted
            log.warning("cached reference scores %s unreadable (%s); computing them again", cache_file, exc)
    labelled = load_labelled_studyset(folder)
    table = class_reference_scores(atlas, labelled)
    write_dataframe(cache_file, table)
    write_json(sidecar, {
        "fingerprint": fingerprint,
        "studyset": folder.name,
        "label_field": LABEL_FIELD,
        "classes": list(labelled.classes),
        "n_studies": {c: len(labelled.ids_of(c)) for c in labelled.classes},
        "dropped_points_by_space": labelled.dropped_points,
        "n_studies_without_points": labelled.n_without_points,
        "map": "MKDAChi2 z_desc-association, class studies vs the other classes' studies, mean inside each ROI",
    })
    return table


def roi_volumes_mm3(atlas: Atlas) -> np.ndarray:
    """``(R,)`` ROI volumes in mm³ (voxel count times the voxel volume of the atlas grid)."""
    voxel = abs(float(np.linalg.det(atlas.img.affine[:3, :3])))
    return atlas.roi_volumes() * voxel


def top_rois(table: pd.DataFrame, classes: Sequence[str], k: int,
             min_volume_mm3: float = 0.0) -> dict[str, list[int]]:
    """Each class' ``k`` highest-scoring ROIs, disjoint across classes.

    Classes take turns picking their best ROI not yet taken (so no class gets only leftovers).
    ROIs smaller than ``min_volume_mm3`` are not picked: a mean over a handful of voxels (a
    brainstem or thalamic nucleus) follows a single focus more than a reliable effect.
    """
    eligible = table["roi_volume_mm3"].to_numpy() >= min_volume_mm3
    ranked = {}
    for cls in classes:
        if cls not in table.columns:
            raise ConfigError(f"reference scores have no class {cls!r}; they have {list(table.columns[len(_ROI_COLUMNS):])}")
        values = np.where(eligible, table[cls].to_numpy(dtype=float), np.nan)
        order = np.argsort(np.where(np.isfinite(values), -values, np.inf), kind="stable")
        ranked[cls] = [int(r) for r in order if np.isfinite(values[r])]
    if any(len(r) < k for r in ranked.values()) or k * len(classes) > int(eligible.sum()):
        raise ConfigError(f"{k} ROIs per class × {len(classes)} classes: not enough ROIs with a reference "
                          f"score and at least {min_volume_mm3:g} mm³")
    taken: set[int] = set()
    chosen: dict[str, list[int]] = {c: [] for c in classes}
    for _ in range(k):
        for cls in classes:
            roi = next(r for r in ranked[cls] if r not in taken)
            chosen[cls].append(roi)
            taken.add(roi)
    return {c: sorted(v) for c, v in chosen.items()}


def _nimare_version() -> str:
    try:
        return importlib.metadata.version("nimare")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _check_table(table: pd.DataFrame, atlas: Atlas, where: Path) -> None:
    if len(table) != atlas.n_rois or not np.array_equal(table["label_value"].to_numpy(), atlas.values):
        raise DataFormatError(f"{where}: {len(table)} rows whose label values differ from atlas {atlas.name}'s "
                              f"{atlas.n_rois} ROIs")


def _fingerprint(folder: Path, atlas: Atlas, nimare_version: str) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".parquet", ".json"))
    if not files:
        raise DataNotFoundError(f"{folder}: no parquet tables; expected a parquet studyset release folder")
    for p in files:
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    h.update(f"{atlas.name}|{atlas.n_rois}|{nimare_version}|{METHOD_VERSION}|{LABEL_FIELD}|{KEPT_SPACES}".encode())
    h.update(np.ascontiguousarray(atlas.values, dtype=np.int64).tobytes())
    return h.hexdigest()


@contextmanager
def _quiet_nimare():
    """Silence NiMARE's warnings and chatter for the block (what it would say is logged here instead)."""
    logger = logging.getLogger("nimare")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
