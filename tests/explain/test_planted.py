"""CPA finds what was planted: the ROIs and the signal form of a synthetic class signal.

A small version of ``benchmarks/cpa.py`` (which reports the full-size numbers for both forms).
"""

import numpy as np
import pytest
import torch

from neurossm.config import TrainingConfig
from neurossm.data.splits import make_splits
from neurossm.data.synthetic import make_synthetic
from neurossm.explain.cpa import explain_scan_batch
from neurossm.reference.recovery import planted_recovery
from neurossm.models.registry import get_model
from neurossm.training.estimators import make_estimator


def test_planted_recovery_scores_a_perfect_and_a_wrong_map():
    names = ["raw_s1", "diff_s1"]
    labels = np.array([0, 1, 1])
    scores = np.full((3, 8), 0.05)
    scores[0, [3, 4]] = 0.3  # class a looks elsewhere
    scores[1:, [2, 5]] = 0.3  # class b looks at its planted ROIs
    dominant = np.zeros((3, 8), dtype=int)
    dominant[1:, 2] = 1
    dominant[2, 5] = 1
    rec = planted_recovery(scores, dominant, labels, names, {"a": [0, 7], "b": [2, 5]}, ["a", "b"], "diff")
    assert rec["b"]["recall_top25"] == 1.0 and rec["b"]["top25_rois"] == [2, 5]
    # ROI 5: diff once, raw once; the mode's tie goes to the lower index (raw_s1)
    assert rec["b"]["planted_dominant"] == ["diff_s1", "raw_s1"] and rec["b"]["pathway_agreement"] == 0.5
    assert rec["a"]["recall_top25"] == 0.0 and rec["a"]["n_scans"] == 1
    assert planted_recovery(scores, dominant, labels, names, {"a": [0], "b": [2]}, ["a", "b"],
                            "connectivity")["b"]["pathway_agreement"] is None


# Requirement 5 of issue 4 at a size one thread trains in about 10 s. Each class has 4 planted ROIs
# out of 40, so the top quarter (10 ROIs) has room for both classes' planted ROIs: the logit of
# one class also rests on the other class' signal ROIs (their quiet is evidence too), so both sets
# rise in both class maps. With the per-time-step encoder (preset `time`, the default until issue
# 12), over data/torch seeds 0-4 every planted ROI of both classes was in the top quarter with
# diff_s1 dominant on all of them (holdout accuracy 0.98-1.0). The default (ROI-wise part read
# through its per-ROI statistics, docs/cpa.md) also finds every planted ROI on data seeds 0 and 1,
# but reads the level blocks mostly through raw_s1 (agreement 0.0-1.0 per class): a block of
# shifted level also changes the raw series' own statistics, and CPA's ablation says the model
# relies on that, so the planted form is asserted for the `time` encoder only.
@pytest.mark.slow
@pytest.mark.parametrize("preset", ["time", None])
def test_cpa_recovers_planted_level_shifts(preset):
    torch.manual_seed(0)
    ds = make_synthetic(seed=0, n_scans=240, n_rois=40, n_times=200, crop_length=100, signal_form="diff",
                        amplitude=3.0)
    (split,) = make_splits(ds, 0, 4, 0.2, single=True)
    by_id = {s.scan_id: s for s in ds.scans}
    train, val, test = ([by_id[i] for i in ids] for ids in (split.train, split.val, split.test))
    spec = get_model("NeuroSSM")
    config = spec.resolve_config({"d_model": 16, "d_state": 4, "scales": (1, 2), "drop_prob": 0.0}, preset)
    est = make_estimator(spec, config, n_rois=ds.n_rois, n_classes=2, crop_length=ds.crop_length,
                         training=TrainingConfig(epochs=20, batch_size=16, lr=3e-3, warmup_epochs=1),
                         device=torch.device("cpu"), seed=0)
    est.fit([s.timeseries for s in train], np.array([s.label for s in train]),
            [s.timeseries for s in val], np.array([s.label for s in val]))
    labels = np.array([s.label for s in test])
    res = explain_scan_batch(est.module, [s.timeseries for s in test], ds.crop_length, targets=labels)
    recovery = planted_recovery(res.cpa_score, res.dominant_pathway, labels, res.pathway_names,
                                ds.ground_truth["signal_rois"], ds.class_names, "diff")
    for rec in recovery.values():
        assert rec["recall_top25"] >= 0.8, rec
        if preset == "time":
            assert rec["pathway_agreement"] > 0.5, rec
