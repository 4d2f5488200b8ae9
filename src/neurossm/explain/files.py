"""The CPA file format and the ``Explainability`` folder layout: the one writer and reader of both.

::

    <analysis-root>/Explainability/<DATASET>/seed_<S>/fold_<k>/subj_<scan_id>.npz   (cross-validation)
    <analysis-root>/Explainability/<DATASET>/seed_<S>/subj_<scan_id>.npz            (--skip_cross_validation)

One ``subj_<scan_id>.npz`` per explained test scan: ``scan_id``, ``subject_id``,
``label``, ``pred``, ``probs (C,)``, ``class_names (C,)``, ``pathway_names (P,)``,
``pathway_maps (P, R)``, ``pathway_importance (P,)``, ``importance_fallback``, ``logit_full``,
``logit_ablated (P,)``, ``cpa_score (R,)``, ``dominant_pathway (R,)``, ``target``,
``target_mode`` (``true``/``pred``), ``atlas``, ``n_rois``, and the run the file came from:
``run_id`` (also in the run's ``config.json``), ``run_dir``, ``model``, ``seed``, ``fold`` (0 for a
holdout, which is fold 0 of ``--folds``). Plain arrays, no pickles.

One dataset folder holds the maps of one run: a run refuses to write among another run's files
(:func:`check_folder_is_this_runs`), and a reader refuses files of several runs unless told which
to take (:func:`select_run`) and two files of one scan and seed (:func:`check_unique_scans`),
since the reference analysis averages every file of a class into one map.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import ConfigError, DataFormatError, DataNotFoundError
from ..io import path_in, write_npz

EXPLAINABILITY = "Explainability"
FILE_GLOB = "subj_*.npz"
# What a reader needs; older files may lack the rest (importance_fallback, target_mode, ...).
REQUIRED = ("scan_id", "subject_id", "label", "target", "class_names", "pathway_names", "pathway_maps",
            "pathway_importance", "cpa_score", "atlas", "n_rois")
_SEED_FOLD = re.compile(r"seed_(\d+)(?:/fold_(\d+))?")
# The run a file came from; files written before runs were recorded lack these members.
RUN_FIELDS = ("run_id", "run_dir", "model", "seed", "fold")
UNRECORDED = "(no run recorded)"


def dataset_dir(analysis_root: str | os.PathLike, dataset: str) -> Path:
    """``<analysis_root>/Explainability/<dataset>``: every CPA file of one dataset lies below it."""
    return Path(analysis_root) / EXPLAINABILITY / dataset


def unit_dir(analysis_root: str | os.PathLike, dataset: str, seed: int, fold: int | None) -> Path:
    """The folder of one (seed, fold) unit; ``fold=None`` for a holdout run (``seed_<S>`` only)."""
    path = dataset_dir(analysis_root, dataset) / f"seed_{seed}"
    return path if fold is None else path / f"fold_{fold}"


def file_path(folder: str | os.PathLike, scan_id: str) -> Path:
    """Where the CPA file of ``scan_id`` goes in a unit's folder (never outside it: :func:`neurossm.io.path_in`)."""
    return path_in(folder, f"subj_{scan_id}.npz", "scan id")


def run_record(run_id: str, run_dir: str | os.PathLike, model: str, seed: int, fold: int) -> dict[str, np.ndarray]:
    """The members that tie a CPA file to its run (pass them to :func:`write_cpa_file`)."""
    return {"run_id": np.str_(run_id), "run_dir": np.str_(str(Path(run_dir).resolve())), "model": np.str_(model),
            "seed": np.int64(seed), "fold": np.int64(fold)}


def write_cpa_file(path: str | os.PathLike, **fields: Any) -> Path:
    """Write one CPA file atomically; ``fields`` are the members listed in the module docstring."""
    missing = [k for k in REQUIRED if k not in fields]
    if missing:
        raise ValueError(f"CPA file {path}: fields {missing} missing")
    write_npz(path, **fields)
    return Path(path)


def find_cpa_files(root: str | os.PathLike, seeds: Iterable[int] | None = None) -> list[Path]:
    """``subj_*.npz`` anywhere below ``root`` (sorted); with ``seeds``, only those below a
    ``seed_<S>`` folder of one of them (files outside any ``seed_<S>`` folder are kept)."""
    root = Path(root)
    files = sorted(root.rglob(FILE_GLOB))
    if seeds:
        keep = {int(s) for s in seeds}
        files = [f for f in files if (m := _SEED_FOLD.search(f.relative_to(root).as_posix())) is None
                 or int(m.group(1)) in keep]
    return files


def discover_cpa_files(root: str | os.PathLike) -> dict[str, list[Path]]:
    """``{dataset: [subj_*.npz, ...]}`` from ``root/<DATASET>/seed_<S>/**/subj_*.npz`` (sorted).

    ``root`` (an ``Explainability`` folder) may also be one dataset's folder (holding ``seed_*``
    folders itself).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"{root}: --root folder not found; expected <DATASET>/seed_<S>/subj_*.npz below it")
    candidates = [root] if any(root.glob("seed_*")) else sorted(p for p in root.iterdir() if p.is_dir())
    found = {}
    for folder in candidates:
        files = sorted(p for p in folder.glob(f"seed_*/**/{FILE_GLOB}") if p.is_file())
        if files:
            found[folder.name] = files
    if not found:
        raise DataNotFoundError(
            f"{root}: no CPA files; expected <DATASET>/seed_<S>/subj_*.npz (or .../seed_<S>/fold_<k>/subj_*.npz). "
            "Run `neurossm explain` (or tester.py --analysis) first"
        )
    return found


def scalar(value: np.ndarray) -> Any:
    """A 0-d member as a Python scalar (other arrays unchanged)."""
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def read_cpa_fields(path: str | os.PathLike, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Only the members ``names`` of a CPA file that it holds (an npz decompresses a member when
    it is read, so a reader that needs three members reads three)."""
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in names if k in npz.files}


@dataclass
class CpaScan:
    """One ``subj_<id>.npz`` written by the CPA extraction (fields: this module's docstring), checked."""

    path: Path
    scan_id: str
    subject_id: str
    label: int
    target: int
    class_names: list[str]
    pathway_names: list[str]
    pathway_maps: np.ndarray        # (P, R)
    pathway_importance: np.ndarray  # (P,)
    cpa_score: np.ndarray           # (R,)
    atlas: str
    n_rois: int
    run_id: str = UNRECORDED   # the run the file came from (UNRECORDED for files written before runs were)
    run_dir: str = ""
    seed: int | None = None    # recorded, or read from the file's seed_<S> folder

    def class_name(self, group_by: str) -> str:
        index = self.label if group_by == "label" else self.target
        if not 0 <= index < len(self.class_names):
            raise DataFormatError(
                f"{self.path}: {group_by}={index} but class_names has {len(self.class_names)} entries; "
                "expected an index into class_names"
            )
        return self.class_names[index]

    def contributions(self) -> np.ndarray:
        """``(P, R)`` calibrated pathway contributions ``w_p · a_p[r]`` (they sum to ``cpa_score``)."""
        return self.pathway_importance[:, None] * self.pathway_maps


def read_cpa_file(path: str | os.PathLike) -> CpaScan:
    """Read and check one CPA file."""
    path = Path(path)
    try:
        raw = read_cpa_fields(path, REQUIRED + RUN_FIELDS)
    except Exception as exc:
        raise DataFormatError(f"{path}: cannot read as .npz ({exc}); re-run the CPA extraction for this scan") from exc
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise DataFormatError(f"{path}: CPA file lacks {missing}; expected the fields listed in "
                              "docs/cpa.md (re-run the CPA extraction)")
    n_rois = int(raw["n_rois"])
    scan = CpaScan(
        path=path, scan_id=str(raw["scan_id"]), subject_id=str(raw["subject_id"]),
        label=int(raw["label"]), target=int(raw["target"]),
        class_names=[str(c) for c in np.atleast_1d(raw["class_names"])],
        pathway_names=[str(p) for p in np.atleast_1d(raw["pathway_names"])],
        pathway_maps=np.asarray(raw["pathway_maps"], dtype=np.float64),
        pathway_importance=np.asarray(raw["pathway_importance"], dtype=np.float64).ravel(),
        cpa_score=np.asarray(raw["cpa_score"], dtype=np.float64).ravel(),
        atlas=str(raw["atlas"]), n_rois=n_rois,
        run_id=str(raw.get("run_id", UNRECORDED)), run_dir=str(raw.get("run_dir", "")),
        seed=int(raw["seed"]) if "seed" in raw else _seed_of(path),
    )
    n_paths = len(scan.pathway_names)
    if scan.cpa_score.shape != (n_rois,):
        raise DataFormatError(f"{path}: cpa_score has shape {scan.cpa_score.shape}; expected ({n_rois},) (n_rois)")
    if scan.pathway_maps.shape != (n_paths, n_rois) or scan.pathway_importance.shape != (n_paths,):
        raise DataFormatError(
            f"{path}: pathway_maps {scan.pathway_maps.shape}, pathway_importance {scan.pathway_importance.shape}; "
            f"expected ({n_paths}, {n_rois}) and ({n_paths},) for {n_paths} pathways"
        )
    if not np.all(np.isfinite(scan.cpa_score)):
        raise DataFormatError(f"{path}: cpa_score holds NaN or infinite values; re-run the CPA extraction")
    return scan


def _seed_of(path: Path) -> int | None:
    """The seed of a file without a run record, from its ``seed_<S>`` folder."""
    for part in reversed(path.parts[:-1]):
        if re.fullmatch(r"seed_\d+", part):
            return int(part.split("_")[1])
    return None


def file_run(path: str | os.PathLike) -> tuple[str, str]:
    """``(run_id, run_dir)`` recorded in a CPA file; :data:`UNRECORDED` and ``""`` when it has none."""
    raw = read_cpa_fields(path, ("run_id", "run_dir"))
    return str(raw.get("run_id", UNRECORDED)), str(raw.get("run_dir", ""))


def check_folder_is_this_runs(folder: str | os.PathLike, run_id: str, option: str) -> None:
    """Refuse to write CPA files into ``folder`` when it holds files of another run.

    ``folder`` is a dataset's folder (:func:`dataset_dir`): the reference analysis pools every
    file below it. ``option`` names what the user passed (``--analysis-root Analysis``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    others: dict[tuple[str, str], list[Path]] = {}
    for path in find_cpa_files(folder):
        key = file_run(path)
        if key[0] != run_id:
            others.setdefault(key, []).append(path)
    if others:
        detail = "; ".join(f"run {rid} ({len(paths)} file(s), {rdir or 'folder unknown'}, e.g. {paths[0]})"
                           for (rid, rdir), paths in others.items())
        raise ConfigError(
            f"{option}: {folder} already holds the CPA maps of another run ({detail}); the reference analysis "
            "would pool them with this run's. Pass another --analysis-root, or move that folder away"
        )


def select_run(dataset: str, scans: list[CpaScan], run: str | None) -> list[CpaScan]:
    """The files of one run: all of them when they come from one, else those of ``run``.

    ``run`` matches a run id, a run folder or a run folder's name. Files of several runs are
    refused without it: averaging maps of two models (or two splits) into one class map is
    never what was meant.
    """
    runs: dict[str, list[CpaScan]] = {}
    for s in scans:
        runs.setdefault(s.run_id, []).append(s)
    if run is not None:
        chosen = [s for s in scans if run in (s.run_id, s.run_dir) or (s.run_dir and Path(s.run_dir).name == run)]
        if not chosen:
            raise ConfigError(f"{dataset}: --run {run} matches none of the runs of its CPA files: {_runs_text(runs)}")
        return chosen
    if len(runs) > 1:
        raise ConfigError(
            f"{dataset}: CPA files of {len(runs)} runs: {_runs_text(runs)}; their maps would be averaged "
            "together. Choose one with --run RUN_ID (or its run folder), or move the other run's files away"
        )
    return scans


def _runs_text(runs: dict[str, list[CpaScan]]) -> str:
    return "; ".join(f"{rid} ({len(group)} files, {group[0].run_dir or group[0].path.parent})"
                     for rid, group in runs.items())


def check_unique_scans(dataset: str, scans: list[CpaScan]) -> None:
    """A run explains a scan once per seed; a second file for it means files of two runs are mixed."""
    seen: dict[tuple[str, str, int | None], Path] = {}
    for s in scans:
        key = (s.run_id, s.scan_id, s.seed)
        if key in seen:
            raise DataFormatError(
                f"{dataset}: scan {s.scan_id} has 2 CPA files for seed {s.seed} ({seen[key]} and {s.path}); a "
                "scan is tested once per seed, so these come from two runs (e.g. a holdout run and a "
                "cross-validation run into one analysis root). Keep one run's files"
            )
        seen[key] = s.path
