"""Does CPA find what was planted? Recovery scores on synthetic data with known ground truth.

:func:`neurossm.data.synthetic.make_synthetic` puts each class' signal into known ROIs, in one
signal form (``"diff"``: abrupt level shifts; ``"raw"``: a slow fluctuation). For each class, from
the CPA files of that class' scans:

``recall_top25``
    the fraction of the class' planted ROIs among the top quarter (``ceil(R / 4)`` ROIs, ties to
    the lower index, as in the reference analysis' Dice) of the class-mean ``cpa_score``;
``pathway_agreement``
    the fraction of the planted ROIs whose class-level dominant pathway (the most frequent
    ``dominant_pathway`` over the class' scans, ties to the lower pathway index) has the planted
    form (``diff_*`` for ``"diff"``, ``raw_*`` for ``"raw"``). ``None`` for a form that no
    pathway carries (``"connectivity"``).

Tests, ``benchmarks/cpa.py`` and the demo all score recovery with :func:`planted_recovery`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from .scoring import top_fraction_mask

TOP_FRACTION = 0.25


def planted_recovery(
    cpa_scores: np.ndarray,
    dominant: np.ndarray,
    labels: Sequence[int],
    pathway_names: Sequence[str],
    signal_rois: Mapping[str, Sequence[int]],
    class_names: Sequence[str],
    signal_form: str,
) -> dict[str, dict[str, Any]]:
    """Recall of the planted ROIs and pathway agreement, per class.

    Parameters
    ----------
    cpa_scores : array, shape (S, R)
        ``cpa_score`` of each scan.
    dominant : array of int, shape (S, R)
        ``dominant_pathway`` of each scan (indices into ``pathway_names``).
    labels : sequence of int, shape (S,)
        Class index of each scan (scans are grouped by it).
    pathway_names : sequence of str
        The model's pathway names (``raw_s1``, ``diff_s2``, ...).
    signal_rois : dict
        Class name → planted ROI indices (``dataset.ground_truth["signal_rois"]``).
    class_names : sequence of str
        Class names in label order.
    signal_form : str
        The planted form: ``"diff"``, ``"raw"`` or ``"connectivity"``.

    Returns
    -------
    dict
        Class name → ``{"recall_top25", "pathway_agreement", "n_scans", "planted_rois",
        "top25_rois", "planted_dominant"}``; ``planted_dominant`` names the class-level dominant
        pathway of each planted ROI. A class with no scans has ``None`` scores.
    """
    scores = np.asarray(cpa_scores, dtype=np.float64)
    dominant = np.asarray(dominant, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    names = [str(p) for p in pathway_names]
    if scores.ndim != 2 or dominant.shape != scores.shape or labels.shape != (scores.shape[0],):
        raise ConfigError(f"planted_recovery: cpa_scores {scores.shape}, dominant {dominant.shape}, labels "
                          f"{labels.shape}; expected (S, R), (S, R) and (S,)")
    if dominant.size and not 0 <= dominant.min() <= dominant.max() < len(names):
        raise ConfigError(f"planted_recovery: dominant_pathway values in [{dominant.min()}, {dominant.max()}] "
                          f"but there are {len(names)} pathways ({', '.join(names)})")
    form_of = np.array([p.split("_", 1)[0] for p in names])
    n_rois = scores.shape[1]
    out: dict[str, dict[str, Any]] = {}
    for c, name in enumerate(class_names):
        planted = sorted(int(r) for r in signal_rois.get(str(name), ()))
        if any(not 0 <= r < n_rois for r in planted):
            raise ConfigError(f"planted_recovery: planted ROIs {planted} of {name} are outside [0, {n_rois})")
        rows = labels == c
        entry: dict[str, Any] = {"n_scans": int(rows.sum()), "planted_rois": planted, "recall_top25": None,
                                 "pathway_agreement": None, "top25_rois": None, "planted_dominant": None}
        out[str(name)] = entry
        if not rows.any() or not planted:
            continue
        top = np.flatnonzero(top_fraction_mask(scores[rows].mean(axis=0), TOP_FRACTION))
        entry["top25_rois"] = top.tolist()
        entry["recall_top25"] = float(np.isin(planted, top).mean())
        # Mode over the class' scans, per planted ROI (bincount's argmax takes the lower index on ties).
        modes = [int(np.bincount(dominant[rows, r], minlength=len(names)).argmax()) for r in planted]
        entry["planted_dominant"] = [names[m] for m in modes]
        if signal_form in ("diff", "raw"):
            entry["pathway_agreement"] = float(np.mean(form_of[modes] == signal_form))
    return out
