import os
import re

import numpy as np
import pytest

from neurossm.errors import DataNotFoundError
from neurossm.report import build_report
from neurossm.cli import main, standalone_parser
from neurossm.report.inputs import (
    RunData,
    default_cpa_dir,
    default_reference_dir,
    load_cpa,
)
from neurossm.pipeline import ExperimentOptions, run_experiment
from report_pages import SECTIONS, images, section

def test_full_report_has_every_section_filled(full_report):
    path, page = full_report
    assert path.name == "report.html"
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page, sid
    assert "section unavailable" not in page
    for sid in ("roc", "confusion", "learning-curves", "pathway-importance", "brain-maps"):
        assert images(section(page, sid)), f"{sid} has no figure"
    metrics = section(page, "metrics")
    assert "NeuroSSM" in metrics and "FC_LR" in metrics and "±" in metrics
    assert "FC_LR: no learning curve (closed-form model" in section(page, "learning-curves")
    ref = section(page, "reference-summary")
    for col in ("partial_r", "p_perm", "dice_top25", "terms", "working memory"):
        assert col in ref
    data = section(page, "dataset")
    assert "too short" in data and "scan90" in data


def test_every_image_decodes_and_is_not_blank(full_report):
    _, page = full_report
    found = images(page)
    # ROC, two confusion matrices, one learning curve, pathway importance, brain maps of 2 classes.
    assert len(found) == 7
    for img in found:
        assert img.width > 0 and img.height > 0
        assert np.asarray(img.convert("L"), dtype=np.float64).std() > 0


def test_page_is_self_contained_and_text_is_escaped(full_report):
    _, page = full_report
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page)
    assert "<script" not in page and "<link" not in page
    # A dropped item named like markup shows as text.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_missing_cpa_and_reference_say_so(tmp_path, fake):
    run = fake.run(tmp_path, analysis=False)
    page = build_report(run).read_text(encoding="utf-8")
    assert "No CPA outputs found" in section(page, "pathway-importance")
    assert "No reference maps found" in section(page, "brain-maps")
    assert "No reference summary found" in section(page, "reference-summary")
    assert "section unavailable" not in page
    assert not images(section(page, "brain-maps"))


def test_defaults_find_the_cpa_files_and_a_newer_reference(tmp_path, fake, monkeypatch):
    run_dir = fake.run(tmp_path, analysis=True)
    cpa = fake.cpa(tmp_path / "Analysis")
    ref = fake.reference(tmp_path / "Analysis" / "Explainability_Results")
    monkeypatch.chdir(tmp_path / "Results")  # not the run's working directory: found through the run folder
    run = RunData.read(run_dir)
    assert default_cpa_dir(run) == cpa
    assert load_cpa(cpa, run.seeds).n_files == 8
    assert load_cpa(cpa, [1]) is None
    assert default_reference_dir(run) == ref
    # A reference analysis older than the run scored another run's maps: left out.
    old = (run_dir / "summary.json").stat().st_mtime - 60
    for p in (ref / "summary.csv", ref / "maps" / "SYNTHETIC"):
        os.utime(p, (old, old))
    assert default_reference_dir(run) is None
    # A run without --analysis wrote no CPA files, whatever lies in Analysis/.
    assert default_cpa_dir(RunData.read(fake.run(tmp_path / "other", analysis=False))) is None


def test_a_broken_section_is_reported_and_the_rest_is_kept(tmp_path, fake, caplog):
    run = fake.run(tmp_path)
    pred = (run / "predictions.csv").read_text().replace("prob_class1", "prob_other")
    (run / "predictions.csv").write_text(pred)
    cpa = fake.cpa(tmp_path / "Analysis")
    next(cpa.rglob("*.npz")).write_bytes(b"not an npz")
    page = build_report(run, cpa_dir=cpa).read_text(encoding="utf-8")
    assert "section unavailable" in section(page, "roc")
    assert "section unavailable" in section(page, "pathway-importance")
    assert images(section(page, "learning-curves"))
    assert "±" in section(page, "metrics")
    assert any("unavailable" in r.getMessage() for r in caplog.records)


def test_several_classes_get_one_vs_rest_curves(tmp_path, fake):
    run = fake.run(tmp_path, n_classes=3, n_scans=30, folds=3, class_names=["MOTOR", "WM", "<LANG>"])
    page = build_report(run, out=tmp_path / "r.html", title="three classes").read_text(encoding="utf-8")
    assert "<title>three classes</title>" in page
    assert "One-vs-rest" in section(page, "roc")
    assert "&lt;LANG&gt;" in page and "<LANG>" not in page
    assert len(images(section(page, "confusion"))) == 1


def test_not_a_run_folder(tmp_path):
    with pytest.raises(DataNotFoundError, match="is it a run folder"):
        build_report(tmp_path)


def test_every_run_writes_its_report(tmp_path, tiny_dataset):
    opts = ExperimentOptions(dataset="CUSTOM", model="FC_LR", results_root=str(tmp_path / "Results"), seeds=(0,),
                             folds=3, run_name="r")
    run = run_experiment(opts, dataset=tiny_dataset).run_dir
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "no learning curve (closed-form model" in page
    assert "section unavailable" not in page
    assert len(images(page)) == 2  # ROC and confusion


def test_cli_rebuilds_with_explicit_folders(tmp_path, fake, capsys):
    run = fake.run(tmp_path)
    cpa = fake.cpa(tmp_path / "elsewhere")
    out = tmp_path / "out" / "page.html"
    argv = [str(run), "--cpa-dir", str(cpa), "--reference-dir", str(tmp_path / "none"), "--out", str(out)]
    assert main(argv, standalone_parser("report")) == 0
    assert capsys.readouterr().out.strip() == str(out)
    page = out.read_text(encoding="utf-8")
    assert images(section(page, "pathway-importance"))
    assert "No reference maps found in" in page
    assert not (run / "report.html").exists()


def test_a_run_stopped_before_its_first_fold_still_gets_a_page(tmp_path, fake):
    run = fake.run(tmp_path)
    for name in ("summary.json", "fold_metrics.csv", "predictions.csv"):
        (run / name).unlink()
    for history in run.rglob("history.csv"):
        history.unlink()
    page = build_report(run).read_text(encoding="utf-8")
    assert "no finished fold" in section(page, "metrics")
    assert "No test predictions yet" in section(page, "roc")
    assert "no history.csv" in section(page, "learning-curves")
    assert "scans per class" in section(page, "dataset")
