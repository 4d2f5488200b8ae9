"""The model registry: ``--model NAME`` (case-insensitive) → a model class and its config.

Two kinds of model share one harness:

- ``"torch"``: an ``nn.Module`` built as ``cls(n_rois, n_outputs, n_times, **config)`` whose
  ``forward(x)`` maps ``(B, R, T)`` to class logits ``(B, n_outputs)``; the harness trains it
  (random crops, AdamW, validation-based checkpoint selection). It may define
  ``training_loss(x, y) -> (loss, logits)`` when its objective has extra terms.
- ``"features"``: a scikit-learn-style estimator built as ``cls(**config)`` with
  ``fit(X, y, X_val, y_val)`` and ``predict_log_proba(X)`` on lists of ``(R, T)`` arrays.

Every model's constructor arguments are its config: ``config_of(model)`` reads them back, so a
config written to JSON rebuilds the same model.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import ConfigError


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
            if isinstance(default, tuple) and not isinstance(value, tuple):
                value = (value,)
            config[key] = value
        return config

    def build(self, n_rois: int, n_outputs: int, n_times: int, config: dict[str, Any] | None = None) -> Any:
        config = dict(config if config is not None else self.defaults())
        if self.kind == "torch":
            return self.cls(n_rois, n_outputs, n_times, **config)
        return self.cls(**config)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str, *, kind: str, description: str, reference: str = "", presets: dict[str, dict] | None = None
) -> Callable[[type], type]:
    """Class decorator that adds a model to the registry under ``name``."""
    if kind not in ("torch", "features"):
        raise ValueError(f"kind must be 'torch' or 'features', not {kind!r}")

    def deco(cls: type) -> type:
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
