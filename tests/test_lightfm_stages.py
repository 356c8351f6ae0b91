"""Stages of the default engine checked one by one: kriging, covariance shrinkage, standardization, cold rows."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.engines import _kriging, make_engine
from recsys.engines._kriging import krige, residual_covariance, scale_estimate
from recsys.engines.lightfm import standardize, standardize_pooled
from recsys.errors import RecsysError


def _random_problem(n, m, seed=0):
    rng = np.random.default_rng(seed)
    Y = rng.random((n, m))
    Y[rng.random((n, m)) < 0.5] = np.nan
    Y[0] = np.nan  # a dataset without records
    Y[1] = np.nan
    Y[1, 3] = 0.7  # and one with a single record
    B = rng.normal(size=(m, m))
    return Y, rng.random(n) + 0.5, rng.normal(size=(n, m)), B @ B.T / m + 0.1 * np.eye(m)


@pytest.mark.parametrize("n_models", [10, 40])
def test_batched_kriging_equals_the_per_dataset_solve(n_models, monkeypatch):
    Y, s, M, S = _random_problem(60, n_models)
    batched = krige(Y, s, M, S)
    monkeypatch.setattr(_kriging, "_BATCH_MODELS", 0 if n_models <= 32 else 10 ** 6)
    other = krige(Y, s, M, S)
    for a, b in zip(batched, other):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    P, level = batched
    assert np.isnan(P[0]).all() and np.isnan(level[0]) and np.isfinite(level[1:]).all()
    known = ~np.isnan(Y)
    np.testing.assert_array_equal(P[known], Y[known])  # records are kept as they are
    # kriging is exact for a dataset whose residual is a constant offset: every model gets offset + M
    Y2 = np.full_like(Y, np.nan)
    Y2[5, :4] = s[5] * (M[5, :4] + 0.3)
    P2, level2 = krige(Y2, s, M, S)
    np.testing.assert_allclose(P2[5], s[5] * (M[5] + 0.3), atol=1e-9)
    assert level2[5] == pytest.approx(0.3)


def test_residual_covariance_uses_only_the_given_rows():
    Y, s, M, _ = _random_problem(80, 8, seed=1)
    Y[:, :] = np.where(np.isnan(Y), 0.5, Y)  # every dataset well recorded
    rows = np.zeros(80, bool)
    rows[:40] = True
    np.testing.assert_allclose(residual_covariance(Y, s, M, rows=rows, shrink=0.3),
                               residual_covariance(Y[:40], s[:40], M[:40], shrink=0.3))
    full = residual_covariance(Y, s, M, shrink=0.0)
    diag = residual_covariance(Y, s, M, shrink=1.0)
    np.testing.assert_allclose(diag, np.diag(np.diag(full)))


def test_pooled_standardization_does_not_depend_on_which_models_are_recorded():
    rng = np.random.default_rng(3)
    profile = np.linspace(-1.5, 1.5, 10)
    n = 60
    level = rng.uniform(0.5, 0.8, n)
    Y = level[:, None] + 0.05 * profile[None, :] + 0.002 * rng.normal(size=(n, 10))
    X = np.zeros((n, 1))
    sparse = Y.copy()
    sparse[50:, :7] = np.nan  # the last datasets only recorded the three strongest models
    plain, pooled = standardize(sparse), standardize_pooled(sparse, scale_estimate(sparse, X)[0])
    # plain z-scores centre the three strong models on 0; pooled ones keep them where the full rows put them
    assert np.abs(plain[50:, 7:].mean()) < 0.05
    full = standardize(Y)[50:, 7:].mean(1)
    assert full.min() > 1.0
    np.testing.assert_allclose(pooled[50:, 7:].mean(1), full, atol=0.1)
    np.testing.assert_allclose(pooled[:50], standardize(Y)[:50], atol=0.3)  # full rows: about the plain z


def test_a_cold_row_is_never_flattened_by_the_clip(dn_data):
    engine = make_engine("lightfm", seed=0).fit(dn_data)
    M = np.linspace(-1, 1, dn_data.n_models)[None, :].repeat(2, 0)
    s = np.array([0.05, 0.05])
    X = dn_data.dataset_features[:2]
    for shift in (5.0, -5.0):  # a level far above 1, then far below 0
        engine.level_coef_ = np.r_[shift, np.zeros(X.shape[1])]
        row = engine._cold_prediction(M, s, X)
        assert ((row > 0) & (row < 1)).all()  # moved inside, so no clip can flatten it
        np.testing.assert_allclose(np.ptp(row, axis=1), 0.1)  # with its spread (0.05 x range of M) intact
        assert (np.diff(row, axis=1) > 0).all()


def test_covariance_shrinkage_is_chosen_from_the_grid_and_checked(dn_data):
    Y = dn_data.Y.copy()
    rng = np.random.default_rng(0)
    Y[rng.random(Y.shape) < 0.4] = np.nan
    engine = make_engine("lightfm", seed=0, cov_shrinks=(0.0, 0.5, 1.0)).fit(dn_data.with_Y(Y))
    assert engine.cov_shrink_ in (0.0, 0.5, 1.0)
    assert make_engine("lightfm", seed=0, cov_shrinks=(0.3,)).fit(dn_data.with_Y(Y)).cov_shrink_ == 0.3
    with pytest.raises(RecsysError, match=r"cov_shrinks must be .* in \[0, 1\]"):
        make_engine("lightfm", cov_shrinks=(1.5,)).fit(dn_data)


def test_report_counts_datasets_with_an_undefined_correlation():
    import pandas as pd

    from recsys.evaluation.report import _undefined_counts

    class Result:
        engines = ["lightfm", "popularity"]
        per_dataset = pd.DataFrame({"engine": ["lightfm"] * 3 + ["popularity"] * 3,
                                    "pearson": [0.5, np.nan, 0.7, 0.1, 0.2, 0.3]})

    assert _undefined_counts(Result()) == {"lightfm": (1, 3)}


def test_soft_clip_keeps_order_and_the_middle():
    from recsys.engines.lightfm import soft_clip

    x = np.array([-3.0, -0.2, 0.0, 0.004, 0.3, 0.995, 0.999, 1.0, 1.2, 50.0, 1e6])
    y = soft_clip(x)
    assert (np.diff(y) > 0).all() and (y > 0).all() and (y < 1).all()
    np.testing.assert_array_equal(y[4:6], x[4:6])


def test_a_dataset_recorded_at_the_ceiling_keeps_a_ranking(dn_data):
    Y = dn_data.Y.copy()
    weak = [dn_data.model_ids.index(m) for m in ("efficientnet_b0", "efficientnet_b3", "wide_resnet50_2")]
    Y[0] = np.nan
    Y[0, weak] = 1.0  # the weakest models scored perfectly: every other model is predicted above 1
    engine = make_engine("lightfm", seed=0).fit(dn_data.with_Y(Y))
    row = engine.predict(dn_data.block([0]))[0]
    np.testing.assert_array_equal(row[weak], 1.0)  # records as they are
    unknown = np.delete(row, weak)
    assert (unknown < 1).all() and (unknown > 0.99).all() and len(np.unique(unknown)) == len(unknown)
