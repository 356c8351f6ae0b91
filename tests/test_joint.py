"""The joint distribution of a dataset's accuracies, conditioning on given results, the plan (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.engines import make_engine
from recsys.engines.answer import answer, joint_model
from recsys.engines.calibration import calibrate
from recsys.errors import RecsysError
from recsys.engines.joint import (JointModel, JointParams, Pool, RowPosterior, condition, pool_name,
                                  stream_normals)
from recsys.recommender import Recommender

from conftest import ROOT, planted_low_rank

EXAMPLE = ROOT / "data" / "example-zoo"


@pytest.fixture(scope="module")
def fitted():
    """The default engine and its calibration on a planted zoo (60 datasets x 12 models, 60% recorded)."""
    data, _ = planted_low_rank(n_datasets=60, n_models=12, density=0.6, noise=0.02, seed=2)
    engine = make_engine("hybrid", seed=0).fit(data)
    cal = calibrate(lambda: make_engine("hybrid", seed=0), data, seed=0)
    return data, engine, cal


@pytest.fixture(scope="module")
def example():
    return Recommender(seed=0, text_encoder="hashing").fit(str(EXAMPLE))


def test_conditioning_on_its_own_records_gives_the_engines_answer(fitted):
    """A row conditioned on the records it was fitted with is the engine's answer: the kriging re-solved with
    the profile the fit saw at each record (recovered from the fit's weights), the spread pooled as fit pools it."""
    data, engine, _ = fitted
    rows = np.arange(data.n_datasets)
    pred = engine.predict(data.block(rows))
    for inp, p in zip(engine.row_inputs(data.block(rows)), pred):
        if not len(inp.models):
            continue
        mu, s, K, y = condition(inp, inp.models, inp.values)
        assert np.array_equal(K, inp.models)
        np.testing.assert_allclose(mu, p, rtol=0, atol=1e-12)


def test_the_fit_keeps_what_a_dataset_needs_to_join_its_covariance(fitted):
    """Per model the well-recorded datasets behind the covariance, how many, its shrinkage, handed to every row
    (results given join the covariance: joint.condition)."""
    from recsys.engines.stages.kriging import COV_MIN_KNOWN, covariance_counts

    data, engine, _ = fitted
    counts, n_rows = covariance_counts(data.records)
    assert np.array_equal(engine.cov_counts_, counts) and engine.cov_rows_ == n_rows > 0
    k = data.records.row_counts()
    assert (k < COV_MIN_KNOWN).any() and (k >= COV_MIN_KNOWN).any()
    for inp in engine.row_inputs(data.block(np.arange(data.n_datasets))):
        assert inp.cov_counts is engine.cov_counts_ and inp.cov_rows == n_rows and inp.cov_shrink == engine.cov_shrink_


def test_rows_without_results_keep_the_engines_centres_exactly(fitted):
    data, engine, cal = fitted
    rows = np.arange(5)
    block, known = data.block(rows), data.records.dense(rows)
    plain = engine.predict(block)
    ans = answer(engine, cal, block, known, given=[{3: 0.5}, None, None, None, None])
    assert np.array_equal(ans.predicted[1:], plain[1:])  # bit-identical
    assert ans.known[0, 3] == 0.5 and not np.array_equal(ans.predicted[0], plain[0])


def test_p_best_sums_to_one_and_is_deterministic(fitted):
    data, engine, cal = fitted
    rows = np.arange(data.n_datasets)
    a = answer(engine, cal, data.block(rows), data.records.dense(rows), unrecorded=data.model_record_counts() == 0)
    b = answer(engine, cal, data.block(rows), data.records.dense(rows), unrecorded=data.model_record_counts() == 0)
    np.testing.assert_allclose(a.p_best.sum(1), 1.0, atol=1e-12)
    assert np.array_equal(a.p_best, b.p_best) and np.array_equal(a.lower, b.lower)
    assert (a.lower <= a.predicted + 1e-12).all() and (a.predicted <= a.upper + 1e-12).all()
    # among a subset: only its models, summing to 1
    among = np.zeros(data.n_models, bool)
    among[:6] = True
    p = a.posteriors[0].p_best(among)
    assert p[~among].sum() == 0 and p.sum() == pytest.approx(1.0)


def test_a_models_draws_do_not_depend_on_what_else_is_asked():
    a = stream_normals(7, 64, np.array([3, 10, 11]))
    b = stream_normals(7, 64, np.array([11, 5, 3]))
    assert np.array_equal(a[:, 0], b[:, 2]) and np.array_equal(a[:, 2], b[:, 0])
    z = stream_normals(0, 20000, np.array([0]))[:, 0]
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03


def _posterior(mu, sd, draw, known=None):
    m = len(mu)
    pool = Pool(np.array([]))  # standard normal quantiles
    known = np.zeros(m, bool) if known is None else known
    return RowPosterior(np.asarray(mu, float), np.asarray(sd, float), known, pool, pool, np.zeros(m, bool), 1.0,
                        draw, 4096)


def test_the_plan_skips_the_twin_of_a_model_it_already_chose():
    """Models 0 and 1 err together (the same draws), model 2 alone, a little lower: the second step takes 2, as
    the twin of the first adds nothing to the expected best; the top two by mean would be 0 and 1."""
    g = stream_normals(1, 4096, np.array([0, 1]))

    def draw(cols, n):
        return np.column_stack([g[:n, 0] if c in (0, 1) else g[:n, 1] for c in cols])

    post = _posterior([0.80, 0.799, 0.79], [0.05, 0.05, 0.05], draw)
    plan = post.plan(2)
    assert plan.models == [0, 2]
    assert plan.expected_best[1] > plan.expected_best[0] and plan.p_found[1] > plan.p_found[0]
    # independent errors: the second best mean comes next
    post = _posterior([0.80, 0.799, 0.79], [0.05, 0.05, 0.05], lambda cols, n: stream_normals(1, n, cols))
    assert post.plan(2).models == [0, 1]


def test_the_plan_with_a_cost_buys_the_best_gain_per_unit_within_the_budget():
    post = _posterior([0.80, 0.79, 0.70], [0.05, 0.05, 0.05], lambda cols, n: stream_normals(2, n, cols),
                      known=np.array([False, False, False]))
    cost = np.array([10.0, 1.0, 1.0])
    plan = post.plan(2.5, cost=cost)
    assert 0 not in plan.models and plan.models[0] == 1  # model 0 is dearer than the budget left
    assert post.plan(1, candidates=np.array([False, False, True])).models == [2]


def test_results_move_the_models_that_err_with_them(fitted):
    """A surprisingly low first result for a brand-new dataset brings the others down with it."""
    from recsys.features.data import DatasetBlock

    data, engine, cal = fitted
    block = DatasetBlock(np.array([-1]), data.datasets.take([0]))
    nan = np.full((1, data.n_models), np.nan)
    cold = answer(engine, cal, block, nan).predicted[0]
    j = int(np.argmax(cold))
    low = answer(engine, cal, block, nan, given=[{j: float(cold[j] - 0.2)}]).predicted[0]
    assert low[j] == pytest.approx(cold[j] - 0.2)
    assert (low <= cold + 1e-9).mean() > 0.9  # the level comes down with it


@pytest.mark.slow
def test_cold_models_have_their_own_wider_error_model(transfergraph):
    """TransferGraph lists models without any record: their pool comes from an extra refit hiding every record
    of a share of the recorded models, and their intervals are wider than recorded models' (issue 18's case of
    an unrecorded model with P(best) above the recorded second-best)."""
    rec = Recommender(seed=0, text_encoder="hashing").fit(transfergraph)
    assert "cold-model" in rec.calibration_.joint.pools
    cols = rec.predict_columns()
    unrecorded = np.tile(rec._unrecorded, len(rec.dataset_ids))
    cold = unrecorded & np.isnan(cols["known"])
    width = cols["upper"] - cols["lower"]
    warm = ~unrecorded & np.isnan(cols["known"])
    assert cold.any() and np.median(width[cold]) > np.median(width[warm])


def test_plan_and_joint_parameters_survive_save_and_load(example, tmp_path):
    d = example.dataset_ids[-1]
    path = example.save(tmp_path / "m.npz")
    loaded = Recommender.load(path)
    lazy = Recommender.load(path, lazy=True)
    want = example.plan_columns(d, 2)
    for other in (loaded, lazy):
        got = other.plan_columns(d, 2)
        assert list(got["model"]) == list(want["model"])
        np.testing.assert_array_equal(got["expected_best"], want["expected_best"])
    a, b = example.calibration_.joint, loaded.calibration_.joint
    assert (a.rho, a.scale, a.factor, a.kriging) == (b.rho, b.scale, b.factor, b.kriging)


def test_known_in_the_python_api(example, caplog):
    d = "stanford cars"  # 4 of the 5 models recorded
    stored = example.predict_columns([d])
    m = [example.model_ids[i] for i in np.flatnonzero(np.isnan(stored["known"]))][0]
    top = example.topk(d, 5, known={m: 0.999})
    assert top.iloc[0]["model"] == m and top.iloc[0]["known"] == 0.999
    recorded = [example.model_ids[i] for i in np.flatnonzero(~np.isnan(stored["known"]))][0]
    with caplog.at_level("WARNING", logger="recsys"):
        example.predict([d], known={recorded: 0.5})
    assert "replaces the stored record" in caplog.text
    same = example.predict([d], known={recorded: float(stored["known"][example.model_ids.index(recorded)])})
    np.testing.assert_array_equal(same["predicted"], example.predict([d])["predicted"])
    new = {"dataset": "fresh", "domain": "photo"}
    got = example.topk_new(new, 5, known={m: 0.5})
    assert got.set_index("model").loc[m, "known"] == 0.5 and got.set_index("model").loc[m, "predicted"] == 0.5
    assert example.plan_new(new, 2, known={m: 0.5})["step"].tolist() == [1, 2]
    assert example.plan(d, 1)["model"].tolist() == [m]  # the only model without a record
    with pytest.raises(RecsysError, match="already has a result"):
        example.plan(d, 1, known={m: 0.5})


@pytest.mark.parametrize("known, words", [({"nope": 0.5}, "unknown model"), ({"__m__": 1.5}, "[0, 1]"),
                                          ({"__m__": float("nan")}, "finite"), ({"__m__": "high"}, "[0, 1]")])
def test_known_refused_in_one_line(example, known, words):
    from recsys.errors import RecsysError

    known = {(example.model_ids[0] if k == "__m__" else k): v for k, v in known.items()}
    with pytest.raises(RecsysError, match=words.replace("[", r"\[").replace("]", r"\]")):
        example.topk(example.dataset_ids[0], 3, known=known)


def test_the_independent_fallback_answers_for_other_engines():
    data, _ = planted_low_rank(n_datasets=30, n_models=8, seed=3)
    engine = make_engine("additive", seed=0).fit(data)
    cal = calibrate(lambda: make_engine("additive", seed=0), data, seed=0)
    assert cal.joint is None  # (it answers with the independent pools, as before the joint distribution)
    rows = np.arange(3)
    known = data.records.dense(rows)
    a = answer(engine, cal, data.block(rows), known, given=[{0: 0.9}, None, None], posteriors=True)
    np.testing.assert_allclose(a.p_best.sum(1), 1.0)
    assert a.predicted[0, 0] == 0.9
    free = np.isnan(known[0])
    free[0] = False
    np.testing.assert_array_equal(a.predicted[0, free], engine.predict(data.block(rows))[0, free])  # no other moves
    assert a.posteriors[0].plan(2).models


def test_pools_by_known_cells():
    assert [pool_name(k, 100, True) for k in (0, 1, 4, 5, 33, 60, 90)] == ["cold", "k1", "k4", "few", "few", "some",
                                                                          "most"]
    assert [pool_name(k, 10) for k in (1, 4, 9)] == ["few", "some", "most"]  # stored records: by share
    p = JointParams(pools={"k1": np.arange(10.0), "k2": np.arange(40.0)})
    assert p.pool("k1").n == 50  # too few of its own: the neighbours lend theirs
    assert p.pool("k2").n == 40


def test_pool_excess_is_exact():
    pool = Pool(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_allclose(pool.excess(np.array([-2.0, 0.5, 3.0])), [(1 + 2 + 4) / 3, 1.5 / 3, 0.0])


def test_pool_crps_is_exact():
    """``E|v - z| - E|v - v'| / 2`` over the pool's values, written out."""
    v = np.array([-1.0, 0.0, 2.0, 2.5])
    z = np.array([-3.0, 0.5, 2.0, 9.0])
    want = [np.abs(v - x).mean() - 0.5 * np.abs(v[:, None] - v[None, :]).mean() for x in z]
    np.testing.assert_allclose(Pool(v).crps(z), want, rtol=0, atol=1e-12)


def test_expected_improvement_with_a_narrower_spread_against_its_definition_written_out():
    """X' = m + s (min(X, 1) - m), m = E[min(X, 1)], over an explicit pool (every value equally likely): its
    expected improvement over ``best`` by enumeration; s = 1 is the plain one, s = 0 greedy on m."""
    z = np.array([-2.0, -0.5, 0.0, 0.4, 3.0])
    pool = Pool(z)
    mu, sd = np.array([0.80, 0.70, 0.95, 0.60]), np.array([0.05, 0.10, 0.03, 0.0])
    known = np.array([False, False, False, True])
    post = RowPosterior(mu, sd, known, pool, pool, np.zeros(4, bool), 1.0, None)
    cols = np.arange(4)
    for best in (0.72, 0.85, 0.99):
        for s in (1.0, 0.5, 0.25, 0.0):
            want = []
            for j in cols:
                x = np.minimum(mu[j] + sd[j] * z, 1.0) if not known[j] else np.full(len(z), mu[j])
                m = x.mean()
                want.append(np.maximum(m + s * (x - m) - best, 0.0).mean())
            np.testing.assert_allclose(post.expected_improvement(cols, best, s), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(post.expected_improvement(cols, -np.inf, 0.5),
                               [np.minimum(mu[j] + sd[j] * z, 1.0).mean() for j in cols], atol=1e-12)
    # (the third model's upper values are clipped at 1: a narrower spread is not a smaller sd)
    assert post.expected_improvement(cols, 0.99, 0.5)[2] != pytest.approx(
        RowPosterior(mu, sd * 0.5, known, pool, pool, np.zeros(4, bool), 1.0, None).expected_improvement(cols, 0.99)[2])
    with pytest.raises(ValueError, match="spread"):
        post.expected_improvement(cols, 0.8, -0.5)


def test_the_plans_first_step_on_a_narrower_spread():
    """``plan(spread=)``: the first pick by the expected improvement of the narrowed distribution. Over the known
    0.70, a wide model centred at 0.60 has the larger improvement (s = 1); greedy on the centres (s = 0) both have
    none, and the tie goes to the higher centre."""
    mu, sd = np.array([0.70, 0.69, 0.60]), np.array([0.0, 0.01, 0.2])
    post = _posterior(mu, sd, None, known=np.array([True, False, False]))
    assert post.plan(1, summary=False).models == [2]
    assert post.plan(1, summary=False, spread=1.0).models == [2]
    assert post.plan(1, summary=False, spread=0.0).models == [1]
    gain = post.expected_improvement(np.array([1, 2]), 0.70, 0.25)
    assert post.plan(1, summary=False, spread=0.25).models == [1 + int(np.argmax(gain))]


def test_joint_model_refuses_nothing_for_an_uncalibrated_engine():
    """Without a calibration the centres are still conditioned on given results (uncalibrated parameters)."""
    data, _ = planted_low_rank(n_datasets=30, n_models=8, seed=4)
    engine = make_engine("hybrid", seed=0).fit(data)
    jm = joint_model(engine, None, None)
    assert isinstance(jm, JointModel) and jm.kriging
    block, nan = data.block(np.array([0])), np.full((1, 8), np.nan)
    a = answer(engine, None, block, nan, given=[{1: 0.7}])
    assert a.predicted[0, 1] == 0.7 and np.isnan(a.p_best).all()
    # the other models' centres are the conditioned ones, not the engine's (a known cell is its value anyway)
    mu = jm.posterior(engine.predict(block)[0], nan[0], {1: 0.7}, jm.inputs(block)[0]).mu
    np.testing.assert_array_equal(a.predicted[0], mu)
    assert np.abs(np.delete(a.predicted[0] - answer(engine, None, block, nan).predicted[0], 1)).max() > 1e-3


@pytest.mark.parametrize("k", [3, 5, 30])
def test_low_rank_conditioning_matches_the_dense_formulas(k):
    """Woodbury's kriging and the conditional draws of a low-rank covariance (the known models' own parts drawn
    projected when they outnumber the asked ones; with 3 known and 4 asked, the draws made in the factors' rank)
    have the universal-kriging conditional covariance."""
    from recsys.engines.joint import _Uncertainty
    from recsys.engines.stages.kriging import DenseCovariance, LowRankCovariance

    rng = np.random.default_rng(0)
    m = 40
    V, psi = rng.normal(size=(m, 3)) * 0.5, rng.uniform(0.1, 0.4, m)
    K = np.sort(rng.choice(m, k, replace=False))
    U = np.setdiff1d(np.arange(m), K)
    low = _Uncertainty(LowRankCovariance(V, psi), seed=3, n_draws=40000)
    dense = _Uncertainty(DenseCovariance(V @ V.T + np.diag(psi)), seed=3, n_draws=40000)
    kl, kd = low.kriging(K, U), dense.kriging(K, U)
    np.testing.assert_allclose(kl.var, kd.var, rtol=1e-6)
    np.testing.assert_allclose(kl.b, kd.b, rtol=1e-6, atol=1e-9)
    S = V @ V.T + np.diag(psi)
    A = S[np.ix_(K, K)]
    W = S[np.ix_(U, K)] @ np.linalg.inv(A)
    one = np.ones(k)
    q = one @ np.linalg.solve(A, one)
    b = 1 - W.sum(1)
    want = S[np.ix_(U, U)] - W @ S[np.ix_(K, U)] + np.outer(b, b) / q
    pos = np.arange(4)
    for unc in (kl, kd):
        g = unc.standard_draws(pos) * np.sqrt(unc.var[pos])
        np.testing.assert_allclose(np.cov(g.T), want[np.ix_(pos, pos)], atol=0.03)



def test_low_rank_draws_in_the_factors_rank_are_matherons_rule_written_out():
    """With no more known models than asked ones, the low-rank conditional draws are computed in the factors'
    rank: they equal Matheron's rule with the universal-kriging predictor P = V_U C + b g' written out,
    ``Zf (V_c - P V_K)' + Zi_c sqrt(psi_c) - (Zi_K sqrt(psi_K)) P'``, from the same streams."""
    from recsys.engines.joint import _Uncertainty
    from recsys.engines.stages.kriging import LowRankCovariance

    rng = np.random.default_rng(4)
    m = 60
    V, psi = rng.normal(size=(m, 4)) * 0.5, rng.uniform(0.1, 0.4, m)
    K = np.sort(rng.choice(m, 6, replace=False))
    U = np.setdiff1d(np.arange(m), K)
    unc = _Uncertainty(LowRankCovariance(V, psi), seed=5, n_draws=256)
    kr = unc.kriging(K, U)
    pos = np.arange(10, 50)
    cols = U[pos]
    P = V[cols] @ kr.C + kr.b[pos][:, None] * kr.g[None, :]
    want = (unc._Zf @ (V[cols] - P @ V[K]).T + unc._idio(cols, 256) * np.sqrt(psi[cols])
            - (unc._idio(K, 256) * np.sqrt(psi[K])) @ P.T) / np.sqrt(kr.var[pos])[None, :]
    np.testing.assert_allclose(kr.standard_draws(pos), want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(kr.standard_draws(pos, 100), kr.standard_draws(pos)[:100])

# -- the joint parameters that calibrate fits (recsys.engines.calibration.fit_joint) ------------------------------
# Seeded: a change to how the pools, the cold level, the scale, P(best)'s factor or the narrowing are fitted shows in
# these numbers (residual pools summarized by size, sum and sum of absolute values).


def _assert_joint(params, rho, scale, factor, pools, narrow=1.0):
    assert (params.rho, params.scale, params.factor, params.seed, params.kriging, params.narrow) == (
        pytest.approx(rho, rel=1e-9), scale, factor, 0, True, narrow)
    got = {k: (len(v), float(v.sum()), float(np.abs(v).sum())) for k, v in params.pools.items()}
    assert sorted(got) == sorted(pools)
    for name, (n, total, size) in pools.items():
        assert got[name][0] == n, name
        assert got[name][1:] == pytest.approx((total, size), rel=1e-6, abs=1e-9), name
    for v in params.pools.values():
        assert (np.diff(v) >= 0).all() and np.isfinite(v).all()  # sorted normalized residuals


def test_the_joint_parameters_of_a_planted_zoo(fitted):
    """Residuals by pool (the first results of the datasets without records in k1 .. k4), the cold level at its
    floor, the per-dataset scale and P(best)'s factor 0.6 (calibrated here, not taken from the fixture: mutation
    testing runs the tests that call calibrate)."""
    data, _, _ = fitted
    cal = calibrate(lambda: make_engine("hybrid", seed=0), data, seed=0, independent=True)
    # (the independent pools of the same refits: absolute residuals by stratum, and the offset-free ones of the
    # held-out datasets with two hidden records or more, each rescaled by sqrt(n / (n - 1)); P(best)'s factor 0.45)
    assert cal.noise_scale == 0.45
    absolute = {k: (len(v), float(v.sum())) for k, v in cal.abs_residuals.items()}
    assert absolute == {"cold": (93, pytest.approx(2.6561848657065132)),
                        "few": (34, pytest.approx(1.7906188679983082)),
                        "some": (55, pytest.approx(2.1904844180991465)),
                        "most": (1, pytest.approx(0.05422492944221219))}
    relative = {k: (len(v), float(v.sum()), float(np.abs(v).sum())) for k, v in cal.rel_residuals.items()}
    assert relative == {"cold": (93, pytest.approx(0, abs=1e-9), pytest.approx(2.798183618640867)),
                        "few": (31, pytest.approx(0, abs=1e-9), pytest.approx(1.6062669455007237)),
                        "some": (37, pytest.approx(0, abs=1e-9), pytest.approx(1.4708412655767487)),
                        "most": (0, 0.0, 0.0)}
    _assert_joint(cal.joint, 0.001, "row", 0.6, {
        "cold": (93, -0.3411634551410001, 22.23010045891579), "k1": (77, -35.378143819421545, 41.21769997898351),
        "k2": (66, -41.608910878413575, 44.937496293693506), "k3": (55, -44.48329835425012, 51.1604726369597),
        "k4": (44, -14.987654839481396, 20.02120613253275), "few": (34, 0.702448700242325, 18.86192816983039),
        "some": (55, 5.227431538756218, 20.192123718177783), "most": (1, -0.48711245633564326, 0.48711245633564326)},
        narrow=0.5)


def test_the_joint_parameters_of_a_zoo_with_a_model_without_records(fitted):
    """One more refit hides every record of a share of the recorded models: the pool of models without records."""
    from recsys.features.data import ZooData

    data, _, _ = fitted
    Y = data.Y.copy()
    Y[:, 11] = np.nan
    cold = ZooData(Y=Y, model_features=data.model_features, dataset_features=data.dataset_features)
    cal = calibrate(lambda: make_engine("hybrid", seed=0), cold, seed=0)
    _assert_joint(cal.joint, 0.001, "model", 0.6, {
        "cold": (85, -7.083047313663441, 69.29736316907754), "k1": (65, -109.77142002984986, 125.66180436530011),
        "k2": (55, -134.3561052127237, 150.12798061910158), "k3": (45, -150.1904419239341, 160.7821948309631),
        "k4": (35, -58.080437665728226, 66.76529512673167), "few": (39, 3.080772755618157, 82.45742710010978),
        "some": (42, 2.84360822068329, 56.13171306404255),
        "cold-model": (31, -34.01001549331396, 39.476953793836074)})


def test_the_joint_parameters_from_a_sample_of_the_held_out_datasets(fitted):
    """Above _JOINT_ROWS held-out datasets, or _MAX_CASE_CELLS cells of them, the pools come from a sample of them;
    above _JOINT_CASES the scale and factor are chosen on a sample (here 246 // 12 = 20 datasets and 8 cases, to see
    it on a small zoo)."""
    from unittest import mock

    import recsys.engines.calibration as calibration

    data, _, _ = fitted
    with mock.patch.object(calibration, "_MAX_CASE_CELLS", 12 * 20 + 6), \
            mock.patch.object(calibration, "_JOINT_CASES", 8):
        cal = calibrate(lambda: make_engine("hybrid", seed=0), data, seed=0)
    assert cal.noise_scale == 1.0
    _assert_joint(cal.joint, 0.001, "model", 0.15, {
        "cold": (30, -2.9502967750048397, 17.607076949417916), "k1": (26, -30.597501103697148, 32.98189284996045),
        "k2": (22, -52.36928250456283, 54.66545574556339), "k3": (18, -12.63255844072383, 21.864705272610895),
        "k4": (14, -16.622652206016777, 24.22758749054447), "few": (8, -4.581536790877361, 18.02288879890344),
        "some": (20, 12.464052527641803, 35.54184267043861), "most": (1, -1.8088109868413478, 1.8088109868413478)})


def test_the_joint_parameters_of_a_zoo_whose_datasets_are_easier_or_harder():
    """Each dataset's accuracies shifted together (sd 0.1): the level of a dataset without records varies beyond
    what the models' errors say, rho = 0.81 (above its floor); the pools of datasets with records stay as without
    the shifts; the cold pool does not, nor do those of a user's first results (k1 .. k4: the "row" scale narrows
    by the share of each model's variance, the level's included, that the results explain)."""
    from recsys.features.data import ZooData

    planted, _ = planted_low_rank(n_datasets=60, n_models=12, density=0.6, noise=0.02, seed=2)
    Y = np.clip(planted.Y + np.random.default_rng(5).normal(0, 0.1, size=(60, 1)), 0, 1)
    data = ZooData(Y=Y, model_features=planted.model_features, dataset_features=planted.dataset_features)
    cal = calibrate(lambda: make_engine("hybrid", seed=0), data, seed=0)
    _assert_joint(cal.joint, 0.8073808973864007, "row", 0.6, {
        "cold": (93, 21.161613517867835, 68.70767033196701), "k1": (77, -47.9791102587454, 56.29090250972025),
        "k2": (66, -61.28626115524002, 66.2856114123634), "k3": (55, -65.43945591951272, 74.59504975481434),
        "k4": (44, -23.902604122189828, 31.057271876417325), "few": (34, 0.7024487002423161, 18.861928169830385),
        "some": (55, 5.227431538756219, 20.192123718177786), "most": (1, -0.4871124563356445, 0.4871124563356445)},
        narrow=0.5)


def test_the_factor_and_scale_chosen_on_a_sample_of_the_cases(fitted):
    """Above _JOINT_CASES held-out datasets (here 8) the scale and factor are chosen on a sample of them; the pools
    come from every held-out dataset."""
    from unittest import mock

    import recsys.engines.calibration as calibration

    data, _, _ = fitted
    with mock.patch.object(calibration, "_JOINT_CASES", 8):
        cal = calibrate(lambda: make_engine("hybrid", seed=0), data, seed=0)
    _assert_joint(cal.joint, 0.001, "model", 0.35, {
        "cold": (93, -6.939524944716059, 71.18390194462589), "k1": (77, -129.54743768470135, 149.74785877300533),
        "k2": (66, -153.13771677046068, 162.34348253992817), "k3": (55, -161.28462028161064, 187.37184534724827),
        "k4": (44, -55.01407648428878, 74.51455559110788), "few": (34, -4.990746652570648, 55.222584772640516),
        "some": (55, 27.237497961554553, 81.6281997603329), "most": (1, -1.8088109868413478, 1.8088109868413478)})


def test_the_pool_of_models_without_records_hides_a_tenth_of_the_recorded_ones():
    """On 24 recorded models the extra refit hides every record of round(2.4) = 2 of them, drawn without
    replacement."""
    from recsys.features.data import ZooData

    planted, _ = planted_low_rank(n_datasets=40, n_models=25, density=0.7, noise=0.02, seed=3)
    Y = planted.Y.copy()
    Y[:, 24] = np.nan
    data = ZooData(Y=Y, model_features=planted.model_features, dataset_features=planted.dataset_features)
    cal = calibrate(lambda: make_engine("hybrid", seed=0), data, seed=0)
    _assert_joint(cal.joint, 0.001, "model", 1.0, {
        "cold": (135, 2.282571354140238, 107.40564167346989), "k1": (127, -61.35805689550103, 122.3925473444096),
        "k2": (119, -406.84932494155515, 423.45611418045434), "k3": (111, -257.1474513830688, 295.58297803646474),
        "k4": (103, -202.45257124303865, 224.67680939860216), "few": (14, 3.6696846115029933, 10.954018615001175),
        "some": (108, -15.724486603288483, 174.93691681029622), "most": (7, -8.115001201216236, 9.228990235102325),
        "cold-model": (58, 124.44999534818366, 124.81818679631434)},
        narrow=0.0)


@pytest.mark.parametrize("recorded, single, pool, fit", [
    # (model 2 holds a single record: it is recorded too)
    (3, 2, (25, 13.542189500658829, 21.77473521505708), (0.001, "model", 0.15)),
    (2, None, (25, 14.694494587244435, 20.62243012847147), (0.001, "model", 0.15)),  # (one hidden, one kept)
    # (a single recorded model: none to hide, an empty pool; no held-out dataset hides two records, so no Brier
    # score and the largest factor, and no dataset without records to see the level: rho 1)
    (1, None, (0, 0.0, 0.0), (1.0, "model", 1.0)),
])
def test_the_pool_of_models_without_records_on_zoos_of_few_recorded_models(recorded, single, pool, fit):
    from recsys.features.data import ZooData

    planted, _ = planted_low_rank(n_datasets=30, n_models=4, density=0.9, noise=0.02, seed=4)
    Y = planted.Y.copy()
    Y[:, recorded:] = np.nan
    if single is not None:
        Y[:, single] = np.nan
        Y[0, single] = 0.5
    data = ZooData(Y=Y, model_features=planted.model_features, dataset_features=planted.dataset_features)
    joint = calibrate(lambda: make_engine("hybrid", seed=0), data, seed=0).joint
    assert (joint.rho, joint.scale, joint.factor) == (pytest.approx(fit[0], rel=1e-9), fit[1], fit[2])
    v = joint.pools["cold-model"]
    assert (len(v), float(v.sum()), float(np.abs(v).sum())) == (pool[0], pytest.approx(pool[1], rel=1e-6),
                                                              pytest.approx(pool[2], rel=1e-6))


def test_the_cold_level_by_moments_of_the_datasets_without_records():
    """rho = tau2 / kappa: two held-out datasets without records, errors e = (truth - pred) / spread of [2, 4] and
    [-1, 1], each with S = I: kappa = 4 / 2, tau2 = mean(9 - 2 x 0.5, 0 - 2 x 0.5) = 3.5, rho = 1.75. Datasets with a
    record, or with one hidden model, are left out; without any dataset, or without spread around the mean (S all
    ones), rho is 1. One dataset, e = [1.5, 2.5]: kappa = 0.5 / 1, tau2 = 4 - 0.5 x 0.5, rho = 7.5."""
    from types import SimpleNamespace

    from recsys.engines.calibration import _cold_level, _Row

    class _Block:
        def __init__(self, fill):
            self.fill = fill

        def block(self, rows, cols):
            return np.ones((len(rows), len(cols))) if self.fill else np.eye(len(rows))

    models = {0: SimpleNamespace(uncertainty=_Block(False)), 1: SimpleNamespace(uncertainty=_Block(True))}
    inp = SimpleNamespace(spread=2.0)
    nan = np.full(4, np.nan)

    def row(hidden, truth, stored=nan, refit=0):
        return _Row(refit, np.array([0.5, 0.5, 0.5, 0.5]), stored, np.array(hidden), np.array(truth), inp, True)

    skipped = [row([0, 1], [9.0, 0.0], np.array([0.5, np.nan, np.nan, np.nan])),  # (a record: not without records)
               row([2], [7.0])]  # (one hidden model: no spread around its mean)
    rows = [skipped[0], row([0, 2], [4.5, 8.5]), row([1, 3], [-1.5, 2.5]), skipped[1]]
    assert _cold_level(rows, models) == pytest.approx(1.75)
    assert _cold_level(skipped, models) == 1.0 and _cold_level([], models) == 1.0
    assert _cold_level([row([0, 2], [4.5, 8.5], refit=1)], models) == 1.0  # (S all ones: den = 2 - 4 / 2 = 0)
    assert _cold_level([row([0, 2], [3.5, 5.5])], models) == pytest.approx(7.5)
    level = [row([0, 2], [2.5, -1.5]), row([1, 3], [-1.5, 2.5])]  # (errors of mean 0: tau2 = -1, at its floor)
    assert _cold_level(level, models) == pytest.approx(1e-3)


# -- what answer passes on (recsys.engines.answer) ---------------------------------------------------------------


def test_answer_gives_the_independent_p_best_beside_the_joint_one_when_asked(fitted):
    from recsys.engines.answer import consistent

    data, engine, cal = fitted
    rows = np.arange(4)
    block, known = data.block(rows), data.records.dense(rows)
    unrecorded = np.zeros(data.n_models, bool)
    unrecorded[3] = True
    plain = answer(engine, cal, block, known, unrecorded=unrecorded)
    assert plain.p_best_independent is None and plain.posteriors is not None and len(plain.posteriors) == 4
    both = answer(engine, cal, block, known, unrecorded=unrecorded, independent=True, level=0.6)
    pred = engine.predict(block)
    n_known = (~np.isnan(known)).sum(1)
    lo, hi = cal.interval(pred, n_known, 0.6)
    want = consistent(cal.p_best(pred, known, n_known, unrecorded=unrecorded), known, lo, hi)
    np.testing.assert_array_equal(both.p_best_independent, want)
    np.testing.assert_array_equal(both.p_best, answer(engine, cal, block, known, unrecorded=unrecorded,
                                                      level=0.6).p_best)  # (the joint one as without it)
    assert not np.allclose(both.p_best_independent, both.p_best)


def test_joint_model_takes_the_engines_seed_and_the_calibrations_parameters(fitted):
    import dataclasses

    data, engine, cal = fitted
    seeded = make_engine("hybrid", seed=7).fit(data)
    assert joint_model(seeded, None, None).params.seed == 7
    assert joint_model(engine, cal, None).params is cal.joint
    cold = np.zeros(data.n_models, bool)
    cold[[1, 4]] = True
    np.testing.assert_array_equal(joint_model(engine, cal, cold).cold_models, cold)
    np.testing.assert_array_equal(joint_model(engine, cal, None).cold_models, np.zeros(data.n_models, bool))
    fallback = joint_model(seeded, dataclasses.replace(cal, joint=None), None).params
    assert (fallback.seed, fallback.kriging, fallback.factor) == (7, False, cal.noise_scale)
    from types import SimpleNamespace

    seedless = joint_model(SimpleNamespace(n_models_=3), None, None)  # (an engine of another library: no seed)
    assert seedless.params.seed == 0 and not seedless.kriging and seedless.cold_models.tolist() == [False] * 3


def test_answer_builds_the_calibrated_joint_model_with_the_models_without_records(fitted):
    """Without ``joint=``, answer uses the calibration's joint parameters and the unrecorded models it is given
    (the same P(best) as with that joint model passed in; another with uncalibrated parameters or no cold model)."""
    data, engine, cal = fitted
    rows = np.arange(6)
    block, known = data.block(rows), data.records.dense(rows)
    unrecorded = np.zeros(data.n_models, bool)
    unrecorded[[3, 7]] = True  # (models that can win on these rows: a cold pool changes their P(best))
    built = answer(engine, cal, block, known, unrecorded=unrecorded).p_best
    np.testing.assert_array_equal(built, answer(engine, cal, block, known, unrecorded=unrecorded,
                                                joint=joint_model(engine, cal, unrecorded)).p_best)
    for other in (joint_model(engine, None, unrecorded), joint_model(engine, cal, None)):
        assert not np.allclose(built, answer(engine, cal, block, known, unrecorded=unrecorded, joint=other).p_best)


def test_answer_keeps_a_given_result_at_full_precision_whatever_the_records_dtype(fitted):
    data, engine, cal = fitted
    rows = np.arange(2)
    block, known = data.block(rows), data.records.dense(rows).astype(np.float32)
    ans = answer(engine, cal, block, known, given=[{3: 0.123456789}, None])
    assert ans.known.dtype == np.float64 and ans.known[0, 3] == 0.123456789
    np.testing.assert_array_equal(ans.known[1], known[1].astype(np.float64))


def test_answer_for_no_dataset_has_every_column_empty(fitted):
    data, engine, cal = fitted
    rows = np.zeros(0, dtype=np.int64)
    ans = answer(engine, cal, data.block(rows), data.records.dense(rows))
    for column in (ans.predicted, ans.known, ans.lower, ans.upper, ans.p_best):
        assert column.shape == (0, data.n_models)
    assert ans.posteriors == []


def test_answer_returns_posteriors_only_where_the_joint_distribution_answered_or_when_asked(fitted):
    data, engine, cal = fitted
    rows = np.arange(2)
    block, known = data.block(rows), data.records.dense(rows)
    given = [{1: 0.5}, None]
    assert answer(engine, cal, block, known, uncertainty=False, given=given).posteriors is None
    asked = answer(engine, cal, block, known, uncertainty=False, given=given, posteriors=True).posteriors
    assert len(asked) == 2 and all(p is not None for p in asked)


def test_the_error_covariance_has_the_robust_variances_and_each_pairs_own_shrinkage(fitted):
    """Each model's variance is its robust one (``error_var_``), each correlation that of the residual covariance
    with each pair shrunk by its own noise (its low-rank part; not the kriging's covariance, shrunk as one); an
    engine saved before ``error_var_`` existed draws with the stored low-rank part's own variances, and one
    saved before the low-rank part with the kriging's, as they did."""
    from recsys.engines.hybrid import HybridEngine
    from recsys.engines.stages import kriging

    data, engine, _ = fitted
    V0, psi0 = engine.joint_v_, engine.joint_psi_
    S0 = V0 @ V0.T + np.diag(psi0)
    err = engine.error_covariance
    S = err.V @ err.V.T + np.diag(err.psi)
    np.testing.assert_allclose(np.diag(S), engine.error_var_, rtol=1e-12)
    assert not np.allclose(engine.error_var_, np.diag(S0), rtol=0.05)  # (the robust scale differs here)
    corr = lambda A: A / np.sqrt(np.outer(np.diag(A), np.diag(A)))  # noqa: E731
    np.testing.assert_allclose(corr(S), corr(S0), atol=1e-12)
    Vk, psik = kriging.low_rank_part(engine.covariance.S)
    assert not np.allclose(corr(S0), corr(Vk @ Vk.T + np.diag(psik)), atol=0.05)  # (the kriging's: shrunk as one)
    state, arrays = engine.get_state()
    del arrays["error_var_"]
    old = HybridEngine.from_state(state, arrays, engine._data)
    np.testing.assert_allclose(old.error_covariance.V, V0, atol=1e-12)
    np.testing.assert_allclose(old.error_covariance.psi, psi0, atol=1e-12)
    for name in ("joint_v_", "joint_psi_"):
        del arrays[name]
    older = HybridEngine.from_state(state, arrays, engine._data)
    np.testing.assert_allclose(older.error_covariance.V, Vk, atol=1e-12)
    np.testing.assert_allclose(older.error_covariance.psi, psik, atol=1e-12)


def test_a_low_rank_kriging_keeps_the_joint_errors_of_a_dense_one(fitted, monkeypatch):
    """Above the kriging's dense cap the joint distribution's errors are the dense kriging's: each pair shrunk by
    its own noise, whatever form the kriging's covariance takes (kriging.shrunk_factors; they were the kriging's
    low-rank factors, shrunk as one: on zoos of fine-tune families over 1,024 models the plan stopped telling
    families apart). Here every eigenpair is kept, so the two agree to float32 precision."""
    import recsys.engines.stages.kriging as kriging

    data, dense, _ = fitted
    monkeypatch.setattr(kriging, "DENSE_MAX_MODELS", 4)
    engine = make_engine("hybrid", seed=0).fit(data)
    assert isinstance(engine.covariance, kriging.LowRankCovariance) and isinstance(dense.covariance,
                                                                                   kriging.DenseCovariance)
    got, want = engine.error_covariance, dense.error_covariance
    np.testing.assert_allclose(got.V @ got.V.T + np.diag(got.psi), want.V @ want.V.T + np.diag(want.psi),
                               rtol=1e-5, atol=1e-6)


def test_the_error_covariance_of_a_low_rank_kriging_is_rescaled_too(fitted, monkeypatch):
    """Above the dense cap and the pairwise one the kriging's own low-rank covariance is rescaled (a copy: the
    kriging keeps its own)."""
    import recsys.engines.stages.kriging as kriging

    data, _, _ = fitted
    monkeypatch.setattr(kriging, "DENSE_MAX_MODELS", 4)
    monkeypatch.setattr(kriging, "PAIRWISE_MAX_MODELS", 4)
    engine = make_engine("hybrid", seed=0).fit(data)
    assert not np.size(engine.joint_v_)
    cov = engine.covariance
    assert isinstance(cov, kriging.LowRankCovariance)
    before = cov.diag()
    err = engine.error_covariance
    S, S0 = err.V @ err.V.T + np.diag(err.psi), cov.V @ cov.V.T + np.diag(cov.psi)
    np.testing.assert_allclose(np.diag(S), engine.error_var_, rtol=1e-12)
    corr = lambda A: A / np.sqrt(np.outer(np.diag(A), np.diag(A)))  # noqa: E731
    np.testing.assert_allclose(corr(S), corr(S0), atol=1e-12)
    np.testing.assert_array_equal(engine.covariance.diag(), before)


def test_the_independent_noise_factor_is_fitted_only_where_answers_use_it(fitted, monkeypatch):
    """An engine that kriges answers from the joint distribution: its calibration skips the independent P(best)'s
    factor (1.0) unless asked (the benchmarks compare the two), and is otherwise the same; an engine without a
    kriging fits it."""
    data, _, _ = fitted
    hybrid = lambda: make_engine("hybrid", seed=0)  # noqa: E731
    default, asked = calibrate(hybrid, data, seed=0), calibrate(hybrid, data, seed=0, independent=True)
    assert (default.noise_scale, asked.noise_scale) == (1.0, 0.45)
    for name in ("abs_residuals", "rel_residuals"):
        got, want = getattr(default, name), getattr(asked, name)
        assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)
    got, want = default.joint.to_state(), asked.joint.to_state()
    assert got.keys() == want.keys() and all(np.array_equal(v, want[k]) for k, v in got.items())
    import recsys.engines.calibration as calibration

    fitted_on = []
    fit = calibration._fit_noise_scale
    monkeypatch.setattr(calibration, "_fit_noise_scale",
                        lambda cal, cases: fitted_on.append(len(cases)) or fit(cal, cases))
    assert calibrate(lambda: make_engine("additive", seed=0), data, seed=0).joint is None
    assert len(fitted_on) == 1 and fitted_on[0] > 0
    assert calibrate(hybrid, data, seed=0, joint=False).noise_scale == 0.45


def test_an_engine_whose_error_variances_do_not_match_its_models_is_refused(fitted):
    """A damaged model file (error_var_ of another length than the models) is refused with one line, not drawn
    from as if the robust variances were not there."""
    from recsys.engines.hybrid import HybridEngine
    from recsys.errors import ArtifactError

    data, engine, _ = fitted
    state, arrays = engine.get_state()
    arrays["error_var_"] = arrays["error_var_"][:-1]
    damaged = HybridEngine.from_state(state, arrays, engine._data)
    with pytest.raises(ArtifactError, match=r"^re-create the model file with `recsys fit`: its engine holds "
                                            r"11 error variances for 12 models; it is damaged$"):
        damaged.error_covariance


def test_interval_is_the_marginal_of_the_joint_distribution_and_holds_its_centre():
    """An unknown model's interval is its centre plus sd times its pool's quantiles (plotting positions (i + 1/2)
    / n), clipped to [0, 1]; the cold models' from their own pool; at a low level an asymmetric pool's central
    quantiles are both above 0, and the interval is taken to the centre."""
    pool = Pool(np.arange(1.0, 11.0) / 10 - 0.25)  # -0.15 .. 0.75
    cold = Pool(np.array([-2.0, -1.0, 1.0, 2.0]))
    mu, sd = np.array([0.5, 0.9, 0.2, 0.4]), np.array([0.1, 0.2, 0.05, 0.3])
    cold_models = np.array([False, False, False, True])
    post = RowPosterior(mu, sd, np.zeros(4, bool), pool, cold, cold_models, 1.0, None)
    lo, hi = post.interval(np.arange(4), 0.8)
    q = lambda v, p: float(np.interp(p, (np.arange(len(v)) + 0.5) / len(v), v))  # noqa: E731
    want_lo = [mu[j] + sd[j] * q(pool.values, 0.1) for j in range(3)] + [0.4 + 0.3 * q(cold.values, 0.1)]
    want_hi = [mu[j] + sd[j] * q(pool.values, 0.9) for j in range(3)] + [0.4 + 0.3 * q(cold.values, 0.9)]
    np.testing.assert_allclose(lo, np.clip(want_lo, 0, 1))
    np.testing.assert_allclose(hi, np.clip(want_hi, 0, 1))
    assert hi[1] == 1.0 and lo[3] == 0.0  # (clipped)
    for got, want in zip(post.interval([0, 1, 2, 3]), (lo, hi)):  # (level 0.8 by default; a list of models)
        np.testing.assert_array_equal(got, want)
    lo, hi = post.interval(np.array([0, 2]), 0.1)  # quantiles 0.45 and 0.55 of the pool: 0.25 and 0.35
    np.testing.assert_allclose(lo, mu[[0, 2]])
    np.testing.assert_allclose(hi, mu[[0, 2]] + sd[[0, 2]] * 0.35)


def test_answer_takes_the_joint_intervals_where_the_dataset_has_known_cells(fitted):
    """A dataset with records (or results given): its unknown cells' intervals are the joint's marginals. A
    brand-new one: its recorded models keep the split-conformal intervals of brand-new datasets, its models
    without records get the joint's (their own pool)."""
    data, engine, cal = fitted
    rows = np.arange(5)
    block = data.block(rows)
    known = data.records.dense(rows)
    known[4] = np.nan  # (a dataset asked about as if brand-new)
    unrecorded = np.zeros(data.n_models, bool)
    unrecorded[[3, 7]] = True
    import dataclasses

    # (a pool of the models without records: the fixture's zoo has none)
    joint = dataclasses.replace(cal.joint, pools={**cal.joint.pools, "cold-model": 5 * cal.joint.pools["cold"]})
    cal = dataclasses.replace(cal, joint=joint)
    ans = answer(engine, cal, block, known, unrecorded=unrecorded, given=[None, {0: 0.5}, None, None, None],
                 level=0.7)
    n_known = (~np.isnan(ans.known)).sum(1)
    conf_lo, conf_hi = cal.interval(ans.predicted, n_known, 0.7)
    for i, post in enumerate(ans.posteriors):
        unk = np.flatnonzero(~post.known)  # (row 4: the engine's own records stay known to its joint)
        lo, hi = post.interval(unk, 0.7)
        if i < 4:
            np.testing.assert_array_equal(ans.lower[i, unk], lo)
            np.testing.assert_array_equal(ans.upper[i, unk], hi)
            rec = np.flatnonzero(~np.isnan(ans.known[i]))  # (a known cell, record or result, is its own interval)
            np.testing.assert_array_equal(ans.lower[i, rec], ans.known[i, rec])
            np.testing.assert_array_equal(ans.upper[i, rec], ans.known[i, rec])
        else:
            cold = unrecorded[unk]
            np.testing.assert_array_equal(ans.lower[i, unk[cold]], lo[cold])
            np.testing.assert_array_equal(ans.upper[i, unk[cold]], hi[cold])
            np.testing.assert_array_equal(ans.lower[i, unk[~cold]], conf_lo[i, unk[~cold]])
            np.testing.assert_array_equal(ans.upper[i, unk[~cold]], conf_hi[i, unk[~cold]])
            assert not np.allclose(lo[~cold], conf_lo[i, unk[~cold]])  # (the two differ: the test can fail)
    assert not np.allclose(ans.lower[:4], conf_lo[:4])


def test_after_a_poor_result_the_plan_leaves_the_family_that_errs_together():
    """Eight families of two fine-tunes that err together on every dataset; family 0 the best on the 7 datasets
    of the fit, poor on the new one (issue 18's NLP zoo: five DeBERTa-v3 fine-tunes in a row). Its first model's
    result given, its twin is nearly certain (the joint's correlations shrunk pair by pair: the kriging's one
    shrinkage of 0.75 left the twin as uncertain as any model) and the next pick is another family's."""
    data, Y, family = _family_zoo()
    engine = make_engine("hybrid", seed=0).fit(data)
    assert engine.cov_shrink_ == pytest.approx(0.7463, abs=1e-4)
    block, nan = data.block(np.array([7])), np.full((1, 16), np.nan)
    first = answer(engine, None, block, nan, posteriors=True).posteriors[0].plan(1, summary=False).models[0]
    assert first == 0
    post = answer(engine, None, block, nan, given=[{0: float(Y[7, 0])}], posteriors=True).posteriors[0]
    assert post.sd[1] < 0.3 * np.median(post.sd[family != 0])
    assert family[post.plan(1, summary=False).models[0]] != 0


def _family_zoo():
    """8 families of two fine-tunes that err together on every dataset, family 0 the best on the fit's 7 datasets
    and poor on the new one (dataset 7, without records); the full matrix, the zoo and each model's family."""
    from recsys.features.data import ZooData

    rng = np.random.default_rng(5)
    Y = 0.55 + np.repeat(rng.normal(size=(8, 8)) * 0.1, 2, axis=1) + 0.01 * rng.normal(size=(8, 16))
    family = np.arange(16) // 2
    Y[:7, family == 0] += 0.15
    Y[7, family == 0] -= 0.1
    data = ZooData(Y=np.where(np.arange(8)[:, None] == 7, np.nan, Y),
                   model_features=np.eye(8)[family] + 0.01 * rng.normal(size=(16, 8)),
                   dataset_features=rng.normal(size=(8, 2)))
    return data, Y, family


def test_results_given_narrow_the_row_scale_by_the_share_of_variance_they_explain():
    """The "row" scale (every model's sd the dataset's spread) narrows where results are given: each model's sd times
    (its variance given the known cells / its variance given the stored records alone) ** (narrow / 2), the ratio at
    least VAR_FLOOR. Family 0's first result given, its twin is nearly pinned down (without the narrowing it kept the
    whole spread, as uncertain as a model of another family: on zoos of fine-tune families the plan kept trying the
    family that had just failed, benchmarks/families.py). A dataset without records keeps its level's prior N(0, rho)
    once results are given, so a result never widens a model (the level unknown, universal kriging, a model that
    errs apart from the result could get more uncertain than without it). Exponent 0: no narrowing; answers without
    results, and results that only replace stored records, keep the spread."""
    from recsys.engines.joint import VAR_FLOOR
    from recsys.features.data import ZooData

    data, Y, family = _family_zoo()
    Yfit = data.Y.copy()
    Yfit[2, [3, 9]] = np.nan  # (a dataset of the zoo without two of its models)
    data = ZooData(Y=Yfit, model_features=data.model_features, dataset_features=data.dataset_features)
    engine = make_engine("hybrid", seed=0).fit(data)
    jm = JointModel(engine, JointParams(rho=0.5, scale="row"), np.zeros(16, bool))
    new = data.block(np.array([7]))
    pred, inp, nan = engine.predict(new)[0], engine.row_inputs(new)[0], np.full(16, np.nan)
    np.testing.assert_allclose(jm.posterior(pred, nan, None, inp).sd, inp.spread)
    given = {0: float(Y[7, 0])}
    post = jm.posterior(pred, nan, given, inp)
    s, rest = condition(inp, np.array([0]), np.array([given[0]]))[1], np.arange(1, 16)
    prior = jm.uncertainty.diag[rest] + 0.5
    ratio = jm.uncertainty.kriging(np.array([0]), rest, 0.5).var / prior
    assert (ratio <= 1 + 1e-12).all() and (jm.uncertainty.kriging(np.array([0]), rest).var / prior > 1).any()
    np.testing.assert_allclose(post.sd[rest], s * np.sqrt(np.maximum(ratio, VAR_FLOOR)), rtol=1e-12)
    assert post.sd[1] < 0.5 * np.median(post.sd[family > 0])
    for narrow in (0.5, 0.0):
        other = JointModel(engine, JointParams(rho=0.5, scale="row", narrow=narrow), np.zeros(16, bool))
        np.testing.assert_allclose(other.posterior(pred, nan, given, inp).sd[rest],
                                   s * np.maximum(ratio, VAR_FLOOR) ** (narrow / 2), rtol=1e-12)
    # a dataset of the zoo given a result: relative to what its stored records leave
    old = data.block(np.array([2]))
    pred, inp, stored = engine.predict(old)[0], engine.row_inputs(old)[0], data.Y[2]
    K0 = np.flatnonzero(~np.isnan(stored))
    post = jm.posterior(pred, stored, {3: 0.6}, inp)
    ratio = (jm.uncertainty.kriging(np.sort(np.r_[3, K0]), np.array([9])).var[0]
             / jm.uncertainty.kriging(K0, np.array([3, 9])).var[1])
    s = condition(inp, np.array([3]), np.array([0.6]))[1]
    assert ratio < 0.9  # (the result explains part of model 9's variance: the test can fail)
    np.testing.assert_allclose(post.sd[9], s * np.sqrt(max(ratio, VAR_FLOOR)), rtol=1e-12)
    again = jm.posterior(pred, stored, {int(K0[0]): 0.5}, inp)  # (replaces a stored record: no new known cell)
    np.testing.assert_allclose(again.sd[[3, 9]], condition(inp, K0[:1], np.array([0.5]))[1])


def test_results_given_narrow_the_model_scale_from_the_answer_without_them():
    """The "model" scale: the answer without the results (the spread times the model's sd given the stored records,
    at least VAR_FLOOR of its own), times the same narrowing (exponent 1: the sd given every known cell, up to where
    the floor binds)."""
    from recsys.engines.joint import VAR_FLOOR

    data, Y, family = _family_zoo()
    engine = make_engine("hybrid", seed=0).fit(data)
    new = data.block(np.array([7]))
    pred, inp, nan = engine.predict(new)[0], engine.row_inputs(new)[0], np.full(16, np.nan)
    given, rest = {0: float(Y[7, 0]), 5: float(Y[7, 5])}, np.setdiff1d(np.arange(16), [0, 5])
    for narrow in (1.0, 0.5, 0.0):
        jm = JointModel(engine, JointParams(rho=0.5, scale="model", narrow=narrow), np.zeros(16, bool))
        s = condition(inp, np.array([0, 5]), np.array([given[0], given[5]]))[1]
        prior = jm.uncertainty.diag[rest] + 0.5
        ratio = np.maximum(jm.uncertainty.kriging(np.array([0, 5]), rest, 0.5).var / prior, VAR_FLOOR)
        np.testing.assert_allclose(jm.posterior(pred, nan, given, inp).sd[rest],
                                   s * np.sqrt(prior) * ratio ** (narrow / 2), rtol=1e-12)
    assert ratio.min() < 0.5  # (the results explain much of the twins' variance: the exponent shows)