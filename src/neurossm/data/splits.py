"""Subject-grouped, stratified splits, reproducible from the seed and saved to disk.

Scans of one subject always sit on one side of every split (outer test fold, inner validation
split), so a model is never tested on a subject it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from ..errors import DataFormatError
from .scans import ScanDataset


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
        return list(splitter.split(np.zeros(len(labels)), labels, groups))
    except ValueError as exc:
        raise DataFormatError(f"{what}: cannot make {n_splits} stratified, subject-disjoint parts ({exc}); "
                              "use fewer folds (--folds) or more scans per class") from exc


def make_splits(
    dataset: ScanDataset, seed: int, n_folds: int = 5, val_fraction: float = 0.2, single: bool = False
) -> list[Split]:
    """Outer ``StratifiedGroupKFold`` on subject; an inner grouped validation split per fold.

    With ``single=True`` (``--skip_cross_validation``) only the first outer fold is kept: one
    train/validation/holdout split per seed.
    """
    labels, groups, ids = dataset.labels, dataset.subjects, np.array(dataset.scan_ids, dtype=object)
    outer = _grouped_folds(labels, groups, n_folds, seed, dataset.name)
    splits = []
    for k, (train_idx, test_idx) in enumerate(outer):
        # A small training fold gets a larger validation share rather than no validation split.
        counts = np.bincount(labels[train_idx])
        smallest_class = int(counts[counts > 0].min())
        n_inner = max(2, min(int(round(1.0 / val_fraction)), len(set(groups[train_idx].tolist())), smallest_class))
        inner = _grouped_folds(labels[train_idx], groups[train_idx], n_inner, seed + 1000 * (k + 1),
                               f"{dataset.name} fold {k} (validation split)")
        fit_rel, val_rel = inner[0]
        splits.append(Split(
            seed, k,
            tuple(sorted(ids[train_idx[fit_rel]])),
            tuple(sorted(ids[train_idx[val_rel]])),
            tuple(sorted(ids[test_idx])),
        ))
        if single:
            break
    return splits


def check_disjoint(dataset: ScanDataset, split: Split) -> None:
    """Raise if a subject appears on two sides of a split (a guard, also used by tests)."""
    subject = {s.scan_id: s.subject_id for s in dataset.scans}
    sides = {name: {subject[i] for i in getattr(split, name)} for name in ("train", "val", "test")}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = sides[a] & sides[b]
        if both:
            raise AssertionError(f"fold {split.fold}: subject(s) {sorted(both)[:5]} on both {a} and {b} sides")
