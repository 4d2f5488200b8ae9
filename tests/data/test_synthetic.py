"""SYNTHETIC: deterministic, right shapes and labels, and the signal sits where the ground truth says."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import kurtosis
from sklearn.linear_model import LinearRegression

from neurossm.data import load_dataset
from neurossm.data.synthetic import event_signal, make_synthetic, order_signal, save_ground_truth
from neurossm.errors import ConfigError

SMALL = dict(n_scans=40, n_rois=16, n_times=200)


def stack(ds):
    return np.stack([s.timeseries for s in ds.scans])  # (N, R, T)


def top_rois(stat: np.ndarray, labels: np.ndarray, c: int, k: int) -> list[int]:
    """The k ROIs where the per-ROI statistic ``stat (N, R)`` is most raised in class c over the rest."""
    contrast = stat[labels == c].mean(axis=0) - stat[labels != c].mean(axis=0)
    return sorted(np.argsort(contrast)[-k:].tolist())


def test_same_seed_same_data_other_seed_other_data():
    a, b = make_synthetic(seed=3, **SMALL), make_synthetic(seed=3, **SMALL)
    np.testing.assert_array_equal(stack(a), stack(b))
    assert a.scan_ids == b.scan_ids and a.labels.tolist() == b.labels.tolist()
    assert a.subjects.tolist() == b.subjects.tolist() and a.ground_truth == b.ground_truth
    c = make_synthetic(seed=4, **SMALL)
    assert not np.allclose(stack(a), stack(c))


def test_signal_rois_depend_on_the_seed_not_on_the_data_size():
    a = make_synthetic(seed=5, n_scans=12, n_rois=16, n_times=40)
    b = make_synthetic(seed=5, n_scans=30, n_rois=16, n_times=80)
    assert a.ground_truth["signal_rois"] == b.ground_truth["signal_rois"]


def test_defaults_shapes_labels_and_ground_truth():
    ds = load_dataset("SYNTHETIC")
    assert len(ds) == 120 and ds.n_rois == 32 and ds.crop_length == 200 and ds.atlas == "synthetic"
    assert ds.class_names == ("class0", "class1")
    assert np.bincount(ds.labels).tolist() == [60, 60]
    assert len(set(ds.subjects.tolist())) == 120
    x = stack(ds)
    assert x.shape == (120, 32, 200) and x.dtype == np.float32
    np.testing.assert_allclose(x.mean(axis=-1), 0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=-1), 1, atol=1e-3)
    gt = ds.ground_truth
    assert gt["signal_form"] == "diff" and gt["scale"] == 1 and gt["amplitude"] == 1.0 and gt["seed"] == 0
    rois = gt["signal_rois"]
    assert list(rois) == ["class0", "class1"] and all(len(r) == 4 for r in rois.values())
    assert not set(rois["class0"]) & set(rois["class1"])
    assert all(0 <= r < 32 for group in rois.values() for r in group)


def test_subjects_with_several_scans_and_three_named_classes():
    ds = make_synthetic(seed=1, n_scans=31, n_subjects=10, n_rois=20, n_times=40, n_classes=3,
                        class_names=["a", "b", "c"])
    assert sorted(np.bincount(ds.labels).tolist()) == [10, 10, 11]
    assert len(set(ds.subjects.tolist())) == 10
    assert list(ds.ground_truth["signal_rois"]) == ["a", "b", "c"]


@pytest.mark.parametrize("scale", [1, 3])
def test_diff_signal_sits_in_the_ground_truth_rois(scale):
    ds = make_synthetic(seed=2, signal_form="diff", scale=scale, **SMALL)
    stat = kurtosis(np.diff(stack(ds), axis=-1), axis=-1)  # level shifts: heavy-tailed differences
    for c, name in enumerate(ds.class_names):
        assert top_rois(stat, ds.labels, c, 4) == ds.ground_truth["signal_rois"][name]


def test_diff_signal_is_in_the_difference_not_in_the_raw_values():
    # the level is standard normal at every time point: raw values are distributed alike in both
    # classes, while the difference is zero between jumps and large at one (heavy-tailed)
    ds = make_synthetic(seed=2, signal_form="diff", amplitude=3.0, **SMALL)
    x = stack(ds)
    rois = ds.ground_truth["signal_rois"]["class1"]
    one, other = ds.labels == 1, ds.labels == 0
    raw = kurtosis(x[:, rois], axis=-1)
    assert abs(raw[one].mean() - raw[other].mean()) < 0.3
    diff = kurtosis(np.diff(x[:, rois], axis=-1), axis=-1)
    assert diff[one].mean() > diff[other].mean() + 0.8


def test_raw_signal_sits_in_the_ground_truth_rois_and_not_in_the_difference_size():
    ds = make_synthetic(seed=2, signal_form="raw", scale=2, **SMALL)
    x = stack(ds)
    # share of the power near the oscillation's frequency (period 20 * scale, jittered ±10 %)
    power = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    freq = np.fft.rfftfreq(x.shape[-1])
    period = ds.ground_truth["period"]
    near = (freq > 0.8 / period) & (freq < 1.25 / period)
    slow = power[..., near].sum(axis=-1) / power.sum(axis=-1)
    for c, name in enumerate(ds.class_names):
        assert top_rois(slow, ds.labels, c, 4) == ds.ground_truth["signal_rois"][name]
    rois = ds.ground_truth["signal_rois"]["class1"]
    diff_var = np.diff(x, axis=-1).var(axis=-1)[:, rois]
    ratio = diff_var[ds.labels == 1].mean() / diff_var[ds.labels == 0].mean()
    assert 0.9 < ratio < 1.1


def test_connectivity_signal_sits_in_the_ground_truth_rois():
    ds = make_synthetic(seed=2, signal_form="connectivity", **SMALL)
    x = stack(ds)
    for c, name in enumerate(ds.class_names):
        rois = ds.ground_truth["signal_rois"][name]
        within = np.array([np.corrcoef(s[rois])[np.triu_indices(4, 1)].mean() for s in x])
        assert within[ds.labels == c].mean() > within[ds.labels != c].mean() + 0.2


@pytest.mark.parametrize("form", ["diff", "raw"])
def test_temporal_forms_leave_the_correlations_alone(form):
    # the signal replaces part of the ROI's own noise: same variance, same expected correlations
    ds = make_synthetic(seed=2, signal_form=form, **SMALL)
    x = stack(ds)
    rois = ds.ground_truth["signal_rois"]["class1"]
    corr = np.array([np.corrcoef(s)[rois].mean() for s in x])
    assert abs(corr[ds.labels == 1].mean() - corr[ds.labels == 0].mean()) < 0.03


def test_amplitude_zero_gives_no_signal():
    ds = make_synthetic(seed=2, signal_form="diff", amplitude=0.0, **SMALL)
    stat = kurtosis(np.diff(stack(ds), axis=-1), axis=-1)
    rois = ds.ground_truth["signal_rois"]["class1"]
    contrast = stat[ds.labels == 1].mean(axis=0) - stat[ds.labels == 0].mean(axis=0)
    assert np.abs(contrast[rois]).max() < 0.5


def test_given_signal_rois():
    ds = make_synthetic(seed=0, n_scans=12, n_rois=8, n_times=40, signal_rois={"class1": [7, 2], "class0": [0]})
    assert ds.ground_truth["signal_rois"] == {"class0": [0], "class1": [2, 7]}
    ds = make_synthetic(seed=0, n_scans=12, n_rois=8, n_times=40, signal_rois=[[1], [3, 4]])
    assert ds.ground_truth["signal_rois"] == {"class0": [1], "class1": [3, 4]}


def test_save_ground_truth_round_trips(tmp_path):
    ds = make_synthetic(seed=9, n_scans=12, n_rois=8, n_times=40)
    path = save_ground_truth(ds, tmp_path / "out" / "ground_truth.json")
    assert json.loads(path.read_text()) == ds.ground_truth


def test_save_ground_truth_refuses_real_data(tmp_path, folder_arrays, folder_labels, lay):
    ds = load_dataset("CUSTOM", lay.write_folder(tmp_path / "d", folder_arrays, folder_labels))
    with pytest.raises(ConfigError, match="has no ground truth"):
        save_ground_truth(ds, tmp_path / "gt.json")


@pytest.mark.parametrize("kwargs, match", [
    (dict(signal_form="wiggle"), "signal_form='wiggle'"),
    (dict(noise="pink"), "noise='pink'"),
    (dict(n_classes=1), "needs at least 2"),
    (dict(n_scans=3), "at least two scans per class"),
    (dict(n_subjects=50), "between 2 and n_scans"),
    (dict(n_rois=6, n_signal_rois=4), "needs at least 8 ROIs"),
    (dict(signal_rois=[[0, 99], [1]]), r"signal_rois for class0: \[0, 99\]"),
    (dict(signal_rois=[[0]]), "1 group"),
    (dict(signal_form="raw", scale=4, n_times=100), "needs n_times >= 176"),
    (dict(class_names=["x"]), "give 2 distinct names"),
])
def test_bad_options(kwargs, match):
    base = dict(n_scans=12, n_rois=8, n_times=40, n_signal_rois=2)
    with pytest.raises(ConfigError, match=match):
        make_synthetic(**{**base, **kwargs})


def test_white_noise_and_crop_length():
    ds = load_dataset("SYNTHETIC", crop_length=50, seed=1, noise="white", n_scans=12, n_times=60)
    assert ds.crop_length == 50 and ds.ground_truth["noise"] == "white"


EVENTS = dict(n_scans=40, n_rois=30, n_times=200, signal_form="events", n_signal_rois=3)


def test_events_sit_in_the_ground_truth_rois_of_the_event_class():
    ds = make_synthetic(seed=2, amplitude=2.0, **EVENTS)
    gt = ds.ground_truth
    assert gt["class_signal"] == {"class0": "drift", "class1": "events"} and gt["background"] == "factors"
    # brief boxes make the first difference heavy-tailed where (and when) they are
    stat = kurtosis(np.diff(stack(ds), axis=-1), axis=-1)
    assert top_rois(stat, ds.labels, 1, 3) == gt["signal_rois"]["class1"]


def test_events_leave_variance_and_correlations_alone():
    # both classes add the same energy to both ROI sets (events or drift in their own, filler in the
    # other's), so the correlation of a signal ROI with the rest does not tell the classes apart
    ds = make_synthetic(seed=2, amplitude=1.0, **{**EVENTS, "n_scans": 80})
    x = stack(ds)
    for name in ds.class_names:
        rois = ds.ground_truth["signal_rois"][name]
        corr = np.array([np.abs(np.corrcoef(s)[rois]).mean() for s in x])
        assert abs(corr[ds.labels == 1].mean() - corr[ds.labels == 0].mean()) < 0.02


def test_without_filler_the_events_also_lower_their_rois_correlations():
    # event_filler=false (issue 12's form): the other class' scans leave the event ROIs to the
    # background, so the added events dilute those ROIs' correlations in the event class only
    def drop(**kw):  # mean |correlation| of the event ROIs: drift class minus event class
        ds = load_dataset("SYNTHETIC", seed=2, amplitude=3.0, **{**EVENTS, "n_scans": 80}, **kw)
        rois = ds.ground_truth["signal_rois"]["class1"]
        corr = np.array([np.abs(np.corrcoef(s)[rois]).mean() for s in stack(ds)])
        return ds.ground_truth["event_filler"], corr[ds.labels == 0].mean() - corr[ds.labels == 1].mean()

    (filler, with_filler), (no_filler, without) = drop(), drop(event_filler="false")
    assert filler is True and no_filler is False
    assert abs(with_filler) < 0.01 and without > 0.025
    with pytest.raises(ConfigError, match="event_filler"):
        load_dataset("SYNTHETIC", seed=2, event_filler="maybe", **EVENTS)


def test_factor_background_dominates_every_roi():
    ds = make_synthetic(seed=2, amplitude=0.0, **EVENTS)
    x = stack(ds)
    # 8 factors at 5x the private variance: every ROI shares most of its variance with the others
    r2 = [LinearRegression().fit(np.delete(s, 0, axis=0).T, s[0]).score(np.delete(s, 0, axis=0).T, s[0])
          for s in x[:5]]
    assert min(r2) > 0.7
    white = make_synthetic(seed=2, amplitude=0.0, **{**EVENTS, "background": "global"})
    assert np.abs(np.corrcoef(stack(white)[0])).mean() < np.abs(np.corrcoef(x[0])).mean()


def test_event_signal_energy_is_matched():
    rng = np.random.default_rng(0)
    energy = {k: (event_signal(k, 400, 200, 3, 5, rng) ** 2).sum(axis=1).mean() for k in ("events", "drift", "filler")}
    assert energy["drift"] == pytest.approx(10.0) and energy["filler"] == pytest.approx(10.0)
    assert energy["events"] == pytest.approx(10.0, rel=0.1)  # 5 events, mean width 2, rare overlaps
    widths = np.diff(np.flatnonzero(np.diff(event_signal("events", 1, 10_000, 3, 1, rng)[0] != 0)))
    assert set(widths.tolist()) <= {1, 2, 3}


def test_mixture_records_which_roi_carries_which_form():
    ds = make_synthetic(seed=1, n_scans=12, n_rois=40, n_times=60, signal_form="mixture", n_signal_rois=8)
    gt = ds.ground_truth
    for name in ds.class_names:
        forms = gt["roi_forms"][name]
        assert sorted(int(r) for r in forms) == gt["signal_rois"][name]
        assert sorted(set(forms.values())) == ["connectivity", "diff", "events", "raw"]


def test_signal_fraction_and_options_from_the_command_line():
    ds = load_dataset("SYNTHETIC", seed=0, signal_form="events", n_rois="166", n_scans="12", signal_fraction="0.07",
                      event_width="2", n_events="4", n_factors="3", factor_ratio="2.5", background="factors")
    gt = ds.ground_truth
    assert all(len(r) == 12 for r in gt["signal_rois"].values())  # round(0.07 * 166)
    assert (gt["event_width"], gt["n_events"], gt["n_factors"], gt["factor_ratio"]) == (2, 4, 3, 2.5)


def test_new_options_leave_the_older_forms_alone():
    base = make_synthetic(seed=3, **SMALL)
    other = make_synthetic(seed=3, n_events=9, event_width=1, n_factors=2, **SMALL)
    np.testing.assert_array_equal(stack(base), stack(other))
    assert base.ground_truth["background"] == "global"


@pytest.mark.parametrize("kwargs, match", [
    (dict(background="pink"), "background='pink'"),
    (dict(signal_form="events", event_width=20), "event_width=20"),
    (dict(signal_form="events", n_events=0), "n_events=0"),
    (dict(background="factors", factor_phi=1.0), "factor_phi=1.0"),
    (dict(signal_fraction=0.9), "signal_fraction=0.9"),
])
def test_bad_event_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_synthetic(**{**dict(n_scans=12, n_rois=8, n_times=40, n_signal_rois=2), **kwargs})


@pytest.mark.parametrize("form", ["arrow", "propagation", "event_order"])
def test_order_forms_are_time_reversal_pairs(form):
    # the same draws played backwards: only the direction of time tells the classes apart
    forward = order_signal(form, 6, 120, 8, 4, 4, np.random.default_rng(3))
    backward = order_signal(form, 6, 120, 8, 4, 4, np.random.default_rng(3), reverse=True)
    np.testing.assert_array_equal(backward, forward[:, ::-1])
    assert np.all(forward >= 0) and forward.max() > 0.5
    ds = make_synthetic(seed=1, n_scans=8, n_rois=20, n_times=64, signal_form=form, n_signal_rois=4,
                        event_width=6, order_lag=3)
    rois = ds.ground_truth["signal_rois"]
    assert rois["class0"] == rois["class1"] and len(rois["class0"]) == 4
    assert ds.ground_truth["order_lag"] == 3
    assert all(np.isfinite(s.timeseries).all() for s in ds.scans)


def test_propagation_delays_the_second_group():
    x = order_signal("propagation", 4, 200, 8, 1, 4, np.random.default_rng(0))
    lead, lag = int(np.argmax(x[0])), int(np.argmax(x[3]))
    assert 2 <= lag - lead <= 4


def test_order_forms_refuse_bad_options():
    with pytest.raises(ConfigError, match="time-reversal pair"):
        make_synthetic(seed=0, n_scans=9, n_rois=20, n_classes=3, signal_form="arrow")
    with pytest.raises(ConfigError, match="order_lag"):
        make_synthetic(seed=0, n_scans=8, n_rois=20, n_times=64, signal_form="arrow", order_lag=20)
    with pytest.raises(ConfigError, match="same ROIs"):
        make_synthetic(seed=0, n_scans=8, n_rois=20, signal_form="arrow", signal_rois=[[0, 1], [2, 3]])
