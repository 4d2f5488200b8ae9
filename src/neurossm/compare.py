"""``neurossm compare``: metrics of finished runs side by side, and paired tests against a reference.

Runs of one dataset made with the same seeds have the same folds (splits depend only on the
dataset and the seed), so their per-fold test metrics pair up by ``(seed, fold)``. For every
metric the table gives each run's mean ± std over its folds and, against the reference run,
the mean paired difference (run − reference) with three tests over the shared pairs:

- the **corrected resampled t-test** (Nadeau & Bengio, 2003), the main one:
  ``t = mean(d) / sqrt((1/n + n_test/n_train) · var(d))`` with ``n − 1`` degrees of freedom.
  The ``n_test/n_train`` term accounts for the training sets of different folds overlapping,
  which makes fold scores correlated; ``n_train`` is the outer training fold (fit + validation
  scans), averaged over the pairs;
- the plain paired t-test and the Wilcoxon signed-rank test, which treat folds as independent
  and are therefore optimistic (too small p-values); they are shown for comparison only.

Runs whose splits differ for a shared seed are refused: their fold scores do not pair.

References
----------
Nadeau, C., & Bengio, Y. (2003). Inference for the generalization error. *Machine Learning*,
52(3), 239–281.
Bouckaert, R. R., & Frank, E. (2004). Evaluating the replicability of significance tests for
comparing learning algorithms. *PAKDD 2004*, LNCS 3056, 3–12.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .errors import ConfigError, DataNotFoundError
from .io import read_json
from .log import get_logger
from .training.metrics import METRICS, mean_std
from .training.results import RunDirectory

log = get_logger(__name__)

COLUMNS = ("dataset", "model", "run_dir", "metric", "n_folds", "mean", "std", "reference", "n_pairs",
           "mean_diff", "t_corrected", "p_corrected", "t_paired", "p_paired", "p_wilcoxon")


@dataclass
class Run:
    """One finished (or partly finished) run folder, read back from its files."""

    path: Path
    dataset: str
    model: str
    label: str
    folds: pd.DataFrame  # one row per (seed, fold): metrics, n_train, n_val, n_test

    @property
    def seeds(self) -> set[int]:
        return set(int(s) for s in self.folds["seed"])

    def splits_file(self, seed: int) -> Path:
        return RunDirectory(self.path).splits_path(seed)

    @classmethod
    def read(cls, path: str | Path) -> "Run":
        """A run's config and per-fold test metrics (from ``seed_*/fold_*/metrics.json``)."""
        rd = RunDirectory(path)
        config = rd.read_config()
        model = config["model"]["name"]
        preset = config.get("options", {}).get("preset")
        rows = [{"seed": int(m["seed"]), "fold": int(m["fold"]), **{k: float(m["test"][k]) for k in METRICS},
                 "n_train": m.get("n_train"), "n_val": m.get("n_val"), "n_test": m.get("n_test")}
                for m in rd.read_fold_metrics()]
        if not rows:
            raise DataNotFoundError(f"{rd.root}: no finished fold (seed_*/fold_*/metrics.json)")
        folds = pd.DataFrame(rows).sort_values(["seed", "fold"]).reset_index(drop=True)
        label = f"{model}[{preset}]" if preset else model
        return cls(rd.root, config["dataset"]["name"], model, label, folds)


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run folders named by ``paths``: a run folder itself, or every run below a results root.

    A run folder is one that holds ``summary.json``; order: as given, then sorted below each root.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise DataNotFoundError(f"{p}: no such run folder or results root")
        runs = [p] if RunDirectory(p).summary_path.is_file() else sorted(s.parent for s in p.rglob("summary.json"))
        if not runs:
            raise DataNotFoundError(f"{p}: no run folder (one with summary.json) in or below it")
        found.extend(r for r in runs if r not in found)
    return found


def _unique_labels(runs: list[Run]) -> None:
    """Runs of one dataset that share a label get their folder name appended to it."""
    seen: dict[tuple[str, str], int] = {}
    for r in runs:
        seen[(r.dataset, r.label)] = seen.get((r.dataset, r.label), 0) + 1
    for r in runs:
        if seen[(r.dataset, r.label)] > 1:
            r.label = f"{r.label}/{r.path.name}"


def check_same_splits(runs: Sequence[Run]) -> None:
    """Refuse runs of one dataset whose saved splits differ for a seed they share."""
    for i, a in enumerate(runs):
        for b in runs[i + 1:]:
            if a.dataset != b.dataset:
                continue
            for seed in sorted(a.seeds & b.seeds):
                fa, fb = a.splits_file(seed), b.splits_file(seed)
                for f in (fa, fb):
                    if not f.is_file():
                        raise DataNotFoundError(f"{f} is missing: cannot check that the folds of seed {seed} match")
                if read_json(fa) != read_json(fb):
                    raise ConfigError(
                        f"runs {a.path} and {b.path} ({a.dataset}) have different splits for seed {seed} "
                        f"({fa} ≠ {fb}): their folds do not pair. Compare runs made on the same data with the "
                        "same split options (--folds, --skip_cross_validation)."
                    )


def _pick_reference(runs: list[Run], reference: str | None) -> Run:
    """The reference run of one dataset: ``reference`` matches a label, a model name or a folder name."""
    if reference is None:
        for candidates in ([r for r in runs if r.label == "NeuroSSM"], [r for r in runs if r.model == "NeuroSSM"]):
            if candidates:
                return candidates[0]
        return runs[0]
    key = reference.lower()
    for field in ("label", "model", "folder"):
        hits = [r for r in runs if (r.path.name if field == "folder" else getattr(r, field)).lower() == key]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ConfigError(f"--reference {reference} matches several runs of {runs[0].dataset}: "
                              f"{', '.join(r.label for r in hits)}; name one of these labels")
    raise ConfigError(f"--reference {reference}: no run of {runs[0].dataset} matches; "
                      f"runs: {', '.join(r.label for r in runs)}")


def paired_tests(d: np.ndarray, test_train_ratio: float) -> dict[str, float]:
    """Corrected resampled t-test, paired t-test and Wilcoxon signed-rank on differences ``d``.

    Undefined statistics (fewer than two pairs, or differences with no spread) are NaN.
    """
    d = np.asarray(d, dtype=np.float64)
    n = d.size
    out = {"n_pairs": n, "mean_diff": float(d.mean()) if n else math.nan, "t_corrected": math.nan,
           "p_corrected": math.nan, "t_paired": math.nan, "p_paired": math.nan, "p_wilcoxon": math.nan}
    if n < 2:
        return out
    var = float(d.var(ddof=1))
    if var > 0:
        t_corr = float(d.mean()) / math.sqrt((1.0 / n + test_train_ratio) * var)
        t_plain = float(d.mean()) / math.sqrt(var / n)
        out.update(t_corrected=t_corr, p_corrected=float(2 * stats.t.sf(abs(t_corr), n - 1)),
                   t_paired=t_plain, p_paired=float(2 * stats.t.sf(abs(t_plain), n - 1)))
    if np.any(d != 0):
        out["p_wilcoxon"] = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    return out


def _test_train_ratio(pairs: pd.DataFrame) -> float:
    """Mean of n_test / (n_train + n_val) over the pairs; NaN when the sizes were not recorded."""
    sizes = pairs[["n_train", "n_val", "n_test"]].astype(float)
    return float((sizes["n_test"] / (sizes["n_train"] + sizes["n_val"].fillna(0))).mean())


def compare_runs(run_dirs: Sequence[str | Path], reference_model: str | None = None) -> pd.DataFrame:
    """One row per (dataset, run, metric): mean ± std over folds and the paired comparison.

    Parameters
    ----------
    run_dirs : sequence of paths
        Run folders, or results roots to search for run folders.
    reference_model : str, optional
        The run to compare against, per dataset: a label (``NeuroSSM``, ``NeuroSSM[single_pathway]``),
        a model name or a run folder name. Default: the NeuroSSM run when there is one, else the first.

    Returns
    -------
    pandas.DataFrame
        Columns ``COLUMNS``. ``mean_diff`` is run − reference over the ``n_pairs`` shared
        ``(seed, fold)`` pairs where both metrics are defined; the paired columns are NaN on the
        reference's own rows.
    """
    runs = [Run.read(p) for p in find_run_dirs(run_dirs)]
    _unique_labels(runs)
    check_same_splits(runs)
    rows = []
    for dataset in dict.fromkeys(r.dataset for r in runs):
        group = [r for r in runs if r.dataset == dataset]
        ref = _pick_reference(group, reference_model)
        for run in group:
            pairs = run.folds.merge(ref.folds, on=["seed", "fold"], suffixes=("", "_ref"))
            ratio = _test_train_ratio(pairs) if len(pairs) else math.nan
            for metric in METRICS:
                summary = mean_std(run.folds[metric])
                row = {"dataset": dataset, "model": run.label, "run_dir": str(run.path), "metric": metric,
                       "n_folds": int(run.folds[metric].notna().sum()), **summary, "reference": ref.label}
                if run is not ref:
                    both = pairs[[metric, f"{metric}_ref"]].dropna()
                    row.update(paired_tests((both[metric] - both[f"{metric}_ref"]).to_numpy(), ratio))
                rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def format_table(table: pd.DataFrame) -> str:
    """The printed form: per dataset, metrics as mean ± std, then the paired comparison."""
    lines = []
    for dataset, g in table.groupby("dataset", sort=False):
        ref = g["reference"].iloc[0]
        models = list(dict.fromkeys(g["model"]))
        cell = {(r["model"], r["metric"]): r for _, r in g.iterrows()}
        width = max(len(m) for m in models) + 2
        lines.append(f"{dataset}: test metrics, mean ± std over folds")
        lines.append(f"  {'model':<{width}}{'folds':>6}  " + "  ".join(f"{m:>17}" for m in METRICS))
        for model in models:
            cells = [f"{cell[model, m]['mean']:.3f} ± {cell[model, m]['std']:.3f}" for m in METRICS]
            n_folds = max(int(cell[model, m]["n_folds"]) for m in METRICS)
            lines.append(f"  {model:<{width}}{n_folds:>6}  " + "  ".join(f"{c:>17}" for c in cells))
        others = g[g["model"] != ref]
        if len(others):
            lines.append(f"  paired against {ref} over shared (seed, fold) pairs; difference = model − {ref}")
            lines.append("  p_corr: corrected resampled t-test (Nadeau & Bengio 2003); p_t and p_wilcoxon "
                         "treat folds as independent and are optimistic")
            lines.append(f"  {'model':<{width}}{'metric':<19}{'pairs':>6}{'diff':>9}{'t_corr':>9}{'p_corr':>9}"
                         f"{'p_t':>9}{'p_wilcoxon':>12}")
            for _, r in others.iterrows():
                lines.append(f"  {r['model']:<{width}}{r['metric']:<19}{int(r['n_pairs']):>6}{r['mean_diff']:>+9.3f}"
                             f"{r['t_corrected']:>9.2f}{r['p_corrected']:>9.3f}{r['p_paired']:>9.3f}"
                             f"{r['p_wilcoxon']:>12.3f}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
