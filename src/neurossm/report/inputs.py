"""What a report reads: a run folder, the CPA files of its test scans, and the reference outputs.

Each reader tolerates what a real run folder can look like: a run stopped mid-way (no summary
yet), a model without epochs (a ``history.csv`` with other columns, or none), an analysis not yet
run. Nothing here plots; :mod:`neurossm.report.plots` draws what these return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataFormatError, DataNotFoundError
from ..explain.files import dataset_dir, find_cpa_files, read_cpa_fields, scalar
from ..io import read_csv_or_none
from ..log import get_logger
from ..training.results import RunDirectory

log = get_logger(__name__)

_CPA_MEMBERS = ("class_names", "pathway_names", "target", "label", "pathway_importance", "importance_fallback")


@dataclass
class RunData:
    """One run folder as the report needs it."""

    root: Path
    config: dict[str, Any]
    dataset: dict[str, Any]
    summary: dict[str, Any]
    fold_metrics: pd.DataFrame | None
    predictions: pd.DataFrame | None
    histories: dict[tuple[int, int], pd.DataFrame | None] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return str(self.summary.get("model") or self.config.get("model", {}).get("name") or self.root.parent.name)

    @property
    def dataset_name(self) -> str:
        return str(self.summary.get("dataset") or self.config.get("dataset", {}).get("name")
                   or self.dataset.get("dataset") or self.root.parent.parent.name)

    @property
    def class_names(self) -> list[str]:
        names = self.config.get("dataset", {}).get("class_names") or self.dataset.get("class_names")
        if names:
            return [str(c) for c in names]
        if self.predictions is not None:
            return [c[len("prob_"):] for c in self.predictions.columns if c.startswith("prob_")]
        return []

    @classmethod
    def read(cls, run_dir: str | Path) -> "RunData":
        """Read the files of ``run_dir`` (through :class:`~neurossm.training.results.RunDirectory`)."""
        rd = RunDirectory(run_dir)
        if not rd.is_run():
            raise DataNotFoundError(f"{rd.root}: no config.json or summary.json there; is it a run folder "
                                    "(Results/<DATASET>/<MODEL>/<run>)?")
        return cls(root=rd.root, config=rd.read_optional_json("config.json"),
                   dataset=rd.read_optional_json("dataset.json"), summary=rd.read_optional_json("summary.json"),
                   fold_metrics=rd.read_optional_csv("fold_metrics.csv"),
                   predictions=rd.read_optional_csv("predictions.csv"), histories=rd.read_histories())

    @property
    def seeds(self) -> list[int]:
        seeds = self.config.get("options", {}).get("seeds")
        if seeds:
            return [int(s) for s in seeds]
        return sorted({s for s, _ in self.histories})


def _candidates(run: RunData, relative: Path) -> list[Path]:
    """Where a path the run wrote relative to its working directory can be now.

    The run folder is ``<results-root>/<DATASET>/<MODEL>/<run>``; the results root usually sits
    in the directory the run started from, so its parent is tried after the current directory.
    """
    if relative.is_absolute():
        return [relative]
    out = [Path.cwd() / relative]
    parents = run.root.resolve().parents
    if len(parents) > 3:
        out.append(parents[3] / relative)
    return out


def default_cpa_dir(run: RunData) -> Path | None:
    """``<analysis_root>/Explainability/<DATASET>`` of a run started with ``--analysis``, if it exists."""
    options = run.config.get("options", {})
    if not options.get("analysis"):
        return None
    rel = dataset_dir(analysis_root(run), run.dataset_name)
    return next((p for p in _candidates(run, rel) if p.is_dir()), None)


def analysis_root(run: RunData) -> Path:
    """The run's ``--analysis-root``: recorded (absolute) in its config.json; ``Analysis`` for a run
    made before it was recorded."""
    recorded = (run.config.get("analysis") or {}).get("root")
    return Path(recorded or run.config.get("options", {}).get("analysis_root") or "Analysis")


def default_reference_dir(run: RunData) -> Path | None:
    """``<analysis_root>/Explainability_Results`` (where ``neurossm reference`` writes), if it was
    written after the run finished.

    An older one scored the CPA maps of an earlier run, so it would describe another model; the
    report of a new run leaves it out, and ``neurossm report`` picks it up once the reference
    analysis has been run on this run's maps.
    """
    rel = analysis_root(run) / "Explainability_Results"
    finished = RunDirectory(run.root).summary_path
    since = finished.stat().st_mtime if finished.is_file() else 0.0
    for p in _candidates(run, rel):
        stamps = [q.stat().st_mtime for q in (p / "summary.csv", p / "maps" / run.dataset_name) if q.exists()]
        if stamps and max(stamps) >= since:
            return p
    return None


@dataclass
class CpaSet:
    """Pathway importance of every CPA file, grouped by the class each file explains."""

    root: Path
    class_names: list[str]
    pathway_names: list[str]
    importance: dict[str, np.ndarray]     # class → (n_files, P)
    n_fallback: int                       # files whose calibration fell back to uniform weights
    n_files: int


def load_cpa(cpa_dir: str | Path, seeds: list[int] | None = None) -> CpaSet | None:
    """Read ``subj_*.npz`` under ``cpa_dir`` (of ``seeds`` only, when given); ``None`` if there are none.

    Damaged files are an error naming each one (the report shows it in place of the section):
    importance averaged over the files that happen to be readable would describe other scans.
    """
    root = Path(cpa_dir)
    files = find_cpa_files(root, seeds)
    if not files:
        return None
    class_names: list[str] = []
    pathway_names: list[str] = []
    rows: dict[int, list[np.ndarray]] = {}
    fallback = 0
    damaged: list[str] = []
    for path in files:
        try:
            z = read_cpa_fields(path, _CPA_MEMBERS)  # only the members the report needs
            if "pathway_importance" not in z or not ("target" in z or "label" in z):
                raise DataFormatError("lacks pathway_importance or target")
        except Exception as exc:
            damaged.append(f"{path.relative_to(root)} ({type(exc).__name__}: {' '.join(str(exc).split())})")
            continue
        if not class_names:
            class_names = [str(c) for c in z["class_names"]]
            pathway_names = [str(p) for p in z["pathway_names"]]
        target = int(scalar(z["target"] if "target" in z else z["label"]))
        rows.setdefault(target, []).append(np.asarray(z["pathway_importance"], dtype=np.float64))
        if "importance_fallback" in z and bool(scalar(z["importance_fallback"])):
            fallback += 1
    importance = {}
    for target in sorted(rows):
        name = class_names[target] if 0 <= target < len(class_names) else f"class {target}"
        importance[name] = np.vstack(rows[target])
    if damaged:
        raise DataFormatError(f"{len(damaged)} of {len(files)} CPA file(s) are damaged: " + "; ".join(damaged[:5])
                              + (" ..." if len(damaged) > 5 else "") + ". Re-run `neurossm explain` for them")
    return CpaSet(root=root, class_names=class_names, pathway_names=pathway_names, importance=importance,
                  n_fallback=fallback, n_files=len(files))


@dataclass
class ReferenceSet:
    """The reference analysis of one dataset: its summary rows and the NIfTI maps per class."""

    root: Path
    summary: pd.DataFrame | None
    maps: dict[str, dict[str, Path]]      # class → map name (file stem) → path


def load_reference(reference_dir: str | Path, dataset: str) -> ReferenceSet | None:
    """``summary.csv`` (rows of ``dataset`` when it has a dataset column) and ``maps/<dataset>/<class>/``."""
    root = Path(reference_dir)
    summary = read_csv_or_none(root / "summary.csv")
    if summary is not None and "dataset" in summary.columns:
        mine = summary[summary["dataset"].astype(str).str.upper() == dataset.upper()]
        summary = mine if len(mine) else summary
    maps: dict[str, dict[str, Path]] = {}
    map_root = root / "maps" / dataset
    for class_dir in sorted(p for p in map_root.glob("*") if p.is_dir()):
        found = {f.name[: -len(".nii.gz")]: f for f in sorted(class_dir.glob("*.nii.gz"))}
        if found:
            maps[class_dir.name] = found
    if summary is None and not maps:
        return None
    return ReferenceSet(root=root, summary=summary, maps=maps)
