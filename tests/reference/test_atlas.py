import nibabel as nib
import numpy as np
import pytest

from neurossm.atlas import AAL3_EMPTY_VALUES, Atlas, load_atlas, read_label_table
from neurossm.errors import ConfigError, DataFormatError, DataNotFoundError


def test_roi_order_follows_label_values_not_positions(tmp_path):
    data = np.zeros((4, 4, 4), dtype=np.uint8)
    data[0, 0, 0] = 9
    data[1, :, :] = 2
    data[3, 3, :2] = 5
    img = nib.Nifti1Image(data, np.eye(4))
    # Table order differs from value order, and 7 (listed) is absent from the image.
    atlas = Atlas("t", img, np.array([5, 9, 2, 7]), ["five", "nine", "two", "seven"])
    assert atlas.roi_volumes().tolist() == [2, 1, 16, 0]
    out = np.asarray(atlas.to_image(np.array([50.0, 90.0, 20.0, 70.0])).dataobj)
    assert out[0, 0, 0] == 90.0 and out[1, 2, 3] == 20.0 and out[3, 3, 1] == 50.0
    assert not np.any(out == 70.0)


def test_to_image_dtype_affine_background(tiny_atlas_img):
    img, values = tiny_atlas_img
    atlas = Atlas("tiny", img, values, [f"r{v}" for v in values])
    vec = np.linspace(0.25, 3.5, atlas.n_rois)
    out = atlas.to_image(vec)
    assert out.get_data_dtype() == np.float32 and out.dataobj.dtype == np.float32
    np.testing.assert_allclose(out.affine, img.affine)
    data = np.asarray(out.dataobj)
    assert data[12, 0, 0] == 0 and data.shape == img.shape
    assert np.isclose(data[5, 6, 6], vec[0])  # the first ROI (value 2) keeps its fraction
    mask = atlas.to_image((vec > 2).astype(np.uint8), dtype=np.uint8)
    assert mask.get_data_dtype() == np.uint8 and set(np.unique(mask.dataobj)) <= {0, 1}
    with pytest.raises(DataFormatError, match="expected \\(13,\\)"):
        atlas.to_image(np.zeros(5))


def test_to_image_survives_save_roundtrip(tmp_path, tiny_atlas_img):
    img, values = tiny_atlas_img
    atlas = Atlas("tiny", img, values, [f"r{v}" for v in values])
    path = tmp_path / "m.nii.gz"
    atlas.to_image(np.full(atlas.n_rois, 0.5)).to_filename(path)
    back = nib.load(path)
    assert back.get_data_dtype() == np.float32
    assert np.isclose(back.get_fdata().max(), 0.5)


def test_read_label_table_aal3_style(tmp_path):
    path = tmp_path / "AAL3.txt"
    path.write_text("1 Precentral_L\n2 Precentral_R\n34 Insula_R\n37 Cingulate_Mid_L\n169 Raphe_D 169\n")
    values, names = read_label_table(path)
    assert values.tolist() == [1, 2, 34, 37, 169]
    assert names == ["Precentral_L", "Precentral_R", "Insula_R", "Cingulate_Mid_L", "Raphe_D"]


@pytest.mark.parametrize("text", [
    "index\tname\tcolor\n0\tBackground\t#000000\n4\tA\t#ff0000\n8\tB\t#00ff00\n",
    "index,name\n4,A\n8,B\n",
    "FAG\tA\t4\nFAD\tB\t8\n",
    "4\t7Networks_LH_A\t120\t18\t134\t0\n8\tB\t1\t2\t3\t0\n",
])
def test_read_label_table_lut_and_other_layouts(tmp_path, text):
    path = tmp_path / "lut.tsv"
    path.write_text(text)
    values, names = read_label_table(path)
    assert values.tolist() == [4, 8]
    assert names[1] == "B"


def test_read_label_table_errors(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("foo,bar\n1,x\n")
    with pytest.raises(DataFormatError, match="value column"):
        read_label_table(path)
    path.write_text("1 a\n1 b\n")
    with pytest.raises(DataFormatError, match="more than once"):
        read_label_table(path)


def test_load_atlas_from_path_with_and_without_labels(ref_atlas_files):
    nii, labels, values = ref_atlas_files
    atlas = load_atlas(nii, labels=labels)
    assert atlas.values.tolist() == values.tolist() and atlas.names[0] == "roi_2_name"
    bare = load_atlas(nii)
    assert bare.values.tolist() == sorted(values.tolist()) and bare.names[-1] == "roi_99"


def test_aal3_has_166_rois_without_the_empty_labels():
    atlas = load_atlas("aal3v2")
    assert atlas.n_rois == 166
    assert not set(AAL3_EMPTY_VALUES) & set(atlas.values.tolist())
    assert atlas.roi_volumes().min() > 0


def test_schaefer_offline_error_names_the_files(monkeypatch, tmp_path):
    import nilearn.datasets

    def offline(**kwargs):
        raise OSError("no network")

    monkeypatch.setattr(nilearn.datasets, "fetch_atlas_schaefer_2018", offline)
    with pytest.raises(DataNotFoundError, match="Schaefer2018_400Parcels_7Networks_order_FSLMNI152_2mm.nii.gz"):
        load_atlas("schaefer400", data_dir=tmp_path)


def test_check_n_rois(tiny_atlas_img):
    from neurossm.atlas import check_atlas_n_rois

    img, values = tiny_atlas_img
    with pytest.raises(ConfigError, match="400 ROIs but atlas tiny has 13"):
        check_atlas_n_rois(Atlas("tiny", img, values, [str(v) for v in values]), 400, "x.npz")
