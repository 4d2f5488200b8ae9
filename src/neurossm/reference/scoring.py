"""ROI-space scoring of a CPA class map against a Neurosynth reference map.

Partial correlation across ROIs, a residual-permutation p-value and the Dice overlap of the two
maps' top-25% ROIs, in plain numpy (pingouin, the usual source, is GPL).

Notes
-----
The partial correlation of ``x`` and ``y`` given covariates ``Z`` is the Pearson correlation of
the residuals of ``x`` and ``y`` after least-squares regression on ``[1, Z]``. The permutation
test shuffles the residuals of ``x`` (the CPA class map) across ROIs, which keeps ``y``'s
residuals, and so their relation to ``Z``, fixed (Freedman & Lane, 1983, in its simplest form);
``p = (1 + #{|r_perm| >= |r|}) / (1 + n_perm)`` never reports 0.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from ..atlas import Atlas
from ..errors import DataFormatError


def roi_means(img: nib.Nifti1Image, atlas: Atlas, mask_img: nib.Nifti1Image | None = None) -> np.ndarray:
    """``(R,)`` mean of ``img`` inside each atlas ROI (and inside ``mask_img``); NaN where empty.

    ``img`` is resampled onto the atlas grid with continuous interpolation (it is a
    continuous map), ``mask_img`` with nearest neighbour; nothing is resampled when the grids
    already match. Restricting to the mask keeps ROI parts outside the meta-analysis' brain mask
    (where the map is 0 by construction, not by evidence) out of the average.
    """
    data = _on_grid(img, atlas, "continuous")
    inside = np.isfinite(data)
    if mask_img is not None:
        inside &= _on_grid(mask_img, atlas, "nearest") > 0
    index = atlas.roi_index_image()
    keep = inside & (index >= 0)
    sums = np.bincount(index[keep], weights=data[keep].astype(np.float64), minlength=atlas.n_rois)
    counts = np.bincount(index[keep], minlength=atlas.n_rois)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _on_grid(img: nib.Nifti1Image, atlas: Atlas, interpolation: str) -> np.ndarray:
    target = atlas.img
    if img.shape[:3] == target.shape[:3] and np.allclose(img.affine, target.affine, atol=1e-4):
        return np.asarray(img.dataobj, dtype=np.float64).reshape(target.shape[:3])
    from nilearn.image import resample_img

    src = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)
    out = resample_img(src, target_affine=target.affine, target_shape=target.shape[:3],
                       interpolation=interpolation, force_resample=True, copy_header=True)
    return np.asarray(out.dataobj, dtype=np.float64)


def residualize(values: np.ndarray, covariates: np.ndarray | None) -> np.ndarray:
    """Residuals of ``values`` (N,) after least squares on ``[1, covariates]`` ((N,) or (N, K))."""
    values = np.asarray(values, dtype=np.float64)
    design = np.ones((values.shape[0], 1))
    if covariates is not None and np.size(covariates):
        design = np.column_stack([design, np.asarray(covariates, dtype=np.float64).reshape(values.shape[0], -1)])
    beta, *_ = np.linalg.lstsq(design, values, rcond=None)
    return values - design @ beta


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else float("nan")


def partial_corr(x, y, covariates=None) -> float:
    """Pearson correlation of ``x`` and ``y`` (N,) controlling for ``covariates`` ((N,) or (N, K))."""
    return _corr(residualize(x, covariates), residualize(y, covariates))


def partial_corr_test(x, y, covariates=None, n_perm: int = 1000, seed: int = 0) -> tuple[float, float]:
    """``(r, p)``: partial correlation and its two-sided permutation p-value.

    The residuals of ``x`` are permuted across ROIs ``n_perm`` times with
    ``np.random.default_rng(seed)``, so the same inputs and seed give the same p.
    """
    rx, ry = residualize(x, covariates), residualize(y, covariates)
    r = _corr(rx, ry)
    if n_perm <= 0 or not np.isfinite(r):
        return r, float("nan")
    rng = np.random.default_rng(seed)
    ry_c = ry - ry.mean()
    ry_n = np.sqrt(ry_c @ ry_c)
    rx_c = rx - rx.mean()
    rx_n = np.sqrt(rx_c @ rx_c)
    # Permuting rx keeps its mean and norm, so each r_perm is one dot product.
    perms = np.stack([rng.permutation(rx_c) for _ in range(n_perm)])  # (n_perm, N)
    r_perm = perms @ ry_c / (rx_n * ry_n)
    exceed = int(np.sum(np.abs(r_perm) >= abs(r) - 1e-12))
    return r, (1 + exceed) / (1 + n_perm)


def top_fraction_mask(values, fraction: float = 0.25) -> np.ndarray:
    """Boolean (N,) mask of the ``ceil(fraction * n_finite)`` largest finite values.

    Ranking (stable, so ties go to the lower ROI index) gives exactly that many ROIs, which a
    quantile threshold does not when values tie.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    k = int(np.ceil(fraction * finite.sum()))
    mask = np.zeros(values.shape, dtype=bool)
    if k == 0:
        return mask
    order = np.argsort(np.where(finite, -values, np.inf), kind="stable")
    mask[order[:k]] = True
    return mask


def dice(a, b) -> float:
    """Dice coefficient ``2|A∩B| / (|A| + |B|)`` of two boolean masks (NaN when both are empty)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise DataFormatError(f"Dice of masks with shapes {a.shape} and {b.shape}; expected equal shapes")
    total = a.sum() + b.sum()
    return float(2.0 * np.sum(a & b) / total) if total else float("nan")
