import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neurossm.cli import main, standalone_parser
from neurossm.reference import neurosynth as ns
from neurossm.reference.maps import MAP_FILES


def _run(argv):
    return main([str(a) for a in argv], standalone_parser("reference"))


def _argv(cpa_root, out, neurosynth_fixture_dir, terms_file, tmp_path, *extra):
    return ["--root", cpa_root, "--out", out, "--neurosynth-files", neurosynth_fixture_dir,
            "--neurosynth-dir", tmp_path / "ns_cache", "--terms", terms_file, "--n-perm", 200, "--quiet", *extra]


def test_end_to_end_writes_maps_and_summary(cpa_root, neurosynth_fixture_dir, terms_file, tmp_path,
                                            ref_atlas_files):
    out = tmp_path / "results"
    assert _run(_argv(cpa_root, out, neurosynth_fixture_dir, terms_file, tmp_path)) == 0
    summary = pd.read_csv(out / "summary.csv")
    rows = {(r.dataset, r["class"]): r for _, r in summary.iterrows()}
    assert set(rows) == {("SYN", "alpha"), ("SYN", "beta"), ("SYN", "nothing"), ("SYN", "unknown_term"),
                         ("ONE", "alpha")}

    alpha = rows[("SYN", "alpha")]
    assert alpha.status == "ok" and alpha.n_scans == 3 and alpha.n_studies_selected == 8
    assert alpha.n_rois == 12 and alpha.n_rois_atlas == 13  # the out-of-brain ROI has no reference
    assert -1 <= float(alpha.partial_r) <= 1 and 1 / 201 <= float(alpha.perm_p) <= 1
    assert 0 <= float(alpha.dice_top25) <= 1
    assert alpha.covariates == "log_roi_volume;class_agnostic_map"
    assert alpha.pathway_names == "1=raw_s1;2=diff_s1;3=raw_s2"
    beta = rows[("SYN", "beta")]
    assert beta.status == "ok" and beta.terms_missing == "not_a_term"
    assert "no term on purpose" in rows[("SYN", "nothing")].reason
    assert rows[("SYN", "unknown_term")].status == "skipped"
    assert "vocabulary" in rows[("SYN", "unknown_term")].reason
    assert "dropped" in rows[("ONE", "alpha")].covariates

    atlas_img = nib.load(ref_atlas_files[0])
    class_dir = out / "maps" / "SYN" / "alpha"
    for key, name in MAP_FILES.items():
        img = nib.load(class_dir / name)
        expected = np.uint8 if key.endswith("mask") else np.float32
        assert img.get_data_dtype() == expected, name
        np.testing.assert_allclose(img.affine, atlas_img.affine)
        assert img.shape == atlas_img.shape and np.asarray(img.dataobj)[0, 0, 22] == 0
    mask = np.asarray(nib.load(class_dir / MAP_FILES["cpa_mask"]).dataobj)
    assert set(np.unique(mask)) == {0, 1}
    dominant = np.asarray(nib.load(class_dir / MAP_FILES["dominant"]).dataobj)
    assert set(np.unique(dominant)) <= {0.0, 1.0, 2.0, 3.0}
    # Skipped classes keep their CPA maps but get no reference map.
    assert (out / "maps" / "SYN" / "nothing" / MAP_FILES["cpa"]).is_file()
    assert not (out / "maps" / "SYN" / "nothing" / MAP_FILES["reference"]).exists()
    assert not list(out.rglob(".*.tmp*"))


@pytest.mark.slow
def test_results_identical_across_runs(cpa_root, neurosynth_fixture_dir, terms_file, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert _run(_argv(cpa_root, first, neurosynth_fixture_dir, terms_file, tmp_path)) == 0
    assert _run(_argv(cpa_root, second, neurosynth_fixture_dir, terms_file, tmp_path)) == 0  # cached Dataset
    assert (first / "summary.csv").read_text().replace(str(first), "") == \
        (second / "summary.csv").read_text().replace(str(second), "")
    name = "maps/SYN/beta/" + MAP_FILES["reference"]
    np.testing.assert_array_equal(nib.load(first / name).dataobj, nib.load(second / name).dataobj)


def test_offline_with_nothing_cached_fails_before_writing(cpa_root, terms_file, tmp_path, monkeypatch, caplog):
    import nimare.extract

    def offline_fetch(**kwargs):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(nimare.extract, "fetch_neurosynth", offline_fetch)
    out = tmp_path / "results"
    code = _run(["--root", cpa_root, "--out", out, "--neurosynth-dir", tmp_path / "empty_cache",
                 "--terms", terms_file])
    assert code != 0
    assert not out.exists()
    err = caplog.text
    for name in ns.NEUROSYNTH_FILES.values():
        assert name in err
    assert str(tmp_path / "empty_cache") in err


def test_roi_count_mismatch_is_a_clear_error(cpa_root, tmp_path, caplog):
    aal_root = tmp_path / "aal"
    for f in (cpa_root / "ONE").rglob("*.npz"):
        data = dict(np.load(f))
        data["atlas"] = np.array("aal3v2")
        target = aal_root / "PPMI" / "seed_0" / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        np.savez(target, **data)
    out = tmp_path / "results"
    assert _run(["--root", aal_root, "--out", out, "--no-download"]) == 2
    assert "n_rois=13 but atlas aal3v2 has 166" in caplog.text
    assert not out.exists()


def test_no_cpa_files_is_reported(tmp_path, caplog):
    (tmp_path / "root").mkdir()
    assert _run(["--root", tmp_path / "root", "--out", tmp_path / "o"]) == 2  # user error: nothing to score
    assert "no CPA files" in caplog.text
