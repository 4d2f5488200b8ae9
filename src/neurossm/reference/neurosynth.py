"""Neurosynth v7 through NiMARE: fetch, cache, validate, load, select studies, run MKDA chi-square.

The four Neurosynth v7 files (abstract term tf-idf annotations) keep the names NiMARE gives them.
They come either from a cache folder (downloaded on first use with
``nimare.extract.fetch_neurosynth`` and reused) or from a folder the user fills by hand
(``--neurosynth-files``). A file is checked before it is parsed: zero-byte files (NiMARE leaves
one behind when a download fails), truncated gzip streams (read through to the CRC) and broken
zip archives are reported, and in the cache they are deleted and fetched again.

References
----------
Yarkoni, T. et al. (2011). Large-scale automated synthesis of human functional neuroimaging
data. Nature Methods 8, 665-670.
Wager, T. D. et al. (2007). Meta-analysis of functional neuroimaging data: current and future
directions. SCAN 2, 150-158 (MKDA).
Salo, T. et al. (2023). NiMARE: Neuroimaging Meta-Analysis Research Environment. Aperture
Neuro 3.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import DataFormatError, DataNotFoundError
from ..io import read_json, to_json, write_json, write_npz
from ..log import get_logger

log = get_logger(__name__)

NEUROSYNTH_FILES: dict[str, str] = {
    "coordinates": "data-neurosynth_version-7_coordinates.tsv.gz",
    "metadata": "data-neurosynth_version-7_metadata.tsv.gz",
    "features": "data-neurosynth_version-7_vocab-terms_source-abstract_type-tfidf_features.npz",
    "vocabulary": "data-neurosynth_version-7_vocab-terms_vocabulary.txt",
}
DATASET_CACHE_NAME = "neurosynth_v7_terms-abstract-tfidf_dataset.npz"
# The pickled cache of neurossm 0.1: never loaded (a pickle runs code), deleted when found.
LEGACY_CACHE_NAME = "neurosynth_v7_terms-abstract-tfidf_dataset.pkl.gz"
_CACHE_FORMAT = 2
_FRAMES = ("coordinates", "metadata", "annotations", "images", "texts")
TERM_THRESHOLD = 0.001
_REQUIRED_COLUMNS = {"coordinates": {"id", "x", "y", "z"}, "metadata": {"id"}}
_NPZ_MEMBERS = {"data.npy", "indices.npy", "indptr.npy", "shape.npy"}


def default_cache_dir() -> Path:
    """``$NEUROSSM_NEUROSYNTH_DIR``, else ``$XDG_CACHE_HOME/neurossm/neurosynth`` (``~/.cache/...``)."""
    env = os.environ.get("NEUROSSM_NEUROSYNTH_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "neurossm" / "neurosynth"


def check_file(path: Path, role: str) -> str | None:
    """Why ``path`` cannot be used as the Neurosynth ``role`` file, or ``None`` if it can.

    Reads gzip files through to the end, so a truncated download fails its CRC/EOF check here
    instead of half-parsing later.
    """
    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "zero bytes (an interrupted download)"
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                header = fh.readline().decode("utf-8", errors="replace").rstrip("\n").split("\t")
                while fh.read(1 << 20):
                    pass
            missing = _REQUIRED_COLUMNS.get(role, set()) - set(header)
            if missing:
                return f"header {header[:8]} lacks column(s) {sorted(missing)}"
        elif path.suffix == ".npz":
            if not zipfile.is_zipfile(path):
                return "not a zip archive (truncated or not an .npz)"
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
                if bad is not None:
                    return f"archive member {bad} fails its CRC check (truncated download)"
                members = set(zf.namelist())
            if not _NPZ_MEMBERS <= members:
                return f"holds {sorted(members)}; expected a scipy sparse matrix ({sorted(_NPZ_MEMBERS)})"
        else:
            text = path.read_bytes().decode("utf-8")
            if not text.strip():
                return "holds no term"
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        return f"unreadable ({type(exc).__name__}: {exc}); truncated or corrupted"
    return None


def check_folder(folder: Path) -> dict[str, str]:
    """``{file name: problem}`` for every Neurosynth file of ``folder`` that cannot be used."""
    problems = {}
    for role, name in NEUROSYNTH_FILES.items():
        problem = check_file(folder / name, role)
        if problem:
            problems[name] = problem
    return problems


def _placement_message(folder: Path, problems: dict[str, str], intro: str) -> str:
    lines = [intro, f"Place these Neurosynth v7 files (names as NiMARE gives them) in {folder}:"]
    for name in NEUROSYNTH_FILES.values():
        state = problems.get(name, "ok")
        lines.append(f"  {folder / name}  [{state}]")
    lines.append(
        "On a machine with internet access, nimare.extract.fetch_neurosynth(data_dir=DIR, version='7', "
        "source='abstract', vocab='terms', type='tfidf', return_type='files') downloads them into "
        "DIR/neurosynth/; copy them over, or point --neurosynth-files at that folder."
    )
    return "\n".join(lines)


def _download(cache_dir: Path, names: list[str]) -> None:
    """Fetch the Neurosynth files into a staging folder, then move the good ones into the cache.

    NiMARE writes straight into its destination (an empty file first, then the bytes), so it
    never writes into the cache itself: a failed download cannot leave a bad file there.
    """
    from nimare.extract import fetch_neurosynth

    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=cache_dir))
    try:
        log.info("downloading Neurosynth v7 (%d file(s)) into %s", len(names), cache_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            fetch_neurosynth(data_dir=str(staging), version="7", overwrite=True, return_type="files",
                             source="abstract", vocab="terms", type="tfidf")
        for role, name in NEUROSYNTH_FILES.items():
            src = staging / "neurosynth" / name
            if name in names and check_file(src, role) is None:
                os.replace(src, cache_dir / name)
    except Exception as exc:  # urllib raises URLError, HTTPError, socket errors, ...
        log.warning("Neurosynth download failed: %s", exc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def resolve_files(files_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                  download: bool = True) -> dict[str, Path]:
    """The four Neurosynth files, checked; fetched into the cache when missing or broken.

    Parameters
    ----------
    files_dir : path, optional
        A folder the user filled by hand. Its files are checked and reported, never deleted or
        downloaded over.
    cache_dir : path, optional
        Download cache (default ``default_cache_dir()``), used when ``files_dir`` is not given.
    download : bool
        Try to download missing or broken cache files.

    Raises
    ------
    DataNotFoundError
        A file is missing, empty or corrupted and could not be fetched; the message lists every
        file and where to place it.
    """
    if files_dir is not None:
        folder = Path(files_dir).expanduser()
        problems = check_folder(folder)
        if problems:
            raise DataNotFoundError(_placement_message(
                folder, problems, f"--neurosynth-files {folder}: {len(problems)} Neurosynth file(s) cannot be used."))
        return {role: folder / name for role, name in NEUROSYNTH_FILES.items()}

    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    problems = check_folder(folder)
    if problems:
        for name, problem in problems.items():
            if problem != "missing":
                log.warning("Neurosynth cache file %s is %s; deleting it to fetch it again", folder / name, problem)
                (folder / name).unlink()
        if download:
            _download(folder, list(problems))
        problems = check_folder(folder)
        if problems:
            how = "could not be downloaded" if download else "are not cached (download disabled)"
            raise DataNotFoundError(_placement_message(
                folder, problems, f"Neurosynth v7 file(s) {how}: {', '.join(problems)}."))
    return {role: folder / name for role, name in NEUROSYNTH_FILES.items()}


def _fingerprint(files: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for role in sorted(files):
        digest.update(role.encode())
        with open(files[role], "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_dataset(files: dict[str, Path], cache_dir: str | os.PathLike | None = None):
    """A NiMARE ``Dataset`` of the Neurosynth files, converted once and cached.

    The cache holds data only: the Dataset's tables as plain arrays in one ``.npz`` (read with
    ``allow_pickle=False``) beside a JSON sidecar with the SHA-256 of the source files. Nothing in
    the cache can run code, so a cache folder someone else can write to is no risk (NiMARE's own
    ``Dataset.save`` is a pickle: the cache of neurossm 0.1 was one, and is deleted unread). A
    sidecar that does not match, or a cache that cannot be read, makes it convert again.
    """
    from nimare.io import convert_neurosynth_to_dataset

    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache = folder / DATASET_CACHE_NAME
    sidecar = folder / (DATASET_CACHE_NAME + ".json")
    _remove_legacy_cache(folder)
    fingerprint = _fingerprint(files)
    if cache.is_file() and sidecar.is_file():
        try:
            meta = read_json(sidecar)
            if meta.get("sha256") == fingerprint and meta.get("format") == _CACHE_FORMAT:
                log.info("loading the cached Neurosynth Dataset %s", cache)
                return _read_cache(cache)
        except Exception as exc:  # a cache that cannot be read is rebuilt, never trusted
            log.warning("cached Neurosynth Dataset %s unreadable (%s); converting again", cache, exc)
    log.info("converting Neurosynth v7 into a NiMARE Dataset (once; cached in %s)", folder)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            dset = convert_neurosynth_to_dataset(
                coordinates_file=str(files["coordinates"]),
                metadata_file=str(files["metadata"]),
                annotations_files={"features": str(files["features"]), "vocabulary": str(files["vocabulary"])},
                target="mni152_2mm",
            )
    except Exception as exc:
        raise DataFormatError(
            f"{files['coordinates'].parent}: Neurosynth files could not be converted ({exc}); expected the "
            "Neurosynth v7 files with matching metadata rows and feature-matrix rows"
        ) from exc
    try:
        _write_cache(cache, dset)
        write_json(sidecar, {"sha256": fingerprint, "format": _CACHE_FORMAT,
                             "files": {k: v.name for k, v in files.items()}})
    except OSError as exc:
        log.warning("could not cache the Neurosynth Dataset in %s (%s); it will be converted again next run", folder, exc)
    return dset


def _remove_legacy_cache(folder: Path) -> None:
    for path in (folder / LEGACY_CACHE_NAME, folder / (LEGACY_CACHE_NAME + ".json")):
        if path.is_file():
            log.warning("%s: a pickled cache of an earlier neurossm; pickles run code when loaded, so it is deleted "
                        "unread and the Dataset is converted again (cached as data only)", path)
            path.unlink()


def _write_cache(path: Path, dset) -> None:
    """The Dataset's space, ids and tables as plain arrays: text columns as unicode (with a null
    mask), numbers as their dtype, and the column order in a JSON member."""
    arrays: dict[str, np.ndarray] = {"space": np.str_(dset.space), "ids": np.asarray(dset.ids, dtype=str)}
    layout = {}
    for name in _FRAMES:
        frame = getattr(dset, name).reset_index(drop=True)
        layout[name] = [str(c) for c in frame.columns]
        for i, column in enumerate(frame.columns):
            values = frame[column]
            key = f"{name}.{i}"
            if _is_numeric(values):
                arrays[key] = values.to_numpy()
            else:
                missing = values.isna().to_numpy()
                arrays[key] = np.asarray(["" if m else str(v) for v, m in zip(values, missing)], dtype=str)
                if missing.any():
                    arrays[key + ".missing"] = missing
    arrays["layout"] = np.str_(to_json(layout))
    write_npz(path, **arrays)


def _read_cache(path: Path):
    """The Dataset written by :func:`_write_cache` (no pickle is read)."""
    import json

    import pandas as pd
    from nimare.dataset import Dataset

    with np.load(path, allow_pickle=False) as npz:
        layout = json.loads(str(npz["layout"]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NiMARE's deprecation notice of Dataset
            dset = Dataset({}, target=str(npz["space"]))
        dset._ids = npz["ids"]  # NiMARE's private setter of the read-only ``ids``
        for name in _FRAMES:
            columns = {}
            for i, column in enumerate(layout[name]):
                values = npz[f"{name}.{i}"]
                if values.dtype.kind == "U":
                    values = values.astype(object)
                    if f"{name}.{i}.missing" in npz.files:
                        values[npz[f"{name}.{i}.missing"]] = None
                columns[column] = values
            setattr(dset, name, pd.DataFrame(columns, columns=layout[name]))
    return dset


def _is_numeric(values) -> bool:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return is_numeric_dtype(values) or is_bool_dtype(values)


@dataclass
class StudySelection:
    """The studies a class' terms select, and how the terms matched the vocabulary."""

    terms: list[str]            # requested terms
    labels: list[str]           # matched annotation columns
    missing: list[str]          # requested terms absent from the vocabulary
    selected: list[str]         # study ids with weight >= threshold for any matched term
    unselected: list[str]       # every other study id


def term_columns(dset) -> dict[str, str]:
    """``{lower-case term: annotation column}`` for every term annotation of ``dset``."""
    out = {}
    for col in dset.annotations.columns:
        if "__" in col:
            out.setdefault(col.split("__", 1)[1].strip().lower(), col)
            out.setdefault(col.lower(), col)
    return out


def select_studies(dset, terms: list[str], threshold: float = TERM_THRESHOLD) -> StudySelection:
    """Studies whose tf-idf weight reaches ``threshold`` for any of ``terms`` (case-insensitive).

    NiMARE's ``get_studies_by_label`` requires *every* label; a class described by several
    terms (``emotion``, ``faces``) wants any of them, so the union is taken here.
    """
    columns = term_columns(dset)
    labels, missing = [], []
    for term in terms:
        col = columns.get(term.strip().lower())
        (labels if col else missing).append(col or term)
    labels = list(dict.fromkeys(labels))
    ann = dset.annotations
    ids = ann["id"].astype(str).to_numpy()
    if labels:
        weights = ann[labels].to_numpy(dtype=float)
        hit = np.nanmax(weights, axis=1) >= threshold
    else:
        hit = np.zeros(len(ids), dtype=bool)
    # Only studies with coordinates take part in a coordinate-based meta-analysis.
    with_coords = set(dset.coordinates["id"].astype(str))
    selected = [i for i, h in zip(ids, hit) if h and i in with_coords]
    unselected = [i for i, h in zip(ids, hit) if not h and i in with_coords]
    return StudySelection(list(terms), labels, missing, sorted(selected), sorted(unselected))


def mkda_chi2_map(dset, selection: StudySelection) -> nib.Nifti1Image:
    """``z_desc-association`` of NiMARE's ``MKDAChi2``: selected studies against all others.

    Returned as a float32 image on the Dataset's mask grid (MNI152 2 mm), 0 outside the mask.
    MKDA chi-square is analytic (no sampling), so the map is the same on every run.
    """
    from nimare.meta.cbma.mkda import MKDAChi2

    if not selection.selected or not selection.unselected:
        raise DataFormatError(
            f"terms {selection.terms}: {len(selection.selected)} selected and {len(selection.unselected)} other "
            "studies; MKDA chi-square needs both groups non-empty"
        )
    meta = MKDAChi2()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = meta.fit(dset.slice(selection.selected), dset.slice(selection.unselected))
    values = np.asarray(result.get_map("z_desc-association", return_type="array"), dtype=np.float32).ravel()
    mask_img = dset.masker.mask_img
    mask = np.asanyarray(mask_img.dataobj) > 0
    data = np.zeros(mask.shape, dtype=np.float32)
    data[mask] = values
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    return nib.Nifti1Image(data, mask_img.affine, header=header)


def dataset_mask(dset) -> nib.Nifti1Image:
    """The Dataset's brain mask as a uint8 0/1 image."""
    mask_img = dset.masker.mask_img
    data = (np.asanyarray(mask_img.dataobj) > 0).astype(np.uint8)
    header = nib.Nifti1Header()
    header.set_data_dtype(np.uint8)
    return nib.Nifti1Image(data, mask_img.affine, header=header)
