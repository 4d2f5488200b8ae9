"""Assemble ``report.html`` of a run: one section per question a reader has about it.

Sections (stable ids, so that links and tests can find them): ``dataset``, ``metrics``, ``roc``,
``confusion``, ``learning-curves``, ``pathway-importance``, ``brain-maps``, ``reference-summary``,
``config``. A section that fails to draw says why on the page and in a warning; it never stops
the report, and the report never stops a run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import NeuroSSMError
from ..io import write_text
from ..log import get_logger
from ..training.metrics import METRICS
from ..training.metrics import mean_std as metric_mean_std
from . import html as H
from . import plots
from .inputs import (
    CpaSet,
    ReferenceSet,
    RunData,
    default_cpa_dir,
    default_reference_dir,
    load_cpa,
    load_reference,
)

log = get_logger(__name__)

METRIC_LABELS = {"accuracy": "accuracy", "balanced_accuracy": "balanced acc.", "roc_auc": "ROC-AUC",
                 "f1_macro": "F1 (macro)", "precision": "precision", "recall": "recall"}
BRAIN_MAPS = (("cpa_score", "CPA score (mean over the class's scans)"),
              ("neurosynth_reference_score", "meta-analytic reference (MKDA z, ROI mean)"))
MAX_DROPPED_ROWS = 10


def build_report(run_dir: str | Path, *, cpa_dir: str | Path | None = None, reference_dir: str | Path | None = None,
                 out: str | Path | None = None, extra_runs: Sequence[str | Path] = (), title: str | None = None) -> Path:
    """Write a self-contained ``report.html`` for ``run_dir`` and return its path.

    Parameters
    ----------
    run_dir : path
        A run folder, ``Results/<DATASET>/<MODEL>/<run>``.
    cpa_dir : path, optional
        Folder of the run's CPA files (``subj_*.npz``, searched recursively). Default: the
        run's ``<analysis_root>/Explainability/<DATASET>`` when it was started with ``--analysis``.
    reference_dir : path, optional
        Output folder of ``neurossm reference`` (``summary.csv``, ``maps/<DATASET>/<CLASS>/``).
        Default: ``<analysis_root>/Explainability_Results`` when it exists.
    out : path, optional
        The HTML file (default ``run_dir/report.html``).
    extra_runs : paths
        Further run folders on the same dataset, shown beside the main one in the metrics table,
        the ROC and confusion figures and the learning curves (the demo compares NeuroSSM with FC_LR).
    title : str, optional
        Page title (default "<MODEL> on <DATASET>").

    Raises
    ------
    DataNotFoundError
        ``run_dir`` is not a run folder. Problems inside a section are shown in that section
        and logged as warnings instead.
    """
    t0 = time.perf_counter()
    run = RunData.read(run_dir)
    runs = [run]
    for extra in extra_runs:
        try:
            runs.append(RunData.read(extra))
        except NeuroSSMError as exc:
            log.warning("report: extra run left out: %s", exc)
    out = Path(out) if out is not None else run.root / "report.html"

    cpa_root = Path(cpa_dir) if cpa_dir is not None else _quiet(lambda: default_cpa_dir(run))
    ref_root = Path(reference_dir) if reference_dir is not None else _quiet(lambda: default_reference_dir(run))
    cpa: CpaSet | None = None
    cpa_error = None
    if cpa_root is not None:
        try:
            cpa = load_cpa(cpa_root, run.seeds if cpa_dir is None else None)
        except Exception as exc:  # a damaged file must not cost the rest of the report
            cpa_error = f"{cpa_root}: {type(exc).__name__}: {exc}"
            log.warning("report: CPA files unreadable: %s", cpa_error)
    ref: ReferenceSet | None = None
    ref_error = None
    if ref_root is not None:
        try:
            ref = load_reference(ref_root, run.dataset_name)
        except Exception as exc:
            ref_error = f"{ref_root}: {type(exc).__name__}: {exc}"
            log.warning("report: reference outputs unreadable: %s", ref_error)

    specs: list[tuple[str, str, Callable[[], Any]]] = [
        ("dataset", "Dataset", lambda: _dataset_section(run)),
        ("metrics", "Test metrics", lambda: _metrics_section(runs)),
        ("roc", "ROC curves", lambda: _roc_section(runs)),
        ("confusion", "Confusion matrices", lambda: _confusion_section(runs)),
        ("learning-curves", "Learning curves", lambda: _learning_section(runs)),
        ("pathway-importance", "Pathway importance (CPA)", lambda: _pathway_section(run, cpa, cpa_root, cpa_error)),
        ("brain-maps", "Brain maps", lambda: _brain_section(ref, ref_root, ref_error)),
        ("reference-summary", "Reference summary", lambda: _reference_section(ref, ref_root, ref_error)),
        ("config", "Configuration", lambda: _config_section(run)),
    ]
    sections = [_guarded(sid, name, fn) for sid, name, fn in specs]
    page = H.page(title or f"{_models_label(runs)} on {run.dataset_name}", _chips(run, runs),
                  [(sid, name) for sid, name, _ in specs], sections, _footer(run))
    write_text(out, page)
    log.info("report: %s (%.1f s)", out, time.perf_counter() - t0)
    return out


def _quiet(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:
        log.warning("report: %s", exc)
        return None


def _guarded(sid: str, name: str, fn: Callable[[], Any]) -> H.Html:
    t0 = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # one broken figure must not cost the rest of the page
        log.warning("report: section %r unavailable: %s: %s", sid, type(exc).__name__, exc)
        return H.section(sid, name, H.unavailable(f"{type(exc).__name__}: {exc}"))
    log.debug("report: section %r in %.2f s", sid, time.perf_counter() - t0)
    lead, body = result if isinstance(result, tuple) else (None, result)
    return H.section(sid, name, body, lead)


def _absent(text: str) -> H.Html:
    return H.note(text, cls="note")


# Header and footer ---------------------------------------------------------------------------

def _run_label(run: RunData, runs: Sequence[RunData]) -> str:
    """The model name, with the run folder when two runs share a model."""
    same = sum(r.model == run.model for r in runs) > 1
    return f"{run.model} ({run.root.name})" if same else run.model


def _models_label(runs: Sequence[RunData]) -> str:
    names = list(dict.fromkeys(r.model for r in runs))
    return " vs ".join(names)


def _finished(run: RunData) -> str:
    path = run.root / "summary.json"
    if not path.is_file():
        return "not yet"
    stamp = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def _chips(run: RunData, runs: Sequence[RunData]) -> list[str]:
    try:
        s, opts = run.summary, run.config.get("options", {})
        chips = [f"dataset {run.dataset_name}", f"model {_models_label(runs)}", f"run {run.root.name}",
                 f"finished {_finished(run)}"]
        if s:
            done, expected = s.get("n_folds_done"), s.get("n_folds_expected")
            chips.append(f"{done}/{expected} folds" + ("" if s.get("complete", True) else " (incomplete)"))
        if opts.get("seeds"):
            chips.append("seeds " + ", ".join(str(x) for x in opts["seeds"]))
        atlas = run.config.get("dataset", {}).get("atlas") or run.dataset.get("atlas")
        if atlas:
            chips.append(f"atlas {atlas}")
        return chips
    except Exception as exc:
        log.warning("report: header incomplete: %s", exc)
        return [str(run.root)]


def _footer(run: RunData) -> H.Html:
    versions = run.config.get("versions", {})
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = f"neurossm {__version__} report, generated {made} from {run.root}"
    if versions:
        text += " · run made with " + ", ".join(f"{k} {v}" for k, v in versions.items())
    return H.esc(text)


# Dataset -------------------------------------------------------------------------------------

def _dataset_section(run: RunData):
    d = run.dataset
    if not d:
        return H.unavailable(f"{run.root / 'dataset.json'} is missing")
    n_times = d.get("n_times", {})
    n_classes = len(d.get("class_names", []))
    tiles = [(d.get("n_scans", "?"), "scans"), (d.get("n_subjects", "?"), "subjects"),
             (n_classes, "classes"), (d.get("n_rois", "?"), "ROIs"), (d.get("atlas", "?"), "atlas"),
             (f"{n_times.get('min', '?')} / {H.fmt_number(n_times.get('median', '?'), 0)} / {n_times.get('max', '?')}",
              "time points min / median / max"),
             (d.get("crop_length", "?"), "training crop length"), (d.get("n_dropped", 0), "dropped")]
    parts = [H.cards(tiles)]
    per_class = d.get("scans_per_class", {})
    total = sum(per_class.values()) or 1
    class_table = H.table(["class", "scans", "share"],
                          [[c, n, f"{100 * n / total:.0f}%"] for c, n in per_class.items()],
                          numeric=(1, 2), caption="scans per class")
    cols = [class_table]
    reasons = d.get("dropped_by_reason") or {}
    if reasons:
        cols.append(H.table(["reason", "count"], sorted(reasons.items(), key=lambda kv: -kv[1]), numeric=(1,),
                            caption="dropped, by reason"))
    parts.append(H.tag("div", H.join(cols), class_="cols"))
    dropped = d.get("dropped") or []
    if dropped:
        shown = dropped[:MAX_DROPPED_ROWS]
        more = f" (first {len(shown)} of {len(dropped)})" if len(dropped) > len(shown) else ""
        parts.append(H.table(["item", "reason"], [[x.get("item", ""), x.get("reason", "")] for x in shown],
                             caption=f"dropped scans and subjects{more}"))
    elif not reasons:
        parts.append(_absent("Nothing was dropped."))
    truth = d.get("ground_truth")
    if truth:
        rows = [[k, json.dumps(v) if isinstance(v, (dict, list)) else v] for k, v in truth.items()]
        parts.append(H.details("ground truth of the synthetic data", H.table(["field", "value"], rows)))
    lead = f"Source: {d.get('source')}" if d.get("source") else None
    return lead, H.join(parts)


# Metrics -------------------------------------------------------------------------------------

def _test_metrics(run: RunData) -> dict[str, dict[str, float]]:
    if run.summary.get("test"):
        return run.summary["test"]
    fm = run.fold_metrics
    if fm is None or not len(fm):
        return {}
    return {k: metric_mean_std(fm[k]) for k in METRICS if k in fm.columns}


def _metrics_section(runs: Sequence[RunData]):
    tests = [_test_metrics(r) for r in runs]
    names = [k for k in METRICS if any(k in t for t in tests)]
    names += [k for t in tests for k in t if k not in names]
    if not names:
        return H.unavailable("no finished fold (summary.json and fold_metrics.csv hold no test metrics)")
    best = {}
    if len(runs) > 1:
        for k in names:
            vals = [t.get(k, {}).get("mean", float("nan")) for t in tests]
            if np.isfinite(vals).any():
                best[k] = int(np.nanargmax(vals))
    header = ["model", "folds", *[METRIC_LABELS.get(k, k) for k in names]]
    rows = []
    for i, (run, t) in enumerate(zip(runs, tests)):
        done = run.summary.get("n_folds_done", len(run.fold_metrics) if run.fold_metrics is not None else "?")
        cells = [_run_label(run, runs), done]
        for k in names:
            cell = H.mean_std(t.get(k))
            cells.append(H.Html(f"<strong>{cell}</strong>") if best.get(k) == i else cell)
        rows.append(cells)
    parts = [H.table(header, rows, numeric=tuple(range(1, len(header))))]
    for run in runs:
        per_seed = run.summary.get("per_seed") or {}
        if len(per_seed) > 1:
            seed_rows = [[s, *[H.mean_std(v.get(k)) for k in names]] for s, v in per_seed.items()]
            parts.append(H.details(f"{_run_label(run, runs)}: per seed (mean ± std over its folds)",
                                   H.table(["seed", *[METRIC_LABELS.get(k, k) for k in names]], seed_rows,
                                           numeric=tuple(range(1, len(names) + 1)))))
        fm = run.fold_metrics
        if fm is not None and len(fm):
            fold_rows = [[int(r["seed"]), int(r["fold"]), *[H.fmt_number(r[k]) for k in names if k in fm.columns]]
                         for _, r in fm.iterrows()]
            parts.append(H.details(f"{_run_label(run, runs)}: every fold",
                                   H.table(["seed", "fold", *[METRIC_LABELS.get(k, k) for k in names if k in fm.columns]],
                                           fold_rows, numeric=tuple(range(len(names) + 2)))))
    n_classes = len(runs[0].class_names)
    auc = "ROC-AUC of the positive class" if n_classes == 2 else "ROC-AUC one-vs-rest, macro-averaged"
    lead = (f"Held-out test folds, mean ± standard deviation over all folds and seeds; {auc}"
            + ("; the best mean per column in bold." if best else "."))
    return lead, H.join(parts)


# ROC, confusion, learning curves -------------------------------------------------------------

def _with_predictions(runs: Sequence[RunData]) -> list[RunData]:
    return [r for r in runs if r.predictions is not None and len(r.predictions)]


def _roc_section(runs: Sequence[RunData]):
    have = [r for r in _with_predictions(runs) if r.class_names == runs[0].class_names]
    if not have:
        return _absent("No test predictions yet (predictions.csv is missing or empty).")
    classes = runs[0].class_names
    png = plots.roc_figure([(_run_label(r, runs), r.predictions) for r in have], classes)
    if len(classes) == 2:
        what = (f"{classes[1]} as the positive class. Thin lines: one test fold of one seed; bold: all test "
                "predictions pooled over folds and seeds (legend: pooled AUC, and mean ± std of the per-fold AUCs).")
    else:
        what = ("One-vs-rest per class. Thin lines: one test fold of one seed; bold: all test predictions "
                "pooled over folds and seeds.")
    return H.grid([H.figure(png, "ROC curves on the held-out folds. " + what, "ROC curves", wide=True)])


def _confusion_section(runs: Sequence[RunData]):
    have = _with_predictions(runs)
    if not have:
        return _absent("No test predictions yet (predictions.csv is missing or empty).")
    figs = []
    for r in have:
        seeds = r.predictions["seed"].nunique() if "seed" in r.predictions.columns else 1
        over = "folds" + (f" and {seeds} seeds (each scan counted once per seed)" if seeds > 1 else "")
        figs.append(H.figure(plots.confusion_figure(r.predictions, r.class_names, _run_label(r, runs)),
                             f"{_run_label(r, runs)}: test predictions pooled over {over}. Left: counts; "
                             "right: each row divided by its total, so the diagonal is the recall of each class.",
                             f"confusion matrix of {_run_label(r, runs)}", wide=len(r.class_names) > 4))
    return H.grid(figs)


def _learning_section(runs: Sequence[RunData]):
    figures, notes = [], []
    for r in runs:
        label = _run_label(r, runs)
        with_epochs = {k: h for k, h in r.histories.items() if plots.has_epochs(h)}
        if with_epochs:
            png = plots.learning_curve_figure(with_epochs, label)
            figures.append(H.figure(png, f"{label}: training (blue) and validation (orange) loss and accuracy per "
                                    f"epoch from each fold's history.csv ({len(with_epochs)} folds; thin: one fold, "
                                    "bold: mean). Dots: the epoch model selection kept.",
                                    f"learning curves of {label}"))
        elif r.histories:
            cols = sorted({c for h in r.histories.values() if h is not None for c in h.columns})
            extra = f"; its history records {', '.join(cols)}" if cols else ""
            notes.append(_absent(f"{label}: no learning curve (closed-form model{extra})."))
        else:
            notes.append(_absent(f"{label}: no learning curve (no history.csv in the run folder)."))
    return H.join([H.grid(figures) if figures else "", *notes])


# CPA and reference ---------------------------------------------------------------------------

def _truth_pathway(run: RunData) -> str | None:
    truth = run.dataset.get("ground_truth") or {}
    if truth.get("signal_form") and truth.get("scale"):
        return f"{truth['signal_form']}_s{truth['scale']}"
    return None


def _pathway_section(run: RunData, cpa: CpaSet | None, root: Path | None, error: str | None):
    if error:
        return H.unavailable(error)
    if cpa is None:
        where = f" in {root}" if root is not None else ""
        return _absent(f"No CPA outputs found{where}. Start the run with --analysis (NeuroSSM), run "
                       "`neurossm explain RUN_DIR`, or point --cpa-dir at the subj_*.npz files.")
    truth = _truth_pathway(run)
    png = plots.pathway_importance_figure(cpa.importance, cpa.class_names, cpa.pathway_names, truth)
    counts = ", ".join(f"{c}: {len(v)}" for c, v in cpa.importance.items())
    caption = ("Calibrated importance w_p of each pathway (the drop of the explained class's logit when the "
               "pathway is ablated before fusion, scaled to sum to 1), mean ± sd over the CPA files of the "
               f"class's held-out scans ({counts}).")
    if truth in cpa.pathway_names:
        caption += f" Shaded: the pathway that carries the synthetic signal ({truth})."
    if cpa.n_fallback:
        caption += (f" {cpa.n_fallback} of {cpa.n_files} files had no positive logit drop and fell back to "
                    "uniform weights.")
    lead = f"{cpa.n_files} CPA files from {cpa.root}."
    return lead, H.grid([H.figure(png, caption, "pathway importance per class", wide=True)])


def _brain_section(ref: ReferenceSet | None, root: Path | None, error: str | None):
    if error:
        return H.unavailable(error)
    if ref is None or not ref.maps:
        where = f" in {root}" if root is not None else ""
        return _absent(f"No reference maps found{where}. Run `neurossm reference` on the CPA outputs, or point "
                       "--reference-dir at its output folder.")
    figs, problems = [], []
    for cls, files in ref.maps.items():
        chosen = [(label, files[name]) for name, label in BRAIN_MAPS if name in files]
        if not chosen:
            continue
        try:
            png = plots.brain_maps_figure(chosen, cls)
        except Exception as exc:
            log.warning("report: brain maps of %s unavailable: %s", cls, exc)
            problems.append(H.unavailable(f"{cls}: {type(exc).__name__}: {exc}"))
            continue
        figs.append(H.figure(png, f"{cls}: " + "; ".join(label for label, _ in chosen) + ". Glass-brain "
                             "maximum-intensity projections (left, top, right) on the MNI152 outline; ROIs painted "
                             "with their value, 0 (outside the atlas) transparent.", f"brain maps of {cls}"))
    if not figs and not problems:
        return _absent("The reference output has no cpa_score or neurosynth_reference_score maps.")
    return f"NIfTI maps from {ref.root / 'maps'}.", H.join([H.grid(figs), *problems])


def _reference_section(ref: ReferenceSet | None, root: Path | None, error: str | None):
    if error:
        return H.unavailable(error)
    if ref is None or ref.summary is None:
        where = f" in {root}" if root is not None else ""
        return _absent(f"No reference summary found{where} (summary.csv of `neurossm reference`).")
    frame = ref.summary
    numeric = tuple(i for i, c in enumerate(frame.columns) if frame[c].dtype.kind in "fiu")
    rows = [[H.fmt_number(v) if i in numeric else ("" if pd.isna(v) else v) for i, v in enumerate(row)]
            for row in frame.itertuples(index=False)]
    lead = ("Per class: partial correlation across ROIs between the class's CPA map and its meta-analytic "
            "reference map (Neurosynth, or the study set named in the terms column; controlling for the "
            "covariates listed), its permutation p-value, and the Dice overlap of the two maps' top-25% ROIs.")
    return lead, H.table(list(frame.columns), rows, numeric=numeric, caption=str(ref.root / "summary.csv"))


# Configuration -------------------------------------------------------------------------------

def _kv_table(d: dict[str, Any], caption: str) -> H.Html:
    rows = [[k, json.dumps(v) if isinstance(v, (dict, list)) else v] for k, v in d.items()]
    return H.table(["key", "value"], rows, caption=caption)


def _config_section(run: RunData):
    cfg = run.config
    if not cfg:
        return H.unavailable(f"{run.root / 'config.json'} is missing")
    model = cfg.get("model", {})
    parts = []
    if model.get("reference"):
        parts.append(H.note(f"{model.get('name')}: {model['reference']}", cls="lead"))
    tables = [_kv_table(model.get("config", {}), f"model {model.get('name', '')} ({model.get('kind', '')})"),
              _kv_table(cfg.get("training", {}), "training"),
              _kv_table(cfg.get("options", {}), "run options")]
    parts.append(H.details("model, training and run options", H.tag("div", H.join(tables), class_="cols")))
    return H.join(parts)
