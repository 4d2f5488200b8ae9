"""Subject-grouped, stratified splits, reproducible from the seed and saved to disk.

Scans of one subject always sit on one side of every split (outer test fold, inner validation
split), so a model is never tested on a subject it was trained on.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from ..errors import ConfigError, DataFormatError
from ..log import get_logger
from .scans import ScanDataset

log = get_logger(__name__)


@dataclass(frozen=True)
class Split:
    """One fold: scan ids on the train, validation and test sides."""

    seed: int
    fold: int
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "fold": self.fold, "train": list(self.train),
                "val": list(self.val), "test": list(self.test)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Split":
        return cls(int(d["seed"]), int(d["fold"]), tuple(d["train"]), tuple(d["val"]), tuple(d["test"]))


def _grouped_folds(labels: np.ndarray, groups: np.ndarray, n_splits: int, seed: int, what: str):
    n_groups = len(set(groups.tolist()))
    if n_groups < n_splits:
        raise DataFormatError(
            f"{what}: {n_groups} subject(s) cannot be split into {n_splits} subject-disjoint parts; "
            "use fewer folds (--folds) or more subjects"
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    try:
        with warnings.catch_warnings():
            # "least populated class has fewer members than n_splits": make_splits checks what matters
            # (every training part holds every class) and says what to change.
            warnings.simplefilter("ignore", UserWarning)
            return list(splitter.split(np.zeros(len(labels)), labels, groups))
    except ValueError as exc:
        raise DataFormatError(f"{what}: cannot make {n_splits} stratified, subject-disjoint parts ({exc}); "
                              "use fewer folds (--folds) or more scans per class") from exc


def validation_split(labels: np.ndarray, groups: np.ndarray, val_fraction: float, seed: int,
                     what: str) -> tuple[np.ndarray, np.ndarray]:
    """The inner validation split of a training set: ``(fit_indices, validation_indices)``.

    Subject-disjoint and stratified (``StratifiedGroupKFold``; pass each scan's own index as its
    group to split by scan). About ``val_fraction`` of the subjects go to validation; a small
    training set gets a larger validation share rather than none. ``neurossm train`` (per outer
    fold, :func:`make_splits`) and :class:`neurossm.classifier.Classifier` (inside ``fit``) both
    draw their validation split here.

    Parameters
    ----------
    labels : ndarray of int, shape (n_scans,)
        Class index of each scan.
    groups : ndarray, shape (n_scans,)
        Subject id of each scan.
    val_fraction : float
        Share of the subjects held out for validation.
    seed : int
        Seed of the split.
    what : str
        Names the data in the error raised when the split cannot be made.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    counts = np.bincount(labels)
    smallest_class = int(counts[counts > 0].min())
    n_inner = max(2, min(int(round(1.0 / val_fraction)), len(set(groups.tolist())), smallest_class))
    inner = _grouped_folds(labels, groups, n_inner, seed, what)
    # The first inner split whose fitting part holds every class (the first one, unless a class
    # has a single subject in the training set and that subject fell into the validation part).
    n_classes = len(set(labels.tolist()))
    return next((part for part in inner if len(set(labels[part[0]].tolist())) == n_classes), inner[0])


def make_splits(
    dataset: ScanDataset, seed: int, n_folds: int = 5, val_fraction: float = 0.2, single: bool = False
) -> list[Split]:
    """Outer ``StratifiedGroupKFold`` on subject; an inner grouped validation split per fold.

    With ``single=True`` (``--skip_cross_validation``) only the first outer fold is kept: one
    train/validation/holdout split per seed.

    Every kept split is checked before any training: its training part (the part the model is
    fitted on, after the validation split is taken out) must hold every class, or the error says
    which class is short of subjects and what to change. A validation part that misses a class
    is allowed (model selection then scores the classes it holds) and logged.
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ConfigError(
            f"--folds {n_folds}: cross-validation needs at least 2 folds (each subject is tested once, by a "
            "model trained on the others); --skip_cross_validation keeps fold 0 of --folds as the holdout, "
            "so it needs --folds 2 or more too (the holdout is 1/FOLDS of the subjects)"
        )
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction={val_fraction}: expected a fraction between 0 and 1 (exclusive)")
    labels, groups, ids = dataset.labels, dataset.subjects, np.array(dataset.scan_ids, dtype=object)
    _check_subjects_per_class(dataset, n_folds)
    outer = _grouped_folds(labels, groups, n_folds, seed, dataset.name)
    splits = []
    for k, (train_idx, test_idx) in enumerate(outer):
        fit_rel, val_rel = validation_split(labels[train_idx], groups[train_idx], val_fraction, seed + 1000 * (k + 1),
                                            f"{dataset.name} fold {k} (validation split)")
        split = Split(
            seed, k,
            tuple(sorted(ids[train_idx[fit_rel]])),
            tuple(sorted(ids[train_idx[val_rel]])),
            tuple(sorted(ids[test_idx])),
        )
        _check_classes(dataset, split, labels[train_idx], labels[train_idx[fit_rel]], labels[train_idx[val_rel]],
                       n_folds)
        splits.append(split)
        if single:
            break
    return splits


def _subjects_by_class(dataset: ScanDataset) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {c: set() for c in range(dataset.n_classes)}
    for s in dataset.scans:
        out[s.label].add(s.subject_id)
    return out


def _class_counts_text(dataset: ScanDataset) -> str:
    by_class = _subjects_by_class(dataset)
    return ", ".join(f"{dataset.class_names[c]!r} {len(subj)}" for c, subj in by_class.items())


def _check_subjects_per_class(dataset: ScanDataset, n_folds: int) -> None:
    """A class needs subjects on the training side of every fold: a test fold takes some, the rest train."""
    by_class = _subjects_by_class(dataset)
    short = {c: subj for c, subj in by_class.items() if 0 < len(subj) < 2}
    if short:
        detail = "; ".join(f"class {dataset.class_names[c]!r} has {len(subj)} subject ({', '.join(sorted(subj))})"
                           for c, subj in short.items())
        raise DataFormatError(
            f"{dataset.name}: {detail}. Every fold must train on every class, and a class's only subject is "
            f"tested in one of the {n_folds} folds, so that fold would train without it. Give each class at "
            f"least 2 subjects (3 or more so that the validation split can hold one too), or leave the class "
            f"out of the data. Subjects per class: {_class_counts_text(dataset)}"
        )


def _check_classes(dataset: ScanDataset, split: Split, train_labels: np.ndarray, fit_labels: np.ndarray,
                   val_labels: np.ndarray, n_folds: int) -> None:
    where = f"{dataset.name} seed {split.seed} fold {split.fold}"
    names = dataset.class_names
    # A class that no scan of the data holds (a task left out of an HCP-Task file) is the data's
    # choice, not the split's: only the classes present must reach every training part.
    in_data = {s.label for s in dataset.scans}
    for part, present in (("training part", train_labels), ("training part left after the validation split",
                                                              fit_labels)):
        missing = sorted(in_data - set(present.tolist()))
        if missing:
            raise DataFormatError(
                f"{where}: the {part} holds no scan of class(es) {[names[c] for c in missing]}, so a model "
                f"cannot learn them (its {len(present)} scan(s) belong to the other classes). Use fewer folds "
                f"than --folds {n_folds}, or add subjects of those classes, or leave them out of the data. "
                f"Subjects per class: {_class_counts_text(dataset)}"
            )
    missing_val = sorted(set(range(dataset.n_classes)) - set(val_labels.tolist()))
    if missing_val:
        log.warning("%s: the validation split holds no scan of class(es) %s; model selection scores the "
                    "classes it holds", where, [names[c] for c in missing_val])


def check_disjoint(dataset: ScanDataset, split: Split) -> None:
    """Raise if a subject appears on two sides of a split (a guard, also used by tests)."""
    subject = {s.scan_id: s.subject_id for s in dataset.scans}
    sides = {name: {subject[i] for i in getattr(split, name)} for name in ("train", "val", "test")}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = sides[a] & sides[b]
        if both:
            raise AssertionError(f"fold {split.fold}: subject(s) {sorted(both)[:5]} on both {a} and {b} sides")
