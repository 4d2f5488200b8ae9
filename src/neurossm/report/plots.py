"""The report's figures, each drawn on the Agg canvas and returned as PNG bytes.

One palette for the whole page: a model keeps its colour in every figure, a class keeps its
colour in every figure, training is blue and validation orange. Figures are closed as soon as
they are encoded, so a report of many classes does not pile up open figures.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

MODEL_COLOURS = ("#2f5d8a", "#c8553d", "#3c8d5a", "#8a5fb0", "#b8860b", "#4a4a4a")
CLASS_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c",
                 "#ccb974", "#64b5cd")
TRAIN_COLOUR, VAL_COLOUR = "#4c72b0", "#dd8452"
DPI = 110

_STYLE = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.color": "#e6e6e6", "grid.linewidth": 0.6, "axes.edgecolor": "#888888",
    "axes.titleweight": "bold", "figure.facecolor": "white", "axes.facecolor": "white",
}


def model_colour(i: int) -> str:
    return MODEL_COLOURS[i % len(MODEL_COLOURS)]


def class_colour(i: int) -> str:
    return CLASS_COLOURS[i % len(CLASS_COLOURS)]


@contextlib.contextmanager
def _figure(figsize: tuple[float, float], layout: str | None = "constrained") -> Iterator:
    """A figure outside pyplot: no backend to choose, no global figure list to leak into.

    Constrained layout fits labels and legends while the PNG is drawn; ``bbox_inches="tight"``
    or ``tight_layout`` would draw the figure a second time.
    """
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_STYLE):
        yield Figure(figsize=figsize, layout=layout)


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    # No software/date metadata: the same figure gives the same bytes.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# ROC -----------------------------------------------------------------------------------------

def _roc(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    from sklearn.metrics import roc_auc_score, roc_curve

    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, _ = roc_curve(y, score)
    return fpr, tpr, float(roc_auc_score(y, score))


def _prob_matrix(pred: pd.DataFrame, class_names: Sequence[str]) -> np.ndarray:
    return pred[[f"prob_{c}" for c in class_names]].to_numpy(dtype=np.float64)


def _fold_groups(pred: pd.DataFrame):
    keys = [k for k in ("seed", "fold") if k in pred.columns]
    return pred.groupby(keys) if keys else [((0,), pred)]


def roc_figure(runs: Sequence[tuple[str, pd.DataFrame]], class_names: Sequence[str]) -> bytes:
    """ROC curves of each run: thin lines per (seed, fold), a bold pooled curve.

    Binary tasks plot the positive class (index 1) in the run's colour and, with several runs,
    a last panel compares the pooled curves. Several classes plot one-vs-rest curves, one colour
    per class, in one panel per run.
    """
    binary = len(class_names) == 2
    n_panels = len(runs) + (1 if binary and len(runs) > 1 else 0)
    # Several classes: the legend goes beside the axes, where it hides no curve.
    with _figure(figsize=((3.6 if binary else 5.6) * n_panels, 3.5)) as fig:
        axes = fig.subplots(1, n_panels, squeeze=False)[0]
        pooled_curves = []
        for i, (label, pred) in enumerate(runs):
            ax = axes[i]
            probs, y = _prob_matrix(pred, class_names), pred["label"].to_numpy(dtype=int)
            targets = [1] if binary else list(range(len(class_names)))
            for c in targets:
                colour = model_colour(i) if binary else class_colour(c)
                fold_aucs = []
                for _, g in _fold_groups(pred):
                    r = _roc((g["label"].to_numpy(dtype=int) == c).astype(int), _prob_matrix(g, class_names)[:, c])
                    if r is not None:
                        ax.plot(r[0], r[1], color=colour, alpha=0.25, lw=0.8)
                        fold_aucs.append(r[2])
                r = _roc((y == c).astype(int), probs[:, c])
                if r is None:
                    continue
                name = f"pooled, AUC {r[2]:.3f}" if binary else f"{class_names[c]} vs rest, AUC {r[2]:.3f}"
                if binary and fold_aucs:
                    name += f"\n(folds {np.mean(fold_aucs):.3f} ± {np.std(fold_aucs):.3f})"
                ax.plot(r[0], r[1], color=colour, lw=2.0, label=name)
                if binary:
                    pooled_curves.append((label, i, r))
            if binary:
                ax.plot([], [], color=model_colour(i), alpha=0.35, lw=0.8, label="one (seed, fold)")
            _roc_axes(ax, f"{label}" + (f" ({class_names[1]} positive)" if binary else ""), outside=not binary)
        if n_panels > len(runs):
            ax = axes[-1]
            for label, i, r in pooled_curves:
                ax.plot(r[0], r[1], color=model_colour(i), lw=2.0, label=f"{label}, AUC {r[2]:.3f}")
            _roc_axes(ax, "pooled, all models")
        return png_bytes(fig)


def _roc_axes(ax, title: str, outside: bool = False) -> None:
    ax.plot([0, 1], [0, 1], color="#bbbbbb", lw=0.8, ls="--")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.set_aspect("equal")
    if outside:
        ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    else:
        ax.legend(loc="lower right", frameon=False)


# Confusion matrix ----------------------------------------------------------------------------

def confusion_counts(pred: pd.DataFrame, n_classes: int) -> np.ndarray:
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (pred["label"].to_numpy(dtype=int), pred["pred"].to_numpy(dtype=int)), 1)
    return counts


def confusion_figure(pred: pd.DataFrame, class_names: Sequence[str], title: str) -> bytes:
    """Counts and row-normalised rates (recall on the diagonal), pooled over folds and seeds."""
    k = len(class_names)
    counts = confusion_counts(pred, k)
    rows = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=np.float64), where=rows > 0)
    side = max(2.6, 0.45 * k + 1.6)
    with _figure(figsize=(2 * side + 0.6, side)) as fig:
        axes = fig.subplots(1, 2)
        for ax, values, fmt, name in ((axes[0], counts, "d", "counts"), (axes[1], rates, ".2f", "row-normalised")):
            im = ax.imshow(values, cmap="Blues", vmin=0, vmax=values.max() if name == "counts" else 1.0)
            ax.grid(False)
            ax.set_xticks(range(k), class_names, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center")
            ax.set_yticks(range(k), class_names)
            ax.set(xlabel="predicted", ylabel="true", title=f"{title}: {name}")
            if k <= 12:
                top = values.max() if values.max() > 0 else 1
                for (r, c), v in np.ndenumerate(values):
                    ax.text(c, r, format(v, fmt), ha="center", va="center", fontsize=8,
                            color="white" if v > 0.6 * top else "#222222")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        return png_bytes(fig)


# Learning curves -----------------------------------------------------------------------------

EPOCH_COLUMNS = ("epoch", "train_loss")


def has_epochs(history: pd.DataFrame | None) -> bool:
    return history is not None and all(c in history.columns for c in EPOCH_COLUMNS) and len(history) > 0


def learning_curve_figure(histories: dict[tuple[int, int], pd.DataFrame], title: str) -> bytes:
    """Loss and accuracy per epoch: thin lines per fold, bold the mean over folds; dots mark
    the epoch that model selection kept."""
    panels = [("loss", "train_loss", "val_loss"), ("accuracy", "train_accuracy", "val_accuracy")]
    with _figure(figsize=(7.4, 3.0)) as fig:
        axes = fig.subplots(1, 2)
        frames = [h for h in histories.values() if has_epochs(h)]
        for ax, (name, train_col, val_col) in zip(axes, panels):
            for col, colour, label in ((train_col, TRAIN_COLOUR, "train"), (val_col, VAL_COLOUR, "validation")):
                present = [h for h in frames if col in h.columns and h[col].notna().any()]
                for h in present:
                    ax.plot(h["epoch"], h[col], color=colour, alpha=0.25, lw=0.8)
                    if col == val_col and "selected" in h.columns:
                        sel = h[h["selected"].astype(float) > 0]
                        ax.plot(sel["epoch"], sel[col], "o", color=colour, ms=3.5, alpha=0.8)
                if present:
                    mean = pd.concat([h[["epoch", col]] for h in present]).groupby("epoch")[col].mean()
                    ax.plot(mean.index, mean.to_numpy(), color=colour, lw=2.0, label=f"{label} (mean of {len(present)})")
            ax.set(xlabel="epoch", ylabel=name, title=f"{title}: {name}")
            if name == "accuracy":
                ax.set_ylim(-0.02, 1.02)
            ax.legend(frameon=False)
        return png_bytes(fig)


# CPA -----------------------------------------------------------------------------------------

def pathway_importance_figure(importance: dict[str, np.ndarray], class_names: Sequence[str],
                              pathway_names: Sequence[str], truth_pathway: str | None = None) -> bytes:
    """Grouped bars: mean ± sd of ``pathway_importance`` over the CPA files of each class."""
    classes = list(importance)
    n_p, n_c = len(pathway_names), len(classes)
    width = 0.8 / max(n_c, 1)
    x = np.arange(n_p)
    with _figure(figsize=(max(5.0, 0.55 * n_p * max(n_c, 2) ** 0.5 + 2.5), 3.2)) as fig:
        ax = fig.add_subplot(1, 1, 1)
        for j, name in enumerate(classes):
            vals = importance[name]
            k = class_names.index(name) if name in class_names else j
            ax.bar(x + (j - (n_c - 1) / 2) * width, vals.mean(axis=0), width * 0.92, yerr=vals.std(axis=0),
                   color=class_colour(k), ecolor="#444444", error_kw={"lw": 0.8, "capsize": 2},
                   label=f"{name} (n={len(vals)})")
        ax.set_xticks(x, pathway_names)
        if truth_pathway in pathway_names:
            t = list(pathway_names).index(truth_pathway)
            ax.axvspan(t - 0.45, t + 0.45, color="#f2d479", alpha=0.35, zorder=0, lw=0, label="ground-truth pathway")
        ax.set(xlabel="pathway (signal form, temporal scale)", ylabel="calibrated importance $w_p$",
               title="pathway importance per class")
        ax.set_ylim(bottom=0)
        ax.grid(axis="x", visible=False)
        fig.legend(frameon=False, ncol=min(n_c + 1, 5), loc="outside lower center")
        return png_bytes(fig)


@contextlib.contextmanager
def _quiet_gc() -> Iterator[None]:
    """nilearn runs ``gc.collect()`` on every image it reads; with torch loaded each collection
    walks hundreds of thousands of objects. Freezing what exists now makes those collections cheap."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def brain_maps_figure(maps: Sequence[tuple[str, str | Path]], title: str) -> bytes:
    """One glass-brain row (left, axial, right views on the MNI152 outline) per NIfTI map.

    Non-negative maps (CPA) use a sequential colour map; signed maps (the reference's z values)
    a diverging one centred on 0. The ROI-painted volumes are 0 outside the atlas, and 0 is
    left transparent.
    """
    import nibabel as nib

    with _quiet_gc():
        from nilearn import plotting

        with _figure(figsize=(7.2, 2.6 * len(maps)), layout=None) as fig:
            for i, (name, path) in enumerate(maps):
                img = nib.load(str(path))
                data = np.asarray(img.dataobj, dtype=np.float64)
                finite = data[np.isfinite(data)]
                signed = bool(finite.size and finite.min() < 0)
                peak = float(np.abs(finite).max()) if finite.size else 0.0
                if peak == 0:
                    raise ValueError(f"{path}: the map is all zero")
                h = 1.0 / len(maps)
                rect = (0.0, 1.0 - (i + 1) * h, 1.0, h * 0.86)
                fig.text(0.01, 1.0 - i * h - 0.01, f"{title}: {name}", va="top", fontsize=10.5,
                         fontweight="bold", color="#1f3b57")
                plotting.plot_glass_brain(
                    img, figure=fig, axes=rect, display_mode="lzr", colorbar=True, plot_abs=False,
                    cmap="RdBu_r" if signed else "YlOrRd", vmin=-peak if signed else 0.0, vmax=peak,
                    threshold=peak * 1e-6, annotate=False, black_bg=False,
                )
            return png_bytes(fig)
