"""The report finds a run's CPA files wherever its --analysis-root was, and says when one is damaged
(docs/reliability.md)."""

from __future__ import annotations

import logging

from neurossm.io import read_json, write_json
from neurossm.report import build_report


def test_the_report_finds_cpa_files_under_another_analysis_root(tmp_path, fake):
    run = fake.run(tmp_path)
    elsewhere = tmp_path / "elsewhere" / "A2"
    fake.cpa(elsewhere)
    config = read_json(run / "config.json")
    write_json(run / "config.json", {**config, "analysis": {"root": str(elsewhere)}})
    html = build_report(run).read_text()
    assert "No CPA outputs found" not in html and "8 CPA files from" in html


def test_a_damaged_cpa_file_is_named_in_the_report_and_the_log(tmp_path, fake, caplog):
    run = fake.run(tmp_path)
    cpa = fake.cpa(tmp_path / "cpa")
    bad = sorted(cpa.rglob("subj_*.npz"))[2]
    bad.write_bytes(bad.read_bytes()[:100])
    html = build_report(run, cpa_dir=cpa).read_text()  # what `neurossm report RUN --cpa-dir DIR` runs
    assert bad.name in html and "1 of 8 CPA file(s) are damaged" in html
    assert bad.name in "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
