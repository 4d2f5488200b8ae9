import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from neurossm.errors import DataNotFoundError
from neurossm.reference import neurosynth as ns


def _files_like(folder, src):
    folder.mkdir(parents=True, exist_ok=True)
    for name in ns.NEUROSYNTH_FILES.values():
        shutil.copy(src / name, folder / name)
    return folder


def test_check_file_detects_zero_byte_and_truncation(neurosynth_fixture_dir, tmp_path):
    assert ns.check_folder(neurosynth_fixture_dir) == {}
    coords = neurosynth_fixture_dir / ns.NEUROSYNTH_FILES["coordinates"]
    features = neurosynth_fixture_dir / ns.NEUROSYNTH_FILES["features"]
    empty = tmp_path / coords.name
    empty.write_bytes(b"")
    assert "zero bytes" in ns.check_file(empty, "coordinates")
    cut = tmp_path / "cut.tsv.gz"
    cut.write_bytes(coords.read_bytes()[: coords.stat().st_size // 2])
    assert "truncated" in ns.check_file(cut, "coordinates")
    cut_npz = tmp_path / "cut.npz"
    cut_npz.write_bytes(features.read_bytes()[:-40])
    assert ns.check_file(cut_npz, "features") is not None
    wrong = tmp_path / "wrong.tsv.gz"
    with gzip.open(wrong, "wt") as fh:
        fh.write("a\tb\n1\t2\n")
    assert "lacks column" in ns.check_file(wrong, "coordinates")


def test_bad_cache_files_are_deleted_and_refetched(neurosynth_fixture_dir, tmp_path, monkeypatch):
    cache = _files_like(tmp_path / "cache", neurosynth_fixture_dir)
    (cache / ns.NEUROSYNTH_FILES["metadata"]).write_bytes(b"")
    fetched = []

    def fake_download(folder, names):
        fetched.extend(names)
        for name in names:
            shutil.copy(neurosynth_fixture_dir / name, folder / name)

    monkeypatch.setattr(ns, "_download", fake_download)
    files = ns.resolve_files(cache_dir=cache)
    assert fetched == [ns.NEUROSYNTH_FILES["metadata"]]
    assert ns.check_folder(cache) == {} and files["metadata"].stat().st_size > 0


def test_offline_failed_download_leaves_no_file_and_lists_all(tmp_path, monkeypatch):
    import nimare.extract

    def offline_fetch(data_dir, **kwargs):
        # What NiMARE does offline: opens the destination, then urlopen fails.
        (Path(data_dir) / "neurosynth").mkdir(parents=True, exist_ok=True)
        for name in ns.NEUROSYNTH_FILES.values():
            (Path(data_dir) / "neurosynth" / name).write_bytes(b"")
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(nimare.extract, "fetch_neurosynth", offline_fetch)
    cache = tmp_path / "cache"
    with pytest.raises(DataNotFoundError) as info:
        ns.resolve_files(cache_dir=cache)
    for name in ns.NEUROSYNTH_FILES.values():
        assert name in str(info.value)
    assert str(cache) in str(info.value)
    assert [p for p in cache.iterdir()] == []  # the staging folder is gone, no zero-byte file kept


def test_user_files_are_reported_never_deleted(neurosynth_fixture_dir, tmp_path):
    folder = _files_like(tmp_path / "mine", neurosynth_fixture_dir)
    (folder / ns.NEUROSYNTH_FILES["vocabulary"]).write_bytes(b"")
    with pytest.raises(DataNotFoundError, match="zero bytes"):
        ns.resolve_files(files_dir=folder)
    assert (folder / ns.NEUROSYNTH_FILES["vocabulary"]).exists()


def test_fixture_to_dataset_selection_and_mkda(neurosynth_fixture_dir, tmp_path, ref_atlas_files):
    from neurossm.atlas import load_atlas
    from neurossm.reference.scoring import roi_means

    files = ns.resolve_files(files_dir=neurosynth_fixture_dir)
    cache = tmp_path / "cache"
    dset = ns.load_dataset(files, cache)
    assert len(dset.ids) == 20 and (cache / ns.DATASET_CACHE_NAME).is_file()
    again = ns.load_dataset(files, cache)  # from the data-only cache
    assert list(again.ids) == list(dset.ids)

    sel = ns.select_studies(dset, ["ACTIVATIONS", "no such term"])
    assert sel.labels == ["terms_abstract_tfidf__activations"] and sel.missing == ["no such term"]
    assert len(sel.selected) == 8 and len(sel.selected) + len(sel.unselected) == 20
    either = ns.select_studies(dset, ["activations", "acquisition"])
    assert set(sel.selected) <= set(either.selected)  # any term, not every term

    img = ns.mkda_chi2_map(dset, sel)
    assert img.get_data_dtype() == np.float32 and img.shape == (91, 109, 91)
    nii, labels, values = ref_atlas_files
    atlas = load_atlas(nii, labels)
    ref = roi_means(img, atlas, ns.dataset_mask(dset))
    assert ref.shape == (13,) and np.isnan(ref[-1]) and np.all(np.isfinite(ref[:-1]))
    np.testing.assert_array_equal(ref, roi_means(ns.mkda_chi2_map(dset, sel), atlas, ns.dataset_mask(dset)))
