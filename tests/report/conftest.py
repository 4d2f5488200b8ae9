"""A hand-built run folder, CPA files and reference outputs, as the report reads them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neurossm.io import write_dataframe, write_json, write_npz
from neurossm.training.metrics import METRICS, classification_metrics, mean_std

PATHWAYS = ["raw_s1", "raw_s2", "raw_s4", "diff_s1", "diff_s2", "diff_s4"]
N_ROIS = 6
# 12 mm voxels covering the MNI152 box: a tiny volume that still lands on the glass brain.
MNI_AFFINE = np.array([[12.0, 0, 0, -90], [0, 12.0, 0, -126], [0, 0, 12.0, -72], [0, 0, 0, 1]])
MNI_SHAPE = (16, 19, 16)


def make_run(root: Path, *, model: str = "NeuroSSM", dataset: str = "SYNTHETIC", n_classes: int = 2,
             n_scans: int = 24, folds: int = 2, epochs: int = 6, analysis: bool = True, seed: int = 0,
             class_names: list[str] | None = None) -> Path:
    """A finished run folder in the layout of ``neurossm.training.results`` (torch-style histories
    when ``epochs`` > 0, an FC_LR-style history otherwise)."""
    rng = np.random.default_rng(seed)
    names = class_names or [f"class{k}" for k in range(n_classes)]
    run = root / "Results" / dataset / model / "run-1"
    labels = np.arange(n_scans) % n_classes
    fold_of = (np.arange(n_scans) // n_classes) % folds
    logits = rng.standard_normal((n_scans, n_classes)) + 2.0 * np.eye(n_classes)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = pd.DataFrame({"scan_id": [f"scan{i:02d}" for i in range(n_scans)],
                         "subject_id": [f"sub{i // 2:02d}" for i in range(n_scans)],
                         "label": labels, "pred": probs.argmax(axis=1)})
    for k, c in enumerate(names):
        pred[f"prob_{c}"] = probs[:, k]
    pred["seed"], pred["fold"] = 0, fold_of
    rows = []
    for f in range(folds):
        sel = fold_of == f
        m = classification_metrics(labels[sel], probs[sel], n_classes)
        rows.append({"seed": 0, "fold": f, **m})
        d = run / "seed_0" / f"fold_{f}"
        write_json(d / "metrics.json", {"seed": 0, "fold": f, "test": m})
        write_dataframe(d / "predictions.csv", pred[sel].drop(columns=["seed", "fold"]))
        if epochs:
            e = np.arange(1, epochs + 1)
            hist = pd.DataFrame({"epoch": e, "train_loss": 1.0 / e + 0.05 * f, "train_accuracy": 1 - 0.5 / e,
                                 "lr": 1e-3, "val_loss": 1.1 / e + 0.1, "val_accuracy": 0.9 - 0.4 / e,
                                 "val_balanced_accuracy": 0.9 - 0.4 / e, "selected": (e == epochs - 1).astype(float)})
        else:
            hist = pd.DataFrame({"C": [0.1, 1.0], "val_balanced_accuracy": [0.7, 0.8]})
        write_dataframe(d / "history.csv", hist)
    table = pd.DataFrame(rows)
    write_dataframe(run / "fold_metrics.csv", table)
    write_dataframe(run / "predictions.csv", pred)
    write_json(run / "summary.json", {
        "dataset": dataset, "model": model, "run_dir": str(run), "n_folds_done": folds, "n_folds_expected": folds,
        "complete": True, "test": {k: mean_std(table[k]) for k in METRICS},
        "per_seed": {"0": {k: mean_std(table[k]) for k in METRICS}}})
    write_json(run / "config.json", {
        "options": {"dataset": dataset, "model": model, "seeds": [0], "folds": folds, "analysis": analysis},
        "model": {"name": model, "kind": "torch" if epochs else "features", "config": {"d_model": 32}},
        "training": {"epochs": epochs, "lr": 1e-3, "crop_length": 50},
        "dataset": {"name": dataset, "atlas": "synthetic", "n_rois": N_ROIS, "class_names": names, "target": "class"},
        "versions": {"neurossm": "0.1.0"}})
    write_json(run / "dataset.json", {
        "dataset": dataset, "source": "synthetic(seed=0)", "atlas": "synthetic", "n_scans": n_scans,
        "n_subjects": n_scans // 2, "n_rois": N_ROIS, "class_names": names,
        "scans_per_class": {c: int((labels == k).sum()) for k, c in enumerate(names)},
        "n_times": {"min": 50, "median": 60.0, "max": 70}, "crop_length": 50, "n_dropped": 3,
        "dropped_by_reason": {"too short": 2, "<NaN values>": 1},
        "dropped": [{"item": "scan90", "reason": "too short"}, {"item": "scan91", "reason": "too short"},
                    {"item": "<script>alert(1)</script>", "reason": "<NaN values>"}],
        "ground_truth": {"signal_form": "diff", "scale": 2, "signal_rois": {names[0]: [0, 1]}}})
    return run


def make_cpa(root: Path, dataset: str = "SYNTHETIC", n_classes: int = 2, n_per_class: int = 4, seed: int = 0) -> Path:
    """``subj_*.npz`` in the CPA file schema (neurossm.explain.files) under ``root/Explainability/<dataset>/seed_0/fold_<k>/``."""
    rng = np.random.default_rng(seed)
    out = root / "Explainability" / dataset
    names = np.array([f"class{k}" for k in range(n_classes)])
    for i in range(n_classes * n_per_class):
        c = i % n_classes
        w = rng.random(len(PATHWAYS)) + 2.0 * (np.array(PATHWAYS) == "diff_s2")
        w /= w.sum()
        maps = rng.random((len(PATHWAYS), N_ROIS))
        maps /= maps.sum(axis=1, keepdims=True)
        write_npz(out / "seed_0" / f"fold_{i % 2}" / f"subj_scan{i:02d}.npz",
                  scan_id=np.str_(f"scan{i:02d}"), subject_id=np.str_(f"sub{i:02d}"), label=np.int64(c),
                  pred=np.int64(c), probs=np.eye(n_classes)[c], class_names=names, pathway_names=np.array(PATHWAYS),
                  pathway_maps=maps, pathway_importance=w, importance_fallback=np.bool_(i == 0),
                  logit_full=np.float64(2.0), logit_ablated=2.0 - w, cpa_score=w @ maps,
                  dominant_pathway=(w[:, None] * maps).argmax(axis=0), target=np.int64(c),
                  target_mode=np.str_("true"), atlas=np.str_("synthetic"), n_rois=np.int64(N_ROIS))
    return out


def make_reference(root: Path, dataset: str = "SYNTHETIC", classes=("class0", "class1")) -> Path:
    """``summary.csv`` and ``maps/<dataset>/<class>/*.nii.gz`` on a coarse MNI grid."""
    rng = np.random.default_rng(3)
    for k, c in enumerate(classes):
        d = root / "maps" / dataset / c
        d.mkdir(parents=True)
        cpa = np.zeros(MNI_SHAPE, np.float32)
        cpa[4:7, 6:10, 6:10] = 0.02 + 0.01 * k
        cpa[9:12, 6:10, 6:10] = 0.01
        ref = np.zeros(MNI_SHAPE, np.float32)
        ref[4:12, 8:12, 7:11] = rng.normal(size=(8, 4, 4)) * 3
        for name, data in (("cpa_score", cpa), ("neurosynth_reference_score", ref),
                           ("cpa_score_top25_mask", (cpa > 0.015).astype(np.uint8))):
            nib.save(nib.Nifti1Image(data, MNI_AFFINE), str(d / f"{name}.nii.gz"))
    pd.DataFrame({"dataset": dataset, "class": list(classes), "terms": ["motor", "working memory"],
                  "n_studies": [120, 95], "n_rois": N_ROIS, "partial_r": [0.41, -0.05],
                  "p_perm": [0.004, 0.61], "dice_top25": [0.5, 0.0], "n_scans": [4, 4],
                  "status": ["ok", "ok"]}).to_csv(root / "summary.csv", index=False)
    return root


@pytest.fixture
def fake():
    """The builders above, for tests that need their own variant."""
    return SimpleNamespace(run=make_run, cpa=make_cpa, reference=make_reference)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    """One report with every section filled (built once: the brain maps take a few seconds)."""
    from neurossm.report import build_report

    root = tmp_path_factory.mktemp("full")
    run = make_run(root)
    extra = make_run(root, model="FC_LR", epochs=0, analysis=False, seed=1)
    cpa = make_cpa(root / "Analysis")
    ref = make_reference(root / "Analysis" / "Explainability_Results")
    path = build_report(run, cpa_dir=cpa, reference_dir=ref, extra_runs=[extra])
    return path, path.read_text(encoding="utf-8")
