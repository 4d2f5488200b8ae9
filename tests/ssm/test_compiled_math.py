"""The compiled scan engine's float32 scalar math against float64 NumPy, over the ranges it meets."""

import numpy as np
import pytest

numba = pytest.importorskip("numba")
from neurossm.ssm import _compiled  # noqa: E402


@numba.njit
def _map(kind, x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        if kind == 0:
            out[i] = _compiled._exp_nonpos(x[i])
        elif kind == 1:
            out[i] = _compiled._softplus(x[i])
        else:
            out[i] = _compiled._sigmoid(x[i])
    return out


def _rel_err(got, want):
    return np.abs(got.astype(np.float64) - want) / np.maximum(np.abs(want), np.finfo(np.float32).tiny)


def test_exp_of_nonpositive_float32_is_accurate_and_never_overflows():
    x = np.concatenate([-np.logspace(-8, 1.9, 20000), [0.0, -87.0, -88.0, -100.0, -1e4, -np.inf]])
    x32 = x.astype(np.float32)
    got = _map(0, x32)
    assert got.dtype == np.float32 and np.isfinite(got).all() and (got >= 0).all()
    want = np.exp(x32.astype(np.float64))
    normal = want >= 2.0 ** -126
    assert _rel_err(got[normal], want[normal]).max() < 2e-7
    # below float32's normal range the result is at most 2**-126: nothing a sum can see
    assert got[~normal].max() <= 2.0 ** -126 * 1.01


def test_softplus_and_sigmoid_float32_match_float64():
    x = np.linspace(-40, 40, 40001).astype(np.float32)
    x64 = x.astype(np.float64)
    softplus = np.logaddexp(0.0, x64)
    sigmoid = 1.0 / (1.0 + np.exp(-x64))
    assert _rel_err(_map(1, x), softplus).max() < 5e-7
    assert _rel_err(_map(2, x), sigmoid).max() < 5e-7


def test_float64_helpers_are_libm_exact():
    x = -np.logspace(-6, 2, 1000)
    np.testing.assert_allclose(_map(0, x), np.exp(x), rtol=1e-15)
    np.testing.assert_allclose(_map(1, x), np.logaddexp(0.0, x), rtol=1e-14)
    np.testing.assert_allclose(_map(2, x), 1.0 / (1.0 + np.exp(-x)), rtol=1e-14)
