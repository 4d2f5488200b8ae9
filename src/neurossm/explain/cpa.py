"""Calibrated Pathway Attribution: which ROIs drove a decision, through which pathway.

For a scan and its target class c:

1. Localisation. For each pathway p, ``a_p[r] = |Σ_t x_p[r, t] · ∂y_c/∂x_p[r, t]|`` — activation
   × gradient of the target logit with respect to the pathway's own input, summed over the scan's
   time points, then its magnitude — scaled to sum to 1. The sum over time comes before the
   magnitude so that ``a_p[r]`` is ROI r's net first-order contribution to the logit: moment-to-
   moment contributions of an ROI that cancel over the scan (a model leaning on noise it has
   memorised) do not count, and a sparse but consistent signal (transient events) is not
   outweighed by ROIs whose contributions are large at every time point. Summing magnitudes
   (``Σ_t |x · ∂y/∂x|``, the first formulation tried) ranked planted event ROIs at the bottom of
   the map on synthetic data where this one ranks them at the top (see docs/cpa.md).
   Where an encoder reads statistics that it computed from each ROI alone (NeuroSSM's ROI-wise
   part: log energy and tail weight of the ROI's series, standardised over ROIs), the gradient
   stops at those statistics ``z_p[r, k]`` and ``Σ_k z_p[r, k] · ∂y_c/∂z_p[r, k]`` is added to
   the ROI's term: the same activation × gradient one step later, with the average ROI
   (``z = 0``) as the reference. At the input it would be blind: a tail weight does not change
   when the ROI's series is rescaled, so its ``Σ_t x · ∂/∂x`` is 0 by Euler's theorem, and a log
   energy gives a constant.
2. Calibration. ``w_p = max(0, y_c(full) − y_c(p ablated before fusion))``, scaled to sum to 1;
   when every drop is ≤ 0 the weights fall back to uniform and the file records it.
3. ``cpa_score[r] = Σ_p w_p a_p[r]``; ``dominant_pathway[r] = argmax_p w_p a_p[r]``.

A scan is predicted by averaging logits over its test windows (as in testing), so CPA explains
that averaged logit: gradients flow to every window, ablations are averaged over windows.
Cost per batch of scans: one forward and one backward pass through all pathways; each ablation
re-runs only fusion and the head on the pooled pathway vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..log import get_logger, progress
from .contract import reports_roi_statistics
from .files import file_path, write_cpa_file
from ..data.preprocess import window_batches

log = get_logger(__name__)


@dataclass
class CPAResult:
    """CPA of a batch of scans (arrays over scans first)."""

    pathway_names: list[str]
    logits: np.ndarray            # (S, C) window-averaged logits
    target: np.ndarray            # (S,) class explained
    pathway_maps: np.ndarray      # (S, P, R), each row sums to 1
    logit_full: np.ndarray        # (S,) target logit
    logit_ablated: np.ndarray     # (S, P) target logit with pathway p ablated
    pathway_importance: np.ndarray  # (S, P), sums to 1
    importance_fallback: np.ndarray  # (S,) True where all drops were ≤ 0
    cpa_score: np.ndarray         # (S, R)
    dominant_pathway: np.ndarray  # (S, R) index into pathway_names

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-scan arrays under the names of the CPA file (scans first): what
        :func:`explain_to_files` writes, one scan per file, and ``Classifier.explain`` returns."""
        probs = np.exp(self.logits - self.logits.max(axis=1, keepdims=True))  # (S, C)
        probs /= probs.sum(axis=1, keepdims=True)
        return {"probs": probs, "pred": probs.argmax(axis=1).astype(np.int64), "target": self.target.astype(np.int64),
                "pathway_names": np.array(self.pathway_names, dtype=str), "pathway_maps": self.pathway_maps,
                "pathway_importance": self.pathway_importance, "importance_fallback": self.importance_fallback,
                "logit_full": self.logit_full.astype(np.float64), "logit_ablated": self.logit_ablated, "cpa_score": self.cpa_score,
                "dominant_pathway": self.dominant_pathway.astype(np.int64)}


def _normalise_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale each row to sum to 1; rows summing to 0 become uniform (flagged)."""
    total = values.sum(axis=-1, keepdims=True)
    empty = total[..., 0] <= 0
    out = np.where(total > 0, values / np.where(total > 0, total, 1.0), 1.0 / values.shape[-1])
    return out, empty


def _net_contribution(leaf: torch.Tensor) -> torch.Tensor:
    """``Σ_last leaf · ∂y/∂leaf`` ``(W, R)``; zeros where no gradient reached the leaf."""
    if leaf.grad is None:
        return torch.zeros(leaf.shape[:2], dtype=leaf.dtype, device=leaf.device)
    return (leaf.detach() * leaf.grad).sum(dim=-1)


def explain_scan_batch(model: torch.nn.Module, scans: Sequence[np.ndarray], crop_length: int,
                       targets: Sequence[int] | None = None, device: torch.device | str = "cpu") -> CPAResult:
    """CPA of a few scans (each ``(R, T)``); ``targets=None`` explains the predicted class."""
    model.eval()
    dtype = next(model.parameters()).dtype
    owners, windows = window_batches(scans, crop_length)
    owners_t = torch.as_tensor(owners, device=device)
    n_scans = len(scans)
    counts = torch.bincount(owners_t, minlength=n_scans).to(dtype)  # (S,)
    x = torch.as_tensor(np.stack(windows), dtype=dtype, device=device)  # (W, R, L)

    inputs = [xp.detach().requires_grad_(True) for xp in model.pathway_inputs(x)]  # P × (W, R, L_p)
    roi_stats: list | None = [] if reports_roi_statistics(model) else None  # P × ((W, R, k) leaf or None)
    vectors = model.pathway_vectors(inputs, roi_statistics=roi_stats) if roi_stats is not None \
        else model.pathway_vectors(inputs)  # (W, P, d)
    window_logits = model.classify(vectors)  # (W, C)
    scan_logits = torch.zeros(n_scans, window_logits.shape[1], dtype=dtype, device=device)
    scan_logits = scan_logits.index_add(0, owners_t, window_logits) / counts[:, None]  # (S, C)
    if targets is None:
        target = scan_logits.argmax(dim=1)
    else:
        target = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=device)
    # Scans are independent in eval mode, so one backward of the summed target logits gives
    # every scan's own gradient.
    scan_logits.gather(1, target[:, None]).sum().backward()

    n_paths = len(inputs)
    maps = []
    for p, xp in enumerate(inputs):
        contrib = _net_contribution(xp)  # (W, R), signed net contribution per window
        if roi_stats is not None and roi_stats[p] is not None:
            contrib = contrib + _net_contribution(roi_stats[p])  # (W, R)
        per_scan = torch.zeros(n_scans, contrib.shape[1], dtype=dtype, device=device).index_add(0, owners_t, contrib)
        maps.append(per_scan.abs())  # (S, R): magnitude of the scan's net contribution
    pathway_maps, _ = _normalise_rows(torch.stack(maps, dim=1).cpu().numpy())  # (S, P, R)

    with torch.no_grad():
        full = scan_logits.detach().gather(1, target[:, None])[:, 0]  # (S,)
        ablated = []
        for p in range(n_paths):
            mask = torch.ones(n_paths, dtype=dtype, device=device)
            mask[p] = 0
            wl = model.classify(vectors.detach(), mask)  # (W, C)
            sl = torch.zeros_like(scan_logits).index_add(0, owners_t, wl) / counts[:, None]
            ablated.append(sl.gather(1, target[:, None])[:, 0])
        ablated_t = torch.stack(ablated, dim=1)  # (S, P)
    drops = np.maximum(0.0, (full[:, None] - ablated_t).cpu().numpy())
    importance, fallback = _normalise_rows(drops)  # (S, P)
    weighted = importance[:, :, None] * pathway_maps  # (S, P, R)
    return CPAResult(
        pathway_names=list(model.pathway_names),
        logits=scan_logits.detach().cpu().numpy(),
        target=target.cpu().numpy(),
        pathway_maps=pathway_maps,
        logit_full=full.cpu().numpy(),
        logit_ablated=ablated_t.cpu().numpy(),
        pathway_importance=importance,
        importance_fallback=fallback,
        cpa_score=weighted.sum(axis=1),
        dominant_pathway=weighted.argmax(axis=1),
    )


def explain_to_files(model: torch.nn.Module, scans, dataset, out_dir: str | Path, *, target: str = "true",
                     crop_length: int, device: torch.device | str = "cpu", batch_size: int = 8,
                     run: dict | None = None) -> list[Path]:
    """Write ``subj_<scan_id>.npz`` for each scan (the schema of :mod:`neurossm.explain.files`) into ``out_dir``.

    ``run`` (from :func:`neurossm.explain.files.run_record`) records in each file the run, model, seed and fold it came
    from, so that maps of different runs are never pooled unknowingly.
    """
    if target not in ("true", "pred"):
        raise ValueError(f"target must be 'true' or 'pred', not {target!r}")
    out_dir = Path(out_dir)
    written = []
    batches = range(0, len(scans), batch_size)
    for b in progress(batches, desc="CPA", total=len(batches)):
        chunk = scans[b : b + batch_size]
        res = explain_scan_batch(model, [s.timeseries for s in chunk], crop_length,
                                 targets=[s.label for s in chunk] if target == "true" else None, device=device)
        arrays = res.arrays()
        names = arrays.pop("pathway_names")
        for i, scan in enumerate(chunk):
            path = write_cpa_file(
                file_path(out_dir, scan.scan_id),
                scan_id=np.str_(scan.scan_id), subject_id=np.str_(scan.subject_id),
                label=np.int64(scan.label), class_names=np.array(dataset.class_names, dtype=str),
                pathway_names=names, **{k: v[i] for k, v in arrays.items()},
                target_mode=np.str_(target), atlas=np.str_(dataset.atlas), n_rois=np.int64(dataset.n_rois),
                **(run or {}),
            )
            written.append(path)
    log.info("CPA: wrote %d file(s) to %s", len(written), out_dir)
    return written

