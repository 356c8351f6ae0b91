"""The kriging stage's parts, against their definitions (issue 21: mutants that survived test_hybrid_stages.py).

Both covariances give the same numbers for the same ``S = V V' + diag(psi)`` through every method; the
residual covariance equals its textbook estimate, its defaults and its edge cases (a model recorded once, none
on a well-recorded dataset, no well-recorded dataset, the dense cap); the low-rank factor is exact at full rank.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from recsys.engines.stages import kriging as _kriging
from recsys.engines.stages.kriging import (COV_MIN_KNOWN, DenseCovariance, Kriging, LowRankCovariance,
                                           _factor_residuals, covariance_counts, covariance_from_arrays, krige_row,
                                           krige_row_joined, residual_covariance, robust_variances)
from recsys.features.data import Cells


def _low_rank(m=7, r=3, seed=0):
    rng = np.random.default_rng(seed)
    V, psi = rng.normal(size=(m, r)), rng.uniform(0.2, 0.6, m)
    return LowRankCovariance(V, psi), V @ V.T + np.diag(psi)


def test_each_covariance_gives_each_models_variance():
    low, S = _low_rank()
    np.testing.assert_allclose(low.diag(), np.diag(S), rtol=1e-12)
    np.testing.assert_array_equal(DenseCovariance(S).diag(), np.diag(S))


def test_dense_covariance_adds_its_ridge_to_each_block():
    S = np.array([[2.0, 0.5, 0.1], [0.5, 3.0, 0.2], [0.1, 0.2, 4.0]])
    cov = DenseCovariance(S)
    assert cov.n == 3 and cov.ridge == pytest.approx(1e-9 * 9.0 / 3, rel=1e-12)
    idx = np.array([[0, 2], [1, 2]])
    want = np.stack([S[np.ix_(i, i)] for i in idx]) + cov.ridge * np.eye(2)
    np.testing.assert_array_equal(cov.blocks(idx), want)
    assert DenseCovariance(np.zeros((0, 0))).ridge == 0.0


def test_integer_covariances_are_read_as_floats():
    dense = DenseCovariance(np.array([[2, 1], [1, 2]]))
    assert dense.S.dtype == np.float64
    np.testing.assert_allclose(dense.solve(np.array([[0, 1]]), np.ones((1, 2, 1)))[0, :, 0], [1 / 3, 1 / 3])
    low = LowRankCovariance(np.array([[1], [2]]), np.array([1, 1]))
    assert low.V.dtype == np.float64 and low.psi.dtype == np.float64 and low.n == 2
    np.testing.assert_array_equal(low.blocks(np.array([[0, 1]]))[0], [[2.0, 2.0], [2.0, 5.0]])


def test_low_rank_and_dense_covariances_agree_on_every_method():
    low, S = _low_rank()
    dense = DenseCovariance(S)
    idx = np.array([[0, 3, 5], [1, 2, 6]])
    rng = np.random.default_rng(1)
    alpha, rhs = rng.normal(size=(2, 3)), rng.normal(size=(2, 3, 2))
    np.testing.assert_allclose(low.blocks(idx), np.stack([S[np.ix_(i, i)] for i in idx]), atol=1e-12)
    np.testing.assert_allclose(low.solve(idx, rhs), dense.solve(idx, rhs), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(low.cross(alpha, idx), dense.cross(alpha, idx), atol=1e-12)
    cols = np.array([5, 0, 4])
    np.testing.assert_allclose(low.cross(alpha, idx, cols), dense.cross(alpha, idx, cols), atol=1e-12)
    np.testing.assert_allclose(dense.cross(alpha, idx, cols), dense.cross(alpha, idx)[:, cols], atol=1e-12)
    rows, qcols = np.array([0, 1, 1, 0]), np.array([3, 6, 0, 4])
    want = np.array([S[c, idx[r]] @ alpha[r] for r, c in zip(rows, qcols)])
    np.testing.assert_allclose(low.cross_cells(alpha, idx, rows, qcols), want, atol=1e-12)
    np.testing.assert_allclose(dense.cross_cells(alpha, idx, rows, qcols), want, atol=1e-12)
    for shrink in (0.0, 0.3, 1.0):
        shrunk = low.shrunk(shrink)
        np.testing.assert_allclose(shrunk.V @ shrunk.V.T + np.diag(shrunk.psi), dense.shrunk(shrink).S, atol=1e-12)


@pytest.mark.parametrize("kind", ["dense", "low-rank"])
def test_covariances_round_trip_through_their_arrays(kind):
    low, S = _low_rank()
    cov = DenseCovariance(S) if kind == "dense" else low
    back = covariance_from_arrays(cov.to_arrays("cov."), "cov.")
    assert type(back) is type(cov)
    for name, arr in cov.to_arrays("x").items():
        np.testing.assert_array_equal(back.to_arrays("x")[name], arr)


def _records(Y):
    return Cells.from_dense(Y)


def _centred(Y, s, M, min_known):
    """The residuals y / s - M centred per dataset, each dataset's record count, and the datasets with at least
    ``min_known`` records."""
    R = Y / s[:, None] - M
    k = (~np.isnan(Y)).sum(1)
    return R - np.nanmean(R, 1, keepdims=True), k, k >= min_known


def _textbook(Y, s, M, min_known, shrink):
    """Pairwise-complete covariance of the centred residuals of the rows with >= min_known records, each row's
    residuals scaled by k / (k - 1), off-diagonal shrunk; a model never recorded on those rows gets the median
    variance."""
    R, k, use = _centred(Y, s, M, min_known)
    m = Y.shape[1]
    S = np.zeros((m, m))
    for a in range(m):
        for b in range(m):
            both = use & ~np.isnan(Y[:, a]) & ~np.isnan(Y[:, b])
            S[a, b] = (R[both, a] * R[both, b] * (k[both] / np.maximum(k[both] - 1, 1))).sum() / max(both.sum(), 1)
    d = np.diag(S).copy()
    d[d <= 0] = np.median(d[d > 0])
    S = (1 - shrink) * S
    S[np.diag_indices(m)] = d
    return S


def test_residual_covariance_equals_its_textbook_estimate_with_its_defaults():
    rng = np.random.default_rng(3)
    Y = rng.uniform(0.2, 0.9, size=(12, 6))
    Y[0, :1] = np.nan  # 5 records: used (min_known = 5)
    Y[1, :2] = np.nan  # 4 records: not used
    Y[2:, 5] = np.nan
    Y[3, 5] = 0.5  # model 5: recorded on one well-recorded dataset only
    Y[4:, 4] = np.nan  # model 4: recorded on datasets 0 (used), 1 (not used), 2 and 3 only
    s, M = rng.uniform(0.5, 1.5, 12), rng.normal(size=(12, 6))
    cells = _records(Y)
    got = residual_covariance(cells, s, M[cells.d, cells.m])
    assert isinstance(got, DenseCovariance)
    np.testing.assert_allclose(got.S, _textbook(Y, s, M, 5, 0.2), rtol=1e-10, atol=1e-14)


def test_residual_covariance_of_short_rows_and_unrecorded_models():
    rng = np.random.default_rng(4)
    Y = rng.uniform(0.2, 0.9, size=(10, 5))
    Y[:, 4] = np.nan
    Y[9, 4] = 0.6  # model 4 only on a row of two records: never on a used row
    Y[9, :3] = np.nan
    s, M = np.ones(10), np.zeros((10, 5))
    cells = _records(Y)
    for min_known in (2, 4):
        got = residual_covariance(cells, s, M[cells.d, cells.m], min_known=min_known, shrink=0.0).S
        np.testing.assert_allclose(got, _textbook(Y, s, M, min_known, 0.0), rtol=1e-10, atol=1e-14)
    got = residual_covariance(cells, s, M[cells.d, cells.m], min_known=4, shrink=0.0).S
    assert got[4, 4] == pytest.approx(np.median(np.diag(got)[:4]))  # the median variance, not 1 nor 0


def test_residual_covariance_without_a_well_recorded_dataset(monkeypatch):
    Y = np.full((4, 6), np.nan)
    Y[:, :2] = 0.5
    cells = _records(Y)
    dense = residual_covariance(cells, np.ones(4), np.zeros(len(cells)))
    assert isinstance(dense, DenseCovariance)
    np.testing.assert_array_equal(dense.S, np.eye(6))
    monkeypatch.setattr(_kriging, "DENSE_MAX_MODELS", 5)
    low = residual_covariance(cells, np.ones(4), np.zeros(len(cells)))
    assert isinstance(low, LowRankCovariance)
    np.testing.assert_array_equal(low.V, np.zeros((6, 1)))
    np.testing.assert_array_equal(low.psi, np.ones(6))


def test_the_dense_cap_is_inclusive(monkeypatch):
    rng = np.random.default_rng(5)
    Y = rng.uniform(0.2, 0.9, size=(20, 6))
    cells = _records(Y)
    monkeypatch.setattr(_kriging, "DENSE_MAX_MODELS", 6)
    assert isinstance(residual_covariance(cells, np.ones(20), np.zeros(len(cells))), DenseCovariance)
    assert isinstance(residual_covariance(_records(np.full((2, 6), np.nan)), np.ones(2), np.zeros(0)),
                      DenseCovariance)


def test_low_rank_factor_is_exact_at_full_rank():
    """With every model recorded on every used row and as many factors as models, V V' is R'R / n exactly (the
    range finder spans everything); the rows without records do not count in n."""
    rng = np.random.default_rng(6)
    R = rng.normal(size=(30, 5))
    Y = np.vstack([R, np.full((4, 5), np.nan)])  # 4 rows without records
    cells = _records(Y)
    V = _factor_residuals(cells, cells.y, rank=5, seed=0)
    np.testing.assert_allclose(V @ V.T, R.T @ R / 30, rtol=1e-8, atol=1e-10)
    # a model recorded on half of the rows: its residuals weigh as if recorded everywhere
    Y2 = Y.copy()
    Y2[:15, 0] = np.nan
    c2 = _records(Y2)
    V2 = _factor_residuals(c2, c2.y, rank=5, seed=0)
    assert (V2 @ V2.T)[0, 0] == pytest.approx((R[15:, 0] ** 2).sum() / 15, rel=1e-8)


def test_low_rank_residual_covariance_keeps_each_models_variance(monkeypatch):
    """Above the dense cap: V V' + diag(psi) has the dense estimate's diagonal (psi takes what the factors leave,
    at least 5% of it), its factors the rank asked for (16 by default), the same for the same seed."""
    rng = np.random.default_rng(7)
    m = 24
    F = rng.normal(size=(m, 2))
    Y = 0.5 + 0.05 * (rng.normal(size=(200, 2)) @ F.T + 0.3 * rng.normal(size=(200, m)))
    cells = _records(Y)
    s, Mc = np.full(200, 0.05), np.zeros(len(cells))
    dense = residual_covariance(cells, s, Mc, shrink=0.0).S
    monkeypatch.setattr(_kriging, "DENSE_MAX_MODELS", 10)
    for rank in (2, 23):
        low = residual_covariance(cells, s, Mc, shrink=0.0, rank=rank)
        assert low.V.shape == (m, rank)
        assert (low.psi >= 0.05 * np.diag(dense) - 1e-15).all()
        kept = low.psi > 0.05 * np.diag(dense) + 1e-12
        assert kept.any() or rank == 23  # (two factors leave most of each model's variance to psi)
        np.testing.assert_allclose((low.V ** 2).sum(1)[kept] + low.psi[kept], np.diag(dense)[kept], rtol=1e-10)
    default = residual_covariance(cells, s, Mc, shrink=0.0)
    assert default.V.shape == (m, 16)
    again = residual_covariance(cells, s, Mc, shrink=0.0, seed=0)
    np.testing.assert_array_equal(default.V, again.V)
    shrunk = residual_covariance(cells, s, Mc)  # the default shrink, 0.2, keeps the diagonal
    np.testing.assert_allclose((shrunk.V ** 2).sum(1) + shrunk.psi, (default.V ** 2).sum(1) + default.psi, rtol=1e-10)
    np.testing.assert_allclose(shrunk.V, default.V * np.sqrt(0.8), rtol=1e-12)


def test_kriging_fits_a_row_without_records_without_a_warning():
    rng = np.random.default_rng(8)
    Y = rng.uniform(0.2, 0.9, size=(6, 4))
    Y[2] = np.nan
    cells = _records(Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        krig = Kriging(DenseCovariance(np.eye(4))).fit(cells, np.ones(6), np.zeros(len(cells)))
    assert np.isnan(krig.level[2]) and np.isfinite(np.delete(krig.level, 2)).all()
    # with an identity covariance the level is the mean residual and the unknown cells get it
    np.testing.assert_allclose(krig.level[0], Y[0].mean())
    np.testing.assert_allclose(krig.rows(np.array([0, 1]), np.zeros((2, 4))), Y[:2])


def test_edge_cases_of_the_covariance_and_its_factor(monkeypatch):
    assert DenseCovariance(np.array([[2.0]])).ridge == pytest.approx(2e-9, rel=1e-12)  # one model: trace / 1
    # residuals of exactly 0 (every record on its dataset's level): no variance to take a median of, 1 instead
    Y = np.tile(np.array([0.2, 0.5, 0.7, 0.4, 0.9, 0.6]), (8, 1))
    cells = _records(Y)
    M = (Y - Y.mean(1, keepdims=True))[cells.d, cells.m]
    np.testing.assert_allclose(residual_covariance(cells, np.ones(8), M).S, np.eye(6), atol=1e-12)
    # a factor of a model recorded on one row only: its own variance, not half of it
    rng = np.random.default_rng(9)
    R = rng.normal(size=(10, 4))
    Z = R.copy()
    Z[1:, 0] = np.nan
    c = _records(Z)
    V = _factor_residuals(c, c.y, rank=4, seed=0)
    assert (V @ V.T)[0, 0] == pytest.approx(R[0, 0] ** 2, rel=1e-8)
    # more factors asked than models: as many as the models less one
    monkeypatch.setattr(_kriging, "DENSE_MAX_MODELS", 2)
    Y = rng.uniform(0.2, 0.9, size=(40, 5))
    low = residual_covariance(_records(Y), np.full(40, 0.1), np.zeros(200), shrink=0.0, rank=30)
    assert low.V.shape == (5, 4)


def test_low_rank_part_keeps_the_top_eigenpairs_and_puts_the_rest_on_the_diagonal():
    """``V V' + diag(psi)`` of a covariance of rank 3 plus a diagonal, taken at rank 3: ``V V'`` is the top three
    eigenpairs of the (symmetrized) matrix, largest first; ``psi`` the rest of each variance (at least 1%)."""
    from recsys.engines.stages.kriging import low_rank_part

    rng = np.random.default_rng(11)
    A = rng.normal(scale=0.3, size=(8, 3))  # (eigenvalues below 1: a floor at 1 would show)
    S = A @ A.T + np.diag(rng.uniform(0.001, 0.002, 8))
    asym = S + np.triu(np.full((8, 8), 1e-3), 1) - np.tril(np.full((8, 8), 1e-3), -1)  # (its symmetric part is S)
    w, U = np.linalg.eigh(S)
    for given in (S, asym):
        V, psi = low_rank_part(given, rank=3)
        assert V.shape == (8, 3)
        np.testing.assert_allclose(V @ V.T, (U[:, -3:] * w[-3:]) @ U[:, -3:].T, atol=1e-12)
        np.testing.assert_allclose((V * V).sum(0), w[::-1][:3], rtol=1e-12)  # largest first
        np.testing.assert_allclose(psi, np.maximum(np.diag(S) - (V * V).sum(1), 0.01 * np.diag(S)), rtol=1e-12)
    assert low_rank_part(S, rank=1)[0].shape == (8, 1)
    assert low_rank_part(np.eye(30))[0].shape == (30, 16)  # (16 factors by default)
    assert low_rank_part(S, rank=50)[0].shape == (8, 7)  # (at most one fewer than the models)
    V, psi = low_rank_part(np.diag([4.0, 1.0, 0.25]), rank=5)
    np.testing.assert_allclose((V * V).sum(0), [4.0, 1.0])
    np.testing.assert_allclose(psi, [0.04, 0.01, 0.25])  # (the last variance left whole; the others' 1% floor)


@pytest.mark.parametrize("kind", ["dense", "low rank"])
def test_kriging_recovers_each_rows_standardized_records_from_what_it_kept(kind):
    """``residuals(row)`` is ``y / s - M`` at the row's records (``S_kk alpha + level``), empty without records."""
    rng = np.random.default_rng(12)
    low, S = _low_rank(m=7, r=3, seed=4)
    cov = low if kind == "low rank" else DenseCovariance(S)
    Y = rng.uniform(0.3, 0.9, size=(5, 7))
    Y[rng.random(Y.shape) < 0.4] = np.nan
    Y[3] = np.nan  # a dataset without records
    cells = _records(Y)
    s = rng.uniform(0.5, 2.0, 5)
    M = rng.normal(size=len(cells))
    krig = Kriging(cov).fit(cells, s, M)
    for row in range(5):
        sl = slice(int(cells.indptr[row]), int(cells.indptr[row + 1]))
        models, r = krig.residuals(row)
        np.testing.assert_array_equal(models, cells.m[sl])
        np.testing.assert_allclose(r, cells.y[sl] / s[row] - M[sl], rtol=1e-9, atol=1e-9)
        assert len(r) == len(models) == np.isfinite(Y[row]).sum()


def _holey_records(n_datasets=40, n_models=6, seed=3, holes=0.2):
    rng = np.random.default_rng(seed)
    keep = rng.uniform(size=(n_datasets, n_models)) > holes
    keep[:, :2] = True
    d, m = np.nonzero(keep)
    y = rng.uniform(0.2, 0.9, len(d))
    return Cells(d, m, y, (n_datasets, n_models)), rng


def _robust_reference(cells, s, M, fallback, min_known=5, min_cells=3):
    """robust_variances written out: a loop over models and datasets."""
    k = cells.row_counts()
    u = cells.y / s[cells.d] - M
    out = np.array(fallback, dtype=float)
    for j in range(cells.shape[1]):
        sq = []
        for d in np.flatnonzero(k >= min_known):
            row = cells.d == d
            if j in cells.m[row]:
                r = u[row] - u[row].mean()
                sq.append(r[cells.m[row] == j][0] ** 2 * k[d] / (k[d] - 1))
        if len(sq) >= min_cells and np.median(sq) > 0:
            out[j] = np.median(sq) / 0.45493642311957283
    return out


def test_robust_variances_are_each_models_median_squared_residual_over_the_chi2_median():
    cells, rng = _holey_records()
    s = rng.uniform(0.5, 2.0, cells.shape[0])
    M = rng.normal(scale=0.1, size=len(cells))
    fallback = np.arange(1.0, 7.0) / 100
    got = robust_variances(cells, s, M, fallback)
    np.testing.assert_allclose(got, _robust_reference(cells, s, M, fallback), rtol=1e-12)
    assert (got != fallback).all()
    # fewer than min_cells well-recorded cells, or none: the fallback, untouched
    np.testing.assert_array_equal(robust_variances(cells, s, M, fallback, min_cells=10 ** 6), fallback)
    np.testing.assert_array_equal(robust_variances(cells, s, M, fallback, min_known=10 ** 6), fallback)


def test_robust_variances_at_their_edges():
    """A model with exactly min_cells residuals gets its median, one with fewer the fallback; rows of two records
    (min_known=2) carry the factor k / (k - 1) = 2; an integer fallback gives float variances."""
    rng = np.random.default_rng(4)
    d = np.r_[np.repeat(np.arange(8), 4), [0, 1, 2], [3, 4], [8, 8]]
    m = np.r_[np.tile(np.arange(4), 8), [4, 4, 4], [5, 5], [0, 1]]
    order = np.lexsort((m, d))
    d, m = d[order], m[order]
    cells = Cells(d, m, rng.uniform(0.2, 0.9, len(d)), (9, 6))
    s, M = np.ones(9), rng.normal(scale=0.05, size=len(d))
    fallback = np.array([7, 7, 7, 7, 7, 7])
    for min_known in (2, 4, 5):
        want = _robust_reference(cells, s, M, fallback, min_known=min_known)
        got = robust_variances(cells, s, M, fallback, min_known=min_known)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        assert got.dtype == np.float64
    got = robust_variances(cells, s, M, fallback, min_known=4)
    assert got[4] != 7 and got[5] == 7  # (three residuals: a median; two: the fallback)
    assert robust_variances(cells, s, M, fallback, min_known=2)[0] != got[0]  # (the two-record row counts)


def test_robust_variances_ignore_one_outlying_record_that_a_mean_of_squares_would_not():
    """A model fine-tuned on one dataset (far above its prediction there, ordinary elsewhere) keeps the scale of
    the others; normal errors give about their true variance."""
    rng = np.random.default_rng(0)
    n_datasets, n_models, sd = 400, 5, 0.05
    d, m = np.repeat(np.arange(n_datasets), n_models), np.tile(np.arange(n_models), n_datasets)
    y = 0.5 + rng.normal(scale=sd, size=len(d))
    y[(d == 7) & (m == 2)] = 5.0  # (standardized units: s = 1, M = 0)
    cells = Cells(d, m, y, (n_datasets, n_models))
    got = robust_variances(cells, np.ones(n_datasets), np.zeros(len(d)), np.zeros(n_models))
    np.testing.assert_allclose(got, sd ** 2, rtol=0.25)
    mean_sq = residual_covariance(cells, np.ones(n_datasets), np.zeros(len(d)), shrink=0.0).diag()
    assert mean_sq[2] > 10 * got[2]
    # a degenerate zoo: on three datasets in four every model has the same accuracy (residuals exactly 0, so the
    # medians are 0): the fallback, not a scale of 0
    y = np.where((d % 4 == 0) & (m == 0), 0.9, 0.5)
    cells = Cells(d, m, y, (n_datasets, n_models))
    fallback = np.arange(1.0, 6.0)
    np.testing.assert_array_equal(robust_variances(cells, np.ones(n_datasets), np.zeros(len(d)), fallback), fallback)


# -- a dataset joining the covariance (results given: recsys.engines.joint.condition) -------------------------
@pytest.mark.parametrize("known", [slice(None), [0, 2, 3, 5, 6]])
@pytest.mark.parametrize("shrink", [0.0, 0.3, 1.0])
def test_a_joined_dataset_is_kriged_as_if_the_covariance_had_been_estimated_with_it(known, shrink):
    """On a zoo whose datasets record every model, krige_row_joined with the fit's covariance gives exactly the
    level and weights of krige_row with the covariance estimated from the zoo plus the dataset (its records only on
    its models: the entries between them and the others are those of the zoo alone)."""
    rng = np.random.default_rng(11)
    n, m = 6, 8
    Y = rng.uniform(0.2, 0.9, size=(n + 1, m))
    s, M = rng.uniform(0.5, 1.5, n + 1), rng.normal(size=(n + 1, m))
    idx = np.arange(m)[known]
    Y[n, np.setdiff1d(np.arange(m), idx)] = np.nan
    zoo = _records(Y[:n])
    cov = residual_covariance(zoo, s[:n], M[:n][zoo.d, zoo.m], shrink=shrink)
    counts, rows = covariance_counts(zoo)
    assert rows == n and np.array_equal(counts, np.full(m, float(n)))
    both = _records(Y)
    with_it = residual_covariance(both, s, M[both.d, both.m], shrink=shrink)
    r = Y[n, idx] / s[n] - M[n, idx]
    level, alpha = krige_row_joined(cov, idx, r, counts, rows, shrink)
    want_level, want_alpha = krige_row(with_it, idx, r)
    assert level == pytest.approx(want_level, rel=1e-7, abs=1e-9)
    np.testing.assert_allclose(alpha, want_alpha, rtol=1e-6, atol=1e-8)
    _, plain = krige_row(cov, idx, r)  # (and it is not the covariance without the dataset)
    assert np.abs(plain - alpha).max() > 1e-3


def test_a_joined_dataset_on_a_low_rank_covariance_is_the_same_as_on_its_dense_matrix():
    cov, S = _low_rank(m=9, r=3, seed=5)
    rng = np.random.default_rng(2)
    idx = np.array([0, 1, 3, 4, 7, 8])
    r, counts = rng.normal(size=len(idx)), rng.integers(3, 9, 9).astype(float)
    for shrink in (0.0, 0.4):
        low = krige_row_joined(cov, idx, r, counts, 10, shrink)
        dense = krige_row_joined(DenseCovariance(S), idx, r, counts, 10, shrink)
        assert low[0] == pytest.approx(dense[0], rel=1e-6)
        np.testing.assert_allclose(low[1], dense[1], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("n_rows", [8, 1])
def test_a_joined_datasets_weight_is_one_over_the_datasets_behind_its_block_plus_one(n_rows):
    """w = 1 / (n + 1), n = (mean count of its models)^2 / datasets: with S_kk the identity and no shrinkage the
    block is (1 - w) I + w u u' (u centred, times sqrt(k / (k - 1)))."""
    idx, r = np.arange(5), np.array([0.5, -1.0, 2.0, 0.0, 1.5])
    counts = np.array([2.0, 4.0, 4.0, 6.0, 4.0, 100.0])  # (model 5: not in the block)
    u = (r - r.mean()) * np.sqrt(5 / 4)
    w = 1 / (4.0 ** 2 / n_rows + 1)
    A = (1 - w) * np.eye(5) + w * np.outer(u, u)
    sol = np.linalg.solve(A, np.stack([r, np.ones(5)], axis=1))
    level = sol[:, 0].sum() / sol[:, 1].sum()
    got = krige_row_joined(DenseCovariance(np.eye(6)), idx, r, counts, n_rows, 0.0)
    assert got[0] == pytest.approx(level, rel=1e-7)
    np.testing.assert_allclose(got[1], sol[:, 0] - level * sol[:, 1], rtol=1e-6, atol=1e-9)


def test_covariance_counts_are_the_well_recorded_datasets_per_model():
    Y = np.full((4, 3), np.nan)
    Y[0] = Y[1] = 0.5  # 3 records each: below COV_MIN_KNOWN with 3 models
    cells = _records(Y)
    counts, rows = covariance_counts(cells, min_known=3)
    assert rows == 2 and list(counts) == [2.0, 2.0, 2.0]
    counts, rows = covariance_counts(cells)
    assert COV_MIN_KNOWN == 5 and rows == 0 and list(counts) == [0.0, 0.0, 0.0]


def _floor_by_hand(Y, s, M, min_known=COV_MIN_KNOWN):
    """Schafer-Strimmer's intensity written out: per off-diagonal pair, the mean over the well-recorded datasets
    recording both of w = r_a r_b k/(k-1) (r: the row-centred residuals) and the variance of that mean."""
    k = (~np.isnan(Y)).sum(1)
    R = Y / s[:, None] - M
    R = R - np.nanmean(R, 1, keepdims=True)
    use = k >= min_known
    num = den = 0.0
    for a in range(Y.shape[1]):
        for b in range(Y.shape[1]):
            both = use & ~np.isnan(Y[:, a]) & ~np.isnan(Y[:, b])
            if a == b or both.sum() < 2:
                continue
            w = R[both, a] * R[both, b] * k[both] / (k[both] - 1)
            num += w.var(ddof=1) / both.sum()
            den += w.mean() ** 2
    return min(max(num / den, 0.0), 1.0)


def test_shrinkage_floor_is_the_sampling_variance_of_the_covariance_over_its_square():
    rng = np.random.default_rng(11)
    Y = 0.5 + 0.2 * rng.normal(size=(12, 1)) * rng.normal(size=6) + 0.05 * rng.normal(size=(12, 6))
    Y[0, :1] = np.nan  # 5 records: used
    Y[1, :2] = np.nan  # 4 records: not used
    Y[2:, 5] = np.nan
    Y[3, 5] = 0.5  # model 5: one well-recorded dataset only: its pairs have no variance and are left out
    s, M = rng.uniform(0.8, 1.2, 12), 0.01 * rng.normal(size=(12, 6))
    cells = _records(Y)
    got = _kriging.shrinkage_floor(cells, s, M[cells.d, cells.m])
    assert 0 < got < 1
    assert got == pytest.approx(_floor_by_hand(Y, s, M), rel=1e-10)
    for min_known in (4, 2):  # (row 1: 4 records; with 2, a row of exactly two: its k / (k - 1) = 2)
        Y2 = Y.copy()
        Y2[2, :3] = np.nan
        c2 = _records(Y2)
        got = _kriging.shrinkage_floor(c2, s, M[c2.d, c2.m], min_known=min_known)
        assert got == pytest.approx(_floor_by_hand(Y2, s, M, min_known), rel=1e-10)


def test_shrinkage_floor_falls_with_the_datasets_behind_the_covariance(monkeypatch):
    """Pure noise off the diagonal: near 1 from three datasets; a shared structure seen by many datasets: near 0.
    0 with fewer than two well-recorded datasets and above the dense cap (the low-rank covariance keeps a
    diagonal); 1 where every off-diagonal mean is exactly 0 (nothing off the diagonal to keep)."""
    rng = np.random.default_rng(12)
    v = rng.normal(size=8)
    many = 0.3 * rng.normal(size=(400, 1)) * v + 0.05 * rng.normal(size=(400, 8)) + 0.5
    cells = _records(many)
    low = _kriging.shrinkage_floor(cells, np.ones(400), np.zeros(len(cells)))
    few = _kriging.shrinkage_floor(_records(many[:3]), np.ones(3), np.zeros(24))
    assert low < 0.05 < 0.3 < few < 1
    noise = _records(rng.uniform(size=(3, 8)))  # nothing but noise off the diagonal: clipped at 1
    assert _kriging.shrinkage_floor(noise, np.ones(3), np.zeros(24)) == 1.0
    one = _records(many[:1])
    assert _kriging.shrinkage_floor(one, np.ones(1), np.zeros(8)) == 0.0
    monkeypatch.setattr(_kriging, "DENSE_MAX_MODELS", 7)
    assert _kriging.shrinkage_floor(cells, np.ones(400), np.zeros(len(cells))) == 0.0
    monkeypatch.setattr(_kriging, "DENSE_MAX_MODELS", 8)
    assert _kriging.shrinkage_floor(cells, np.ones(400), np.zeros(len(cells))) == low
    monkeypatch.setattr(_kriging, "_pairwise", lambda c, r, u: (np.eye(5), np.full((5, 5), 2.0), c.csr(0 * r)))
    assert _kriging.shrinkage_floor(_records(rng.uniform(size=(2, 5))), np.ones(2), np.zeros(10)) == 1.0


def _entrywise_by_hand(Y, s, M, min_known=COV_MIN_KNOWN):
    """Each off-diagonal pair's mean of w = r_a r_b k/(k-1) over the well-recorded datasets recording both, times
    max(0, 1 - var(mean) / mean^2); 0 for a pair fewer than two of them record."""
    R, k, use = _centred(Y, s, M, min_known)
    m = Y.shape[1]
    out = np.zeros((m, m))
    for a in range(m):
        for b in range(m):
            both = use & ~np.isnan(Y[:, a]) & ~np.isnan(Y[:, b])
            if a == b or both.sum() < 2:
                continue
            w = R[both, a] * R[both, b] * k[both] / (k[both] - 1)
            out[a, b] = w.mean() * max(0.0, 1.0 - w.var(ddof=1) / both.sum() / w.mean() ** 2)
    return out


def test_the_joints_covariance_shrinks_each_pair_by_its_own_noise():
    """entrywise_shrunk(pairwise_noise(...)) written out, the diagonal the one given; the floor from the same
    noise is the floor; None (and the floor 0) with fewer than two well-recorded datasets or above the dense cap."""
    rng = np.random.default_rng(11)
    Y = 0.5 + 0.2 * rng.normal(size=(12, 1)) * rng.normal(size=6) + 0.05 * rng.normal(size=(12, 6))
    Y[0, :1] = np.nan
    Y[1, :2] = np.nan  # 4 records: not used
    Y[2:, 5] = np.nan
    Y[3, 5] = 0.5
    s, M = rng.uniform(0.8, 1.2, 12), 0.01 * rng.normal(size=(12, 6))
    cells = _records(Y)
    noise = _kriging.pairwise_noise(cells, s, M[cells.d, cells.m])
    diag = np.arange(1.0, 7.0)
    got = _kriging.entrywise_shrunk(noise, diag)
    want = _entrywise_by_hand(Y, s, M)
    want[np.diag_indices(6)] = diag
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-15)
    off = ~np.eye(6, dtype=bool)
    assert (got[off] == 0).any() and (got[off] != 0).any()  # (some pairs dropped, some kept)
    assert _kriging.shrinkage_floor(cells, s, M[cells.d, cells.m], noise=noise) == \
        _kriging.shrinkage_floor(cells, s, M[cells.d, cells.m])
    assert _kriging.pairwise_noise(_records(Y[:1]), s[:1], np.zeros(6)) is None


def test_twins_keep_their_correlation_where_the_one_shrinkage_would_not():
    """Eight groups of two models that err together on every dataset (shared noise), the groups independent, 7
    datasets: the one shrinkage, at least its floor (0.59: most pairs are noise), leaves each twin pair a
    correlation under 0.45; shrunk by their own noise they keep over 0.7, while the pairs across groups keep
    less than half of their (spurious) correlation on average."""
    rng = np.random.default_rng(5)
    Y = 0.6 + np.repeat(rng.normal(size=(7, 8)) * 0.1, 2, axis=1) + 0.01 * rng.normal(size=(7, 16))
    cells = _records(Y)
    s, M = np.ones(7), np.zeros(len(cells))
    noise = _kriging.pairwise_noise(cells, s, M)
    floor = _kriging.shrinkage_floor(cells, s, M, noise=noise)
    S = _kriging.residual_covariance(cells, s, M, shrink=0.0).S
    d = np.sqrt(np.diag(S))
    C = S / d[:, None] / d[None, :]
    E = _kriging.entrywise_shrunk(noise, np.diag(S)) / d[:, None] / d[None, :]
    assert floor == pytest.approx(0.591, abs=1e-3)
    for a in range(0, 16, 2):
        assert (1 - floor) * C[a, a + 1] < 0.45 < 0.7 < E[a, a + 1]
    across = (np.arange(16) // 2)[:, None] != (np.arange(16) // 2)[None, :]
    assert np.abs(E[across]).mean() < 0.5 * np.abs(C[across]).mean()


@pytest.mark.parametrize("path", ["dense", "sparse"])
def test_shrunk_factors_are_the_low_rank_part_of_the_pairwise_shrunk_covariance(path, monkeypatch):
    """shrunk_factors (above the kriging's dense cap: a block of models at a time, float32, a randomized range
    finder) keeping every eigenpair is low_rank_part(entrywise_shrunk(pairwise_noise(...))) to float32 precision,
    with the dense products (few datasets) and the sparse ones, blocks smaller than the models, pairs recorded
    on some datasets only, and a dataset too sparse to enter."""
    rng = np.random.default_rng(11)
    Y = 0.5 + 0.2 * rng.normal(size=(12, 1)) * rng.normal(size=70) + 0.05 * rng.normal(size=(12, 70))
    Y[0, :1] = np.nan
    Y[1, :67] = np.nan  # 3 records: not used
    Y[2:6, 60:] = np.nan
    s, M = rng.uniform(0.8, 1.2, 12), 0.01 * rng.normal(size=(12, 70))
    cells = _records(Y)
    Mc = M[cells.d, cells.m]
    diag = rng.uniform(1.0, 2.0, 70)
    want_V, want_psi = _kriging.low_rank_part(_kriging.entrywise_shrunk(_kriging.pairwise_noise(cells, s, Mc), diag),
                                              rank=69)
    if path == "sparse":
        monkeypatch.setattr(_kriging, "PAIRWISE_MAX_DENSE_WORK", 0)
    for block in (None, 16):  # (one block; five, the last of 6 models)
        with np.errstate(all="raise"):
            V, psi = _kriging.shrunk_factors(cells, s, Mc, diag, rank=69, power_iters=1, block=block)
        np.testing.assert_allclose(V @ V.T + np.diag(psi), want_V @ want_V.T + np.diag(want_psi), rtol=2e-5,
                                   atol=2e-6)


def test_shrunk_factors_keep_nearly_the_best_rank_16_part():
    """On 240 models in 8 families and 6 datasets, the randomized rank-16 part is within 5% of the exact one's
    error (off the diagonal, Frobenius) in approximating the pairwise-shrunk covariance."""
    rng = np.random.default_rng(3)
    Y = 0.6 + np.repeat(rng.normal(size=(6, 8)) * 0.1, 30, axis=1) + 0.02 * rng.normal(size=(6, 240))
    cells = _records(Y)
    s, M = np.full(6, 0.1), np.zeros(len(cells))
    noise = _kriging.pairwise_noise(cells, s, M)
    diag = np.diag(noise[0]) + 0.5
    J = _kriging.entrywise_shrunk(noise, diag)
    off = ~np.eye(240, dtype=bool)

    def err(V):
        return np.linalg.norm((J - V @ V.T)[off])

    exact = err(_kriging.low_rank_part(J)[0])
    V, psi = _kriging.shrunk_factors(cells, s, M, diag)
    assert V.shape == (240, 16) and exact <= err(V) < 1.05 * exact
    np.testing.assert_allclose((V * V).sum(1) + psi, np.maximum(diag, (V * V).sum(1) + 0.01 * diag), rtol=1e-12)


def test_shrunk_factors_keep_one_eigenpair_fewer_than_the_models_at_most():
    """As low_rank_part: at most models - 1 eigenpairs (some variance of each model stays its own), at least one."""
    rng = np.random.default_rng(6)
    for m, min_known in ((12, 5), (2, 2)):
        Y = 0.6 + 0.05 * rng.normal(size=(6, m))
        cells = _records(Y)
        V, psi = _kriging.shrunk_factors(cells, np.ones(6), np.zeros(len(cells)), np.full(m, 0.01),
                                         min_known=min_known)
        assert V.shape == (m, m - 1) == _kriging.low_rank_part(np.eye(m))[0].shape


def test_shrunk_factors_are_a_function_of_their_seed():
    """The same part twice; the default start is seed 0; another seed starts the range finder elsewhere (another
    estimate, as close to the best)."""
    rng = np.random.default_rng(3)
    Y = 0.6 + np.repeat(rng.normal(size=(6, 8)) * 0.1, 30, axis=1) + 0.02 * rng.normal(size=(6, 240))
    cells, s = _records(Y), np.full(6, 0.1)
    M, diag = np.zeros(len(cells)), np.full(240, 0.02)
    V, psi = _kriging.shrunk_factors(cells, s, M, diag)
    for again in (_kriging.shrunk_factors(cells, s, M, diag), _kriging.shrunk_factors(cells, s, M, diag, seed=0)):
        np.testing.assert_array_equal(again[0], V)
        np.testing.assert_array_equal(again[1], psi)
    assert not np.array_equal(_kriging.shrunk_factors(cells, s, M, diag, seed=1)[0], V)


def test_shrunk_factors_of_more_models_than_a_block_holds():
    """2,100 models on two well-recorded datasets (the fewest it takes) and one too sparse to count, blocks of the
    size it chooses (fewer models than 2,100): a finite part."""
    rng = np.random.default_rng(4)
    Y = 0.6 + 0.05 * rng.normal(size=(3, 2100))
    Y[2, 4:] = np.nan  # (4 records: not used)
    cells = _records(Y)
    V, psi = _kriging.shrunk_factors(cells, np.ones(3), np.zeros(len(cells)), np.full(2100, 0.01))
    assert V.shape == (2100, 16) and np.isfinite(V).all() and (psi > 0).all()


def test_shrunk_factors_stop_at_their_caps(monkeypatch):
    """None with fewer than two well-recorded datasets, above PAIRWISE_MAX_MODELS models, and where neither the
    dense products (PAIRWISE_MAX_DENSE_WORK) nor the sparse ones (PAIRWISE_MAX_PAIRS) fit their budget."""
    rng = np.random.default_rng(2)
    Y = 0.5 + 0.1 * rng.normal(size=(8, 10))
    cells, s = _records(Y), np.ones(8)
    M = np.zeros(len(cells))
    assert _kriging.shrunk_factors(_records(Y[:1]), s[:1], np.zeros(10), np.ones(10)) is None
    assert _kriging.shrunk_factors(cells, s, M, np.ones(10)) is not None
    monkeypatch.setattr(_kriging, "PAIRWISE_MAX_MODELS", 9)
    assert _kriging.shrunk_factors(cells, s, M, np.ones(10)) is None
    monkeypatch.setattr(_kriging, "PAIRWISE_MAX_MODELS", 10)
    monkeypatch.setattr(_kriging, "PAIRWISE_MAX_DENSE_WORK", 10 * 10 * 8 - 1)
    assert _kriging.shrunk_factors(cells, s, M, np.ones(10)) is not None  # (the sparse products: 800 pairs)
    monkeypatch.setattr(_kriging, "PAIRWISE_MAX_PAIRS", 799)
    assert _kriging.shrunk_factors(cells, s, M, np.ones(10)) is None
    monkeypatch.setattr(_kriging, "PAIRWISE_MAX_DENSE_WORK", 10 * 10 * 8)
    assert _kriging.shrunk_factors(cells, s, M, np.ones(10)) is not None
    monkeypatch.setattr(_kriging, "PAIRWISE_MAX_DENSE_ENTRIES", 8 * 10 - 1)  # (the dense residuals: 80 entries)
    assert _kriging.shrunk_factors(cells, s, M, np.ones(10)) is None
    monkeypatch.setattr(_kriging, "PAIRWISE_MAX_DENSE_ENTRIES", 8 * 10)
    assert _kriging.shrunk_factors(cells, s, M, np.ones(10)) is not None
    monkeypatch.setattr(_kriging, "PAIRWISE_MAX_DENSE_WORK", 0)
    monkeypatch.setattr(_kriging, "PAIRWISE_MAX_PAIRS", 800)
    assert _kriging.shrunk_factors(cells, s, M, np.ones(10)) is not None


def test_the_pairwise_shrinkage_at_its_edges():
    """A pair without a variance (fewer than two datasets: inf) or whose mean is exactly 0 (0 / 0 included) keeps
    nothing; a mean of exactly 1 is shrunk as any other; a negative one keeps its sign; the diagonal is given."""
    S = np.array([[9.0, 0.0, 1.0, -0.5],
                  [0.0, 9.0, 0.4, 0.3],
                  [1.0, 0.4, 9.0, 0.2],
                  [-0.5, 0.3, 0.2, 9.0]])
    var = np.array([[np.inf, 0.0, 0.5, 0.05],
                    [0.0, np.inf, 0.5, np.inf],
                    [0.5, 0.5, np.inf, 0.01],
                    [0.05, np.inf, 0.01, np.inf]])
    with np.errstate(all="raise"):  # (no 0 / 0 is ever computed)
        got = _kriging.entrywise_shrunk((S, var), np.array([1.0, 2.0, 3.0, 4.0]))
    want = np.array([[1.0, 0.0, 0.5, -0.5 * 0.8],
                     [0.0, 2.0, 0.0, 0.0],
                     [0.5, 0.0, 3.0, 0.2 * 0.75],
                     [-0.5 * 0.8, 0.0, 0.2 * 0.75, 4.0]])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_covariance_moments_are_the_trace_and_the_sum_of_the_block():
    """``moments(idx)``: (tr S, 1'S1) of the block of ``idx`` (all models: None), low rank from its factors."""
    rng = np.random.default_rng(12)
    V, psi = rng.normal(size=(9, 3)), rng.uniform(0.1, 0.5, 9)
    S = V @ V.T + np.diag(psi)
    idx = np.array([1, 4, 5, 8])
    for cov in (DenseCovariance(S), LowRankCovariance(V, psi)):
        assert cov.moments() == pytest.approx((np.trace(S), S.sum()), rel=1e-12)
        assert cov.moments() is cov.moments()  # (computed once)
        B = S[np.ix_(idx, idx)]
        assert cov.moments(idx) == pytest.approx((np.trace(B), B.sum()), rel=1e-12)
