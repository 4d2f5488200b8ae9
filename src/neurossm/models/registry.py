"""The model registry: ``--model NAME`` (case-insensitive) → a model class and its config.

Two kinds of model share one harness:

- ``"torch"``: an ``nn.Module`` built as ``cls(n_rois, n_outputs, n_times, **config)`` whose
  ``forward(x)`` maps ``(B, R, T)`` to class logits ``(B, n_outputs)``; the harness trains it
  (random crops, AdamW, validation-based checkpoint selection). It may define
  ``training_loss(x, y) -> (loss, logits)`` when its objective has extra terms.
- ``"features"``: a closed-form estimator built as ``cls(**config)``, on lists of whole
  ``(R, T)`` scans (their lengths may differ; no crops): ``fit(X, y, groups)`` receives the
  whole training fold (the harness's validation split included) and the subject id of each
  scan, and chooses its own hyperparameters by subject-grouped inner cross-validation;
  ``predict_log_proba(X)`` gives ``(n_scans, n_classes)`` log-probabilities (or log-softmax
  scores); ``get_state()``/``set_state(state)`` save and restore the fitted model as plain
  arrays (``.npz``). Optional: ``fitted_params()`` (a JSON-able dict of the chosen
  hyperparameters, written to the fold's ``metrics.json`` as ``"hyperparameters"``) and
  ``history_`` (rows of the inner search, written to ``history.csv``).

Every model's constructor arguments are its config: ``config_of(model)`` reads them back, so a
config written to JSON rebuilds the same model.

Options are checked before a model is built (:meth:`ModelSpec.resolve_config`): each value's type
against the constructor's annotation, and each number against the range declared once for that
option name in :data:`OPTION_RANGES` (an option name means the same thing in every model).
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import ConfigError


@dataclass(frozen=True)
class Bounds:
    """The range a numeric option (or each item of a tuple option) must lie in."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def admits(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '≥'} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


_POSITIVE_COUNT = Bounds(1)
_PROBABILITY = Bounds(0.0, 1.0, high_open=True)
# Ranges of every numeric option of every registered model, by option name; the contract tests
# refuse a model whose numeric option is missing here.
OPTION_RANGES: dict[str, Bounds] = {
    "d_model": _POSITIVE_COUNT, "n_layers": _POSITIVE_COUNT, "d_state": _POSITIVE_COUNT,
    "d_conv": _POSITIVE_COUNT, "expand": _POSITIVE_COUNT, "hidden_size": _POSITIVE_COUNT,
    "n_heads": _POSITIVE_COUNT, "head_dim": _POSITIVE_COUNT, "window_size": _POSITIVE_COUNT,
    "scales": _POSITIVE_COUNT, "roi_d_model": _POSITIVE_COUNT, "roi_d_state": _POSITIVE_COUNT,
    "roi_patch": _POSITIVE_COUNT, "roi_channels": _POSITIVE_COUNT, "time_d_model": _POSITIVE_COUNT,
    "roi_n_layers": Bounds(0), "roi_lags": _POSITIVE_COUNT,
    "drop_prob": _PROBABILITY, "attn_drop_prob": _PROBABILITY,
    "shift_coeff": Bounds(0.0, 1.0, low_open=True),
    "fringe_coeff": Bounds(0.0), "mlp_ratio": Bounds(0.0, low_open=True), "lambda_cons": Bounds(0.0),
    "c_grid": Bounds(0.0, low_open=True), "alpha_grid": Bounds(0.0, low_open=True),
    # inner cross-validation needs two folds at least
    "inner_folds": Bounds(2),
    # joblib: -1 means every core
    "n_jobs": Bounds(-1), "random_state": Bounds(0),
    # aeon's MiniRocket uses 84 base kernels, so fewer features than that cannot be drawn
    "n_kernels": Bounds(84), "max_dilations_per_kernel": _POSITIVE_COUNT,
}


def option_types(cls: type) -> dict[str, Any]:
    """The constructor's annotations, resolved (``from __future__ import annotations`` leaves text)."""
    return typing.get_type_hints(cls.__init__)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_value(value: Any, tp: Any) -> tuple[bool, Any]:
    """``(ok, value)``: ``value`` checked against annotation ``tp`` (an int is a valid float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            ok, converted = _check_value(value, arm)
            if ok:
                return True, converted
        return False, value
    if tp is type(None):
        return value is None, value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (tuple, list)) or not value:
            return False, value
        item_tp = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if item_tp is None:
            return False, value
        checked = [_check_value(v, item_tp) for v in value]
        return all(ok for ok, _ in checked), tuple(v for _, v in checked)
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    raise TypeError(f"unsupported option annotation {tp!r}")


def _numbers_in(value: Any) -> list[float]:
    items = value if isinstance(value, tuple) else (value,)
    return [v for v in items if isinstance(v, numbers.Real) and not isinstance(v, bool)]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: how to build it and where it comes from."""

    name: str
    cls: type
    kind: str
    description: str
    reference: str = ""
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def defaults(self) -> dict[str, Any]:
        """The constructor's documented defaults (the model's config fields)."""
        skip = {"self", "n_rois", "n_outputs", "n_times"}
        params = inspect.signature(self.cls.__init__).parameters
        return {
            k: p.default
            for k, p in params.items()
            if k not in skip and p.default is not inspect.Parameter.empty
            and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }

    def resolve_config(self, overrides: dict[str, Any] | None = None, preset: str | None = None) -> dict[str, Any]:
        """Defaults, then a named preset, then ``key=value`` overrides; unknown keys are refused."""
        config = self.defaults()
        if preset:
            if preset not in self.presets:
                raise ConfigError(
                    f"model {self.name} has no preset {preset!r}; presets: {sorted(self.presets) or 'none'}"
                )
            config.update(self.presets[preset])
        for key, value in (overrides or {}).items():
            if key not in config:
                raise ConfigError(
                    f"model {self.name} has no option {key!r}; options: {', '.join(sorted(config))}"
                )
            default = config[key]
            if isinstance(default, tuple) and value is not None and not isinstance(value, tuple):
                value = (value,)
            config[key] = value
        return self.validate_config(config)

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` with each value checked against its annotation and declared range.

        Raises :class:`~neurossm.errors.ConfigError` naming the model, the option, the value and
        what is expected, so that nothing is built (or trained) with a value torch would choke on.
        """
        hints = option_types(self.cls)
        out = {}
        for key, value in config.items():
            tp = hints.get(key)
            if tp is None:
                out[key] = value
                continue
            ok, converted = _check_value(value, tp)
            if not ok:
                raise ConfigError(f"model {self.name}: option {key}={value!r} is not a valid {_type_name(tp)} "
                                  f"(default {self.defaults().get(key)!r}); e.g. --config {key}="
                                  f"{_example(self.defaults().get(key))}")
            bounds = OPTION_RANGES.get(key)
            if bounds is not None:
                bad = [v for v in _numbers_in(converted) if not bounds.admits(v)]
                if bad:
                    raise ConfigError(f"model {self.name}: option {key}={value!r} is out of range; "
                                      f"{'each value ' if isinstance(converted, tuple) else ''}must be {bounds}")
            out[key] = converted
        return out

    def build(self, n_rois: int, n_outputs: int, n_times: int, config: dict[str, Any] | None = None) -> Any:
        config = dict(config if config is not None else self.defaults())
        if self.kind == "torch":
            return self.cls(n_rois, n_outputs, n_times, **config)
        return self.cls(**config)


def _example(default: Any) -> str:
    if isinstance(default, tuple):
        return ",".join(str(v) for v in default)
    return str(default).lower() if isinstance(default, bool) or default is None else str(default)


_REGISTRY: dict[str, ModelSpec] = {}


#: The docstring paragraph of the signal arguments every torch model shares (``{signal_parameters}``
#: in a class docstring, at the indentation of a numpydoc parameter; ``n_times`` stays the model's own).
SIGNAL_PARAMETERS = """n_rois : int
        ROIs per time point (400 for Schaefer-400, 166 for AAL3v2).
    n_outputs : int
        Classes."""


def register_model(
    name: str, *, kind: str, description: str, reference: str = "", presets: dict[str, dict] | None = None
) -> Callable[[type], type]:
    """Class decorator that adds a model to the registry under ``name``."""
    if kind not in ("torch", "features"):
        raise ValueError(f"kind must be 'torch' or 'features', not {kind!r}")

    def deco(cls: type) -> type:
        if kind == "torch" and cls.__doc__:
            cls.__doc__ = cls.__doc__.replace("{signal_parameters}", SIGNAL_PARAMETERS)
        _REGISTRY[name.lower()] = ModelSpec(name, cls, kind, description, reference, dict(presets or {}))
        return cls

    return deco


def _load_builtin_models() -> None:
    # Importing the modules runs their @register_model decorators. By name, so that the registry
    # has no import of the modules that import it (no fc <-> registry cycle).
    importlib.import_module(f"{__package__}.fc")
    for optional in ("neurossm", "baselines"):
        try:
            importlib.import_module(f"{__package__}.{optional}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{optional}":
                raise


def get_model(name: str) -> ModelSpec:
    _load_builtin_models()
    spec = _REGISTRY.get(name.lower())
    if spec is None:
        raise ConfigError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return spec


def list_models() -> list[str]:
    _load_builtin_models()
    return sorted((s.name for s in _REGISTRY.values()), key=str.lower)
