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
from neurossm.explain.recovery import planted_recovery
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


# Known gap (issue 4, requirement 5). With the net-contribution localisation the planted ROIs come out
# on top at the demo's size (166 ROIs, 6 planted per class, 240 scans), but not reliably at this
# test's size: at 16 ROIs the model separates the classes (holdout accuracy 1.0), yet only 2-3 of the
# class's 4 planted ROIs reach the top quarter, which they share with the other class's planted ROIs
# (their quiet is evidence too), and raw_s1, not a diff pathway, is dominant on them: width-1 events
# are as visible in the raw signal as in its difference. Strict: the day CPA recovers the planted
# ROIs and form here, this test fails as XPASS and the marker must go.
@pytest.mark.slow
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="small-size recovery of planted events below the 80% target (see comment)")
def test_cpa_recovers_planted_transient_events():
    torch.manual_seed(0)
    ds = make_synthetic(seed=0, n_scans=120, n_rois=16, n_times=100, signal_form="diff", amplitude=2.0)
    (split,) = make_splits(ds, 0, 4, 0.2, single=True)
    by_id = {s.scan_id: s for s in ds.scans}
    train, val, test = ([by_id[i] for i in ids] for ids in (split.train, split.val, split.test))
    spec = get_model("NeuroSSM")
    config = spec.resolve_config({"d_model": 16, "d_state": 4, "scales": (1, 2), "drop_prob": 0.0}, None)
    est = make_estimator(spec, config, n_rois=ds.n_rois, n_classes=2, crop_length=ds.crop_length,
                         training=TrainingConfig(epochs=20, batch_size=16, lr=3e-3, warmup_epochs=1),
                         device=torch.device("cpu"), seed=0)
    est.fit([s.timeseries for s in train], np.array([s.label for s in train]),
            [s.timeseries for s in val], np.array([s.label for s in val]))
    labels = np.array([s.label for s in test])
    res = explain_scan_batch(est.module, [s.timeseries for s in test], ds.crop_length, targets=labels)
    rec = planted_recovery(res.cpa_score, res.dominant_pathway, labels, res.pathway_names,
                           ds.ground_truth["signal_rois"], ds.class_names, "diff")["class1"]
    assert rec["recall_top25"] >= 0.8, rec
    assert rec["pathway_agreement"] > 0.5, rec
