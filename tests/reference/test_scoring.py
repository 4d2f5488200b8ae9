import numpy as np
import pytest

from neurossm.reference.scoring import dice, partial_corr, partial_corr_test, residualize, top_fraction_mask


def test_partial_corr_matches_first_order_formula():
    rng = np.random.default_rng(42)
    z = rng.standard_normal(50)
    x = z + rng.standard_normal(50)
    y = 0.5 * z + rng.standard_normal(50)
    rxy, rxz, ryz = (np.corrcoef(a, b)[0, 1] for a, b in ((x, y), (x, z), (y, z)))
    expected = (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))
    assert np.isclose(partial_corr(x, y, z), expected)


def test_partial_corr_is_residual_correlation_with_two_covariates():
    rng = np.random.default_rng(0)
    cov = rng.standard_normal((40, 2))
    x, y = rng.standard_normal(40) + cov[:, 0], rng.standard_normal(40) + cov[:, 1]
    design = np.column_stack([np.ones(40), cov])
    rx = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    ry = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    assert np.isclose(partial_corr(x, y, cov), np.corrcoef(rx, ry)[0, 1])
    assert np.allclose(residualize(x, cov) @ design, 0, atol=1e-9)


def test_known_case_shared_covariate_explains_everything():
    rng = np.random.default_rng(1)
    z = rng.standard_normal(30)
    noise = rng.standard_normal(30)
    # x and y correlate only through z: the partial correlation vanishes.
    x, y = z + 1e-9 * noise, 2 * z + 1e-9 * rng.standard_normal(30)
    assert np.corrcoef(x, y)[0, 1] > 0.99
    assert abs(partial_corr(x, y, z)) < 0.5
    # y = x + z exactly with x independent of z: controlling z leaves a perfect correlation.
    x = rng.standard_normal(30)
    assert np.isclose(partial_corr(x, x + 3 * z, z), 1.0)


def test_permutation_p_is_deterministic_and_bounded():
    rng = np.random.default_rng(3)
    z = rng.standard_normal(60)
    x = rng.standard_normal(60)
    y = x + z + rng.standard_normal(60)
    r1, p1 = partial_corr_test(x, y, z, n_perm=200, seed=7)
    r2, p2 = partial_corr_test(x, y, z, n_perm=200, seed=7)
    assert (r1, p1) == (r2, p2)
    assert p1 == pytest.approx(1 / 201)  # a strong effect: no permutation reaches it
    _, p_null = partial_corr_test(rng.standard_normal(60), rng.standard_normal(60), z, n_perm=200, seed=7)
    assert 1 / 201 <= p_null <= 1.0 and p_null > 0.01
    _, p_none = partial_corr_test(x, y, z, n_perm=0)
    assert np.isnan(p_none)


def test_top_fraction_mask_and_dice():
    values = np.array([0.1, 0.9, np.nan, 0.5, 0.5, 0.2, 0.8, 0.3])
    mask = top_fraction_mask(values)  # 7 finite values -> ceil(1.75) = 2 ROIs
    assert mask.tolist() == [False, True, False, False, False, False, True, False]
    ties = top_fraction_mask(np.array([1.0, 1.0, 1.0, 1.0]))
    assert ties.sum() == 1 and ties[0]
    a = np.array([1, 1, 0, 0], dtype=bool)
    b = np.array([1, 0, 1, 0], dtype=bool)
    assert dice(a, b) == 0.5 and dice(a, a) == 1.0
    assert np.isnan(dice(np.zeros(3, bool), np.zeros(3, bool)))
