"""The reference analysis end to end: CPA files → class maps → Neurosynth scoring → NIfTI + summary.

For each dataset under ``root`` and each class:

1. the CPA class map is the mean ``cpa_score`` over the class' scans (every seed and fold);
2. the class' terms select Neurosynth studies (tf-idf ≥ 0.001 for any term); MKDA chi-square of
   those studies against all others gives ``z_desc-association``, averaged inside each atlas ROI
   (or the class' column of a reference table given in ``ReferenceOptions.class_reference``);
3. the partial correlation across ROIs between the two, controlling for log ROI volume and the
   class-agnostic map (the mean ``cpa_score`` over all the dataset's scans), with a permutation
   p-value; the Dice overlap of the two maps' top-25% ROIs;
4. five NIfTI maps per class and one ``summary.csv`` row.

Every input (CPA files, atlases, terms, Neurosynth files) is checked before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..atlas import Atlas, load_atlas
from ..config import named_atlas
from ..errors import ConfigError, DataFormatError, DataNotFoundError
from ..explain.files import CpaScan, check_unique_scans, discover_cpa_files, read_cpa_file, select_run
from ..io import atomic_dir, path_in, write_dataframe
from ..log import get_logger, progress
from . import maps, neurosynth, scoring, terms as terms_mod

log = get_logger(__name__)

SUMMARY_COLUMNS = [
    "dataset", "class", "status", "reason", "terms", "terms_matched", "terms_missing",
    "n_studies_selected", "n_studies_other", "n_rois", "n_rois_atlas", "partial_r", "perm_p",
    "n_perm", "dice_top25", "n_scans", "covariates", "pathway_names", "atlas", "maps_dir",
]


@dataclass
class ReferenceOptions:
    """Options of one reference analysis run (the command line maps onto these one to one)."""

    root: Path
    out: Path
    neurosynth_dir: Path | None = None
    neurosynth_files: Path | None = None
    download: bool = True
    terms_file: Path | None = None
    group_by: str = "label"
    atlas: str | None = None
    atlas_labels: Path | None = None
    atlas_data_dir: Path | None = None
    n_perm: int = 1000
    seed: int = 0
    term_threshold: float = neurosynth.TERM_THRESHOLD
    datasets: list[str] | None = None
    # Only the CPA files of this run (id, run folder or its name) when a folder holds several runs' files.
    run: str | None = None
    # ROI-wise reference scores given directly (one column per class name, rows in atlas ROI order,
    # e.g. from :mod:`neurossm.reference.studyset`); when set, Neurosynth and the terms are not used.
    class_reference: pd.DataFrame | None = None
    class_reference_source: str = "given reference table"


@dataclass
class _DatasetInputs:
    name: str
    scans: list[CpaScan]
    atlas: Atlas
    pathway_names: list[str]
    classes: dict[str, list[CpaScan]] = field(default_factory=dict)


def _atlas_for(dataset: str, scans: list[CpaScan], opts: ReferenceOptions, cache: dict) -> Atlas:
    specs = sorted({s.atlas for s in scans})
    counts = sorted({s.n_rois for s in scans})
    if len(specs) > 1 or len(counts) > 1:
        raise DataFormatError(f"{dataset}: CPA files mix atlases {specs} / ROI counts {counts}; expected one atlas per dataset")
    spec, n_rois = specs[0], counts[0]
    named = named_atlas(spec)
    if named is not None:
        source, labels = named.name, None
    elif opts.atlas is not None:
        source, labels = str(opts.atlas), opts.atlas_labels
    elif Path(spec).expanduser().is_file():
        source, labels = spec, opts.atlas_labels
    else:
        raise ConfigError(
            f"{dataset}: CPA files use atlas {spec!r}, which has no known image; pass --atlas NIFTI "
            "--atlas-labels FILE (the label image the time series were extracted with)"
        )
    if (source, labels) not in cache:
        cache[(source, labels)] = load_atlas(source, labels=labels, data_dir=opts.atlas_data_dir)
    atlas = cache[(source, labels)]
    if atlas.n_rois != n_rois:
        raise ConfigError(
            f"{dataset}: CPA files have n_rois={n_rois} but atlas {atlas.name} has {atlas.n_rois} ROIs; "
            "use the atlas the time series were extracted with (--atlas NIFTI --atlas-labels FILE)"
        )
    return atlas


def _collect_inputs(opts: ReferenceOptions) -> list[_DatasetInputs]:
    if opts.group_by not in ("label", "target"):
        raise ConfigError(f"--group-by {opts.group_by!r}; choose 'label' (true class) or 'target' (explained class)")
    found = discover_cpa_files(opts.root)
    if opts.datasets:
        wanted = {d.upper() for d in opts.datasets}
        found = {k: v for k, v in found.items() if k.upper() in wanted}
        if not found:
            raise DataNotFoundError(f"{opts.root}: none of --datasets {opts.datasets} has CPA files")
    atlas_cache: dict = {}
    inputs = []
    for dataset, files in found.items():
        scans = [read_cpa_file(f) for f in progress(files, desc=f"reading {dataset}")]
        scans = select_run(dataset, scans, opts.run)
        check_unique_scans(dataset, scans)
        pathway_sets = {tuple(s.pathway_names) for s in scans}
        if len(pathway_sets) > 1:
            raise DataFormatError(f"{dataset}: CPA files disagree on pathway_names {sorted(pathway_sets)}; "
                                  "expected one model configuration per dataset folder")
        atlas = _atlas_for(dataset, scans, opts, atlas_cache)
        item = _DatasetInputs(dataset, scans, atlas, list(scans[0].pathway_names))
        class_order = scans[0].class_names
        grouped: dict[str, list[CpaScan]] = {}
        for s in scans:
            grouped.setdefault(s.class_name(opts.group_by), []).append(s)
        item.classes = {c: grouped[c] for c in sorted(grouped, key=lambda c: (c not in class_order,
                                                                              class_order.index(c) if c in class_order else 0, c))}
        inputs.append(item)
        log.info("%s: %d scans, %d classes, atlas %s (%d ROIs)", dataset, len(scans), len(item.classes),
                 atlas.name, atlas.n_rois)
    return inputs


def dominant_pathway(scans: list[CpaScan]) -> np.ndarray:
    """``(R,)`` 1-based index of the pathway with the largest class-mean contribution; 0 where all are 0.

    The argmax of the class-mean ``w_p · a_p[r]`` (rather than the most frequent per-scan
    winner) is the pathway that contributes most to the class-mean ``cpa_score`` shown beside it.
    """
    mean = np.mean([s.contributions() for s in scans], axis=0)  # (P, R)
    winner = np.argmax(mean, axis=0) + 1
    return np.where(np.max(mean, axis=0) > 0, winner, 0)


def run_reference_analysis(opts: ReferenceOptions) -> pd.DataFrame:
    """Run the analysis and write ``opts.out``; returns the summary table."""
    overrides = terms_mod.load_terms_file(opts.terms_file) if opts.terms_file else None
    if opts.n_perm < 0:
        raise ConfigError(f"--n-perm {opts.n_perm}; expected 0 or more permutations")
    inputs = _collect_inputs(opts)
    class_terms = {(d.name, c): terms_mod.terms_for(d.name, c, overrides) for d in inputs for c in d.classes}

    dset = None
    if opts.class_reference is None and any(t for t in class_terms.values()):
        files = neurosynth.resolve_files(opts.neurosynth_files, opts.neurosynth_dir, download=opts.download)
        dset = neurosynth.load_dataset(files, opts.neurosynth_dir)
        mask_img = neurosynth.dataset_mask(dset)

    out = Path(opts.out)
    rows = []
    ref_maps: dict = {}
    for item in inputs:
        atlas = item.atlas
        volumes = atlas.roi_volumes().astype(np.float64)
        agnostic = np.mean([s.cpa_score for s in item.scans], axis=0)
        coding = ";".join(f"{i + 1}={n}" for i, n in enumerate(item.pathway_names))
        single_class = len(item.classes) == 1
        for cls, scans in item.classes.items():
            cpa = np.mean([s.cpa_score for s in scans], axis=0)
            class_dir = path_in(out / "maps" / item.name, _safe(cls), "class name")
            # The class folder is written anew: maps of an earlier run (a class skipped now) do not linger.
            with atomic_dir(class_dir) as new_dir:
                row = {"dataset": item.name, "class": cls, "n_scans": len(scans), "pathway_names": coding,
                       "atlas": atlas.name, "n_rois_atlas": atlas.n_rois, "n_perm": opts.n_perm,
                       "maps_dir": str(class_dir.relative_to(out))}
                terms = class_terms[(item.name, cls)]
                row["terms"] = ";".join(terms or [])
                maps.write_roi_map(atlas, cpa, new_dir / maps.MAP_FILES["cpa"])
                maps.write_roi_map(atlas, dominant_pathway(scans), new_dir / maps.MAP_FILES["dominant"])

                reason = None
                if opts.class_reference is not None:
                    reference, reason = _given_reference(opts, cls, atlas)
                    row["terms"] = f"{opts.class_reference_source}: {cls}"
                elif terms is None:
                    reason = f"no Neurosynth terms for class {cls!r} of {item.name}; map it in a --terms FILE"
                elif not terms:
                    reason = f"class {cls!r} is mapped to no term on purpose (no meta-analytic reference)"
                else:
                    sel = neurosynth.select_studies(dset, terms, opts.term_threshold)
                    row.update(terms_matched=";".join(l.split("__", 1)[-1] for l in sel.labels),
                               terms_missing=";".join(sel.missing),
                               n_studies_selected=len(sel.selected), n_studies_other=len(sel.unselected))
                    if not sel.labels:
                        reason = f"none of the terms {terms} is in the Neurosynth vocabulary"
                    elif not sel.selected:
                        reason = f"terms {terms} select no study at weight >= {opts.term_threshold}"
                    elif not sel.unselected:
                        reason = f"terms {terms} select every study; nothing to contrast against"
                if reason:
                    _skip(row, reason, atlas, cpa, new_dir, rows)
                    continue

                if opts.class_reference is None:
                    key = tuple(sel.labels)
                    if (key, id(atlas)) not in ref_maps:
                        log.info("%s / %s: MKDA chi-square, %d studies for %s against %d others", item.name, cls,
                                 len(sel.selected), sel.labels, len(sel.unselected))
                        ref_img = neurosynth.mkda_chi2_map(dset, sel)
                        ref_maps[(key, id(atlas))] = scoring.roi_means(ref_img, atlas, mask_img)
                    reference = ref_maps[(key, id(atlas))]

                valid = np.isfinite(reference) & (volumes > 0)
                covariates = [np.log(np.maximum(volumes, 1.0))]
                names = ["log_roi_volume"]
                if single_class or np.allclose(agnostic, cpa):
                    names_note = "class_agnostic_map dropped: a single class, it equals the class map"
                else:
                    covariates.append(agnostic)
                    names.append("class_agnostic_map")
                    names_note = ""
                cov = np.column_stack(covariates)
                row["covariates"] = ";".join(names) + (f" [{names_note}]" if names_note else "")
                row["n_rois"] = int(valid.sum())
                if valid.sum() < cov.shape[1] + 3:
                    reason = f"only {int(valid.sum())} ROIs overlap the reference map; too few for a partial correlation"
                    _skip(row, reason, atlas, cpa, new_dir, rows)
                    continue
                r, p = scoring.partial_corr_test(cpa[valid], reference[valid], cov[valid], opts.n_perm, opts.seed)
                ref_masked = np.where(valid, reference, np.nan)
                ref_top = scoring.top_fraction_mask(ref_masked)
                # Both masks rank the same ROIs (those the reference covers), so Dice compares like with like.
                cpa_top = scoring.top_fraction_mask(np.where(valid, cpa, np.nan))
                row.update(partial_r=r, perm_p=p, dice_top25=scoring.dice(cpa_top, ref_top),
                           status="ok", reason="")
                maps.write_roi_mask(atlas, cpa_top, new_dir / maps.MAP_FILES["cpa_mask"])
                maps.write_roi_map(atlas, ref_masked, new_dir / maps.MAP_FILES["reference"])
                maps.write_roi_mask(atlas, ref_top, new_dir / maps.MAP_FILES["reference_mask"])
                log.info("%s / %s: partial r = %.3f, p = %.4f, Dice(top 25%%) = %.3f over %d ROIs",
                         item.name, cls, r, p, row["dice_top25"], row["n_rois"])
                rows.append(row)

    summary = pd.DataFrame(rows).reindex(columns=SUMMARY_COLUMNS)
    for col in ("n_studies_selected", "n_studies_other", "n_rois", "n_rois_atlas", "n_perm", "n_scans"):
        summary[col] = summary[col].astype("Int64")  # counts stay integers beside skipped rows' blanks
    write_dataframe(out / "summary.csv", summary)
    log.info("wrote %s (%d rows)", out / "summary.csv", len(summary))
    if len(summary) and not (summary["status"] == "ok").any():
        detail = "; ".join(f"{r['dataset']} / {r['class']}: {r['reason']}" for r in rows)
        missing = sorted({t for r in rows for t in str(r.get("terms_missing") or "").split(";") if t})
        raise ConfigError(
            f"no class was scored against a reference ({detail})"
            + (f". Terms not in the Neurosynth vocabulary: {', '.join(missing)}" if missing else "")
            + ". Map each class to terms of the vocabulary in a --terms FILE (the CPA maps and "
            f"{out / 'summary.csv'} are written)"
        )
    return summary


def _given_reference(opts: ReferenceOptions, cls: str, atlas: Atlas) -> tuple[np.ndarray | None, str | None]:
    """Class ``cls``'s column of ``opts.class_reference``, checked against the atlas."""
    table = opts.class_reference
    if len(table) != atlas.n_rois:
        raise DataFormatError(f"{opts.class_reference_source}: {len(table)} rows, but atlas {atlas.name} has "
                              f"{atlas.n_rois} ROIs; expected one row per ROI in atlas order")
    if cls not in table.columns:
        return None, f"the {opts.class_reference_source} has no column for class {cls!r}"
    return table[cls].to_numpy(dtype=np.float64), None


def _skip(row: dict, reason: str, atlas: Atlas, cpa: np.ndarray, class_dir: Path, rows: list) -> None:
    """Report a class without a reference score; its CPA maps are still written (they need no Neurosynth)."""
    log.warning("%s / %s skipped: %s", row["dataset"], row["class"], reason)
    maps.write_roi_mask(atlas, scoring.top_fraction_mask(cpa), class_dir / maps.MAP_FILES["cpa_mask"])
    rows.append({**row, "status": "skipped", "reason": reason})


def _safe(name: str) -> str:
    """A class name as a folder name (path separators, spaces and a name of dots only replaced)."""
    text = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.strip()) or "unnamed"
    return "_" * len(text) if set(text) == {"."} else text
