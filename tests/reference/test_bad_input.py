"""Bad input to the reference analysis through its real command (Analysis/run_cpa_analysis.py):
a clear message, exit code 2, and output folders that hold only this run's files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurossm.reference.maps import MAP_FILES

SCRIPT = Path(__file__).resolve().parents[2] / "Analysis" / "run_cpa_analysis.py"


def _script_main():
    spec = importlib.util.spec_from_file_location("run_cpa_analysis", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _argv(root, out, ns_dir, tmp_path, terms):
    return [str(a) for a in ("--root", root, "--out", out, "--neurosynth-files", ns_dir, "--neurosynth-dir",
                             tmp_path / "ns_cache", "--terms", terms, "--n-perm", 20, "--datasets", "SYN")]


@pytest.mark.slow  # a reference analysis (seconds)
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


def _stamp(path, **fields):
    """Add run-record fields to a CPA file, as a run writes them."""
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    data.update({k: np.array(v) for k, v in fields.items()})
    np.savez(path, **data)


def _two_runs(root):
    """SYN's files split between two runs."""
    for path in sorted((root / "SYN").rglob("subj_*.npz")):
        fold = int(path.parent.name.split("_")[1])  # fold 0 from run a, fold 1 from run b
        _stamp(path, run_id=f"run-{'ab'[fold]}", run_dir=f"/results/{'ab'[fold]}", model="NeuroSSM", seed=0,
               fold=fold)


@pytest.mark.slow  # a reference analysis (seconds)
def test_files_of_several_runs_are_refused_or_chosen(cpa_root, neurosynth_fixture_dir, tmp_path, terms_file,
                                                     errors):
    _two_runs(cpa_root)
    out = tmp_path / "out"
    argv = _argv(cpa_root, out, neurosynth_fixture_dir, tmp_path, terms_file)
    assert _script_main()(argv) == 2
    err = errors()
    assert "SYN: CPA files of 2 runs" in err and "run-a (6 files, /results/a)" in err and "--run" in err
    assert not out.exists()
    assert _script_main()([*argv, "--run", "run-a"]) == 0
    # run a explained fold 0: the alpha and nothing scans only
    assert set(pd.read_csv(out / "summary.csv").query("dataset == 'SYN'")["class"]) == {"alpha", "nothing"}


def test_duplicate_scan_ids_are_refused(cpa_root, neurosynth_fixture_dir, tmp_path, terms_file, errors):
    # Files without a run record (written before runs were recorded): a holdout file beside a fold's.
    src = cpa_root / "SYN" / "seed_0" / "fold_1" / "subj_001.npz"
    (cpa_root / "SYN" / "seed_0" / "subj_001.npz").write_bytes(src.read_bytes())
    out = tmp_path / "out"
    assert _script_main()(_argv(cpa_root, out, neurosynth_fixture_dir, tmp_path, terms_file)) == 2
    err = errors()
    assert "SYN: scan subj_001 has 2 CPA files for seed 0" in err and "seed_0/subj_001.npz" in err
    assert not out.exists()
