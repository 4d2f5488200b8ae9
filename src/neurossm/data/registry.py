"""The dataset registry: each loader module registers the datasets it reads, as models register.

A :class:`DatasetSpec` holds everything the rest of the code needs to know about a named dataset:
its atlas and ROI count, training crop length, prediction target and class names, its loader and
the loader's extra options, its training defaults, and the Neurosynth terms of its classes (for
the reference analysis). Adding a dataset is one new module under ``neurossm/data/`` that calls
:func:`register_dataset`, plus its name in :data:`BUILTIN_MODULES` (docs/datasets.md shows one).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from ..config import TrainingConfig
from ..errors import ConfigError

# The modules that register the built-in datasets, imported on the first look-up.
BUILTIN_MODULES = ("hcp", "ppmi", "folder", "synthetic")
DEFAULT_DATA_ROOT = Path("Dataset/Data")


@dataclass(frozen=True)
class DatasetOption:
    """One extra option of a loader, as the command line shows it.

    ``parse`` turns the command-line string into the value; values that are not strings (from
    Python callers) pass through unchanged.
    """

    default: Any
    parse: Callable[[str], Any]
    help: str
    choices: tuple[str, ...] | None = None

    def convert(self, name: str, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = self.parse(value)
            except ValueError as exc:
                raise ConfigError(f"option {name}={value!r}: {exc}") from exc
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"option {name}={value!r}; choose one of {', '.join(self.choices)}")
        return value


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset.

    Parameters
    ----------
    name : str
        Upper-case name used on the command line and in folder names (``HCP_TASK``).
    atlas : str
        Atlas of the ROIs: a name of :data:`neurossm.config.ATLASES`, or a free label
        (``custom``, ``synthetic``) when the data say which.
    n_rois : int or None
        ROI count, when fixed by the atlas (it decides which array axis holds the ROIs).
    crop_length : int or None
        Training crop length (time points); ``None``: the shortest scan's length.
    target : str
        What the label is (``gender``, ``task``, ``diagnosis``, ``label``).
    description : str
        One line for the help and the docs.
    loader : callable
        ``loader(data_root, *, n_rois, crop_length, seed, **options) -> ScanDataset``;
        ``data_root`` and ``n_rois`` are ``None`` when not given.
    class_names : tuple of str, optional
        Class names in label order, when fixed by the dataset.
    options : mapping of str to DatasetOption
        The loader's extra options (``--data-option KEY=VALUE``).
    training : TrainingConfig
        Training defaults (epochs, batch size, learning rate, ...).
    terms : mapping of str to list of str
        Neurosynth terms per class name (upper case); an empty list maps a class to no term on
        purpose (a control group).
    """

    name: str
    atlas: str
    n_rois: int | None
    crop_length: int | None
    target: str
    description: str
    loader: Callable[..., Any]
    class_names: tuple[str, ...] | None = None
    options: Mapping[str, DatasetOption] = field(default_factory=dict)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    terms: Mapping[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        object.__setattr__(self, "terms", MappingProxyType({k.upper(): list(v) for k, v in self.terms.items()}))


# Parsers of option values given as text on the command line.
def optional_str(value: str) -> str | None:
    return None if value.strip().lower() in ("", "none", "all") else value.strip()


def optional_int(value: str) -> int | None:
    return None if value.strip().lower() in ("", "none") else int(value)


def optional_float(value: str) -> float | None:
    return None if value.strip().lower() in ("", "none") else float(value)


def boolean(value: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``), any case."""
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not a boolean; give true or false")


def int_lists(value: str) -> list[list[int]]:
    """``"0,1,2;5,6"`` → ``[[0, 1, 2], [5, 6]]``: one group of ROI indices per class."""
    return [[int(v) for v in group.split(",") if v.strip()] for group in value.split(";")]


def name_list(value: str) -> tuple[str, ...]:
    """``"rest,task"`` → ``("rest", "task")``."""
    return tuple(v.strip() for v in value.split(",") if v.strip())


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` under its (upper-case) name; a second spec of the same name is refused."""
    key = spec.name.upper()
    if key in _REGISTRY and _REGISTRY[key] is not spec:
        raise ValueError(f"dataset {key} is registered twice")
    _REGISTRY[key] = spec
    return spec


def _load_builtin() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(f"{__package__}.{module}")


def get_dataset(name: str) -> DatasetSpec:
    """The spec of dataset ``name`` (case-insensitive)."""
    _load_builtin()
    spec = _REGISTRY.get(str(name).upper())
    if spec is None:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(list_datasets())}")
    return spec


def list_datasets() -> list[str]:
    """Registered dataset names: the built-in ones in :data:`BUILTIN_MODULES` order, then the others."""
    _load_builtin()
    modules = [f"{__package__}.{m}" for m in BUILTIN_MODULES]

    def rank(key: str) -> tuple[int, int]:
        module = getattr(_REGISTRY[key].loader, "__module__", "")
        return (modules.index(module) if module in modules else len(modules), list(_REGISTRY).index(key))

    return sorted(_REGISTRY, key=rank)


def training_defaults(dataset: str, **overrides: Any) -> TrainingConfig:
    """The dataset's training defaults with the given fields replaced (``None`` keeps the default)."""
    base = get_dataset(dataset).training
    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise ConfigError(f"unknown training option(s) {sorted(unknown)}; known: {sorted(fields)}")
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def describe_training_defaults() -> list[str]:
    """One line per dataset: its training defaults, as ``neurossm models --verbose`` prints them."""
    lines = []
    for name in list_datasets():
        cfg = get_dataset(name).training
        stop = (f"early stopping after {cfg.patience} epochs without improvement" if cfg.patience
                else "no early stopping")
        lines.append(f"{name:<10} epochs {cfg.epochs}, batch {cfg.batch_size}, lr {cfg.lr:g} ({cfg.schedule}, "
                     f"warm-up {cfg.warmup_epochs}), weight decay {cfg.weight_decay:g}, validation "
                     f"{cfg.val_fraction:g} of subjects, selection by {cfg.select_metric}, {stop}")
    return lines
