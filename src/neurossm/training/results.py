"""The results layout of a run, and the one writer and reader of it (:class:`RunDirectory`).

::

    <results-root>/<DATASET>/<MODEL>/<run>/
        config.json            resolved options, model and training config, versions
        dataset.json           dataset summary and every dropped scan with its reason
        splits/seed_<S>.json   the folds of seed S (scan ids per side), reproducible from S
        logs/seed_<S>_fold_<k>.log   each unit's log, whichever process or machine ran it
        seed_<S>/fold_<k>/     metrics.json (written last: the fold's "done" marker),
                               predictions.csv, history.csv, model.pt (the fitted model,
                               :mod:`neurossm.training.model_file`)
        fold_metrics.csv       one row per (seed, fold)
        predictions.csv        every test prediction
        summary.json           test metrics as {"mean", "std"} over all folds and seeds, and
                               n_folds_defined: over how many folds each mean is taken
        report.html            written by :mod:`neurossm.report` after the summary

``config.json``, ``dataset.json`` and ``splits/`` are the run's shared files: written once, by
whichever process of the run comes first (:func:`neurossm.io.write_once`), so units that run as
separate jobs never clash; everything else a unit writes is inside its own folder.

Training and the pipeline write through :class:`RunDirectory`; ``neurossm explain``,
``compare``, ``report`` and the summary read through it, so the layout is spelled here only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataFormatError, DataNotFoundError
from ..io import read_csv_or_none, read_json, to_json, write_dataframe, write_json, write_once
from ..log import get_logger
from .metrics import METRICS, mean_std, n_defined
from .model_file import MODEL_FILE

log = get_logger(__name__)

_IDS = {"scan_id": str, "subject_id": str}


class RunDirectory:
    """Paths of one run, and the writers and readers of each file in it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- paths --------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def summary_path(self) -> Path:
        return self.root / "summary.json"

    def is_run(self) -> bool:
        """Whether the folder holds a run (its ``config.json`` or, for older runs, a summary)."""
        return self.config_path.is_file() or self.summary_path.is_file()

    def fold_dir(self, seed: int, fold: int) -> Path:
        return self.root / f"seed_{seed}" / f"fold_{fold}"

    def splits_path(self, seed: int) -> Path:
        return self.root / "splits" / f"seed_{seed}.json"

    def model_path(self, seed: int, fold: int) -> Path:
        """The fold's saved model (:mod:`neurossm.training.model_file`)."""
        return self.fold_dir(seed, fold) / MODEL_FILE

    def model_paths(self) -> list[Path]:
        """The saved model of every finished fold, by (seed, fold)."""
        return [self.model_path(s, f) for s, f in self.completed_folds() if self.model_path(s, f).is_file()]

    def check_model_format(self) -> None:
        """Refuse a run whose finished folds saved weights-only checkpoints (neurossm 0.1).

        Those checkpoints do not say which network they belong to, so this version neither
        explains, predicts with, nor resumes such a run.
        """
        old = sorted(self.root.glob("seed_*/fold_*/checkpoint.*"))
        if old:
            made_by = self.read_optional_json("config.json").get("versions", {}).get("neurossm", "0.1")
            raise ConfigError(
                f"{self.root}: made by neurossm {made_by}, whose folds saved weights-only checkpoints "
                f"({old[0].relative_to(self.root)}); this neurossm version saves self-describing models "
                f"({MODEL_FILE}) and cannot use those: train the run again (a new --run-name), or use "
                f"neurossm {made_by} for this one")

    def fold_done(self, seed: int, fold: int) -> bool:
        return (self.fold_dir(seed, fold) / "metrics.json").is_file()

    def write_fold(self, seed: int, fold: int, metrics: dict[str, Any], predictions: pd.DataFrame,
                   history: list[dict[str, Any]]) -> None:
        d = self.fold_dir(seed, fold)
        write_dataframe(d / "predictions.csv", predictions)
        write_dataframe(d / "history.csv", pd.DataFrame(history))
        write_json(d / "metrics.json", metrics)

    def unit_log_path(self, seed: int, fold: int) -> Path:
        return self.root / "logs" / f"seed_{seed}_fold_{fold}.log"

    # The shared files: each returns whether this call wrote it (False: it was there already).
    def write_config(self, config: dict[str, Any]) -> bool:
        return write_once(self.config_path, to_json(config))

    def write_dataset(self, summary: dict[str, Any]) -> bool:
        return write_once(self.root / "dataset.json", to_json(summary))

    def write_splits(self, seed: int, splits: list[dict[str, Any]]) -> bool:
        return write_once(self.splits_path(seed), to_json(splits))

    # -- readers ------------------------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        """``config.json``; a missing one is a :class:`DataNotFoundError` naming the folder."""
        if not self.config_path.is_file():
            raise DataNotFoundError(f"{self.root}: no config.json there; is it a run folder "
                                    "(Results/<DATASET>/<MODEL>/<run>, written by `neurossm train`)?")
        return read_json(self.config_path)

    def run_id(self) -> str:
        """The run's id from ``config.json`` (a run made before ids were recorded: its folder's path).

        Every CPA file of the run records it, so that maps of two runs are never pooled unknowingly.
        """
        return str(self.read_config().get("run_id") or self.root.resolve())

    def read_splits(self, seed: int) -> list[dict[str, Any]] | None:
        """The saved folds of ``seed`` (``Split.to_dict`` entries), or ``None`` when not written."""
        path = self.splits_path(seed)
        return read_json(path) if path.is_file() else None

    def read_optional_json(self, name: str) -> dict[str, Any]:
        """A top-level JSON file, or ``{}`` when it is missing or broken (a run stopped mid-way)."""
        path = self.root / name
        if not path.is_file():
            return {}
        try:
            return read_json(path)
        except ValueError as exc:
            log.warning("%s is not valid JSON (%s); left out", path, exc)
            return {}

    def read_optional_csv(self, name: str) -> pd.DataFrame | None:
        """A CSV of the run (relative path), or ``None`` when missing or empty (an epoch-less model's
        history can be)."""
        return read_csv_or_none(self.root / name, dtype=_IDS)

    def completed_folds(self) -> list[tuple[int, int]]:
        done = []
        for path in sorted(self.root.glob("seed_*/fold_*/metrics.json")):
            done.append(_seed_fold(path.parent))
        return sorted(done)

    def read_fold_metrics(self) -> list[dict[str, Any]]:
        """``metrics.json`` of every finished fold, by (seed, fold)."""
        return [read_json(self.fold_dir(s, f) / "metrics.json") for s, f in self.completed_folds()]

    def read_histories(self) -> dict[tuple[int, int], pd.DataFrame | None]:
        """``history.csv`` of every fold that wrote one (``None`` where it has no columns)."""
        out = {}
        for path in sorted(self.root.glob("seed_*/fold_*/history.csv")):
            out[_seed_fold(path.parent)] = read_csv_or_none(path)
        return out

    def summarise(self, header: dict[str, Any], expected_folds: int) -> dict[str, Any]:
        """Gather every finished fold into fold_metrics.csv, predictions.csv and summary.json."""
        rows, preds = [], []
        for seed, fold in self.completed_folds():
            d = self.fold_dir(seed, fold)
            m = read_json(d / "metrics.json")
            rows.append({"seed": seed, "fold": fold, **{k: m["test"][k] for k in METRICS}})
            p = pd.read_csv(d / "predictions.csv", dtype=_IDS)
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
        write_json(self.summary_path, summary)
        return summary


def _seed_fold(fold_dir: Path) -> tuple[int, int]:
    """(seed, fold) of a ``seed_<S>/fold_<k>`` folder."""
    return int(fold_dir.parent.name.split("_")[1]), int(fold_dir.name.split("_")[1])


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


def check_run_files(rd: RunDirectory) -> None:
    """Refuse a run whose own files are damaged, naming each one, before ``--resume`` or
    ``explain`` starts (not after the remaining folds have trained).

    Checked: ``config.json``, ``dataset.json`` and every ``splits/seed_<S>.json`` parse as JSON of
    the expected kind; each finished fold's ``metrics.json`` parses and holds its test metrics; the
    fold's saved model is there, not empty, and (zip-based: ``torch.save``, ``.npz``) passes its
    CRC check, so a truncated one is found without unpickling anything.
    """
    import zipfile

    problems: list[str] = []

    def json_of(path: Path, kind: type) -> Any:
        try:
            value = read_json(path)
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: not valid JSON ({' '.join(str(exc).split())})")
            return None
        if not isinstance(value, kind):
            problems.append(f"{path}: holds a {type(value).__name__}; expected a JSON {kind.__name__}")
            return None
        return value

    config = json_of(rd.config_path, dict) if rd.config_path.is_file() else None
    if config is not None and not isinstance(config.get("options"), dict):
        problems.append(f"{rd.config_path}: has no 'options'; it was not written by `neurossm train`")
    if (rd.root / "dataset.json").is_file():
        json_of(rd.root / "dataset.json", dict)
    for path in sorted(rd.root.glob("splits/seed_*.json")):
        json_of(path, list)
    for seed, fold in rd.completed_folds():
        d = rd.fold_dir(seed, fold)
        metrics = json_of(d / "metrics.json", dict)
        if metrics is not None and not isinstance(metrics.get("test"), dict):
            problems.append(f"{d / 'metrics.json'}: has no test metrics")
        named = metrics.get("checkpoint") if metrics is not None else None
        if named and not (d / named).is_file():
            problems.append(f"{d / named}: missing (metrics.json names it)")
        saved = (p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")  # not a write in progress
                 and p.suffix not in (".json", ".csv", ".log"))
        for path in sorted(saved):
            if path.stat().st_size == 0:
                problems.append(f"{path}: empty (0 bytes)")
                continue
            with open(path, "rb") as fh:
                zipped = fh.read(2) == b"PK"
            if zipped:
                try:
                    with zipfile.ZipFile(path) as archive:
                        bad = archive.testzip()
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    bad = f"({exc})"
                if bad is not None:
                    problems.append(f"{path}: truncated or damaged (zip check failed at {bad})")
    if problems:
        listed = "\n  ".join(problems)
        raise DataFormatError(
            f"{rd.root}: {len(problems)} damaged file(s) in the run:\n  {listed}\nA fold whose files are damaged "
            "trains again once its folder (seed_<S>/fold_<k>) is removed; a damaged config.json or split file "
            "means the run must be started again (a new --run-name)")
