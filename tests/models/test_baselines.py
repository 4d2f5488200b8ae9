"""Model-specific checks of the baselines: BolT's windows, fringe, CLS tokens and loss; GRU; FC_SVM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurossm.errors import ConfigError
from neurossm.models.baselines.bolt import (
    BolT,
    FusedWindowAttention,
    consistency_loss,
    fringe_sizes,
    fuse_windows,
    window_geometry,
    window_stride,
)
from neurossm.models.baselines.fc_svm import FCLinearSVM
from neurossm.models.fc import connectivity_features
from neurossm.models.baselines.gru import GRUClassifier


def _x(b: int, r: int, t: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((b, r, t))).to(dtype)


# --- BolT: arithmetic ---------------------------------------------------------------------------

@pytest.mark.parametrize("n_times, n_windows, n_used", [
    (600, 73, 596),  # HCP-Rest crop
    (150, 17, 148),  # HCP-Task crop
    (100, 11, 100),  # PPMI crop
    (40, 3, 36),
    (20, 1, 20),
])
def test_bolt_window_count_for_published_window_and_stride(n_times, n_windows, n_used):
    stride = window_stride(20, 2 / 5)
    assert stride == 8
    assert window_geometry(n_times, 20, stride) == (n_windows, n_used)


def test_bolt_refuses_scans_shorter_than_a_window():
    with pytest.raises(ConfigError, match="window_size=20"):
        window_geometry(19, 20, 8)
    with pytest.raises(ConfigError, match="at least window_size"):
        BolT(8, 2, 10)


def test_bolt_fringe_grows_with_depth_as_published():
    fringes = fringe_sizes(4, 20, 2 / 5, 2.0, "expand")
    assert fringes == (0, 24, 48, 72)
    # Key windows of the authors' code: W + ceil(2 · W · l · fringe_coeff · (1 − shift_coeff)).
    assert [20 + 2 * f for f in fringes] == [20, 68, 116, 164]
    assert fringe_sizes(4, 20, 2 / 5, 2.0, "fixed") == (24, 24, 24, 24)
    assert BolT(8, 2, 40).fringes == (0, 24, 48, 72)


def test_bolt_defaults_are_the_published_hyperparameters():
    model = BolT(400, 2, 600)
    assert isinstance(model.embed, torch.nn.Identity)  # the ROI vector is the token
    attn = model.blocks[0].attention
    assert (len(model.blocks), attn.n_heads, attn.head_dim, attn.window_size, attn.stride) == (4, 36, 20, 20, 8)
    assert model.lambda_cons == 1.0 and model.cls_token.shape == (400,)


# --- BolT: mechanism ----------------------------------------------------------------------------

def _naive_window_attention(att: FusedWindowAttention, h: torch.Tensor, cls: torch.Tensor):
    """Window by window, key by key, with an explicit softmax: the definition, not the fast path."""
    W, S, f, H, d = att.window_size, att.stride, att.fringe, att.n_heads, att.head_dim
    n_windows, n_used = cls.shape[1], h.shape[1]
    tok_out, cls_out = [], []
    for i in range(n_windows):
        start = i * S
        key_times = [t for t in range(start - f, start + W + f) if 0 <= t < n_used]
        queries = torch.cat([cls[:, i : i + 1], h[:, start : start + W]], dim=1)  # (B, 1+W, C)
        keys = torch.cat([cls[:, i : i + 1], h[:, key_times]], dim=1)  # (B, 1+n_keys, C)
        q = att.q(queries).unflatten(-1, (H, d)).transpose(1, 2)  # (B, H, 1+W, d)
        k, v = (t.unflatten(-1, (H, d)).transpose(1, 2) for t in att.kv(keys).chunk(2, dim=-1))
        logits = q @ k.transpose(-1, -2) / d ** 0.5  # (B, H, 1+W, 1+n_keys)
        bias = torch.zeros_like(logits[0])
        bias[:, 0, 0] = att.cls_self_bias
        for j, t in enumerate(key_times):
            bias[:, 0, 1 + j] = att.cls_to_token_bias[:, t - (start - f)]
        for n in range(W):
            bias[:, 1 + n, 0] = att.token_to_cls_bias[:, n]
            for j, t in enumerate(key_times):
                # time offset between query and key, shifted into the table
                bias[:, 1 + n, 1 + j] = att.relative_bias[:, (start + n) - t + W - 1 + f]
        out = torch.softmax(logits + bias, dim=-1) @ v  # (B, H, 1+W, d)
        out = att.proj(out.transpose(1, 2).flatten(-2))  # (B, 1+W, C)
        cls_out.append(out[:, 0])
        tok_out.append(out[:, 1:])
    return torch.stack(tok_out, dim=1), torch.stack(cls_out, dim=1)


@pytest.mark.parametrize("fringe", [0, 8, 24])
def test_fused_window_attention_matches_a_window_by_window_definition(fringe):
    torch.manual_seed(0)
    att = FusedWindowAttention(dim=6, window_size=5, stride=2, fringe=fringe, n_heads=2, head_dim=3).double().eval()
    n_windows, n_used = window_geometry(14, 5, 2)
    h, cls = _x(2, n_used, 6, seed=1, dtype=torch.float64), _x(2, n_windows, 6, seed=2, dtype=torch.float64)
    tok, c = att(h, cls)
    tok_ref, c_ref = _naive_window_attention(att, h, cls)
    torch.testing.assert_close(tok, tok_ref)
    torch.testing.assert_close(c, c_ref)


def test_fuse_windows_averages_overlaps_back_into_the_sequence():
    seq = _x(2, 13, 4, seed=3)  # (B, T_used, C): 5 windows of 5 with stride 2 cover 13 points
    windows = seq.unfold(1, 5, 2).permute(0, 1, 3, 2)  # (B, nW, W, C)
    torch.testing.assert_close(fuse_windows(windows, 2, 13), seq)
    ones = torch.ones(1, 5, 5, 1)
    ones[:, 0] = 3.0  # window 0 covers t = 0..4; t = 2..4 are shared with window 1
    fused = fuse_windows(ones, 2, 13)[0, :, 0]
    assert fused[0] == 3.0 and fused[2] == 2.0 and fused[-1] == 1.0


def test_bolt_one_layer_cls_token_sees_only_its_window():
    torch.manual_seed(0)
    model = BolT(6, 2, 40, n_layers=1, n_heads=2, head_dim=4).eval()  # layer 0 has no fringe
    x = _x(1, 6, 40)
    x2 = x.clone()
    x2[:, 0, 25:] += 5.0  # one ROI (a shift of all ROIs would vanish in LayerNorm); window 0 spans t = 0..19
    with torch.no_grad():
        cls1, cls2 = model.encode(x)[1], model.encode(x2)[1]
    torch.testing.assert_close(cls1[:, 0], cls2[:, 0])
    assert not torch.allclose(cls1[:, -1], cls2[:, -1])


def test_bolt_cls_tokens_one_per_window_and_unused_tail_is_ignored():
    torch.manual_seed(0)
    model = BolT(8, 3, 40, d_model=16, n_heads=2, head_dim=8).eval()
    x = _x(2, 8, 43)  # 43 points: 3 windows over the first 36
    with torch.no_grad():
        h, cls = model.encode(x)
        assert h.shape == (2, 36, 16) and cls.shape == (2, 3, 16)
        x2 = x.clone()
        x2[..., 36:] = 100.0
        torch.testing.assert_close(model(x2), model(x))
        assert model.encode(_x(2, 8, 60))[1].shape == (2, 6, 16)  # longer scans: more windows


def test_consistency_loss_is_finite_nonnegative_and_zero_for_equal_cls_tokens():
    equal = torch.randn(3, 1, 5).expand(3, 7, 5)
    assert consistency_loss(equal).item() == pytest.approx(0.0, abs=1e-12)
    spread = torch.randn(3, 7, 5)
    loss = consistency_loss(spread)
    assert torch.isfinite(loss) and loss.item() > 0
    expected = ((spread - spread.mean(1, keepdim=True)) ** 2).mean()
    torch.testing.assert_close(loss, expected)


def test_bolt_training_loss_is_cross_entropy_plus_weighted_consistency():
    torch.manual_seed(0)
    model = BolT(8, 2, 40, n_heads=2, head_dim=4, lambda_cons=0.5).eval()
    x, y = _x(3, 8, 40), torch.tensor([0, 1, 1])
    loss, logits = model.training_loss(x, y)
    _, cls = model.encode(x)
    expected = torch.nn.functional.cross_entropy(logits, y) + 0.5 * consistency_loss(cls)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(logits, model(x))
    assert loss.item() >= torch.nn.functional.cross_entropy(logits, y).item()


def test_bolt_gmp_pooling_and_bad_options():
    assert BolT(8, 2, 40, n_heads=2, head_dim=4, pooling="gmp")(_x(2, 8, 40)).shape == (2, 2)
    with pytest.raises(ConfigError, match="pooling"):
        BolT(8, 2, 40, pooling="max")
    with pytest.raises(ConfigError, match="fringe_rule"):
        BolT(8, 2, 40, fringe_rule="grow")
    with pytest.raises(ConfigError, match="stride"):
        BolT(8, 2, 40, shift_coeff=0.01)


# --- GRU ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [{}, {"pooling": "last"}, {"embed": False, "n_layers": 2},
                                {"bidirectional": False, "pooling": "last"}])
def test_gru_variants_give_logits(kw):
    model = GRUClassifier(8, 3, 30, hidden_size=12, **kw).eval()
    out = model(_x(4, 8, 30))
    assert out.shape == (4, 3) and torch.isfinite(out).all()


def test_gru_last_pooling_reads_both_directions_final_states():
    torch.manual_seed(0)
    model = GRUClassifier(5, 2, 10, hidden_size=4, pooling="last").eval()
    x = _x(2, 5, 10)
    with torch.no_grad():
        out, _ = model.gru(model.embed(x.transpose(1, 2)))
        last = torch.cat([out[:, -1, :4], out[:, 0, 4:]], dim=1)  # forwards at T−1, backwards at 0
        torch.testing.assert_close(model(x), model.head(last))
    with pytest.raises(ConfigError, match="pooling"):
        GRUClassifier(5, 2, 10, pooling="max")


def test_gru_fits_a_small_training_set():
    torch.manual_seed(0)
    x = _x(8, 6, 20, seed=5)
    y = torch.tensor([0, 1] * 4)
    x[y == 1, 0] += 2.0  # class 1: ROI 0 shifted up
    model = GRUClassifier(6, 2, 20, hidden_size=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert (model(x).argmax(1) == y).all()


# --- FC_SVM -------------------------------------------------------------------------------------

def test_fc_svm_learns_a_connectivity_signal(dataset_factory):
    ds = dataset_factory(n_scans=80, n_rois=10, n_times=80, signal=0.8)
    X, y = [s.timeseries for s in ds.scans], ds.labels
    model = FCLinearSVM().fit(X[:56], y[:56], groups=[s.subject_id for s in ds.scans[:56]])
    logp = model.predict_log_proba(X[56:])
    assert (logp.argmax(1) == y[56:]).mean() >= 0.85
    assert model.fitted_params()["C"] in model.c_grid


def test_fc_svm_binary_scores_are_two_symmetric_columns_and_multiclass_has_one_per_class(dataset_factory):
    ds = dataset_factory(n_scans=24, n_rois=6, n_times=40, signal=1.0)
    X, y = [s.timeseries for s in ds.scans], ds.labels
    model = FCLinearSVM().fit(X, y)
    s = model.scaler_.transform(connectivity_features(X)) @ model.coef_[0] + model.intercept_[0]
    p1 = np.exp(model.predict_log_proba(X))[:, 1]
    np.testing.assert_allclose(p1, 1.0 / (1.0 + np.exp(-s)))  # softmax([−s/2, s/2]) = sigmoid(s)
    ds3 = dataset_factory(n_scans=30, n_rois=6, n_times=40, n_classes=3, signal=1.0)
    X3, y3 = [s.timeseries for s in ds3.scans], ds3.labels
    assert FCLinearSVM().fit(X3, y3).predict_log_proba(X3).shape == (30, 3)
