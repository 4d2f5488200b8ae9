import json

import numpy as np

import pytest
import torch

from neurossm.errors import ConfigError
from neurossm.models import get_model
from neurossm.models.neurossm import (MOMENT_EPS, DirectionReadout, NeuroSSM, autocorrelations, held_autocorrelations, log_moments,
                                      pathway_signal, remove_shared_components)


def _tiny(**kw):
    torch.manual_seed(0)
    cfg = dict(d_model=8, n_layers=1, d_state=4, scales=(1, 2), scan_backend="cpu", drop_prob=0.0)
    cfg.update(kw)
    return NeuroSSM(5, 3, 16, **cfg).double().eval()


def test_pathway_signal_shapes_and_zero_first_difference():
    x = torch.arange(24.0).reshape(1, 2, 12)
    raw2 = pathway_signal(x, "raw", 2)
    assert raw2.shape == (1, 2, 6)
    torch.testing.assert_close(raw2[0, 0, :2], torch.tensor([0.5, 2.5]))
    d = pathway_signal(x, "diff", 2)
    assert d.shape == (1, 2, 6)
    assert torch.all(d[..., 0] == 0) and torch.all(d[..., 1:] == 2.0)


def test_pathway_names_follow_forms_then_scales():
    assert _tiny().pathway_names == ["raw_s1", "raw_s2", "diff_s1", "diff_s2"]
    assert _tiny(forms=("diff",), scales=(4,)).pathway_names == ["diff_s4"]


@pytest.mark.parametrize("encoder", ["time", "roi", "hybrid"])
@pytest.mark.parametrize("fusion", ["gate", "concat", "mean"])
def test_ablating_every_pathway_gives_the_logits_of_the_fused_zero_vector(fusion, encoder):
    model = _tiny(fusion=fusion, encoder=encoder)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    out = model(x, pathway_mask=torch.zeros(4))
    zero_vectors = torch.zeros(2, 4, 8, dtype=torch.float64)
    torch.testing.assert_close(out, model.head(model.fuse(zero_vectors)))
    # A per-scan mask ablates per scan.
    mask = torch.tensor([[1.0, 1, 1, 1], [0, 0, 0, 0]])
    both = model(x, pathway_mask=mask)
    torch.testing.assert_close(both[0], model(x)[0])
    torch.testing.assert_close(both[1], out[1])


@pytest.mark.parametrize("encoder", ["time", "roi", "hybrid"])
def test_ablating_one_pathway_changes_the_logits(encoder):
    model = _tiny(encoder=encoder)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    assert not torch.allclose(model(x), model(x, pathway_mask=torch.tensor([1.0, 0, 1, 1])))


def test_bad_options_are_refused_with_the_allowed_values():
    with pytest.raises(ConfigError, match="pooling"):
        NeuroSSM(5, 2, 16, pooling="median")
    with pytest.raises(ConfigError, match="forms"):
        NeuroSSM(5, 2, 16, forms=("second_diff",))
    with pytest.raises(ConfigError, match="shorter than the largest scale"):
        NeuroSSM(5, 2, 2, scales=(4,))
    with pytest.raises(ConfigError, match="encoder='space'"):
        NeuroSSM(5, 2, 16, encoder="space")
    with pytest.raises(ConfigError, match="roi_mixer"):
        NeuroSSM(5, 2, 16, encoder="roi", roi_mixer="sum")
    with pytest.raises(ConfigError, match="roi_patch=8"):
        NeuroSSM(5, 2, 16, encoder="roi", scales=(4,), roi_patch=8)
    with pytest.raises(ConfigError, match="roi_d_state=0"):
        NeuroSSM(5, 2, 16, encoder="roi", roi_d_state=0)
    with pytest.raises(ConfigError, match="roi_n_layers=-1"):
        NeuroSSM(5, 2, 16, encoder="roi", roi_n_layers=-1)
    with pytest.raises(ConfigError, match="roi_lags=\\(0,\\)"):
        NeuroSSM(5, 2, 16, encoder="roi", roi_lags=(0,))


def test_registered_with_ablation_presets_and_json_config():
    spec = get_model("neurossm")
    cfg = spec.resolve_config({"d_model": 16}, preset="diff_multiscale")
    assert cfg["forms"] == ("diff",) and cfg["d_model"] == 16
    cfg = spec.resolve_config({"scales": 1})  # --config scales=1 → (1,)
    assert cfg["scales"] == (1,)
    model = spec.build(6, 2, 32, json.loads(json.dumps(cfg)))
    assert model.pathway_names == ["raw_s1", "diff_s1"]
    with pytest.raises(ConfigError, match="no option 'width'"):
        spec.resolve_config({"width": 3})
    # a tuple option set to null (--config roi_lags=null) stays None, a single lag becomes a tuple
    assert spec.resolve_config({"roi_lags": None})["roi_lags"] is None
    assert spec.resolve_config({"roi_lags": 3})["roi_lags"] == (3,)
    with pytest.raises(ConfigError, match="roi_lags"):
        spec.resolve_config({"roi_lags": [0, 2]})


def _trained_looking(model):
    # the corrections start at zero (the pooled statistics are the input's own); give them weights
    # so that the tests see the Mamba features at work
    torch.manual_seed(1)
    for pathway in model.pathways:
        roi = getattr(pathway, "roi", pathway)
        torch.nn.init.normal_(roi.correction.weight, std=0.5)
        torch.nn.init.normal_(roi.correction.bias, std=0.1)
    return model


@pytest.mark.parametrize("pooling", ["moments", "mean", "abs_mean", "max", "attention"])
@pytest.mark.parametrize("roi_patch", [1, 3])
def test_roi_encoder_features_of_a_roi_depend_on_that_roi_alone_with_shared_weights(pooling, roi_patch):
    # before the ROI mixer, ROI r's pooled features are a function of ROI r's series only, and the
    # same function for every ROI: permuting the ROIs permutes the features
    model = _trained_looking(_tiny(encoder="roi", pooling=pooling, roi_patch=roi_patch, bidirectional=True))
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    roi_features = model.pathways[0].roi_features
    with torch.no_grad():
        v = roi_features(x)
        x2 = x.clone()
        x2[:, 3] += torch.randn(2, 16, dtype=torch.float64)
        v2 = roi_features(x2)
        perm = torch.tensor([4, 2, 0, 1, 3])
        v_perm = roi_features(x[:, perm])
    changed = (v2 - v).abs().amax(dim=(0, 2)) > 0  # (R,)
    assert changed.tolist() == [False, False, False, True, False]
    torch.testing.assert_close(v_perm, v[:, perm])


@pytest.mark.parametrize("roi_mixer", ["linear", "score", "attention"])
def test_roi_encoder_pathway_vectors_and_gradients(roi_mixer):
    model = _trained_looking(_tiny(encoder="roi", roi_mixer=roi_mixer, roi_patch=2)).train()
    x = torch.randn(3, 5, 16, dtype=torch.float64, requires_grad=True)
    vectors = model.pathway_vectors(model.pathway_inputs(x))
    assert vectors.shape == (3, 4, 8) and torch.isfinite(vectors).all()
    model(x).sum().backward()
    assert x.grad.abs().sum(dim=(0, 2)).gt(0).all()  # every ROI reaches the logits


def test_roi_preset_is_json_round_trippable():
    spec = get_model("neurossm")
    cfg = json.loads(json.dumps(spec.resolve_config(preset="roi")))
    assert cfg["encoder"] == "roi"
    model = spec.build(6, 2, 32, cfg)
    assert all(type(p).__name__ == "RoiPathway" for p in model.pathways)
    cfg = spec.resolve_config(preset="hybrid")
    assert cfg["pooling"] == "moments" and cfg["time_d_model"] == 16
    assert all(type(p).__name__ == "HybridPathway" for p in spec.build(6, 2, 32, cfg).pathways)
    assert all(type(p).__name__ == "HybridPathway" for p in spec.build(6, 2, 32, spec.resolve_config()).pathways)
    assert all(type(p).__name__ == "Pathway" for p in spec.build(6, 2, 32, spec.resolve_config(preset="time")).pathways)


def test_log_moments_are_log_energy_and_log_tail_weight():
    h = torch.randn(3, 50, 4, 2, dtype=torch.float64)
    out = log_moments(h)
    assert out.shape == (3, 4, 4)
    e2 = (h**2).mean(dim=1) + MOMENT_EPS
    e4 = (h**4).mean(dim=1) + MOMENT_EPS**2
    torch.testing.assert_close(out[..., :2], torch.log(e2))
    torch.testing.assert_close(out[..., 2:], torch.log(e4 / e2**2))
    # a series with a few large spikes has a heavier tail than the same energy spread evenly
    spiky = torch.zeros(1, 100, 1, dtype=torch.float64)
    spiky[0, ::25] = 5.0
    even = torch.full_like(spiky, float(spiky.pow(2).mean().sqrt()))
    assert log_moments(spiky)[0, 1] > log_moments(even)[0, 1] + 2


@pytest.mark.parametrize("roi_patch", [1, 3])
def test_untrained_roi_encoder_pools_the_statistics_of_the_input_itself(roi_patch):
    # zero-initialised corrections: each ROI's statistics start as those of the pathway's signal
    model = _tiny(encoder="roi", roi_patch=roi_patch, pooling="moments", roi_remove_shared=False)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    roi = model.pathways[0]
    series = roi.roi_series(x)
    assert series.shape == (2, 16, 5, 2)
    torch.testing.assert_close(series, x.transpose(1, 2)[..., None].expand(-1, -1, -1, 2))
    lags = (1, 2, 4, 8)
    torch.testing.assert_close(roi.roi_features(x), torch.cat([log_moments(series), autocorrelations(series, lags)], -1))
    plain = _tiny(encoder="roi", roi_patch=roi_patch, pooling="moments", roi_remove_shared=False, roi_lags=None)
    torch.testing.assert_close(plain.pathways[0].roi_features(x), log_moments(series))


def test_autocorrelations_are_the_biased_estimator_per_feature():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((2, 30, 3, 4))  # (B, T, R, d)
    out = autocorrelations(torch.as_tensor(h), (1, 5, 30, 40)).numpy()
    assert out.shape == (2, 3, 16)
    hc = h - h.mean(axis=1, keepdims=True)
    energy = (hc**2).sum(axis=1) + MOMENT_EPS * 30
    for i, k in enumerate((1, 5)):
        np.testing.assert_allclose(out[..., 4 * i : 4 * i + 4], (hc[:, :-k] * hc[:, k:]).sum(axis=1) / energy)
    assert np.all(out[..., 8:] == 0)  # lags of the series' length or more


@pytest.mark.parametrize("n_times, patch", [(37, 4), (40, 4), (16, 3), (9, 1), (30, 7)])
def test_held_autocorrelations_equal_those_of_the_corrected_series_with_their_gradients(n_times, patch):
    # the patch-wise formula against the definition on the series x(t) + c(t), c held over patches
    torch.manual_seed(0)
    x = torch.randn(2, 3, n_times, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 3, n_times // patch, 2, dtype=torch.float64, requires_grad=True)
    lags = (1, 2, 4, 8, 13, n_times - 1, n_times, n_times + 3)
    held = torch.nn.functional.pad(c.repeat_interleave(patch, dim=2), (0, 0, 0, n_times % patch))
    direct = autocorrelations((x[..., None] + held).permute(0, 2, 1, 3), lags)  # (B, T, R, C) in
    patchwise = held_autocorrelations(x, c.transpose(-1, -2), patch, lags)
    torch.testing.assert_close(patchwise, direct)
    weights = torch.randn_like(direct)
    for g_direct, g_patchwise in zip(torch.autograd.grad((direct * weights).sum(), (x, c)),
                                     torch.autograd.grad((patchwise * weights).sum(), (x, c))):
        torch.testing.assert_close(g_patchwise, g_direct)


def test_autocorrelations_tell_a_slow_oscillation_from_noise_of_the_same_power():
    # half a period apart an oscillation is at its opposite; AR(1) noise has forgotten
    t = torch.arange(400, dtype=torch.float64)
    wave = torch.sin(2 * torch.pi * t / 16)[None, :, None]
    gen = torch.Generator().manual_seed(0)
    noise = torch.zeros(400, dtype=torch.float64)
    for i, e in enumerate(torch.randn(400, generator=gen, dtype=torch.float64)):
        noise[i] = 0.5 * noise[i - 1] + e if i else e
    r_wave = autocorrelations(wave, (8,))[0, 0]
    r_noise = autocorrelations(noise[None, :, None], (8,))[0, 0]
    assert r_wave < -0.9 and abs(r_noise) < 0.2
    # the energy alone cannot: both are scaled to the same power
    assert torch.isclose(log_moments(wave / wave.std())[0, 0], log_moments(noise[None, :, None] / noise.std())[0, 0],
                         atol=0.05)


def test_hybrid_model_with_its_time_parts_silenced_classifies_as_the_roi_model_with_the_same_weights():
    # a property of the whole model (pathway inputs, ROI statistics, fusion, head), not of one
    # forward line: the per-time-step part adds to the ROI-wise part and nothing else reads it
    hybrid = _trained_looking(_tiny(encoder="hybrid"))
    roi_only = _tiny(encoder="roi")
    state = {k.replace(".roi.", ".", 1): v for k, v in hybrid.state_dict().items() if ".time." not in k}
    roi_only.load_state_dict(state)  # strict: the ROI-wise parts and the fusion and head, nothing left over
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    with torch.no_grad():
        assert not torch.allclose(hybrid(x), roi_only(x))  # the time parts did contribute
        for pathway in hybrid.pathways:
            for p in pathway.time.parameters():
                p.zero_()
        torch.testing.assert_close(hybrid(x), roi_only(x))
        mask = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
        torch.testing.assert_close(hybrid(x, mask), roi_only(x, mask))


def test_time_encoder_with_moments_pooling_reads_the_energy_of_spatial_filters():
    # a change of coupling only (same variance per ROI) moves the pooled energy of a filter that
    # sums the coupled ROIs
    model = _tiny(encoder="time", n_layers=0, pooling="moments")
    time_part = model.pathways[0]
    with torch.no_grad():
        time_part.embed.weight.zero_()
        time_part.embed.bias.zero_()
        time_part.embed.weight[0, :2] = 1.0
    torch.manual_seed(3)
    shared = torch.randn(1, 1, 400, dtype=torch.float64)
    independent = torch.randn(1, 5, 400, dtype=torch.float64)
    coupled = independent.clone()
    coupled[:, :2] = shared.expand(-1, 2, -1)
    energy = lambda x: time_part.pool(time_part.embed(x.transpose(1, 2)))[0, 0]  # noqa: E731
    assert energy(coupled) > energy(independent) + 0.4



def test_remove_shared_components_keeps_what_each_roi_does_on_its_own():
    rng = np.random.default_rng(42)
    n_rois, n_times = 30, 300
    loadings = rng.standard_normal((n_rois, 3))
    factors = 2.0 * rng.standard_normal((3, n_times))
    own = rng.standard_normal((n_rois, n_times))
    x = torch.as_tensor((loadings @ factors + own)[None])  # (1, R, T), float64
    out = remove_shared_components(x)[0].numpy()
    assert out.shape == (n_rois, n_times)
    # three directions were removed, and along the loadings' span no more is left than the ROIs'
    # own series put there ...
    removed = (x[0] - x[0].mean(-1, keepdim=True)).numpy() - out
    assert np.linalg.matrix_rank(removed, tol=1e-6 * np.abs(removed).max()) == 3
    q, _ = np.linalg.qr(loadings)
    assert np.sum((q.T @ out) ** 2) < np.sum((q.T @ own) ** 2)
    # ... and what is left is mostly each ROI's own series (a ROI lying along a removed direction
    # loses its own part along it too)
    corr = [np.corrcoef(out[r], own[r])[0, 1] for r in range(n_rois)]
    assert np.median(corr) > 0.9
    # independent series share nothing beyond chance: (almost) all of their variance stays
    noise = torch.as_tensor(rng.standard_normal((2, n_rois, n_times)))
    kept = remove_shared_components(noise).pow(2).sum() / (noise - noise.mean(-1, keepdim=True)).pow(2).sum()
    assert kept > 0.95


def test_roi_encoder_reads_the_series_without_shared_components_and_passes_gradients():
    model = _tiny(encoder="roi", pooling="moments", roi_remove_shared=True).train()
    x = torch.randn(3, 5, 16, dtype=torch.float64, requires_grad=True)
    roi = model.pathways[0]
    with torch.no_grad():
        torch.testing.assert_close(roi.roi_series(x)[..., 0], remove_shared_components(x).transpose(1, 2))
    model(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_roi_n_layers_sets_the_roi_part_depth_alone():
    model = _tiny(encoder="hybrid", n_layers=2, roi_n_layers=0)
    assert all(len(p.roi.blocks) == 0 and len(p.time.blocks) == 2 for p in model.pathways)
    assert all(len(p.roi.blocks) == 2 for p in _tiny(encoder="hybrid", n_layers=2, roi_n_layers=None).pathways)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    assert torch.isfinite(_trained_looking(model)(x)).all()


def test_remove_shared_components_is_the_same_through_the_gram_matrix_of_a_short_scan():
    # fewer time points than ROIs: the directions come from the (T, T) Gram matrix
    rng = np.random.default_rng(0)
    loadings, factors = rng.standard_normal((40, 2)), 3.0 * rng.standard_normal((2, 30))
    x = torch.as_tensor((loadings @ factors + rng.standard_normal((40, 30)))[None])
    out = remove_shared_components(x)
    xc = x - x.mean(-1, keepdim=True)
    scale = xc.pow(2).mean(-1, keepdim=True).add(1e-8).sqrt()
    z = (xc / scale)[0].numpy()
    vals, vecs = np.linalg.eigh(z @ z.T / 30)
    u = vecs[:, vals > (1 + np.sqrt(40 / 30)) ** 2]
    assert u.shape[1] == 2
    np.testing.assert_allclose(out[0].numpy(), scale[0].numpy() * (z - u @ (u.T @ z)), atol=1e-8)


def test_direction_readout_changes_sign_exactly_when_time_is_reversed():
    torch.manual_seed(0)
    readout = DirectionReadout(4, 4, 4, 2, "cpu").double()
    for shape in ((3, 20, 4), (2, 12, 5, 4)):  # plain and grouped (one sequence per ROI)
        h = torch.randn(*shape, dtype=torch.float64)
        forward, backward = readout(h), readout(h.flip(1))
        assert forward.shape == (*shape[:1], *shape[2:-1], 8)
        torch.testing.assert_close(backward, -forward)
        assert forward.abs().mean() > 1e-3  # it does read the order of these random sequences
    # a sequence that reads the same both ways has no direction
    h = torch.randn(2, 9, 4, dtype=torch.float64)
    palindrome = torch.cat([h, h.flip(1)[:, 1:]], dim=1)
    torch.testing.assert_close(readout(palindrome), torch.zeros(2, 8, dtype=torch.float64))


@pytest.mark.parametrize("order_readout", ["none", "roi", "time", "both"])
def test_order_readout_is_the_only_part_whose_roi_statistics_see_a_reversal(order_readout):
    model = _tiny(encoder="hybrid", order_readout=order_readout, roi_patch=1, roi_remove_shared=False,
                  roi_lags=(1, 2))
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    roi = model.pathways[0].roi
    n_sym = roi.pool.out_features + roi.correction.out_features * len(roi.lags)
    v, v_rev = roi.roi_features(x), roi.roi_features(x.flip(-1))
    # untrained, the corrections are zero: energy, tail weight and autocorrelations of the input itself
    torch.testing.assert_close(v_rev[..., :n_sym], v[..., :n_sym])
    assert v.shape[-1] == n_sym + (4 if order_readout in ("roi", "both") else 0)
    if order_readout in ("roi", "both"):
        torch.testing.assert_close(v_rev[..., n_sym:], -v[..., n_sym:])
    assert (model.pathways[0].time.direction is not None) == (order_readout in ("time", "both"))
    model(x).sum().backward()  # every part is differentiable


def test_order_readout_is_checked_and_its_preset_turns_it_on():
    with pytest.raises(ConfigError, match="order_readout"):
        _tiny(order_readout="sideways")
    assert get_model("NeuroSSM").resolve_config()["order_readout"] == "none"
    assert get_model("NeuroSSM").resolve_config(preset="order_readout")["order_readout"] == "both"


def test_time_part_direction_changes_sign_when_time_is_reversed():
    model = _tiny(encoder="time", order_readout="time")
    time_part = model.pathways[0]
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    forward, backward = time_part.direction_features(x), time_part.direction_features(x.flip(-1))
    assert forward.shape == (3, time_part.direction.out_features)
    torch.testing.assert_close(backward, -forward)
    assert forward.abs().mean() > 1e-4
