"""The default engine's scales and standardizations (recsys.engines.stages.scale), each against its definition
written out with loops over datasets on small hand-made record sets (no fits)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys.engines.stages.scale import (Standardization, column_means, fit_additive, fit_log_spread, fit_ridge,
                                         log_spread_prior, pooled_scale, pooled_standardization, ridge_predict,
                                         row_sd, scale_estimate,
                                         shrunk_location_scale, standardize, standardize_dense, standardize_pooled,
                                         standardize_rows)
from recsys.features.data import Cells

NAN = np.nan
# 5 datasets x 4 models: 4, 3, 2, 1 and 0 records
Y = np.array([[0.9, 0.7, 0.5, 0.3],
              [0.8, NAN, 0.6, 0.61],
              [NAN, 0.4, 0.4, NAN],
              [0.55, NAN, NAN, NAN],
              [NAN, NAN, NAN, NAN]])


def _rows(Y):
    return [Y[i][~np.isnan(Y[i])] for i in range(len(Y))]


def test_row_sd_is_the_population_sd_of_each_datasets_records():
    k, sd = row_sd(Cells.from_dense(Y))
    assert list(k) == [4, 3, 2, 1, 0]
    np.testing.assert_allclose(sd[:4], [r.std() for r in _rows(Y)[:4]], atol=1e-15)
    assert sd[3] == 0.0 and np.isnan(sd[4])


def test_pooled_scale_pools_the_log_sd_with_the_prior_by_records_minus_one():
    prior = np.log(np.array([0.1, 0.2, 0.3, 0.4, 0.5]))
    got = pooled_scale(Cells.from_dense(Y), prior, prior_weight=3.0)
    for i, r in enumerate(_rows(Y)):
        w = max(len(r) - 1, 0)
        emp = math.log(max(r.std(), 1e-4)) if len(r) else 0.0
        want = math.exp(min(max((3.0 * prior[i] + w * emp) / (3.0 + w), -9), 1))
        assert got[i] == pytest.approx(want, rel=1e-12), i
    # the log-sd is kept within [-9, 1]: a huge prior or a spread of zero stop at the bounds
    Z = np.array([[0.5, 0.5, 0.5, 0.5]])
    assert pooled_scale(Cells.from_dense(Z), np.array([-50.0]), prior_weight=0.1)[0] == pytest.approx(math.exp(-9))
    assert pooled_scale(Cells.from_dense(Z), np.array([5.0]), prior_weight=1e6)[0] == pytest.approx(math.e)


def test_fit_ridge_against_the_normal_equations():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 2))
    y = 1.0 + X @ [0.5, -0.2] + rng.normal(0, 0.1, 12)
    w = rng.uniform(0.5, 2, 12)
    for alpha, weights in ((1.0, None), (3.0, w), (0.5, list(w))):
        Xa = np.hstack([np.ones((12, 1)), X])
        W = np.ones(12) if weights is None else np.asarray(weights)
        P = np.diag([0.0, alpha, alpha])
        want = np.linalg.solve(Xa.T @ (Xa * W[:, None]) + P, Xa.T @ (W * y))
        np.testing.assert_allclose(fit_ridge(X, y, weights, alpha), want, atol=1e-12)
    np.testing.assert_allclose(fit_ridge(X, y), fit_ridge(X, y, None, 1.0))
    np.testing.assert_allclose(ridge_predict(np.array([1.0, 2.0, 3.0]), np.array([[1.0, 1.0], [0.0, 2.0]])), [6.0, 7.0])
    # a singular system still has an answer (least squares): a constant feature column
    assert np.isfinite(fit_ridge(np.ones((4, 1)), np.arange(4.0), alpha=0.0)).all()


def test_scale_estimate_uses_a_ridge_prior_above_five_good_datasets_else_their_median():
    rng = np.random.default_rng(1)
    n = 8
    Yb = rng.uniform(0.2, 0.9, size=(n, 6))
    X = rng.normal(size=(n, 2))
    cells = Cells.from_dense(Yb)
    k, sd = row_sd(cells)
    s, coef, bounds = scale_estimate(cells, X, prior_weight=3.0, min_known=4)
    want = fit_ridge(X, np.log(sd), w=k / k.mean(), alpha=1.0)
    np.testing.assert_allclose(coef, want, atol=1e-12)
    np.testing.assert_allclose(bounds, [np.log(sd).min(), np.log(sd).max()])
    np.testing.assert_allclose(s, pooled_scale(cells, np.clip(ridge_predict(want, X), *bounds)), rtol=1e-12)
    # 5 good datasets (not more than 5): the prior is the median's log, no slope
    s5, coef5, bounds5 = scale_estimate(Cells.from_dense(Yb[:5]), X[:5])
    np.testing.assert_allclose(coef5, [np.log(np.median(sd[:5])), 0.0, 0.0])
    np.testing.assert_allclose(bounds5, [np.log(np.median(sd[:5]))] * 2)
    # 6: the ridge
    assert np.any(scale_estimate(Cells.from_dense(Yb[:6]), X[:6])[1][1:] != 0)
    # a constant dataset (sd 0) is not a good one; none good: log(0.05)
    flat = np.full((3, 6), 0.5)
    np.testing.assert_allclose(scale_estimate(Cells.from_dense(flat), X[:3])[1], [np.log(0.05), 0, 0])
    # a dataset of exactly 1e-4 spread is not good either (above it, it is)
    tiny = np.array([[0.5, 0.5, 0.5, 0.5 + 4e-4], [0.1, 0.9, 0.5, 0.3]])
    assert row_sd(Cells.from_dense(tiny))[1][0] == pytest.approx(1.732e-4, rel=1e-3)
    np.testing.assert_allclose(scale_estimate(Cells.from_dense(tiny), X[:2], min_known=4)[1][0],
                               np.log(np.median(row_sd(Cells.from_dense(tiny))[1])))


def test_the_spread_prior_counts_its_penalty_in_datasets_and_stays_within_the_zoos_spreads():
    """More features than datasets, hundreds of records each (vtab-hf's shape): weighted by records, a penalty of 1
    left the ridge free to interpolate its datasets and to give a dataset it had not seen a spread far outside
    theirs; its weights scaled to mean 1, the same penalty holds, and no answer leaves their range."""
    rng = np.random.default_rng(3)
    n, p = 12, 20
    X = rng.normal(size=(n + 40, p))
    y = np.log(rng.uniform(0.02, 0.35, size=n))
    coef, bounds = fit_log_spread(X[:n], y, np.full(n, 280.0))
    # the weights' scale does not matter, only their ratios
    np.testing.assert_allclose(coef, fit_log_spread(X[:n], y, np.full(n, 1.0))[0], atol=1e-10)
    np.testing.assert_allclose(coef, fit_ridge(X[:n], y, alpha=1.0), atol=1e-10)
    w = rng.integers(50, 300, n).astype(float)
    np.testing.assert_allclose(fit_log_spread(X[:n], y, w)[0], fit_log_spread(X[:n], y, 7 * w)[0], atol=1e-10)
    np.testing.assert_allclose(bounds, [y.min(), y.max()])
    new = log_spread_prior(coef, X[n:], bounds)
    assert (new >= y.min()).all() and (new <= y.max()).all()
    # weighted in records, the old fit would have interpolated its datasets and gone far outside their range
    old = ridge_predict(fit_ridge(X[:n], y, w=np.full(n, 280.0), alpha=1.0), X[n:])
    assert np.abs(ridge_predict(fit_ridge(X[:n], y, w=np.full(n, 280.0), alpha=1.0), X[:n]) - y).max() < 0.01
    assert old.max() > y.max() + 0.5 or old.min() < y.min() - 0.5
    # a model file from before the bounds: the old clip at (-9, 1)
    np.testing.assert_allclose(log_spread_prior(np.array([5.0, 0.0]), np.zeros((1, 1))), [1.0])
    np.testing.assert_allclose(log_spread_prior(np.array([-20.0, 0.0]), np.zeros((1, 1))), [-9.0])


def test_standardize_is_the_z_score_over_each_datasets_own_records():
    cells = Cells.from_dense(Y)
    z = standardize(cells, min_known=2)
    want = []
    for r in _rows(Y):
        if len(r) >= 2 and r.std() > 0:
            want += list((r - r.mean()) / r.std())
        else:
            want += [NAN] * len(r)
    np.testing.assert_allclose(z, want, atol=1e-12)  # (the constant third dataset: NaN)
    # default min_known 3: the 3-record dataset is kept
    assert np.isfinite(standardize(cells)[cells.d == 1]).all() and np.isnan(standardize(cells, 4)[cells.d == 1]).all()
    dense = standardize_dense(Y)
    assert np.isnan(dense[2]).all() and np.isfinite(dense[1, [0, 2, 3]]).all() and np.isnan(dense[1, 1])
    np.testing.assert_allclose(dense[cells.d, cells.m], standardize(cells))
    np.testing.assert_allclose(standardize_dense(Y, 2)[cells.d, cells.m], z)


def test_standardization_ratio_and_difference():
    st = Standardization(np.array([1.0, 2.0]), np.array([0.5, 4.0]), ratio=True)
    np.testing.assert_allclose(st.at(np.array([1.0, 8.0]), np.array([0, 1])), [1.0, 0.0])
    st = Standardization(np.array([1.0, 2.0]), np.array([0.5, 4.0]), ratio=False)
    np.testing.assert_allclose(st.at(np.array([1.0, 8.0]), np.array([0, 1])), [0.0, 1.5])


def test_column_means_over_the_chosen_datasets():
    cells = Cells.from_dense(Y)
    z = np.arange(len(cells), dtype=float)
    z[1] = NAN
    rows = np.array([True, False, True, True, True])
    got = column_means(cells, z, rows)
    for j in range(4):
        sel = (cells.m == j) & rows[cells.d] & ~np.isnan(z)
        assert got[j] == (z[sel].mean() if sel.any() else 0.0)
    got = column_means(cells, z)
    for j in range(4):
        sel = (cells.m == j) & ~np.isnan(z)
        assert got[j] == pytest.approx(z[sel].mean())


def test_pooled_standardization_keeps_the_zoos_mean_profile_over_the_recorded_models():
    """Level c_d = mean(y / s_d) - mean(g over its models), g the models' mean standardized value over the datasets
    with >= 5 records, refined ``iters`` times from the plain z-scores."""
    rng = np.random.default_rng(3)
    Yb = rng.uniform(0.2, 0.9, size=(7, 6))
    Yb[5, 3:] = NAN  # 3 records
    Yb[6, 2:] = NAN  # 2 records
    cells = Cells.from_dense(Yb)
    s = np.full(7, 0.2) + np.arange(7) * 0.01
    for iters in (1, 2, 3):
        k = cells.row_counts()
        z = standardize(cells, 3)
        for _ in range(iters):
            g = np.array([np.nanmean([z[i] for i in range(len(z)) if cells.m[i] == j and k[cells.d[i]] >= 5])
                          for j in range(6)])
            c = np.array([np.mean(cells.y[cells.d == d] / s[d]) - np.mean(g[cells.m[cells.d == d]]) for d in range(7)])
            c[k < 3] = NAN
            z = cells.y / s[cells.d] - c[cells.d]
        got = standardize_pooled(cells, s, 3, iters)
        np.testing.assert_allclose(got, z, atol=1e-12)
    np.testing.assert_allclose(standardize_pooled(cells, s), standardize_pooled(cells, s, 3, 2))
    np.testing.assert_allclose(pooled_standardization(cells, s).of(cells), standardize_pooled(cells, s, 3, 2))
    # no dataset with 5 records: the plain z-scores
    few = Cells.from_dense(Yb[:, :4])
    np.testing.assert_allclose(standardize_pooled(few, s), standardize(few), equal_nan=True)


def test_shrunk_location_scale_written_out():
    cells = Cells.from_dense(Y)
    prior = 2.0
    mu, sd, zoo_mu, zoo_sd = shrunk_location_scale(Y, prior)
    rows = _rows(Y)
    allv = np.concatenate(rows)
    assert zoo_mu == pytest.approx(allv.mean())
    within = sum(((r - r.mean()) ** 2).sum() for r in rows if len(r) > 1) / sum(len(r) - 1 for r in rows if len(r) > 1)
    assert zoo_sd == pytest.approx(math.sqrt(within))
    for i, r in enumerate(rows):
        assert mu[i] == pytest.approx((r.sum() + prior * zoo_mu) / (len(r) + prior))
        dev2 = ((r - r.mean()) ** 2).sum() if len(r) else 0.0
        assert sd[i] == pytest.approx(math.sqrt((dev2 + prior * within) / (max(len(r) - 1, 0) + prior)))
    same = shrunk_location_scale(cells, prior)
    np.testing.assert_allclose(same[0], mu)
    np.testing.assert_allclose(same[1], sd)
    # no dataset with two records: the zoo's variance floor 1e-4
    one = np.array([[0.5, NAN], [NAN, 0.7]])
    assert shrunk_location_scale(one, 1.0)[3] == pytest.approx(0.01)


def test_standardize_rows_written_out():
    S = np.array([[1.0, 2.0, NAN, 4.0],
                  [5.0, NAN, NAN, NAN],       # one entry: 0
                  [3.0, 3.0, 3.0, NAN],       # constant: 0
                  [1e12, 1e12 + 1e-3, NAN, NAN],  # constant within rel_tol * |mean|
                  [-2.0, 0.0, 2.0, 4.0]])
    got = standardize_rows(S)
    for i, row in enumerate(S):
        ok = np.isfinite(row)
        v = row[ok]
        want = np.zeros(4)
        if len(v) >= 2 and v.std() > 1e-12 * max(abs(v.mean()), 1.0):
            want[ok] = (v - v.mean()) / v.std()
        np.testing.assert_allclose(got[i], want, atol=1e-12, err_msg=str(i))
    assert (got[3] == 0).all() and (got[1] == 0).all() and got.dtype == np.float64
    np.testing.assert_allclose(standardize_rows([[1, 3]]), [[-1.0, 1.0]])  # (ints read as floats)
    # min_count: rows with fewer finite entries are 0; exactly min_count are kept
    np.testing.assert_allclose(standardize_rows(S, min_count=3)[0], got[0])
    assert (standardize_rows(S, min_count=4)[0] == 0).all() and (standardize_rows(S, min_count=4)[4] != 0).any()
    # rel_tol: a small spread kept with a small tolerance, dropped with a larger one
    T = np.array([[1.0, 1.0 + 1e-9]])
    assert (standardize_rows(T) != 0).all() and (standardize_rows(T, rel_tol=1e-6) == 0).all()
    # around a mean below 1 in size, the tolerance is absolute
    T = np.array([[0.1, 0.1 + 1e-11]])
    assert (standardize_rows(T, rel_tol=1e-10) == 0).all() and (standardize_rows(T, rel_tol=1e-12) != 0).all()


def test_the_edges_of_the_scales():
    """Where a threshold or a divisor's floor decides: a spread of exactly 1e-4 is not a good dataset; one record
    in the whole zoo is its mean; one dataset of two records sets the zoo's variance alone; a two-record dataset
    standardized with min_known 2; rows of one score, a zero tolerance, a tolerance around a small mean."""
    rng = np.random.default_rng(5)
    Yb = rng.uniform(0.2, 0.9, size=(7, 4))
    Yb[6] = [0.0, 0.0002, 0.0, 0.0002]  # population sd exactly 1e-4
    X = rng.normal(size=(7, 2))
    cells = Cells.from_dense(Yb)
    k, sd = row_sd(cells)
    assert sd[6] == 1e-4
    np.testing.assert_allclose(scale_estimate(cells, X)[1], fit_ridge(X[:6], np.log(sd[:6]), w=k[:6] / k[:6].mean(),
                                                                      alpha=1.0))
    assert shrunk_location_scale(np.array([[NAN, 0.3], [NAN, NAN]]), 1.0)[2] == pytest.approx(0.3)
    two = np.array([[0.5, 0.7], [0.6, NAN]])
    assert shrunk_location_scale(two, 1.0)[3] == pytest.approx(math.sqrt(0.02))
    Yd = np.array([[0.2, 0.6, NAN], [0.1, 0.2, 0.4]])
    dense = standardize_dense(Yd, 2)
    np.testing.assert_allclose(dense[0, :2], [-1.0, 1.0])
    assert np.isnan(standardize_dense(Yd)[0]).all()
    assert (standardize_rows(np.array([[5.0, NAN]]), min_count=1) == 0).all()
    assert (standardize_rows(np.array([[1.0, 1.0]]), rel_tol=0.0) == 0).all()
    np.testing.assert_allclose(standardize_rows(np.array([[0.5, 0.5 + 3e-6]]), rel_tol=1e-6), [[-1.0, 1.0]])


def test_pooled_standardization_refines_the_profile_when_well_recorded_datasets_miss_models():
    """With a well-recorded dataset missing a model the profile moves at each refinement: iters counts."""
    rng = np.random.default_rng(4)
    Yb = rng.uniform(0.2, 0.9, size=(7, 6))
    Yb[4, 5] = NAN  # 5 records: well recorded, one model missing
    Yb[3, 0] = NAN
    cells = Cells.from_dense(Yb)
    s = np.full(7, 0.2)
    z2, z3 = standardize_pooled(cells, s, 3, 2), standardize_pooled(cells, s, 3, 3)
    assert not np.allclose(z2, z3, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pooled_standardization(cells, s).of(cells), z2, rtol=0, atol=0)


def test_fit_additive_is_the_closed_form_ridge_solution_from_dense_or_cells():
    """mu = the mean of the records; (b, c) minimize sum (y - mu - b[m] - c[d])^2 + lam (|b|^2 + |c|^2), solved
    here in closed form; a dataset (or model) without records gets bias 0; a dense matrix and its Cells agree."""
    lam = 0.5
    d, m = np.nonzero(~np.isnan(Y))
    y = Y[d, m]
    mu = y.mean()
    X = np.zeros((len(y), Y.shape[1] + Y.shape[0]))
    X[np.arange(len(y)), m] = 1.0
    X[np.arange(len(y)), Y.shape[1] + d] = 1.0
    theta = np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ (y - mu))
    for given in (Y, Cells.from_dense(Y)):
        got_mu, b, c = fit_additive(given, lam, iters=500)
        assert got_mu == pytest.approx(mu, abs=1e-12)
        np.testing.assert_allclose(b, theta[:Y.shape[1]], atol=1e-8)
        np.testing.assert_allclose(c, theta[Y.shape[1]:], atol=1e-8)
    assert c[4] == 0.0  # (no records)
    # the sweeps stop once the model biases move less than 1e-9: more sweeps change nothing
    np.testing.assert_array_equal(fit_additive(Y, lam, iters=500)[1], fit_additive(Y, lam, iters=5000)[1])
    # one sweep: the model biases from a zero dataset bias, then the dataset biases from those
    _, b1, c1 = fit_additive(Y, lam, iters=1)
    want_b = np.array([(y[m == j] - mu).sum() / ((m == j).sum() + lam) for j in range(Y.shape[1])])
    np.testing.assert_allclose(b1, want_b, atol=1e-12)
    want_c = np.array([(y[d == i] - mu - want_b[m[d == i]]).sum() / ((d == i).sum() + lam) for i in range(Y.shape[0])])
    np.testing.assert_allclose(c1, want_c, atol=1e-12)
    empty = fit_additive(np.full((2, 3), NAN), lam)
    assert empty[0] == 0.0 and not empty[1].any() and not empty[2].any()


def test_fit_additive_sweeps_50_times_by_default_and_stops_once_the_model_biases_settle():
    """A chain of datasets (dataset i records models i and i + 1) spreads each record one link per sweep, so the
    sweeps converge slowly: the default is 50 of them, and a fit given more stops at the first sweep whose model
    biases move by less than 1e-9 (written out here), not later."""
    n, lam = 40, 0.1
    chain = np.full((n, n + 1), NAN)
    rng = np.random.default_rng(0)
    for i in range(n):
        chain[i, i], chain[i, i + 1] = rng.uniform(0.3, 0.9, 2)
    default = fit_additive(chain, lam)
    for got, want in zip(default, fit_additive(chain, lam, iters=50)):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(default[1], fit_additive(chain, lam, iters=51)[1])
    # the early stop, written out
    cells = Cells.from_dense(chain)
    y, d, m = cells.y, cells.d, cells.m
    mu = y.mean()
    b, c = np.zeros(n + 1), np.zeros(n)
    for sweeps in range(1, 100_000):
        b_old = b
        b = np.bincount(m, weights=y - mu - c[d], minlength=n + 1) / (np.bincount(m, minlength=n + 1) + lam)
        c = np.bincount(d, weights=y - mu - b[m], minlength=n) / (np.bincount(d, minlength=n) + lam)
        if np.abs(b - b_old).max() < 1e-9:
            break
    assert 50 < sweeps < 100_000
    got = fit_additive(chain, lam, iters=100_000)
    np.testing.assert_allclose(got[1], b, rtol=0, atol=1e-15)
    np.testing.assert_allclose(got[2], c, rtol=0, atol=1e-15)
    # (sweeping on would have moved them further: they had not reached their fixed point)
    b_on = b
    for _ in range(50):
        b_on = np.bincount(m, weights=y - mu - c[d], minlength=n + 1) / (np.bincount(m, minlength=n + 1) + lam)
        c = np.bincount(d, weights=y - mu - b_on[m], minlength=n) / (np.bincount(d, minlength=n) + lam)
    assert np.abs(b_on - b).max() > 1e-12
