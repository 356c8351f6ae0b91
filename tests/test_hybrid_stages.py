"""Stages of the default engine checked one by one: kriging (dense and low-rank), covariance, standardization,
the kernel's dense and neighbour-graph paths, cold rows, the clip."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.engines import make_engine
from recsys.engines.stages import kernel as _kernel
from recsys.engines.stages.kriging import DenseCovariance, Kriging, LowRankCovariance, residual_covariance
from recsys.engines.stages.scale import scale_estimate, standardize_dense, standardize_pooled
from recsys.engines.hybrid import soft_clip
from recsys.errors import RecsysError
from recsys.features.data import Cells

from conftest import ROOT


def _random_problem(n, m, seed=0):
    rng = np.random.default_rng(seed)
    Y = rng.random((n, m))
    Y[rng.random((n, m)) < 0.5] = np.nan
    Y[0] = np.nan  # a dataset without records
    Y[1] = np.nan
    Y[1, 3] = 0.7  # and one with a single record
    B = rng.normal(size=(m, m))
    return Y, rng.random(n) + 0.5, rng.normal(size=(n, m)), B @ B.T / m + 0.1 * np.eye(m)


def _krige_reference(Y, s, M, S):
    """Universal kriging of each dataset, one direct solve per dataset (the textbook formula)."""
    P = np.full(Y.shape, np.nan)
    for d in range(len(Y)):
        k = ~np.isnan(Y[d])
        if not k.any():
            continue
        A = S[np.ix_(k, k)]
        r = Y[d, k] / s[d] - M[d, k]
        one = np.ones(k.sum())
        c = one @ np.linalg.solve(A, r) / (one @ np.linalg.solve(A, one))
        P[d] = s[d] * (c + M[d] + S[:, k] @ np.linalg.solve(A, r - c))
        P[d, k] = Y[d, k]
    return P


@pytest.mark.parametrize("n_models", [10, 40])
def test_batched_kriging_equals_the_per_dataset_solve(n_models):
    Y, s, M, S = _random_problem(60, n_models)
    cells = Cells.from_dense(Y)
    krig = Kriging(DenseCovariance(S)).fit(cells, s, M[cells.d, cells.m])
    rows = np.flatnonzero(cells.row_counts() > 0)
    # (the solver adds a 1e-9 relative ridge for stability: equal to ~1e-8)
    np.testing.assert_allclose(krig.rows(rows, M[rows]), _krige_reference(Y, s, M, S)[rows], rtol=1e-6, atol=1e-7)
    assert np.isnan(krig.level[0]) and np.isfinite(krig.level[1:]).all()
    # at() gives the same numbers as rows() on any cell, records included
    allc = Cells.from_dense(np.zeros((len(rows), n_models)))
    allc = Cells(rows[allc.d], allc.m, allc.y, Y.shape, assume_sorted=True)
    np.testing.assert_allclose(krig.at(allc, M[allc.d, allc.m]), krig.rows(rows, M[rows]).ravel(), atol=1e-8)
    # exact for a dataset whose residual is a constant offset: every model gets offset + M
    Y2 = np.full_like(Y, np.nan)
    Y2[5, :4] = s[5] * (M[5, :4] + 0.3)
    c2 = Cells.from_dense(Y2)
    k2 = Kriging(DenseCovariance(S)).fit(c2, s, M[c2.d, c2.m])
    np.testing.assert_allclose(k2.rows(np.array([5]), M[[5]])[0], s[5] * (M[5] + 0.3), atol=1e-9)
    assert k2.level[5] == pytest.approx(0.3)


def test_low_rank_kriging_equals_dense_kriging_with_the_same_covariance():
    Y, s, M, _ = _random_problem(50, 30, seed=4)
    rng = np.random.default_rng(1)
    V, psi = rng.normal(size=(30, 4)), rng.uniform(0.1, 0.5, 30)
    cells = Cells.from_dense(Y)
    Mc = M[cells.d, cells.m]
    low = Kriging(LowRankCovariance(V, psi)).fit(cells, s, Mc)
    dense = Kriging(DenseCovariance(V @ V.T + np.diag(psi))).fit(cells, s, Mc)
    rows = np.flatnonzero(cells.row_counts() > 0)
    np.testing.assert_allclose(low.rows(rows, M[rows]), dense.rows(rows, M[rows]), rtol=1e-6, atol=1e-7)
    query = Cells(np.repeat(rows, 30), np.tile(np.arange(30), len(rows)), np.zeros(30 * len(rows)), Y.shape)
    Mq = M[query.d, query.m]
    np.testing.assert_allclose(low.at(query, Mq), dense.at(query, Mq), rtol=1e-6, atol=1e-7)


def test_residual_covariance_uses_only_the_given_rows_and_shrinks_to_the_diagonal():
    Y, s, M, _ = _random_problem(80, 8, seed=1)
    Y[:, :] = np.where(np.isnan(Y), 0.5, Y)  # every dataset well recorded
    cells = Cells.from_dense(Y)
    Mc = M[cells.d, cells.m]
    rows = np.zeros(80, bool)
    rows[:40] = True
    half = Cells.from_dense(Y[:40])
    np.testing.assert_allclose(residual_covariance(cells, s, Mc, rows=rows, shrink=0.3).S,
                               residual_covariance(half, s[:40], M[:40][half.d, half.m], shrink=0.3).S)
    full = residual_covariance(cells, s, Mc, shrink=0.0).S
    diag = residual_covariance(cells, s, Mc, shrink=1.0).S
    np.testing.assert_allclose(diag, np.diag(np.diag(full)))
    # the textbook estimate, computed densely
    R = Y / s[:, None] - M
    R = R - R.mean(1, keepdims=True)
    np.testing.assert_allclose(full, R.T @ R / 80 * 8 / 7, rtol=1e-10)


def test_low_rank_covariance_above_the_dense_cap_recovers_a_planted_factor(monkeypatch):
    from recsys.engines.stages import kriging as _kriging

    rng = np.random.default_rng(2)
    n, m = 400, 60
    V = rng.normal(size=(m, 2)) * 0.5
    R = rng.normal(size=(n, 2)) @ V.T + 0.1 * rng.normal(size=(n, m))
    Y = 0.5 + 0.05 * R
    Y[rng.random(Y.shape) < 0.3] = np.nan
    cells = Cells.from_dense(Y)
    s = np.full(n, 0.05)
    monkeypatch.setattr(_kriging, "DENSE_MAX_MODELS", 10)
    cov = residual_covariance(cells, s, np.full(len(cells), 0.0), shrink=0.0, rank=2)
    assert isinstance(cov, LowRankCovariance)
    est = cov.V @ cov.V.T
    truth = V @ V.T
    off = ~np.eye(m, dtype=bool)
    assert np.corrcoef(est[off], truth[off])[0, 1] > 0.9
    assert cov.psi.min() > 0


def test_kernel_neighbour_graph_equals_the_dense_kernel_when_every_dataset_is_a_neighbour(dn_data, monkeypatch):
    from recsys.engines.stages.kernel import DatasetKernel, SimilarityInputs

    cells = dn_data.records
    rng = np.random.default_rng(0)
    cells = cells.select(rng.random(len(cells)) < 0.6)
    X = dn_data.dataset_features
    sim = SimilarityInputs.of(dn_data.datasets)
    s = scale_estimate(cells, X)[0]
    z = standardize_pooled(cells, s)
    dense = DatasetKernel(sim, X).fit(cells, z)
    monkeypatch.setattr(_kernel, "DENSE_MAX_DATASETS", 0)
    monkeypatch.setattr(_kernel, "N_NEIGHBOURS", dn_data.n_datasets - 1)
    graph = DatasetKernel(sim, X).fit(cells, z)
    assert not graph.dense and dense.dense
    np.testing.assert_allclose(graph.beta, dense.beta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(graph.at(cells), dense.at(cells), rtol=1e-6, atol=1e-8)
    rows = np.arange(0, 270, 37)
    np.testing.assert_allclose(graph.rows(rows), dense.rows(rows), rtol=1e-6, atol=1e-8)
    # the profile at a cell is the one of the full row
    np.testing.assert_allclose(dense.at(cells)[cells.rows_mask(rows)],
                               dense.rows(rows)[np.searchsorted(rows, cells.d[cells.rows_mask(rows)]),
                                                cells.m[cells.rows_mask(rows)]], atol=1e-10)


def test_pooled_standardization_does_not_depend_on_which_models_are_recorded():
    rng = np.random.default_rng(3)
    profile = np.linspace(-1.5, 1.5, 10)
    n = 60
    level = rng.uniform(0.5, 0.8, n)
    Y = level[:, None] + 0.05 * profile[None, :] + 0.002 * rng.normal(size=(n, 10))
    X = np.zeros((n, 1))
    sparse = Y.copy()
    sparse[50:, :7] = np.nan  # the last datasets only recorded the three strongest models
    cells = Cells.from_dense(sparse)
    pooled = np.full(sparse.shape, np.nan)
    pooled[cells.d, cells.m] = standardize_pooled(cells, scale_estimate(cells, X)[0])
    plain = standardize_dense(sparse)
    # plain z-scores centre the three strong models on 0; pooled ones keep them where the full rows put them
    assert np.abs(plain[50:, 7:].mean()) < 0.05
    full = standardize_dense(Y)[50:, 7:].mean(1)
    assert full.min() > 1.0
    np.testing.assert_allclose(pooled[50:, 7:].mean(1), full, atol=0.1)
    np.testing.assert_allclose(pooled[:50], standardize_dense(Y)[:50], atol=0.3)  # full rows: about the plain z


def test_a_cold_row_is_never_flattened_by_the_clip(dn_data):
    engine = make_engine("hybrid", seed=0).fit(dn_data)
    M = np.linspace(-1, 1, dn_data.n_models)[None, :].repeat(2, 0)
    s = np.array([0.05, 0.05])
    X = dn_data.dataset_features[:2]
    for shift in (5.0, -5.0):  # a level far above 1, then far below 0
        engine.level_coef_ = np.r_[shift, np.zeros(X.shape[1])]
        row = engine._cold_prediction(M, s, X)
        assert ((row > 0) & (row < 1)).all()  # moved inside, so no clip can flatten it
        np.testing.assert_allclose(np.ptp(row, axis=1), 0.1)  # with its spread (0.05 x range of M) intact
        assert (np.diff(row, axis=1) > 0).all()


def test_covariance_shrinkage_is_chosen_from_the_grid_and_checked(dn_data, monkeypatch):
    """Chosen from the grid, no lower than the covariance's own noise (kriging.shrinkage_floor); a single value
    given is kept as given."""
    import recsys.engines.hybrid as hybrid

    Y = dn_data.Y.copy()
    rng = np.random.default_rng(0)
    Y[rng.random(Y.shape) < 0.4] = np.nan
    seen = {}
    for name in ("_select_shrink", "shrinkage_floor"):
        real = getattr(hybrid.HybridEngine, name) if name[0] == "_" else getattr(hybrid, name)
        spy = (lambda *a, real=real, name=name, **k: seen.setdefault(name, []).append(real(*a, **k)) or seen[name][-1])
        monkeypatch.setattr(hybrid.HybridEngine if name[0] == "_" else hybrid, name, spy)
    for floor in (None, 0.7):
        if floor:
            monkeypatch.setattr(hybrid, "shrinkage_floor", lambda *a, **k: 0.7)
        engine = make_engine("hybrid", seed=0, cov_shrinks=(0.0, 0.5, 1.0)).fit(dn_data.with_Y(Y))
        chosen = seen["_select_shrink"][-1]
        assert chosen in (0.0, 0.5, 1.0)
        assert engine.cov_shrink_ == max(chosen, floor or seen["shrinkage_floor"][-1])
        assert engine.cov_shrink_ > chosen  # (here the grid's choice is 0: the floor acts)
    assert 0 < seen["shrinkage_floor"][0] < 1
    n_floors = len(seen["shrinkage_floor"])
    assert make_engine("hybrid", seed=0, cov_shrinks=(0.3,)).fit(dn_data.with_Y(Y)).cov_shrink_ == 0.3
    assert len(seen["shrinkage_floor"]) == n_floors  # (not even computed)
    with pytest.raises(RecsysError, match=r"^give cov_shrinks one or more numbers in \[0, 1\]"):
        make_engine("hybrid", cov_shrinks=(1.5,)).fit(dn_data)


def test_report_counts_datasets_with_an_undefined_correlation():
    import pandas as pd

    from recsys.evaluation.report import _undefined_counts

    class Result:
        engines = ["hybrid", "popularity"]
        per_dataset = pd.DataFrame({"engine": ["hybrid"] * 3 + ["popularity"] * 3,
                                    "pearson": [0.5, np.nan, 0.7, 0.1, 0.2, 0.3]})

    assert _undefined_counts(Result()) == {"hybrid": (1, 3)}


def test_soft_clip_keeps_order_and_the_middle():
    x = np.array([-3.0, -0.2, 0.0, 0.004, 0.3, 0.995, 0.999, 1.0, 1.2, 50.0, 1e6])
    y = soft_clip(x)
    assert (np.diff(y) > 0).all() and (y > 0).all() and (y < 1).all()
    np.testing.assert_array_equal(y[4:6], x[4:6])


def test_a_dataset_recorded_at_the_ceiling_keeps_a_ranking(dn_data):
    Y = dn_data.Y.copy()
    weak = [dn_data.model_ids.index(m) for m in ("efficientnet_b0", "efficientnet_b3", "wide_resnet50_2")]
    Y[0] = np.nan
    Y[0, weak] = 1.0  # the weakest models scored perfectly: every other model is predicted above 1
    engine = make_engine("hybrid", seed=0).fit(dn_data.with_Y(Y))
    row = engine.predict(dn_data.block([0]))[0]
    np.testing.assert_array_equal(row[weak], 1.0)  # records as they are
    unknown = np.delete(row, weak)
    assert (unknown < 1).all() and (unknown > 0.99).all() and len(np.unique(unknown)) == len(unknown)


def test_the_stack_uses_the_pair_scores_and_their_ablation_drops_them(tg_data):
    """On TransferGraph (LogME and H-score for 8 datasets) the scores are candidates of the stack; the
    '- scores' ablation leaves them out (their weights exactly 0) and so predicts differently."""
    full = make_engine("hybrid", seed=0).fit(tg_data)
    names = list(full.stack_names_)
    assert {"score:LOG_ME", "score:REG_H_SCORE"} <= set(names)
    assert full.stack_weights_[[names.index("score:LOG_ME"), names.index("score:REG_H_SCORE")]].sum() > 0
    without = make_engine("hybrid", seed=0, candidates=("lightfm", "kernel", "popularity", "raw")).fit(tg_data)
    assert without.stack_weights_[[names.index("score:LOG_ME"), names.index("score:REG_H_SCORE")]].sum() == 0
    scored = np.flatnonzero(np.isfinite(tg_data.scores["LOG_ME"]).any(1))[:2]
    assert not np.allclose(full.predict(tg_data.block(scored)), without.predict(tg_data.block(scored)))


class _Recorder:
    """A stage reporter that remembers what it was told (see ``recsys.engines.base.fit_progress``)."""

    runs: list = []

    def __init__(self, n_stages, desc):
        self.stages, self.closed = [], False
        _Recorder.runs.append((n_stages, desc, self))

    def stage(self, name):
        self.stages.append(name)

    def close(self):
        self.closed = True


def test_a_fit_reports_its_stages_in_order_unless_quiet(dn_data):
    from recsys.engines.base import fit_progress, quiet_fits

    _Recorder.runs = []
    with fit_progress(_Recorder):
        make_engine("hybrid", seed=0, candidates=("kernel", "popularity", "raw")).fit(dn_data)
        with quiet_fits():  # (e.g. inside an evaluation protocol)
            make_engine("hybrid", seed=0, candidates=("kernel", "popularity", "raw")).fit(dn_data)
    assert len(_Recorder.runs) == 1
    n, desc, rec = _Recorder.runs[0]
    folds = [s for s in rec.stages if s.startswith("inner fold")]
    assert desc == "hybrid fit" and rec.closed and n == len(rec.stages) == len(folds) + 6
    assert rec.stages[len(folds):] == ["stack", "kernel", "profiles", "covariance", "kriging", "levels"]
    assert folds == [f"inner fold {i + 1}/{len(folds)}" for i in range(len(folds))]


def test_the_stage_bar_draws_the_current_stage_once_its_delay_is_over():
    import io

    from recsys.cli import StageBar

    out = io.StringIO()
    bar = StageBar(3, "hybrid fit", file=out, delay=0.0, mininterval=0.0)  # (no redraw interval: no race)
    for name in ("one", "two", "three"):
        bar.stage(name)
    drawn = out.getvalue()
    bar.close()
    assert "hybrid fit" in drawn and "two" in drawn and "three" in drawn and "2/3" in drawn
    late = io.StringIO()
    bar = StageBar(3, "hybrid fit", file=late, delay=1e9, mininterval=0.0)  # a fit shorter than its delay
    for name in ("one", "two", "three"):
        bar.stage(name)
    bar.close()
    assert late.getvalue() == ""


@pytest.mark.parametrize("terminal, quiet, shown", [(True, False, True), (True, True, False), (False, False, False)])
def test_recsys_fit_shows_the_stage_bar_on_a_terminal_unless_quiet(tmp_path, monkeypatch, terminal, quiet, shown):
    from click.testing import CliRunner

    from recsys import cli

    _Recorder.runs = []
    monkeypatch.setattr(cli, "StageBar", _Recorder)
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: terminal)
    args = ["-q"] * quiet + ["fit", "--zoo", str(ROOT / "data" / "example-zoo"), "--text-encoder", "hashing",
                             "--no-calibrate", "--out", str(tmp_path / "m.npz")]
    res = CliRunner().invoke(cli.main, args)
    assert res.exit_code == 0, res.output
    assert bool(_Recorder.runs) == shown
