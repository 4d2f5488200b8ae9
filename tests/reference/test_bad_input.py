"""Bad input to the reference analysis through its real command (Analysis/run_cpa_analysis.py):
a clear message, exit code 2, and output folders that hold only this run's files."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest

from neurossm.reference.maps import MAP_FILES

SCRIPT = Path(__file__).resolve().parents[2] / "Analysis" / "run_cpa_analysis.py"


def _script_main():
    spec = importlib.util.spec_from_file_location("run_cpa_analysis", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture
def errors(caplog):
    logger = logging.getLogger("neurossm")
    logger.addHandler(caplog.handler)
    yield lambda: "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    logger.removeHandler(caplog.handler)


def _argv(root, out, ns_dir, tmp_path, terms):
    return [str(a) for a in ("--root", root, "--out", out, "--neurosynth-files", ns_dir, "--neurosynth-dir",
                             tmp_path / "ns_cache", "--terms", terms, "--n-perm", 20, "--datasets", "SYN")]


def test_nothing_scored_fails_naming_the_missing_terms(cpa_root, neurosynth_fixture_dir, tmp_path, errors):
    terms = tmp_path / "none.yaml"
    terms.write_text("alpha: [zzz one]\nbeta: [zzz two]\nnothing: []\nunknown_term: [zzz three]\n")
    out = tmp_path / "out"
    assert _script_main()(_argv(cpa_root, out, neurosynth_fixture_dir, tmp_path, terms)) == 2
    err = errors()
    assert "no class was scored against a reference" in err
    assert "Terms not in the Neurosynth vocabulary: zzz one, zzz three, zzz two" in err
    assert "SYN / nothing: class 'nothing' is mapped to no term on purpose" in err


@pytest.mark.slow
def test_rerun_into_the_same_out_leaves_only_this_runs_maps(cpa_root, neurosynth_fixture_dir, tmp_path,
                                                            terms_file):
    out = tmp_path / "out"
    main = _script_main()
    assert main(_argv(cpa_root, out, neurosynth_fixture_dir, tmp_path, terms_file)) == 0
    alpha = out / "maps" / "SYN" / "alpha"
    assert (alpha / MAP_FILES["reference"]).is_file()
    stray = alpha / "stray_from_an_older_version.nii.gz"
    stray.write_bytes(b"old")
    # Now alpha is mapped to no term: it is skipped, so it must have no reference map any more.
    changed = tmp_path / "changed.yaml"
    changed.write_text(terms_file.read_text().replace("alpha: [ACTIVATIONS]", "alpha: []"))
    assert main(_argv(cpa_root, out, neurosynth_fixture_dir, tmp_path, changed)) == 0
    assert sorted(p.name for p in alpha.iterdir()) == sorted([MAP_FILES["cpa"], MAP_FILES["dominant"],
                                                             MAP_FILES["cpa_mask"]])
    assert not list(out.rglob(".*.tmp")) and not list(out.rglob(".*.old"))
