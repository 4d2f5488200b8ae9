import numpy as np
import pytest
import torch

from neurossm.data.scans import Scan, assemble
from neurossm.explain.cpa import explain_scan_batch, explain_to_files
from neurossm.models.neurossm import NeuroSSM


def _model(**kw):
    torch.manual_seed(1)
    cfg = dict(d_model=8, n_layers=1, d_state=4, scales=(1, 2), scan_backend="cpu", drop_prob=0.0)
    cfg.update(kw)
    return NeuroSSM(4, 2, 12, **cfg).double().eval()


def _target_logit(model, inputs, target):
    with torch.no_grad():
        return float(model.forward_pathways(inputs)[0, target])


def _central_difference(model, inputs, target, module, perturb, eps=1e-6):
    """∂y/∂ε of the target logit where a forward hook on ``module`` applies ``perturb(output, ε)``."""
    values = []
    for sign in (1, -1):
        handle = module.register_forward_hook(lambda mod, args, out, e=sign * eps: perturb(out, e))
        try:
            values.append(_target_logit(model, inputs, target))
        finally:
            handle.remove()
    return (values[0] - values[1]) / (2 * eps)


@pytest.mark.parametrize("encoder", ["time", "roi", "hybrid"])
def test_activation_times_gradient_equals_finite_differences(encoder):
    # The time encoder's term: Σ_t x · ∂y/∂x at the pathway input (through the time part only).
    # The ROI-wise part's term: Σ_k z · ∂y/∂z at its standardised statistics, the derivative of the
    # logit when ROI r's statistics are scaled by (1 + ε).
    model = _model(encoder=encoder)
    x = np.random.default_rng(0).standard_normal((4, 12))
    res = explain_scan_batch(model, [x], crop_length=12, targets=[1])
    inputs = model.pathway_inputs(torch.as_tensor(x[None], dtype=torch.float64))
    for p, xp in enumerate(inputs):
        pathway = model.pathways[p]
        time_part = {"time": pathway, "roi": None, "hybrid": getattr(pathway, "time", None)}[encoder]
        roi_part = {"time": None, "roi": pathway, "hybrid": getattr(pathway, "roi", None)}[encoder]
        net = np.zeros(xp.shape[1])
        for r in range(xp.shape[1]):
            if time_part is not None:
                for t in range(xp.shape[2]):
                    # the embedding is linear: x[r, t] + ε moves its output at step t by ε W[:, r]
                    grad = _central_difference(
                        model, inputs, 1, time_part.embed,
                        lambda out, e, r=r, t=t: out + e * time_part.embed.weight[:, r] * _one_hot(out, t))
                    net[r] += float(xp[0, r, t]) * grad
            if roi_part is not None:
                net[r] += _central_difference(model, inputs, 1, roi_part.drop,
                                              lambda out, e, r=r: out + e * out * _row(out, r))
        expected = np.abs(net) / np.abs(net).sum()
        np.testing.assert_allclose(res.pathway_maps[0, p], expected, rtol=1e-5, atol=1e-8)


def _one_hot(out, t):
    """``(1, T, 1)`` mask of time step ``t`` for an output ``(1, T, d)``."""
    mask = torch.zeros(out.shape[:2] + (1,), dtype=out.dtype)
    mask[0, t] = 1
    return mask


def _row(out, r):
    """``(1, R, 1)`` mask of ROI ``r`` for an output ``(1, R, k)``."""
    mask = torch.zeros(out.shape[:2] + (1,), dtype=out.dtype)
    mask[0, r] = 1
    return mask


def test_importance_is_the_normalised_positive_logit_drop():
    model = _model()
    x = np.random.default_rng(1).standard_normal((4, 12))
    res = explain_scan_batch(model, [x], crop_length=12, targets=[0])
    drops = np.maximum(0, res.logit_full[0] - res.logit_ablated[0])
    assert np.all(res.pathway_importance >= 0)
    np.testing.assert_allclose(res.pathway_importance.sum(axis=1), 1.0)
    if drops.sum() > 0:
        np.testing.assert_allclose(res.pathway_importance[0], drops / drops.sum())
    np.testing.assert_allclose(res.cpa_score[0], (res.pathway_importance[0][:, None] * res.pathway_maps[0]).sum(0))
    assert res.dominant_pathway.shape == (1, 4)


def test_uniform_fallback_when_no_pathway_matters():
    model = _model()
    with torch.no_grad():
        model.head[-1].weight.zero_()  # every logit is the bias: no ablation changes anything
    res = explain_scan_batch(model, [np.random.default_rng(2).standard_normal((4, 12))], crop_length=12,
                             targets=[0])
    assert res.importance_fallback[0]
    np.testing.assert_allclose(res.pathway_importance[0], 0.25)


def test_windows_are_averaged_like_at_test_time():
    model = _model()
    x = np.random.default_rng(3).standard_normal((4, 30))  # windows at 0, 12, 18
    res = explain_scan_batch(model, [x], crop_length=12, targets=[0])
    with torch.no_grad():
        wins = torch.as_tensor(np.stack([x[:, s:s + 12] for s in (0, 12, 18)]))
        expected = model(wins).mean(0).numpy()
    np.testing.assert_allclose(res.logits[0], expected, rtol=1e-10)


def test_files_hold_the_documented_fields(tmp_path):
    model = _model()
    rng = np.random.default_rng(4)
    scans = [Scan(f"s{i}", f"p{i}", i % 2, rng.standard_normal((4, 12)).astype(np.float32)) for i in range(5)]
    ds = assemble("SYNTHETIC", scans, ("a", "b"), atlas="synthetic", n_rois=4, crop_length=12)
    model = model.float()
    paths = explain_to_files(model, ds.scans, ds, tmp_path / "seed_0", crop_length=12, batch_size=2)
    assert sorted(p.name for p in paths) == [f"subj_s{i}.npz" for i in range(5)]
    with np.load(paths[1], allow_pickle=False) as f:
        for key in ("scan_id", "subject_id", "label", "pred", "probs", "class_names", "pathway_names",
                    "pathway_maps", "pathway_importance", "logit_full", "logit_ablated", "cpa_score",
                    "dominant_pathway", "target", "atlas", "n_rois"):
            assert key in f.files, key
        assert str(f["scan_id"]) == "s1" and int(f["target"]) == 1 == int(f["label"])
        assert f["pathway_maps"].shape == (4, 4) and f["cpa_score"].shape == (4,)
        assert list(f["pathway_names"]) == ["raw_s1", "raw_s2", "diff_s1", "diff_s2"]
        assert str(f["atlas"]) == "synthetic" and int(f["n_rois"]) == 4
        assert f["probs"].sum() == pytest.approx(1.0)
