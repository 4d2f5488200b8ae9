"""Contract tests over every registered model.

One parametrised set of checks runs every model through the same harness: output shape, finite
outputs, batch-permutation equivariance, the input is not mutated, config → JSON → model round
trip, gradient flow and ``training_loss`` for torch models; ``fit(X, y, groups)``,
``predict_log_proba`` on scans of any length, ``fitted_params`` and the
``get_state``/``set_state`` round trip through ``.npz`` for feature models. A model whose module
cannot be imported yet (a dependency still missing) is skipped with the import error as reason.
"""

from __future__ import annotations

import importlib
import io
import json
import re

import numpy as np
import pytest
import torch

from neurossm.models import registry

B, R, T, N_CLASSES = 3, 8, 40, 2
# Every model the project ships; a missing one is a failure, one that cannot import yet a skip.
EXPECTED = ("BolT", "catch22", "FC_LR", "FC_SVM", "GRU", "meanMLP", "MiniRocket", "NeuroSSM")

# Parameters that by design receive no gradient from the logits. BolT reads only the CLS tokens
# of its last layer, so that layer's token→token and token→CLS attention biases (which only
# shape the time-point tokens' update) cannot reach the output.
# NeuroSSM's ROI-wise encoder adds corrections initialised to zero (its pooled statistics start as
# those of the input itself), so at initialisation nothing reaches the stem and blocks before them.
# The fusion gate's bias shifts every pathway's score alike, which the softmax over pathways
# ignores: its gradient is zero up to rounding, exactly zero in some configurations.
_ROI_BEFORE_CORRECTION = r"pathways\.(\d+)\.(roi\.)?(stem|blocks)\..*|gate\.bias"
NO_GRAD_BY_DESIGN = {
    "BolT": r"blocks\.(\d+)\.attention\.(relative_bias|token_to_cls_bias)",
    "NeuroSSM": _ROI_BEFORE_CORRECTION,
    "NeuroSSM:roi": _ROI_BEFORE_CORRECTION,
    "NeuroSSM:hybrid": _ROI_BEFORE_CORRECTION,
    # one pathway: the gate's softmax over a single pathway is 1 whatever its score
    "NeuroSSM:small_data": _ROI_BEFORE_CORRECTION + r"|gate\.weight",
}


def _load_all() -> Exception | None:
    """Import every built-in model module; return the import error of one that failed, if any."""
    importlib.import_module("neurossm.models.fc")
    importlib.import_module("neurossm.models.baselines")
    try:
        registry.list_models()
    except ModuleNotFoundError as exc:
        return exc
    return None


_IMPORT_ERROR = _load_all()


def _spec(name: str) -> registry.ModelSpec:
    try:
        return registry.get_model(name)
    except ModuleNotFoundError:
        # The registry refuses to load while one module's dependency is missing; the other
        # modules registered themselves already.
        spec = registry._REGISTRY.get(name.lower())
        if spec is None:
            pytest.skip(f"{name}: its module does not import yet ({_IMPORT_ERROR})")
        return spec


def _names() -> list[str]:
    return sorted({s.name for s in registry._REGISTRY.values()} | set(EXPECTED), key=str.lower)


FEATURE_NAMES = ("catch22", "FC_LR", "FC_SVM", "MiniRocket")
# Presets that swap a model's architecture, checked like models of their own as "NAME:preset"
ARCHITECTURE_PRESETS = ("NeuroSSM:time", "NeuroSSM:roi", "NeuroSSM:hybrid", "NeuroSSM:time_moments",
                        "NeuroSSM:small_data")
TORCH = [n for n in _names() if n not in FEATURE_NAMES] + list(ARCHITECTURE_PRESETS)
# MiniRocket's numba kernels compile on first use (about 40 s on a fresh machine, cached after).
FEATURES = [pytest.param(n, marks=pytest.mark.slow) if n == "MiniRocket" else n for n in FEATURE_NAMES]


def _config(name: str) -> dict:
    """The config of ``name``: the model's defaults, or a preset's for "NAME:preset"."""
    model, _, preset = name.partition(":")
    return _spec(model).resolve_config(preset=preset or None)


def _build(name: str, config: dict | None = None, seed: int = 0):
    spec = _spec(name.partition(":")[0])
    config = _config(name) if config is None else config
    torch.manual_seed(seed)
    return spec, spec.build(R, N_CLASSES, T, config)


def _input(seed: int = 1) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((B, R, T)).astype(np.float32))


def test_every_expected_model_is_registered():
    names = {s.name for s in registry._REGISTRY.values()}
    missing = set(EXPECTED) - names
    if missing == {"NeuroSSM"} and _IMPORT_ERROR is not None:
        pytest.skip(f"NeuroSSM does not import yet ({_IMPORT_ERROR})")
    assert not missing


@pytest.mark.parametrize("name", _names())
def test_spec_has_reference_and_json_config(name):
    spec = _spec(name)
    assert spec.kind in ("torch", "features") and spec.description and spec.reference
    config = spec.defaults()
    assert json.loads(json.dumps(config)) is not None  # every default is JSON-serialisable
    for preset in spec.presets:
        spec.resolve_config(preset=preset)


@pytest.mark.parametrize("name", [n for n in TORCH if ":" not in n])
def test_torch_docstring_documents_the_shared_signal_arguments(name):
    doc = _spec(name).cls.__doc__
    assert "{signal_parameters}" not in doc
    for arg in ("n_rois : int", "n_outputs : int", "n_times : int"):
        assert arg in doc, f"{name}'s docstring does not document {arg.split()[0]}"


@pytest.mark.parametrize("name", TORCH)
def test_torch_forward_shape_finite_and_input_untouched(name):
    spec, model = _build(name)
    assert spec.kind == "torch"
    model.eval()
    x = _input()
    before = x.clone()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (B, N_CLASSES)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(x, before, rtol=0, atol=0)


@pytest.mark.parametrize("name", TORCH)
def test_torch_batch_permutation_equivariance(name):
    _, model = _build(name)
    model.eval()
    x = _input()
    perm = torch.tensor([2, 0, 1])
    with torch.no_grad():
        torch.testing.assert_close(model(x[perm]), model(x)[perm], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", TORCH)
def test_torch_config_json_round_trip(name):
    spec, model = _build(name, seed=0)
    model.eval()
    config = json.loads(json.dumps(_config(name)))
    _, rebuilt = _build(name, config, seed=123)  # another init: only the loaded state may make them equal
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    x = _input()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


@pytest.mark.parametrize("name", TORCH)
def test_torch_gradients_reach_every_parameter(name):
    _, model = _build(name)
    model.train()
    x = _input()
    y = torch.tensor([0, 1, 1])
    loss_fn = getattr(model, "training_loss", None)
    loss = loss_fn(x, y)[0] if loss_fn else torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    allowed = NO_GRAD_BY_DESIGN.get(name, r"$^")
    if name.startswith("NeuroSSM"):
        # the gate's bias shifts every pathway's score alike, which a softmax over pathways ignores:
        # its gradient is zero up to rounding
        allowed += r"|gate\.bias"
    allowed = re.compile(allowed)
    dead = []
    for pname, p in model.named_parameters():
        if not p.requires_grad:
            continue
        assert p.grad is None or torch.isfinite(p.grad).all(), pname
        if (p.grad is None or not p.grad.abs().sum() > 0) and not allowed.fullmatch(pname):
            dead.append(pname)
    assert not dead, f"{name}: no gradient reaches {dead}"


@pytest.mark.parametrize("name", TORCH)
def test_torch_training_objective_contract(name):
    _, model = _build(name)
    x, y = _input(), torch.tensor([0, 1, 0])
    before = x.clone()
    if hasattr(model, "training_loss"):
        loss, logits = model.training_loss(x, y)
    else:  # the harness falls back to cross-entropy on the logits
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.requires_grad
    assert logits.shape == (B, N_CLASSES)
    torch.testing.assert_close(x, before, rtol=0, atol=0)


def _scans(n: int = 16, seed: int = 3) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` scans of ``R`` ROIs and 40 to 40 + n − 1 time points (lengths differ on purpose)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % N_CLASSES
    X = []
    for i, label in enumerate(y):
        x = rng.standard_normal((R, T + i))
        if label:
            x[:3] += rng.standard_normal(T + i)  # class 1: ROIs 0–2 share a time course
        X.append(x.astype(np.float32))
    return X, y


# Two scans per subject: inner folds must keep a subject's scans together.
GROUPS = np.repeat([f"sub{i}" for i in range(8)], 2)


def _fit_features(name: str):
    spec = _spec(name)
    assert spec.kind == "features"
    X, y = _scans()
    return spec, spec.build(R, N_CLASSES, T).fit(X[:12], y[:12], groups=GROUPS[:12]), X, y


@pytest.mark.parametrize("name", FEATURES)
def test_features_predict_shape_finite_permutation_and_input_untouched(name):
    X, _ = _scans()
    copies = [x.copy() for x in X]
    spec, model, X, y = _fit_features(name)
    logp = np.asarray(model.predict_log_proba(X))
    assert logp.shape == (len(X), N_CLASSES) and np.isfinite(logp).all()
    np.testing.assert_allclose(np.logaddexp.reduce(logp, axis=1), 0.0, atol=1e-9)  # normalised
    perm = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_allclose(np.asarray(model.predict_log_proba([X[i] for i in perm])), logp[perm])
    for a, b in zip(X, copies):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", FEATURES)
def test_features_report_the_hyperparameters_inner_cv_chose(name):
    spec, model, _, _ = _fit_features(name)
    params = model.fitted_params()
    json.dumps(params)  # written to metrics.json
    chosen = [v for k, v in params.items() if k in ("C", "alpha")]
    assert len(chosen) == 1 and chosen[0] in params["grid"]
    assert 2 <= params["inner_folds"] <= 5
    assert sum(row["chosen"] for row in model.history_) == 1


@pytest.mark.parametrize("name", FEATURES)
def test_features_state_round_trip_through_npz(name):
    spec, model, X, _ = _fit_features(name)
    buf = io.BytesIO()
    np.savez(buf, **model.get_state())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as data:  # plain arrays only, never a pickle
        state = {k: data[k] for k in data.files}
    config = json.loads(json.dumps(spec.defaults()))
    rebuilt = spec.build(R, N_CLASSES, T, config)
    rebuilt.set_state(state)
    np.testing.assert_allclose(rebuilt.predict_log_proba(X), model.predict_log_proba(X))


@pytest.mark.parametrize("name", _names())
def test_every_option_has_a_checked_type_and_every_number_a_declared_range(name):
    spec = _spec(name)
    hints = registry.option_types(spec.cls)
    for key, default in spec.defaults().items():
        assert key in hints, f"{name}.{key} has no type annotation to check values against"
        ok, _ = registry._check_value(default, hints[key])  # raises on an annotation it cannot check
        assert ok, f"{name}.{key}: default {default!r} does not match its annotation {hints[key]}"
        if registry._numbers_in(default) or hints[key] in (int, float):
            assert key in registry.OPTION_RANGES, f"{name}.{key} is numeric but has no range in OPTION_RANGES"
    for preset in spec.presets:
        spec.resolve_config(preset=preset)


def _out_of_range(bounds: registry.Bounds) -> float:
    return bounds.low - 1 if bounds.low is not None else bounds.high + 1


@pytest.mark.parametrize("name", _names())
def test_wrong_types_and_out_of_range_values_are_refused_before_building(name):
    spec = _spec(name)
    for key, default in spec.defaults().items():
        if all(isinstance(v, str) for v in (default if isinstance(default, tuple) else (default,))):
            continue  # any text is of the right type; the constructor checks the choices
        with pytest.raises(registry.ConfigError, match=rf"model {spec.name}: option {key}=.*'abc'.* is not a valid"):
            spec.resolve_config({key: "abc"})
        bounds = registry.OPTION_RANGES.get(key)
        if bounds is not None:
            bad = _out_of_range(bounds)
            value = int(bad) if registry.option_types(spec.cls)[key] in (int, tuple[int, ...]) else bad
            with pytest.raises(registry.ConfigError, match=rf"option {key}=.*out of range; .*must be"):
                spec.resolve_config({key: value})


# Models CPA must be able to explain (docs/cpa.md); the others are checked to be refused cleanly.
EXPLAINABLE = {"NeuroSSM"}


@pytest.mark.parametrize("name", _names())
def test_attribution_contract(name):
    """A model is explainable exactly when it implements ``PathwayModel``; the class-level check
    (made before a run builds anything) agrees with the instance, and the pieces compose to the
    model's own logits, with one pathway ablatable before fusion."""
    from neurossm.errors import ConfigError
    from neurossm.explain.contract import PathwayModel, check_explainable, is_explainable

    spec, model = _build(name)
    assert is_explainable(spec.cls) == isinstance(model, PathwayModel) == (name in EXPLAINABLE)
    if name not in EXPLAINABLE:
        with pytest.raises(ConfigError, match=name):
            check_explainable(spec.cls, name)
        return
    model.eval()
    x = _input()
    with torch.no_grad():
        inputs = model.pathway_inputs(x)
        vectors = model.pathway_vectors(inputs)  # (B, P, d)
        assert len(inputs) == vectors.shape[1] == len(model.pathway_names)
        torch.testing.assert_close(model.classify(vectors), model(x))
        mask = torch.ones(len(inputs))
        mask[0] = 0
        assert model.classify(vectors, mask).shape == (B, N_CLASSES)
