"""The batch behind ``neurossm prep``: find BOLD files, extract them in parallel, resume, report.

Every scan ends in one of three states, written to ``prep_report.csv`` with its reason:

``written``
    extracted now (atomically: a killed run leaves no partial ``.npy``);
``skipped``
    its ``.npy`` was already in ``--out`` (``--overwrite`` redoes it);
``failed``
    not extracted: a 3D image, too few volumes, no confounds file, no label, ... One bad file
    never stops the others.

The folder index (``labels.csv``, ``scans.csv`` or the HCP-style dict file) lists the scans of
this run that are on disk, written or skipped.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataFormatError, DataNotFoundError
from ..io import atomic_path, read_json, write_dataframe, write_json
from ..log import get_logger, progress
from .extract import ExtractOptions, extract_file

log = get_logger(__name__)

LAYOUTS = ("custom", "hcp")
HCP_FILE = "dataset_hcpRest_schaefer.npy"
HCP_SCAN_DIR = "scans"
REPORT_FILE = "prep_report.csv"
CONFIG_FILE = "prep_config.json"
REPORT_COLUMNS = [
    "scan", "subject", "label", "status", "reason", "n_rois", "n_times", "n_rois_empty",
    "n_rois_zero", "flagged", "empty_rois", "tr", "confounds", "n_confounds", "source", "output", "seconds",
]
_INT_COLUMNS = ["n_rois", "n_times", "n_rois_empty", "n_rois_zero", "n_confounds"]
_NIFTI_SUFFIXES = (".nii.gz", ".nii")
_SUBJECT = re.compile(r"(?:^|_)sub-([A-Za-z0-9]+)")
_SPACE = re.compile(r"_space-([A-Za-z0-9]+)")


@dataclass
class Job:
    """One BOLD file to extract, and where its array goes."""

    scan: str
    subject: str
    source: Path
    output: Path
    label: Any = None


@dataclass
class PrepResult:
    """What a batch did: one report row per scan, and the files it wrote."""

    rows: list[dict[str, Any]]
    out_dir: Path
    files: list[Path] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.rows)

    @property
    def all_failed(self) -> bool:
        return bool(self.rows) and self.count("failed") == len(self.rows)


def scan_identity(path: Path) -> tuple[str, str]:
    """``(scan id, subject id)`` of a BOLD file name.

    The scan id is the name without ``_bold.nii.gz`` (or ``.nii.gz``/``.nii``); the subject id is
    the BIDS ``sub-`` entity without its prefix, or the scan id when the name has none.
    """
    name = path.name
    for suffix in ("_bold.nii.gz", "_bold.nii", *_NIFTI_SUFFIXES):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    match = _SUBJECT.search(name)
    return name, (match.group(1) if match else name)


def discover(patterns: Sequence[str]) -> list[Path]:
    """BOLD files named by files, folders (searched recursively) or glob patterns, sorted.

    A folder contributes its ``*_bold.nii[.gz]`` files, or every ``*.nii[.gz]`` when it has none.
    """
    found: set[Path] = set()
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            hits = [p for s in ("*_bold.nii.gz", "*_bold.nii") for p in path.rglob(s)]
            hits = hits or [p for s in ("*.nii.gz", "*.nii") for p in path.rglob(s)]
        elif path.is_file():
            hits = [path]
        else:
            anchor = Path(path.anchor) if path.is_absolute() else Path(".")
            rel = str(path.relative_to(anchor)) if path.is_absolute() else str(path)
            hits = [p for p in anchor.glob(rel) if p.is_file()]
        if not hits:
            raise DataNotFoundError(f"--bold {pattern!r} matches no NIfTI file; pass a folder, a file or a glob")
        found.update(p.resolve() for p in hits if p.name.endswith(_NIFTI_SUFFIXES))
    if not found:
        raise DataNotFoundError(f"--bold {' '.join(patterns)}: no .nii or .nii.gz file found")
    files = sorted(found)
    spaces = sorted({m.group(1) for p in files if (m := _SPACE.search(p.name))})
    if len(spaces) > 1:
        raise ConfigError(
            f"--bold selects BOLD files in {len(spaces)} spaces ({', '.join(spaces)}); the atlas is in one. "
            f"Narrow the glob, e.g. '*space-{spaces[0]}*_bold.nii.gz'"
        )
    return files


def _strip_sub(value: Any) -> str:
    text = str(value).strip()
    return text[4:] if text.startswith("sub-") else text


def read_labels(path: str | Path, subject_col: str, label_col: str) -> dict[str, Any]:
    """Subject id (``sub-`` prefix removed) → label, from a participants/phenotype TSV or CSV."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: labels table not found (--labels)")
    sep = "\t" if path.suffix.lower() in (".tsv", ".txt") else None
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=True, engine="python")
    except Exception as exc:
        raise DataFormatError(f"{path}: cannot read as a TSV/CSV table ({exc})") from exc
    for col, flag in ((subject_col, "--subject-col"), (label_col, "--label-col")):
        if col not in frame.columns:
            raise ConfigError(f"{path}: no column {col!r} ({flag}); the table has {', '.join(frame.columns)}")
    frame = frame[[subject_col, label_col]].dropna(subset=[subject_col])
    labels: dict[str, Any] = {}
    for subject, label in zip(frame[subject_col].map(_strip_sub), frame[label_col]):
        label = None if pd.isna(label) or not str(label).strip() else str(label).strip()
        if subject in labels and labels[subject] != label:
            raise DataFormatError(
                f"{path}: subject {subject} has labels {labels[subject]!r} and {label!r}; "
                "one label per subject is needed"
            )
        labels[subject] = label
    return labels


def _settings(atlas, options: ExtractOptions, layout: str) -> dict[str, Any]:
    """The settings that make two runs' arrays comparable; resuming requires them equal."""
    return {
        "atlas": atlas.name,
        "n_rois": atlas.n_rois,
        "atlas_values": [int(v) for v in atlas.values],
        "layout": layout,
        **{k: v for k, v in options.to_dict().items() if k != "min_volumes"},
    }


def _check_settings(out_dir: Path, settings: dict[str, Any], overwrite: bool) -> None:
    path = out_dir / CONFIG_FILE
    if overwrite or not path.is_file():
        return
    previous = read_json(path)
    changed = [k for k in settings if previous.get(k) != settings[k]]
    if changed:
        detail = "; ".join(
            f"{k}: {previous.get(k)!r} then, {settings[k]!r} now" for k in changed if k != "atlas_values"
        ) or "atlas label values differ"
        raise ConfigError(
            f"{out_dir} holds scans extracted with other settings ({detail}); mixing them would make "
            "scans incomparable. Use another --out, or --overwrite to redo every scan"
        )


def _fail(job: Job, reason: str, **extra: Any) -> dict[str, Any]:
    return {"scan": job.scan, "subject": job.subject, "label": job.label, "status": "failed",
            "reason": reason, "source": str(job.source), **extra}


def process(job: Job, atlas, options: ExtractOptions) -> dict[str, Any]:
    """Extract one scan and write its array atomically; never raises (a failure is a report row)."""
    start = time.perf_counter()
    try:
        ext = extract_file(job.source, atlas, options, job.scan, job.subject)
        with atomic_path(job.output) as tmp:
            np.save(tmp, ext.timeseries)
    except Exception as exc:  # one bad file must not stop the batch; the reason goes in the report
        reason = str(exc) if str(exc) else type(exc).__name__
        return _fail(job, reason, seconds=round(time.perf_counter() - start, 3))
    empty, zero = ext.empty_rois, ext.zero_rois
    notes = []
    if len(empty):
        notes.append(f"{len(empty)} ROI(s) with no voxels on the image's grid (outside the field of view, "
                     "or too small for its voxel size), filled with zeros")
    if len(zero) > len(empty):
        notes.append(f"{len(zero) - len(empty)} ROI(s) all zero over time (zero-valued voxels)")
    return {
        "scan": job.scan, "subject": job.subject, "label": job.label, "status": "written",
        "reason": "; ".join(notes), "n_rois": ext.timeseries.shape[0], "n_times": ext.timeseries.shape[1],
        "n_rois_empty": len(empty), "n_rois_zero": len(zero), "flagged": bool(len(zero)),
        "empty_rois": ";".join(atlas.names[r] for r in empty),
        "tr": ext.tr, "confounds": ext.confounds_file, "n_confounds": len(ext.confound_columns),
        "source": str(job.source), "output": str(job.output),
        "seconds": round(time.perf_counter() - start, 3),
    }


def _previous_rows(out_dir: Path) -> dict[str, dict[str, Any]]:
    path = out_dir / REPORT_FILE
    if not path.is_file():
        return {}
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception:  # a report is a convenience; an unreadable one only loses detail columns
        return {}
    return {r["scan"]: r for r in frame.to_dict("records") if r.get("status") in ("written", "skipped")}


def _skip(job: Job, atlas, previous: dict[str, Any] | None) -> dict[str, Any]:
    """A report row for a scan already on disk (its shape checked, details from the last report)."""
    try:
        arr = np.load(job.output, mmap_mode="r")
    except Exception as exc:
        return _fail(job, f"existing {job.output.name} is unreadable ({exc}); rerun with --overwrite")
    if arr.ndim != 2 or arr.shape[0] != atlas.n_rois:
        return _fail(job, f"existing {job.output.name} has shape {arr.shape}, not ({atlas.n_rois}, T); "
                          "rerun with --overwrite")
    row = {k: v for k, v in (previous or {}).items() if k in REPORT_COLUMNS and v != ""}
    n_zero = int((~np.any(np.asarray(arr) != 0, axis=1)).sum())
    row.update({
        "scan": job.scan, "subject": job.subject, "label": job.label, "status": "skipped",
        "reason": "already written (--overwrite redoes it)", "n_rois": arr.shape[0], "n_times": arr.shape[1],
        "n_rois_zero": n_zero, "flagged": bool(n_zero), "source": str(job.source), "output": str(job.output),
    })
    return row


def plan(
    files: Sequence[Path],
    out_dir: Path,
    layout: str,
    labels: dict[str, Any] | None,
    labels_name: str = "--labels",
) -> tuple[list[Job], list[dict[str, Any]]]:
    """Jobs for the files that can be extracted, and failure rows for those that cannot."""
    scan_dir = out_dir / HCP_SCAN_DIR if layout == "hcp" else out_dir
    jobs: list[Job] = []
    failed: list[dict[str, Any]] = []
    seen_scans: dict[str, Path] = {}
    for path in files:
        scan, subject = scan_identity(path)
        job = Job(scan, subject, path, scan_dir / f"{scan}.npy")
        if scan in seen_scans:
            failed.append(_fail(job, f"scan id {scan} also comes from {seen_scans[scan]}; scan ids must be unique"))
            continue
        seen_scans[scan] = path
        if labels is not None:
            if subject not in labels:
                failed.append(_fail(job, f"subject {subject} is not in {labels_name}"))
                continue
            if labels[subject] is None:
                failed.append(_fail(job, f"subject {subject} has no label in {labels_name}"))
                continue
            job.label = labels[subject]
        jobs.append(job)
    return jobs, failed


def run_prep(
    bold: Sequence[str],
    atlas,
    out_dir: str | Path,
    options: ExtractOptions,
    *,
    labels: dict[str, Any] | None = None,
    labels_name: str = "--labels",
    layout: str = "custom",
    jobs: int = 1,
    overwrite: bool = False,
) -> PrepResult:
    """Extract every BOLD file of ``bold`` into ``out_dir``; see the module docstring.

    ``labels`` maps subject ids to labels (``None``: write ``scans.csv`` without labels). The
    report and the folder index are written even when every scan fails.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"--layout {layout!r} is unknown; choose one of {', '.join(LAYOUTS)}")
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    out_dir = Path(out_dir)
    files = discover(bold)
    settings = _settings(atlas, options, layout)
    _check_settings(out_dir, settings, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)

    todo, rows = plan(files, out_dir, layout, labels, labels_name)
    previous = _previous_rows(out_dir)
    pending = []
    for job in todo:
        if job.output.is_file() and not overwrite:
            rows.append(_skip(job, atlas, previous.get(job.scan)))
        else:
            pending.append(job)
    log.info("prep: %d BOLD file(s); %d to extract, %d already written, %d not extractable; %d job(s)",
             len(files), len(pending), len(todo) - len(pending), len(rows) - (len(todo) - len(pending)), jobs)
    write_json(out_dir / CONFIG_FILE, settings)

    if jobs == 1 or len(pending) <= 1:
        results = (process(job, atlas, options) for job in pending)
    else:
        from joblib import Parallel, delayed

        # Processes, not threads: much of nilearn's per-scan work is Python code holding the GIL,
        # and a worker killed for memory then costs its own scan, not the run.
        results = Parallel(n_jobs=min(jobs, len(pending)), backend="loky", return_as="generator_unordered")(
            delayed(process)(job, atlas, options) for job in pending
        )
    done: set[str] = set()
    try:
        for row in progress(results, desc="prep", total=len(pending)):
            rows.append(row)
            done.add(row["scan"])
            if row["status"] == "failed":
                log.warning("%s: failed: %s", row["scan"], row["reason"])
    except Exception as exc:  # a worker killed (out of memory) ends joblib's pool; report, don't lose rows
        log.error("prep: the worker pool stopped (%s: %s); scans not finished are reported as failed",
                  type(exc).__name__, exc)
        rows.extend(_fail(job, f"worker process died before finishing ({type(exc).__name__}); "
                               "out of memory? rerun with fewer --jobs")
                    for job in pending if job.scan not in done)

    rows.sort(key=lambda r: r["scan"])
    result = PrepResult(rows, out_dir)
    report = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    # Failed rows have no counts; nullable integers keep "3" from being written as "3.0".
    report[_INT_COLUMNS] = report[_INT_COLUMNS].apply(pd.to_numeric).astype("Int64")
    result.files.append(write_dataframe(out_dir / REPORT_FILE, report))
    result.files.extend(_write_index(result, layout, labels is not None))
    return result


def _write_index(result: PrepResult, layout: str, with_labels: bool) -> list[Path]:
    on_disk = [r for r in result.rows if r["status"] in ("written", "skipped")]
    out_dir = result.out_dir
    if layout == "hcp":
        # The seed's schema: one dict, subject id -> (n_rois, n_times) array, or a list of them
        # (in scan id order) for a subject with several scans; read back with allow_pickle.
        runs: dict[str, list[np.ndarray]] = {}
        for r in on_disk:  # rows are sorted by scan id
            runs.setdefault(str(r["subject"]), []).append(np.load(r["output"]))
        data = {subject: arrays[0] if len(arrays) == 1 else arrays for subject, arrays in runs.items()}
        path = out_dir / HCP_FILE
        with atomic_path(path) as tmp:
            np.save(tmp, data, allow_pickle=True)
        return [path]
    if with_labels:
        frame = pd.DataFrame([(r["scan"], r["subject"], r["label"]) for r in on_disk],
                             columns=["scan", "subject", "label"])
        return [write_dataframe(out_dir / "labels.csv", frame)]
    frame = pd.DataFrame([(r["scan"], r["subject"]) for r in on_disk], columns=["scan", "subject"])
    return [write_dataframe(out_dir / "scans.csv", frame)]


def summary(result: PrepResult) -> str:
    """The console summary: counts, where the report is, failures grouped by reason."""
    lines = [
        f"prep: {result.count('written')} written, {result.count('skipped')} skipped, "
        f"{result.count('failed')} failed -> {result.out_dir / REPORT_FILE}"
    ]
    flagged = [r for r in result.rows if r["status"] != "failed" and r.get("flagged") in (True, "True")]
    if flagged:
        lines.append(f"  {len(flagged)} scan(s) flagged with all-zero ROIs (see n_rois_empty, n_rois_zero, "
                     f"empty_rois): {', '.join(r['scan'] for r in flagged[:5])}{', ...' if len(flagged) > 5 else ''}")
    failures: dict[str, list[str]] = {}
    for r in result.rows:
        if r["status"] == "failed":
            failures.setdefault(str(r["reason"]), []).append(r["scan"])
    for reason, scans in sorted(failures.items(), key=lambda kv: -len(kv[1]))[:10]:
        lines.append(f"  failed ({len(scans)}): {reason} [{', '.join(scans[:3])}{', ...' if len(scans) > 3 else ''}]")
    return "\n".join(lines)
