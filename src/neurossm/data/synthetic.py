"""Synthetic ROI time series with a known class signal: where it is, in which form, at which scale.

Every class ``c`` has its own set of signal ROIs (disjoint across classes by default, so that an
attribution map of class ``c`` has a right answer for every class, including ``class0``); a
scan of class ``c`` carries the signal in ``signal_rois[c]`` only. Three signal forms:

``"diff"``
    Abrupt level shifts: a piecewise-constant level, independently in each signal ROI, that at
    each block of ``scale`` samples (random offset) either holds (probability 1/3) or jumps to
    ``-old / 2 + sqrt(3) / 2 * z`` (``z`` standard normal). The level is standard normal at
    every time point, so the raw values keep a Gaussian distribution and no single raw value
    tells the classes apart. The information sits in the first difference: exactly zero where
    the level holds and large where it jumps (heavy-tailed), with a raised variance, because the
    level is uncorrelated from one block to the next (a white spectrum at block lags) while the
    AR(1) noise is not. That second-order part is, by linearity, also visible, more weakly, as a
    smaller variance of the raw signal pooled over a few samples (docs/datasets.md).
``"raw"``
    A slow oscillation of period about ``20 * scale`` samples (random phase per ROI, period
    jittered by ±10 %), mixed with white noise of the power needed to keep the variance of the
    first difference unchanged (with ``noise="ar1"``): the information sits in the raw signal at a
    coarse temporal scale, not in the size of the sample-to-sample differences (differences of
    2- or 4-sample means do lose variance; docs/datasets.md).
``"connectivity"``
    The signal ROIs share one latent AR(1) time course: they become correlated, with the same
    variance and the same temporal spectrum as the noise. A functional-connectivity model finds
    this one.
``"events"``
    Brief events against strong shared slow fluctuations (``background="factors"`` by default):
    every class but ``class0`` carries, in each of its signal ROIs, ``n_events`` box-shaped events
    of 1 to ``event_width`` samples (width, sign and time drawn at random) of height ``amplitude``
    background standard deviations, added on top of the background; ``class0`` carries instead a
    slow drift (AR(1), phi = 0.98) in its own signal ROIs, of the same expected energy (sum of
    squares over the scan) as the events. Nothing is put into the correlations on purpose.
``"arrow"``, ``"propagation"``, ``"event_order"`` (the *order* forms; two classes)
    Time-reversal pairs: ``class1`` carries a signal in the forward orientation, ``class0`` the
    same signal played backwards (:func:`order_signal`), in the same signal ROIs (every class lists
    the same ones). Stationary Gaussian backgrounds are time-reversible, so reversing every scan of
    one class gives the other class' distribution: every statistic that does not change when a scan
    is reversed (a ROI's energy, tail weight, autocorrelation or spectrum, zero-lag connectivity, the
    size of a lagged cross-correlation) is equal in distribution between the classes, and only a
    model that reads the direction of time can tell them apart. ``"arrow"``: transients that rise in
    one sample and decay over several (``class0``: rise slowly, drop at once); ``"propagation"``:
    smooth bumps in the first half of the signal ROIs, repeated a few samples later in the second
    half (``class0``: second half first); ``"event_order"``: in each signal ROI, a one-sample spike
    followed after a short gap by a wider box (``class0``: box, then spike). Shapes, widths, lags and
    heights are drawn per event. Background ``"factors"`` by default.
``"mixture"``
    Each class' signal ROIs are split, in order, into groups carrying events, level shifts
    (``"diff"``), a slow oscillation (``"raw"``) and a shared fluctuation (``"connectivity"``);
    ``ground_truth["roi_forms"]`` says which ROI carries which. Background ``"factors"`` by default.

Noise: ``x_r(t) = sqrt(0.2) g(t) + sqrt(0.8) p_r(t)`` with a shared global fluctuation ``g``
(AR(1), phi = 0.9) and a private component ``p_r`` (AR(1), phi = 0.5, or white). The signal
``s_r`` enters the private part, ``p_r = normalise(n_r + amplitude * s_r)`` with ``n_r`` and
``s_r`` of unit variance, so ``amplitude`` is the signal-to-noise ratio (in std) inside the ROI's
own part. Because ``p_r`` is rescaled to unit variance, every ROI has the same variance and the
same expected correlation with the others in every class: for ``"diff"`` and ``"raw"`` the
correlation matrix (a model that ignores time) carries no class information.

Background ``"factors"`` (default of ``"events"`` and ``"mixture"``; ``background="global"`` is the
one above): ``x_r = sqrt(k / (1 + k)) f_r + sqrt(1 / (1 + k)) p_r`` with ``k = factor_ratio`` (5)
and ``f_r`` the ROI's normalised mix, with weights fixed for the dataset (standard normal, drawn
from the seed), of ``n_factors`` (8) latent AR(1) factors (phi = ``factor_phi``, 0.9) drawn
afresh for every scan: strong shared slow fluctuations that dominate every time point, with
the private part ``p_r`` (which carries the ``"diff"``, ``"raw"`` and ``"connectivity"`` signal as
above) at a fifth of their variance.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.signal import lfilter

from ..config import ATLASES, TrainingConfig
from ..errors import ConfigError
from ..io import write_json
from .preprocess import zscore
from .registry import (DatasetOption, DatasetSpec, boolean, int_lists, name_list, optional_float, optional_int,
                       optional_str, register_dataset)
from .scans import Scan, ScanDataset, assemble

# the forms whose two classes are a time-reversal pair (one set of signal ROIs for both)
ORDER_FORMS = ("arrow", "propagation", "event_order")
SIGNAL_FORMS = ("diff", "raw", "connectivity", "events", "mixture", *ORDER_FORMS)
# "mixture": the forms its signal ROIs carry, in this order
MIXTURE_FORMS = ("events", "diff", "raw", "connectivity")
NOISE_KINDS = ("ar1", "white")
BACKGROUNDS = ("global", "factors")
NOISE_PHI = 0.5
GLOBAL_PHI = 0.9
GLOBAL_SHARE = 0.2
JUMP_CORRELATION = -0.5  # "diff": correlation of the level after a jump with the level before it
# "diff": chance of a jump per block; with it the level's lag-1 autocorrelation, 1 - p (1 - c), is 0
JUMP_PROBABILITY = 1 / (1 - JUMP_CORRELATION)
BASE_PERIOD = 20  # samples per cycle of the "raw" oscillation at scale 1
PERIOD_JITTER = 0.1
DRIFT_PHI = 0.98  # "events": the slow drift of class0
_BURN_IN = 50


def make_synthetic(
    *,
    seed: int = 0,
    n_scans: int = 120,
    n_subjects: int | None = None,
    n_rois: int = 32,
    n_times: int = 200,
    n_classes: int = 2,
    signal_form: str = "diff",
    signal_rois: Sequence[Sequence[int]] | Mapping[Any, Sequence[int]] | None = None,
    n_signal_rois: int = 4,
    scale: int = 1,
    amplitude: float = 1.0,
    noise: str = "ar1",
    class_names: Sequence[str] | None = None,
    crop_length: int | None = None,
    atlas: str = "synthetic",
    signal_fraction: float | None = None,
    background: str | None = None,
    n_factors: int = 8,
    factor_phi: float = 0.9,
    factor_ratio: float = 5.0,
    event_width: int = 3,
    n_events: int = 5,
    event_filler: bool = True,
    order_lag: int = 4,
) -> ScanDataset:
    """Generate a balanced synthetic dataset, deterministically from ``seed``.

    Parameters
    ----------
    seed : int
        Everything (signal ROIs, labels, subjects, noise, signal) follows from it. The signal
        ROIs depend on the seed, ``n_rois``, ``n_classes`` and ``n_signal_rois`` only.
    n_scans, n_rois, n_times : int
        Data size; every scan is ``(n_rois, n_times)``.
    n_subjects : int, optional
        Subjects the scans belong to (default: one per scan); fewer gives several scans per
        subject, spread over classes, for grouped cross-validation.
    n_classes : int
        Classes, balanced (counts differ by at most one).
    signal_form : {"diff", "raw", "connectivity", "events", "mixture"}
        Where the class information lives (module docstring).
    signal_rois : list of lists, or dict class → list, optional
        ROI indices carrying each class' signal. Default: ``n_signal_rois`` per class, disjoint,
        drawn from the seed.
    scale : int
        Temporal scale: samples per block between possible level jumps (``"diff"``), period
        multiplier (``"raw"``).
    amplitude : float
        Signal std over the private noise std inside a signal ROI (0: no signal); for events,
        their height in background standard deviations.
    noise : {"ar1", "white"}
        Private noise of each ROI.
    class_names : list of str, optional
        Default ``("class0", "class1", ...)``.
    crop_length : int, optional
        Training crop length (default ``n_times``).
    atlas : str
        Atlas the ROIs are said to belong to (``"aal3v2"`` makes ROI ``r`` the ``r``-th AAL3v2
        region, so CPA maps can be drawn and scored in that atlas); ``n_rois`` must match it.
    signal_fraction : float, optional
        Signal ROIs per class as a fraction of ``n_rois`` (rounded, at least 1); replaces
        ``n_signal_rois`` when given.
    background : {"global", "factors"}, optional
        Shared part of the noise (module docstring). Default ``"factors"`` for ``"events"`` and
        ``"mixture"``, ``"global"`` for the other forms.
    n_factors, factor_phi, factor_ratio
        ``"factors"`` background: latent AR(1) factors, their coefficient, and their variance
        over the private noise's in every ROI.
    event_width, n_events : int
        ``"events"``: widest event in samples (widths are drawn from 1 to it) and events per
        signal ROI per scan.
    event_filler : bool
        ``"events"`` and ``"mixture"``: in a scan of another class, a class' event ROIs get AR(1)
        filler of the events' energy and first-difference energy, so that only the events' shape
        sets them apart (``True``, the harder task); ``False`` leaves them as background, so the
        events also raise their ROIs' high-frequency energy.
    order_lag : int
        Order forms: the longest lag between the two parts of an ordered event, in samples (the
        delay from the first to the second half of the ROIs for ``"propagation"``, the gap from
        spike to box for ``"event_order"``); each event draws its own from half of it up to it.
        ``event_width`` sets the events' extent there (the longest decay time constant of
        ``"arrow"``, the widest bump or box of the others).

    Returns
    -------
    ScanDataset
        Z-scored scans; ``ground_truth`` holds the signal ROIs per class name and the generator
        settings (write it with :func:`save_ground_truth`).
    """
    names = _class_names(class_names, n_classes)
    _check(n_scans, n_subjects, n_rois, n_times, n_classes, signal_form, scale, amplitude, noise)
    if background is None:
        background = "factors" if signal_form in ("events", "mixture", *ORDER_FORMS) else "global"
    _check_new(n_rois, n_times, signal_form, background, n_factors, factor_phi, factor_ratio, event_width,
               n_events, signal_fraction)
    if signal_form in ORDER_FORMS:
        _check_order(signal_form, n_classes, n_times, event_width, order_lag)
    if signal_fraction is not None:
        n_signal_rois = max(1, round(signal_fraction * n_rois))
    if atlas in ATLASES and ATLASES[atlas].n_rois != n_rois:
        raise ConfigError(f"atlas={atlas!r} has {ATLASES[atlas].n_rois} ROIs, not n_rois={n_rois}")
    n_subjects = n_scans if n_subjects is None else int(n_subjects)
    # A fifth stream for the "factors" background: spawn(5)[:4] equals spawn(4), so the older forms
    # give the same data as before it existed.
    roi_seq, label_seq, noise_seq, signal_seq, factor_seq = np.random.SeedSequence(seed).spawn(5)
    if signal_form in ORDER_FORMS and signal_rois is None:
        # a reversal pair: both classes carry their signal in the same ROIs
        shared_rois = _signal_rois(None, names[:1], n_rois, n_signal_rois, np.random.default_rng(roi_seq))[0]
        signal_rois = [shared_rois] * n_classes
    rois = _signal_rois(signal_rois, names, n_rois, n_signal_rois, np.random.default_rng(roi_seq),
                        shared=signal_form in ORDER_FORMS)
    roi_forms = _roi_forms(signal_form, rois)

    label_rng = np.random.default_rng(label_seq)
    labels = label_rng.permutation(np.arange(n_scans) % n_classes)
    subjects = label_rng.permutation(np.arange(n_scans) % n_subjects)

    noise_rng = np.random.default_rng(noise_seq)
    glob = _normalise(_ar1(noise_rng.standard_normal((n_scans, 1, n_times + _BURN_IN)), GLOBAL_PHI))
    private = noise_rng.standard_normal((n_scans, n_rois, n_times + _BURN_IN))
    private = _normalise(_ar1(private, NOISE_PHI) if noise == "ar1" else private[..., _BURN_IN:])

    if background == "factors":
        factor_rng = np.random.default_rng(factor_seq)
        weights = factor_rng.standard_normal((n_rois, n_factors))  # fixed mixing, the same in every scan
        factor_share = factor_ratio / (1 + factor_ratio)

    signal_rng = np.random.default_rng(signal_seq)
    width = len(str(max(n_scans, n_subjects) - 1))
    scans = []
    for i in range(n_scans):
        c = int(labels[i])
        own = private[i].copy()
        for form, idx in roi_forms[c]:
            if form not in ("events", *ORDER_FORMS):
                signal = _signal(form, len(idx), n_times, scale, noise, signal_rng)
                own[idx] = _normalise(own[idx] + amplitude * signal)
        # Every class' event ROIs get the same added energy in every scan (its own form in scans of
        # that class, AR(1) filler otherwise), so no ROI's variance or correlations tell the classes
        # apart; without the filler (event_filler=False) only the scans of that class get anything.
        events = [(idx, _event_kind(signal_form, k) if k == c else "filler")
                  for k, groups in enumerate(roi_forms) for form, idx in groups
                  if form == "events" and (k == c or event_filler)]
        if background == "factors":
            factors = _ar1(factor_rng.standard_normal((n_factors, n_times + _BURN_IN)), factor_phi)
            shared = _normalise(weights @ factors)  # (R, T)
            x = math.sqrt(factor_share) * shared + math.sqrt(1 - factor_share) * own  # (R, T), unit variance
        else:
            x = math.sqrt(GLOBAL_SHARE) * glob[i] + math.sqrt(1 - GLOBAL_SHARE) * own  # (R, T)
        for idx, kind in events:
            # the background has unit variance here, so the height is in background SDs
            x[idx] += amplitude * event_signal(kind, len(idx), n_times, event_width, n_events, signal_rng)
        if signal_form in ORDER_FORMS:
            idx = roi_forms[c][0][1]
            x[idx] += amplitude * order_signal(signal_form, len(idx), n_times, event_width, n_events, order_lag,
                                               signal_rng, reverse=c == 0)
        scans.append(Scan(f"scan{i:0{width}d}", f"sub{int(subjects[i]):0{width}d}", c, zscore(x),
                          {"source": f"synthetic(seed={seed})"}))

    truth: dict[str, Any] = {
        "signal_rois": {names[c]: [int(r) for r in rois[c]] for c in range(n_classes)},
        "signal_form": signal_form,
        "scale": int(scale),
        "amplitude": float(amplitude),
        "seed": int(seed),
        "noise": noise,
        "class_names": list(names),
        "n_scans": int(n_scans),
        "n_subjects": int(n_subjects),
        "n_rois": int(n_rois),
        "n_times": int(n_times),
        "control_class": None,
        "level_block": int(scale) if signal_form == "diff" else None,
        "jump_probability": JUMP_PROBABILITY if signal_form == "diff" else None,
        "period": BASE_PERIOD * int(scale) if signal_form in ("raw", "mixture") else None,
        "background": background,
    }
    if background == "factors":
        truth.update(n_factors=int(n_factors), factor_phi=float(factor_phi), factor_ratio=float(factor_ratio))
    if signal_form in ("events", "mixture"):
        truth.update(event_width=int(event_width), n_events=int(n_events), event_filler=bool(event_filler))
    if signal_form in ORDER_FORMS:
        truth.update(event_width=int(event_width), n_events=int(n_events), order_lag=int(order_lag),
                     class_signal={n: f"{signal_form} ({'reversed' if c == 0 else 'forward'})"
                                   for c, n in enumerate(names)})
    if signal_form == "events":
        truth["class_signal"] = {n: ("drift" if c == 0 else "events") for c, n in enumerate(names)}
    if signal_form == "mixture":
        truth["roi_forms"] = {names[c]: {str(r): form for form, idx in groups for r in idx}
                              for c, groups in enumerate(roi_forms)}
    return assemble("SYNTHETIC", scans, names, atlas=atlas, n_rois=n_rois, crop_length=crop_length,
                    ground_truth=truth, source=f"synthetic(seed={seed}, signal_form={signal_form})")


def save_ground_truth(dataset: ScanDataset, path: str | Path) -> Path:
    """Write ``dataset.ground_truth`` as JSON (atomically)."""
    if dataset.ground_truth is None:
        raise ConfigError(f"{dataset.name}: has no ground truth (only synthetic datasets do)")
    return write_json(path, dataset.ground_truth)


def _signal(form: str, n: int, n_times: int, scale: int, noise: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance class signal for ``n`` signal ROIs, ``(n, n_times)``."""
    if form == "diff":
        return _normalise(_level_jumps(n, n_times, scale, rng))
    if form == "raw":
        period = BASE_PERIOD * scale * (1 + PERIOD_JITTER * rng.uniform(-1, 1, size=(n, 1)))
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
        slow = _normalise(np.sin(2 * np.pi * np.arange(n_times) / period + phase))
        white = _normalise(rng.standard_normal((n, n_times)))
        if noise != "ar1":
            return slow
        # Share of the slow part that keeps var(first difference) equal to the AR(1) noise's,
        # 2 (1 - phi): the white part has difference variance 2, the slow part 4 sin^2(pi / P).
        share = (2 - 2 * (1 - NOISE_PHI)) / (2 - 4 * np.sin(np.pi / period) ** 2)
        return _normalise(np.sqrt(share) * slow + np.sqrt(1 - share) * white)
    latent = _normalise(_ar1(rng.standard_normal((1, n_times + _BURN_IN)), NOISE_PHI))
    return np.repeat(latent, n, axis=0)


EVENT_KINDS = ("events", "drift", "filler")


def event_signal(kind: str, n: int, n_times: int, max_width: int, n_events: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Additive signal of the ``"events"`` form, ``(n, n_times)``, in background standard deviations.

    ``"events"``: ``n_events`` unit-height boxes per row, width drawn from 1..``max_width``, random
    sign, start uniform over the positions where the box fits (boxes may overlap). ``"drift"``: a
    slow AR(1) (phi ``DRIFT_PHI``); ``"filler"``: AR(1) noise like the private noise (phi
    ``NOISE_PHI``). Drift and filler are scaled to the events' expected energy (sum of squares),
    ``n_events (1 + max_width) / 2``; the filler also matches the events' expected energy of the
    first difference (two unit steps per event), so only the events' shape sets them apart.
    """
    if kind == "events":
        out = np.zeros((n, n_times))
        widths = rng.integers(1, max_width + 1, size=(n, n_events))
        signs = rng.choice((-1.0, 1.0), size=(n, n_events))
        starts = rng.integers(0, n_times - widths + 1)
        for r in range(n):
            for w, sign, t in zip(widths[r], signs[r], starts[r]):
                out[r, t : t + w] += sign
        return out
    if kind not in ("drift", "filler"):
        raise ConfigError(f"event signal kind {kind!r}; choose one of {', '.join(EVENT_KINDS)}")
    energy = n_events * (1 + max_width) / 2
    phi = DRIFT_PHI if kind == "drift" else NOISE_PHI
    return _normalise(_ar1(rng.standard_normal((n, n_times + _BURN_IN)), phi)) * math.sqrt(energy / n_times)


def order_signal(form: str, n: int, n_times: int, width: int, n_events: int, max_lag: int,
                 rng: np.random.Generator, reverse: bool = False) -> np.ndarray:
    """Additive signal of an order form, ``(n, n_times)``, in background standard deviations.

    ``n_events`` events per scan, each at a random time where it fits, with a height drawn from
    0.75 to 1.25. ``"arrow"``: in every row, a transient ``exp(-(t - t0) / tau)`` from its peak on
    (a one-sample rise), ``tau`` from ``width / 4`` to ``width / 2`` samples, cut at ``3 tau``. ``"propagation"``: a Gaussian bump (SD from ``width / 8`` to
    ``width / 4`` samples) in every row of the first half (the second when ``n`` is odd gets the
    extra row), and the same bump ``lag`` samples later in every row of the second half.
    ``"event_order"``: in every row, a one-sample spike, then after ``lag`` samples a box of 2 to
    ``width // 2`` samples of the same height. Lags are drawn from ``ceil(max_lag / 2)``
    to ``max_lag``. ``reverse=True`` returns the signal played backwards: every shape above is
    symmetric or a mirror of the other class', so the pair differs in the direction of time alone.
    """
    out = np.zeros((n, n_times))
    lo_lag = max(1, math.ceil(max_lag / 2))
    t = np.arange(n_times)
    if form == "propagation":
        first = max(1, n // 2)
        for _ in range(n_events):
            sd = rng.uniform(width / 8, width / 4)
            lag = int(rng.integers(lo_lag, max_lag + 1))
            reach = math.ceil(3 * sd)
            t0 = rng.uniform(reach, n_times - reach - lag)
            heights = rng.uniform(0.75, 1.25, size=n)
            out[:first] += heights[:first, None] * np.exp(-0.5 * ((t - t0) / sd) ** 2)
            out[first:] += heights[first:, None] * np.exp(-0.5 * ((t - t0 - lag) / sd) ** 2)
    else:
        for r in range(n):
            for _ in range(n_events):
                height = rng.uniform(0.75, 1.25)
                if form == "arrow":
                    tau = rng.uniform(width / 4, width / 2)
                    extent = math.ceil(3 * tau)
                    t0 = int(rng.integers(0, n_times - extent))
                    out[r, t0 : t0 + extent] += height * np.exp(-np.arange(extent) / tau)
                else:
                    lag = int(rng.integers(lo_lag, max_lag + 1))
                    box = int(rng.integers(2, max(2, width // 2) + 1))
                    t0 = int(rng.integers(0, n_times - lag - box))
                    out[r, t0] += height
                    out[r, t0 + lag : t0 + lag + box] += height
    return out[:, ::-1].copy() if reverse else out


def _event_kind(signal_form: str, c: int) -> str:
    # "events": class0 is the drift class; in a mixture every class carries events
    return "drift" if signal_form == "events" and c == 0 else "events"


def _roi_forms(form: str, rois: list[list[int]]) -> list[list[tuple[str, np.ndarray]]]:
    """Per class, ``(form, ROI indices)`` groups: one group, or the mixture's split of the ROIs."""
    if form != "mixture":
        return [[(form, np.asarray(r))] for r in rois]
    return [[(f, g) for f, g in zip(MIXTURE_FORMS, np.array_split(np.asarray(r), len(MIXTURE_FORMS))) if len(g)]
            for r in rois]


def _level_jumps(n: int, n_times: int, scale: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` piecewise-constant levels, ``(n, n_times)``: N(0, 1) at every time point, jumping with
    probability ``JUMP_PROBABILITY`` at each boundary of blocks of ``scale`` samples (random offset
    per row). Autocorrelation ``(1 - p (1 - c))^k`` at block lags (``c = JUMP_CORRELATION``)."""
    n_blocks = n_times // scale + 2
    block = (np.arange(n_times) + rng.integers(0, scale, size=(n, 1))) // scale  # (n, T)
    jumps = rng.random((n, n_blocks)) < JUMP_PROBABILITY
    jumps[:, 0] = False
    n_jumps = np.cumsum(jumps, axis=1)  # (n, n_blocks): jumps up to each block
    # The level after the k-th jump is an AR(1) in k with coefficient c, started in its stationary
    # N(0, 1): a jump keeps the level standard normal.
    e = rng.standard_normal((n, n_blocks))
    e[:, 1:] *= math.sqrt(1 - JUMP_CORRELATION**2)
    levels = lfilter([1.0], [1.0, -JUMP_CORRELATION], e, axis=-1)  # (n, n_blocks), indexed by jump count
    return np.take_along_axis(levels, np.take_along_axis(n_jumps, block, axis=1), axis=1)  # (n, T)


def _ar1(e: np.ndarray, phi: float) -> np.ndarray:
    """AR(1) along the last axis, burn-in dropped: ``x[t] = phi x[t-1] + e[t]``."""
    return lfilter([1.0], [1.0, -phi], e, axis=-1)[..., _BURN_IN:]


def _normalise(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance along the last axis (a constant row stays zero)."""
    x = x - x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    return x / np.where(std > 0, std, 1.0)


def _class_names(class_names: Sequence[str] | None, n_classes: int) -> tuple[str, ...]:
    if class_names is None:
        return tuple(f"class{c}" for c in range(int(n_classes)))
    names = tuple(str(n) for n in class_names)
    if len(names) != n_classes or len(set(names)) != len(names):
        raise ConfigError(f"class_names {list(names)}: give {n_classes} distinct names, one per class")
    return names


def _check(n_scans, n_subjects, n_rois, n_times, n_classes, form, scale, amplitude, noise) -> None:
    if form not in SIGNAL_FORMS:
        raise ConfigError(f"signal_form={form!r}; choose one of {', '.join(SIGNAL_FORMS)}")
    if noise not in NOISE_KINDS:
        raise ConfigError(f"noise={noise!r}; choose one of {', '.join(NOISE_KINDS)}")
    if n_classes < 2:
        raise ConfigError(f"n_classes={n_classes}; classification needs at least 2")
    if n_scans < 2 * n_classes:
        raise ConfigError(f"n_scans={n_scans}; give at least two scans per class ({2 * n_classes})")
    if n_subjects is not None and not 2 <= n_subjects <= n_scans:
        raise ConfigError(f"n_subjects={n_subjects}; give between 2 and n_scans={n_scans}")
    if n_rois < 2 or n_times < 16:
        raise ConfigError(f"n_rois={n_rois}, n_times={n_times}; give at least 2 ROIs and 16 time points")
    if scale < 1 or amplitude < 0:
        raise ConfigError(f"scale={scale}, amplitude={amplitude}; scale must be >= 1 and amplitude >= 0")
    if form == "diff" and scale * 4 > n_times:
        raise ConfigError(f"scale={scale}: blocks of {scale} samples leave fewer than 4 possible level jumps "
                          f"in {n_times} time points")
    if form in ("raw", "mixture") and 2 * BASE_PERIOD * scale * (1 + PERIOD_JITTER) > n_times:
        raise ConfigError(f"scale={scale}: the raw-form period (~{BASE_PERIOD * scale} samples) needs "
                          f"n_times >= {math.ceil(2 * BASE_PERIOD * scale * (1 + PERIOD_JITTER))} for two cycles")


def _check_new(n_rois, n_times, form, background, n_factors, factor_phi, factor_ratio, event_width, n_events,
               signal_fraction) -> None:
    if background not in BACKGROUNDS:
        raise ConfigError(f"background={background!r}; choose one of {', '.join(BACKGROUNDS)}")
    if background == "factors" and (n_factors < 1 or not 0 <= factor_phi < 1 or factor_ratio < 0):
        raise ConfigError(f"n_factors={n_factors}, factor_phi={factor_phi}, factor_ratio={factor_ratio}; give "
                          "n_factors >= 1, 0 <= factor_phi < 1 and factor_ratio >= 0")
    if form in ("events", "mixture") and not (1 <= event_width <= n_times // 4 and n_events >= 1):
        raise ConfigError(f"event_width={event_width}, n_events={n_events}; give 1 <= event_width <= "
                          f"n_times / 4 = {n_times // 4} and n_events >= 1")
    if signal_fraction is not None and not 0 < signal_fraction <= 0.5:
        raise ConfigError(f"signal_fraction={signal_fraction}; give a fraction of the {n_rois} ROIs in (0, 0.5]")


def _check_order(form, n_classes, n_times, event_width, order_lag) -> None:
    if n_classes != 2:
        raise ConfigError(f"signal_form={form!r} makes a time-reversal pair: n_classes must be 2, not {n_classes}")
    if not (2 <= event_width <= n_times // 8 and 1 <= order_lag <= n_times // 8):
        raise ConfigError(f"event_width={event_width}, order_lag={order_lag}; for signal_form={form!r} give "
                          f"2 <= event_width <= n_times / 8 = {n_times // 8} and 1 <= order_lag <= {n_times // 8}")


def _signal_rois(given, names: tuple[str, ...], n_rois: int, per_class: int,
                 rng: np.random.Generator, shared: bool = False) -> list[list[int]]:
    n_classes = len(names)
    if given is None:
        if per_class < 1 or per_class * n_classes > n_rois:
            raise ConfigError(f"n_signal_rois={per_class} × {n_classes} classes needs at least "
                              f"{per_class * n_classes} ROIs; n_rois={n_rois}")
        chosen = rng.permutation(n_rois)[: per_class * n_classes].reshape(n_classes, per_class)
        return [sorted(int(r) for r in row) for row in chosen]
    if isinstance(given, Mapping):
        keyed = {str(k): v for k, v in given.items()}
        missing = [n for i, n in enumerate(names) if n not in keyed and str(i) not in keyed]
        if missing:
            raise ConfigError(f"signal_rois: no ROIs given for class(es) {missing}")
        given = [keyed.get(n, keyed.get(str(i))) for i, n in enumerate(names)]
    given = [list(g) for g in given]
    if len(given) != n_classes:
        raise ConfigError(f"signal_rois: {len(given)} group(s) for {n_classes} classes; give one per class")
    for c, group in enumerate(given):
        if not group or any(not 0 <= int(r) < n_rois for r in group) or len(set(group)) != len(group):
            raise ConfigError(f"signal_rois for {names[c]}: {group}; give distinct ROI indices in [0, {n_rois})")
    if shared and any(sorted(g) != sorted(given[0]) for g in given):
        raise ConfigError(f"signal_rois {given}: the order forms are time-reversal pairs; give every class the "
                          "same ROIs")
    return [sorted(int(r) for r in g) for g in given]


def _load(data_root, *, n_rois, crop_length, seed, **options):
    if n_rois is not None:
        options["n_rois"] = n_rois
    return make_synthetic(seed=seed, crop_length=crop_length, **options)


register_dataset(DatasetSpec(
    "SYNTHETIC", "synthetic", None, None, "label", "generated from a seed, with known ground truth", _load,
    options={
        "n_scans": DatasetOption(120, int, "number of scans"),
        "n_subjects": DatasetOption(None, optional_int, "number of subjects (default: one per scan)"),
        "n_times": DatasetOption(200, int, "time points per scan"),
        "n_classes": DatasetOption(2, int, "number of classes (balanced)"),
        "signal_form": DatasetOption("diff", str, "where the class signal lives", choices=SIGNAL_FORMS),
        "n_signal_rois": DatasetOption(4, int, "signal ROIs per class"),
        "signal_rois": DatasetOption(None, int_lists,
                                     "signal ROIs per class, e.g. '0,1,2;5,6' (default: drawn from the seed)"),
        "scale": DatasetOption(1, int, "temporal scale: samples per level block (diff) or period multiplier (raw)"),
        "amplitude": DatasetOption(1.0, float, "signal std relative to the ROI's own noise std"),
        "noise": DatasetOption("ar1", str, "private ROI noise", choices=NOISE_KINDS),
        "class_names": DatasetOption(None, name_list, "class names, e.g. 'rest,task' (default: class0, class1, ...)"),
        "atlas": DatasetOption("synthetic", str, "atlas the ROIs stand for (aal3v2 needs n_rois=166)"),
        "signal_fraction": DatasetOption(None, optional_float,
                                         "signal ROIs per class as a fraction of n_rois (replaces n_signal_rois)"),
        "background": DatasetOption(None, optional_str, "shared noise: global, or factors (default for "
                                    "events and mixture)", choices=(None, "global", "factors")),
        "n_factors": DatasetOption(8, int, "factors background: latent AR(1) factors"),
        "factor_phi": DatasetOption(0.9, float, "factors background: AR(1) coefficient of the factors"),
        "factor_ratio": DatasetOption(5.0, float, "factors background: factor variance over the ROI's own noise"),
        "event_width": DatasetOption(3, int, "events: widest event in samples (widths 1 to it)"),
        "n_events": DatasetOption(5, int, "events: events per signal ROI per scan"),
        "event_filler": DatasetOption(True, boolean, "events: matched-energy AR(1) filler in the other "
                                      "classes' event ROIs (false: background only)"),
        "order_lag": DatasetOption(4, int, "order forms: longest lag between an ordered event's two parts"),
    },
    training=TrainingConfig(epochs=15, batch_size=16, lr=2e-3, warmup_epochs=1)))
