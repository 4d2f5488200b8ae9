"""The results layout of a run, and the one writer of it.

::

    <results-root>/<DATASET>/<MODEL>/<run>/
        config.json            resolved options, model and training config, versions
        dataset.json           dataset summary and every dropped scan with its reason
        splits/seed_<S>.json   the folds of seed S (scan ids per side), reproducible from S
        seed_<S>/fold_<k>/     metrics.json (written last: the fold's "done" marker),
                               predictions.csv, history.csv, checkpoint.*
        fold_metrics.csv       one row per (seed, fold)
        predictions.csv        every test prediction
        summary.json           test metrics as {"mean", "std"} over all folds and seeds, and
                               n_folds_defined: over how many folds each mean is taken
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io import read_json, write_dataframe, write_json
from .metrics import METRICS, mean_std, n_defined


class RunDirectory:
    """Paths of one run and the writers for each file in it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def fold_dir(self, seed: int, fold: int) -> Path:
        return self.root / f"seed_{seed}" / f"fold_{fold}"

    def splits_path(self, seed: int) -> Path:
        return self.root / "splits" / f"seed_{seed}.json"

    def fold_done(self, seed: int, fold: int) -> bool:
        return (self.fold_dir(seed, fold) / "metrics.json").is_file()

    def write_fold(self, seed: int, fold: int, metrics: dict[str, Any], predictions: pd.DataFrame,
                   history: list[dict[str, Any]]) -> None:
        d = self.fold_dir(seed, fold)
        write_dataframe(d / "predictions.csv", predictions)
        write_dataframe(d / "history.csv", pd.DataFrame(history))
        write_json(d / "metrics.json", metrics)

    def completed_folds(self) -> list[tuple[int, int]]:
        done = []
        for path in sorted(self.root.glob("seed_*/fold_*/metrics.json")):
            done.append((int(path.parent.parent.name.split("_")[1]), int(path.parent.name.split("_")[1])))
        return sorted(done)

    def summarise(self, header: dict[str, Any], expected_folds: int) -> dict[str, Any]:
        """Gather every finished fold into fold_metrics.csv, predictions.csv and summary.json."""
        rows, preds = [], []
        for seed, fold in self.completed_folds():
            d = self.fold_dir(seed, fold)
            m = read_json(d / "metrics.json")
            rows.append({"seed": seed, "fold": fold, **{k: m["test"][k] for k in METRICS}})
            p = pd.read_csv(d / "predictions.csv", dtype={"scan_id": str, "subject_id": str})
            preds.append(p.assign(seed=seed, fold=fold))
        table = pd.DataFrame(rows, columns=["seed", "fold", *METRICS])
        write_dataframe(self.root / "fold_metrics.csv", table)
        if preds:
            write_dataframe(self.root / "predictions.csv", pd.concat(preds, ignore_index=True))
        seed_means = table.groupby("seed")[list(METRICS)].mean() if len(table) else table
        summary = {
            **header,
            "n_folds_done": int(len(table)),
            "n_folds_expected": int(expected_folds),
            "complete": bool(len(table) == expected_folds),
            "test": {k: mean_std(table[k]) for k in METRICS},
            # ROC-AUC is undefined on a test fold holding one class: its mean is over fewer folds.
            "n_folds_defined": {k: n_defined(table[k]) for k in METRICS},
            "test_over_seed_means": {k: mean_std(seed_means[k]) for k in METRICS} if len(table) else {},
            "per_seed": {
                str(s): {k: mean_std(g[k]) for k in METRICS} for s, g in table.groupby("seed")
            },
        }
        write_json(self.root / "summary.json", summary)
        return summary


def predictions_frame(scans, probs: np.ndarray, class_names: tuple[str, ...]) -> pd.DataFrame:
    """One row per test scan: ids, true and predicted label, and the class probabilities."""
    frame = pd.DataFrame({
        "scan_id": [s.scan_id for s in scans],
        "subject_id": [s.subject_id for s in scans],
        "label": [s.label for s in scans],
        "pred": probs.argmax(axis=1),
    })
    for c, name in enumerate(class_names):
        frame[f"prob_{name}"] = probs[:, c]
    return frame
