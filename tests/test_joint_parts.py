"""The joint distribution's parts, each against its definition written out (recsys.engines.joint): the fixed
streams of normals, the pools and their borrowing, the covariance's draws and their conditioning (Matheron's
rule), the row's draws, bounds, candidates and shares of wins, the parameters' state. Small inputs, no fits."""

from __future__ import annotations

import math

import numpy as np
import pytest

import recsys.engines.joint as J
from recsys.engines.joint import (COLD_MODEL, MIN_POOL, N_DRAWS, POOLS, JointModel, JointParams, Pool, RowPosterior,
                                  brier, pool_name, stream_normals)
from recsys.engines.stages.kriging import DenseCovariance, LowRankCovariance, krige_row

MASK = (1 << 64) - 1


def _splitmix_finalizer(x: int) -> int:
    """splitmix64's finalizer (Steele, Lea and Flood 2014) in plain Python integers."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def test_mix_is_splitmix64s_finalizer():
    xs = [0, 1, 2, 0x9E3779B97F4A7C15, MASK, 123456789012345]
    got = J._mix(np.array(xs, dtype=np.uint64))
    assert [int(v) for v in got] == [_splitmix_finalizer(x) for x in xs]


def test_stream_normals_read_the_table_cyclically_shifted_per_block_of_columns():
    """Up to N_DRAWS draws: model j reads column j mod width of the fixed table, from row shift(j div width, salt)
    on, cyclically; the shift is splitmix64 of (block * golden + salt * M1 + golden) mod N_DRAWS."""
    table = J._normal_table(5)
    width = J._TABLE_WIDTH
    cols = np.array([0, 3, width - 1, width, 2 * width + 7])
    for salt in (0, 2):
        got = stream_normals(5, N_DRAWS, cols, salt=salt)
        for i, j in enumerate(cols.tolist()):
            key = ((j // width) * 0x9E3779B97F4A7C15 + salt * 0xBF58476D1CE4E5B9 + 0x9E3779B97F4A7C15) & MASK
            shift = _splitmix_finalizer(key) % N_DRAWS
            np.testing.assert_array_equal(got[:, i], np.roll(table[:, j % width], -shift))
    assert not np.array_equal(stream_normals(5, 8, cols), stream_normals(5, 8, cols, salt=1))  # salt 0 by default
    assert np.array_equal(stream_normals(5, 8, cols), stream_normals(5, 8, cols, salt=0))
    # the first n of a stream do not depend on n, up to the table's rows
    np.testing.assert_array_equal(stream_normals(5, N_DRAWS, cols)[:N_DRAWS - 1], stream_normals(5, N_DRAWS - 1, cols))


def test_stream_normals_beyond_the_table_are_hashed_box_muller():
    """Rows from N_DRAWS on are each hashed: key = mix(base ^ j golden) + i golden, base = mix(seed golden +
    salt + golden); u1 = (high 32 bits + 1/2) / 2^32, u2 = low 32 bits / 2^32; sqrt(-2 log u1) cos(2 pi u2).
    The rows before are the table's, as for fewer draws: the first n never depend on n."""
    n, seed, salt = N_DRAWS + 3, 9, 4
    cols = np.array([1, 700])
    got = stream_normals(seed, n, cols, salt=salt)
    assert got.shape == (n, 2)
    np.testing.assert_array_equal(got[:N_DRAWS], stream_normals(seed, N_DRAWS, cols, salt=salt))
    np.testing.assert_array_equal(got[:10], stream_normals(seed, 10, cols, salt=salt))
    base = _splitmix_finalizer((seed * 0x9E3779B97F4A7C15 + salt + 0x9E3779B97F4A7C15) & MASK)
    for c, j in enumerate(cols.tolist()):
        for i in (N_DRAWS, N_DRAWS + 1, n - 1):
            key = (_splitmix_finalizer(base ^ ((j * 0x9E3779B97F4A7C15) & MASK)) + i * 0x9E3779B97F4A7C15) & MASK
            x = _splitmix_finalizer(key)
            u1, u2 = ((x >> 32) + 0.5) / 2.0 ** 32, (x & 0xFFFFFFFF) / 2.0 ** 32
            assert got[i, c] == pytest.approx(math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2), abs=1e-12)
    # default salt 0
    np.testing.assert_array_equal(stream_normals(seed, n, cols), stream_normals(seed, n, cols, salt=0))


def test_the_empty_pool_is_the_standard_normals_quantiles():
    from statistics import NormalDist

    pool = Pool(np.array([]))
    assert pool.n == 200
    want = [NormalDist().inv_cdf((i + 0.5) / 200) for i in range(200)]
    np.testing.assert_allclose(pool.values, want, atol=2e-4)
    pool = Pool([3, 1, 2])  # (a list: sorted floats)
    assert pool.values.dtype == float and list(pool.values) == [1.0, 2.0, 3.0]


def test_pool_quantiles_and_excess_written_out():
    v = np.array([-1.0, 0.0, 2.0, 5.0])
    pool = Pool(v)
    for q in (0.1, 0.125, 0.3, 0.5, 0.9):
        assert pool.quantile(q) == pytest.approx(np.interp(q, (np.arange(4) + 0.5) / 4, v), abs=1e-15)
    t = np.array([-3.0, -1.0, 0.0, 1.0, 2.0, 6.0])
    np.testing.assert_allclose(pool.excess(t), [np.maximum(v - x, 0).mean() for x in t], atol=1e-15)
    np.testing.assert_allclose(pool.excess([0, 2]), [np.maximum(v, 0).mean(), np.maximum(v - 2, 0).mean()])


def test_pool_transform_clips_far_normals_to_the_tables_ends():
    pool = Pool(np.linspace(-3, 4, 50))
    table = pool._table
    assert len(table) == len(J._GRID)
    np.testing.assert_array_equal(pool.transform(np.array([-60.0, -6.0, 6.0, 60.0])),
                                  [table[0], table[0], table[-1], table[-1]])
    g = np.array([-0.0025 + 1e-9, 0.3])
    np.testing.assert_array_equal(pool.transform(g.copy()), table[np.rint((g + 6) * 200).astype(int)])


def test_pool_borrowing_reaches_the_nearest_pools_until_it_holds_enough():
    def params(**sizes):
        return JointParams(pools={k: np.full(n, float(POOLS.index(k) if k in POOLS else 99)) for k, n in sizes.items()})

    # its own when it holds MIN_POOL
    p = params(k2=MIN_POOL, k1=5, k3=5)
    assert p.pool("k2").n == MIN_POOL
    # one step each way: k1 + k2 + k3 (in that order), not k4
    p = params(k1=10, k2=10, k3=10, k4=50)
    got = p._values("k2")
    assert list(got) == [1.0] * 10 + [2.0] * 10 + [3.0] * 10
    # not enough one step away: two steps (k1 .. k4 for k2; the pools below only as far as they go)
    p = params(k1=5, k2=5, k3=5, k4=30, few=100)
    assert sorted(set(p._values("k2"))) == [1.0, 2.0, 3.0, 4.0] and len(p._values("k2")) == 45
    # exactly MIN_POOL one step away is enough
    p = params(k2=10, k3=MIN_POOL - 10, k4=100)
    assert len(p._values("k2")) == MIN_POOL
    # one step each way is enough: nothing from two steps below (cold) nor from further above
    p = params(cold=5, k2=10, k3=25, few=100)
    assert sorted(set(p._values("k2"))) == [2.0, 3.0] and len(p._values("k2")) == 35
    # nowhere near enough: every pool but the cold models' (none at all: nothing)
    p = JointParams(pools={"k1": np.ones(3), "most": np.ones(4), COLD_MODEL: np.ones(9)})
    assert len(p._values("some")) == 7 and len(p._values("k1")) == 7
    assert len(JointParams(pools={"k1": np.zeros(0)})._values("k1")) == 0
    assert JointParams(pools={}).pool("few").n == 200  # (standard normal quantiles)
    # models without records: their own however few, else the cold datasets' pool (borrowing as it does)
    p = params(cold=40, **{COLD_MODEL: 3})
    assert len(p._values(COLD_MODEL)) == 3
    assert len(params(cold=40)._values(COLD_MODEL)) == 40


def test_pool_name_by_share_of_models_known():
    assert pool_name(1, 1) == "most" and pool_name(0, 1) == "cold"
    assert pool_name(1, 3) == "few" and pool_name(2, 3) == "some" and pool_name(3, 3) == "most"
    assert pool_name(3, 4, given=True) == "k3" and pool_name(5, 40, given=True) == "few"


def test_brier_shares_a_tie_for_the_best():
    truth = np.array([0.9, 0.9, 0.5, 0.95])
    among = np.array([True, True, True, False])
    p = np.array([0.5, 0.3, 0.2, 0.7])
    assert brier(p, truth, among) == pytest.approx((0.5 - 0.5) ** 2 + (0.3 - 0.5) ** 2 + 0.2 ** 2)
    assert brier(np.array([1.0, 0, 0, 0]), truth, np.array([True, False, True, True])) == pytest.approx(2.0)


def test_joint_params_state_round_trip_with_default_prefixes():
    p = JointParams(pools={"cold": np.array([-1.0, 2.0]), "k1": np.array([0.5])}, rho=0.0, scale="row", factor=0.35,
                    seed=7, kriging=False, narrow=0.5)
    state = p.to_state()
    assert all(k.startswith("cal_joint_") for k in state)
    assert state["cal_joint_pool_cold"].dtype == float
    q = JointParams.from_state(state)
    assert (q.rho, q.scale, q.factor, q.seed, q.kriging, q.narrow) == (0.0, "row", 0.35, 7, False, 0.5)
    assert sorted(q.pools) == ["cold", "k1"] and q.pools["cold"].dtype == float
    assert JointParams.from_state({k.replace("cal_joint_", "x_"): v for k, v in state.items()}, prefix="x_").seed == 7
    ints = dict(state, cal_joint_pool_k1=np.array([1, 2]), cal_joint_params=np.array([0, 1, 1, 7, 0]))
    q = JointParams.from_state(ints)  # (a file from before the narrowing's exponent: the whole share)
    assert q.pools["k1"].dtype == float and isinstance(q.rho, float) and q.factor == 1.0 and q.narrow == 1.0
    for bad in ([0.1, 0.0, 0, 0, 1], [-0.1, 1, 0, 0, 1], [0.1, 1, 2, 0, 1], [0.1, 1, 0, 0], [0.1, 1, 0, 0, 1, 0.7],
                [0.1, 1, 0, 0, 1, 0.5, 1]):
        with pytest.raises(ValueError):
            JointParams.from_state(dict(state, cal_joint_params=np.array(bad, float)))


def test_independent_params_are_the_absolute_residuals_with_both_signs():
    class Cal:
        abs_residuals = {"cold": np.array([0.1, 0.3]), "few": np.zeros(0)}
        noise_scale = 0.6

    p = JointParams.independent(Cal())
    assert sorted(p.pools) == ["cold"] and sorted(p.pools["cold"]) == [-0.3, -0.1, 0.1, 0.3]
    assert (p.factor, p.seed, p.kriging) == (0.6, 0, False)
    assert JointParams.independent(Cal(), seed=3).seed == 3


# -- the covariance's draws ----------------------------------------------------------------------------------
def _dense_conditional(S, K, U):
    """Universal kriging written out: W = S_UK A^-1, g = A^-1 1 / q, b = 1 - W 1, P = W + b g', var."""
    A = S[np.ix_(K, K)]
    Ai = np.linalg.inv(A)
    W = S[np.ix_(U, K)] @ Ai
    one = np.ones(len(K))
    q = one @ Ai @ one
    g = Ai @ one / q
    b = 1 - W.sum(1)
    var = np.diag(S)[U] - (W * S[np.ix_(U, K)]).sum(1) + b ** 2 / q
    return W + np.outer(b, g), var


def test_dense_conditional_draws_are_matherons_rule_written_out():
    """e = Z L' (Z the models' salt-1 streams, L the Cholesky factor of S); a conditional draw of U given K is
    (e_U - P e_K) / sqrt(var), whether made from the rows of L or from every model's draws once made."""
    rng = np.random.default_rng(1)
    m, n = 9, 64
    X = rng.normal(size=(m, m))
    S = X @ X.T / m + np.eye(m) * 0.1
    K, U = np.array([1, 4, 6]), np.array([0, 2, 3, 5, 7, 8])
    P, var = _dense_conditional(S, K, U)
    Z = stream_normals(3, n, np.arange(m), salt=1)
    E = Z @ np.linalg.cholesky(S).T
    want = (E[:, U] - E[:, K] @ P.T) / np.sqrt(var)
    unc = J._Uncertainty(DenseCovariance(S), seed=3, n_draws=n)
    kr = unc.kriging(K, U)
    np.testing.assert_allclose(kr.var, var, rtol=1e-7)  # (the kriging's ridge)
    pos = np.arange(len(U))
    np.testing.assert_allclose(kr.standard_draws(pos), want, atol=1e-9)  # from the rows of L
    for _ in range(2):  # asked for enough models: every model's draws are made once (E), the same answer
        unc.full(n)
    assert unc.full(n) is not None
    np.testing.assert_allclose(kr.standard_draws(pos), want, atol=1e-9)
    np.testing.assert_allclose(kr.standard_draws(pos[:2], 10), want[:10, :2], atol=1e-9)
    np.testing.assert_allclose(unc.draws(np.array([2, 0])), E[:, [2, 0]], atol=1e-12)


def test_the_dense_draws_of_every_model_are_made_once_enough_models_were_asked():
    S = np.eye(16) * 2.0
    unc = J._Uncertainty(DenseCovariance(S), seed=0, n_draws=8)
    assert unc.full(8) is None  # asked once: 8 >= 16 is false
    E = unc.full(5)  # asked twice: 16 >= 16
    assert E is not None and E.shape == (5, 16)
    np.testing.assert_allclose(unc.full(8), unc._Z @ unc._L.T)
    assert unc.full(3).shape == (3, 16)


def test_low_rank_draws_with_more_known_models_than_asked_written_out():
    """More known models than asked: Zf (V_c - P V_K)' + Zi_c sqrt(psi_c) - N P' with N the salt-5 streams of the
    asked models times a square root of P Psi_K P' (the known models' own parts, projected), over sqrt(var)."""
    rng = np.random.default_rng(2)
    m, n = 30, 32
    V, psi = rng.normal(size=(m, 2)) * 0.4, rng.uniform(0.1, 0.3, m)
    S = V @ V.T + np.diag(psi)
    K = np.arange(0, 20)
    U = np.arange(20, 30)
    P, var = _dense_conditional(S, K, U)
    unc = J._Uncertainty(LowRankCovariance(V, psi), seed=4, n_draws=n)
    kr = unc.kriging(K, U)
    pos = np.array([0, 3, 4])
    cols = U[pos]
    Pp = P[pos]
    Q = (Pp * psi[K]) @ Pp.T
    want = (stream_normals(4, n, np.arange(2), salt=3) @ (V[cols] - Pp @ V[K]).T
            + stream_normals(4, n, cols, salt=2) * np.sqrt(psi[cols])
            - stream_normals(4, n, cols, salt=5) @ np.linalg.cholesky((Q + Q.T) / 2).T) / np.sqrt(var[pos])
    np.testing.assert_allclose(kr.standard_draws(pos), want, atol=1e-8)
    # as many known models as asked: the factors' rank (Matheron's rule with the known models' own streams)
    K2, U2 = np.arange(3), np.arange(3, 30)
    P2, var2 = _dense_conditional(S, K2, U2)
    kr2 = unc.kriging(K2, U2)
    pos2 = np.array([0, 1, 2])
    c2 = U2[pos2]
    Zf, Zi = stream_normals(4, n, np.arange(2), salt=3), stream_normals(4, n, np.arange(m), salt=2)
    e = Zf @ V.T + Zi * np.sqrt(psi)
    np.testing.assert_allclose(kr2.standard_draws(pos2), (e[:, c2] - e[:, K2] @ P2[pos2].T) / np.sqrt(var2[pos2]),
                               atol=1e-8)


@pytest.mark.parametrize("low_rank, k", [(False, 3), (True, 3), (True, 12)])
def test_the_kriging_with_the_levels_prior_is_that_of_s_plus_rho_written_out(low_rank, k):
    """With ``rho > 0`` (a dataset without records given results) the level is N(0, rho): the conditional of U
    given K is the kriging of T = S + rho 11', P = T_UK T_KK^-1, var = diag(T_UU - P T_KU), never above the
    universal kriging's (the level unknown); the draws are Matheron's rule with the level's own fixed draws c,
    ``(c (1 - P 1) + e_U - P e_K) / sqrt(var)`` (more known models than asked, low rank: the known models' own parts
    are drawn projected, so only the draws' covariance is compared)."""
    rng = np.random.default_rng(6)
    m, rho = 20, 0.7
    V, psi = rng.normal(size=(m, 2)) * 0.5, rng.uniform(0.1, 0.4, m)
    S = V @ V.T + np.diag(psi)
    K = np.sort(rng.choice(m, k, replace=False))
    U = np.setdiff1d(np.arange(m), K)
    T = S + rho
    P = T[np.ix_(U, K)] @ np.linalg.inv(T[np.ix_(K, K)])
    var = np.diag(T)[U] - (P * T[np.ix_(U, K)]).sum(1)
    n = 40000 if k > 6 else 64
    cov = LowRankCovariance(V, psi) if low_rank else DenseCovariance(S)
    unc = J._Uncertainty(cov, seed=2, n_draws=n)
    kr = unc.kriging(K, U, rho)
    np.testing.assert_allclose(kr.var, var, rtol=1e-7)
    uk = unc.kriging(K, U).var
    assert (kr.var <= uk + 1e-12).all() and (kr.var < uk - (1e-3 if k < 6 else 1e-5)).any()
    pos = np.arange(6)
    for draws in (64, n):  # the first n draws, within the table's 1,024 draws and beyond
        few = J._Uncertainty(cov, seed=2, n_draws=draws).kriging(K, U, rho)
        np.testing.assert_array_equal(few.standard_draws(pos, 10), few.standard_draws(pos)[:10])
    if k > len(pos):
        g = kr.standard_draws(pos) * np.sqrt(var[pos])
        want = T[np.ix_(U, U)] - P @ T[np.ix_(K, U)]
        np.testing.assert_allclose(np.cov(g.T), want[np.ix_(pos, pos)], atol=0.03)
        return
    e = unc.draws(np.arange(m))
    c = math.sqrt(rho) * unc.level_draws
    want = (c[:, None] * (1 - P.sum(1))[None, :] + e[:, U] - e[:, K] @ P.T) / np.sqrt(var)
    np.testing.assert_allclose(kr.standard_draws(pos), want[:, pos], atol=1e-8)


def test_the_spread_of_a_dataset_without_records_given_results_written_out():
    """A dataset without records given results at K: their (population) sd times sqrt(v_all / v_K), v the expected
    variance of the profile plus an error N(0, S) over the models (all of them; those of K), pooled with the
    feature prior as the fit pools a dataset's records (weights k - 1 and 3): results of models that the profile
    and the covariance expect to be alike (the plan's picks often are) do not make the dataset look narrow. One
    result: the prior's spread. A dataset with records: its records and results pooled as the fit pools them."""
    from recsys.engines.joint import condition

    rng = np.random.default_rng(10)
    A = rng.normal(size=(8, 8))
    S = A @ A.T / 8 + 0.1 * np.eye(8)
    profile = np.linspace(-1.0, 1.0, 8)
    K, y = np.array([2, 3, 5]), np.array([0.61, 0.6, 0.66])

    def v(idx):
        B = S[np.ix_(idx, idx)]
        return profile[idx].var() + (np.trace(B) - B.sum() / len(idx)) / len(idx)

    assert v(K) < v(np.arange(8))  # (the correction widens: the test can fail)
    sd = y.std() * math.sqrt(v(np.arange(8)) / v(K))
    got = condition(_row_inputs(S, counts=False), K, y)[1]
    assert got == pytest.approx(math.exp((3 * math.log(0.2) + 2 * math.log(sd)) / 5), rel=1e-12)
    assert got > math.exp((3 * math.log(0.2) + 2 * math.log(y.std())) / 5)
    assert condition(_row_inputs(S, counts=False), K[:1], y[:1])[1] == pytest.approx(0.2, rel=1e-12)
    rec = _row_inputs(S, counts=False, models=[0], values=[0.5], fit_profile=[-1.0])
    raw = np.r_[0.5, y].std()
    assert condition(rec, K, y)[1] == pytest.approx(math.exp((3 * math.log(0.2) + 3 * math.log(raw)) / 6), rel=1e-12)
    # low rank: the same expected variance from the factors
    V, psi = rng.normal(size=(8, 2)), rng.uniform(0.1, 0.3, 8)
    for idx in (None, K):
        assert J._expected_var(LowRankCovariance(V, psi), profile, idx) == pytest.approx(
            J._expected_var(DenseCovariance(V @ V.T + np.diag(psi)), profile, idx), rel=1e-12)


def test_independent_uncertainty_draws_blocks_and_diagonal():
    unc = J._Uncertainty(5, seed=2, n_draws=16)
    assert unc.n == 5
    np.testing.assert_array_equal(unc.diag, np.ones(5))
    np.testing.assert_array_equal(unc.block(np.array([0, 3]), np.array([3, 1])), [[0.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(unc.draws(np.array([4, 1])), stream_normals(2, 16, np.array([4, 1]), salt=2))
    low = J._Uncertainty(LowRankCovariance(np.ones((3, 1)), np.array([0.5, 1, 2])), seed=2, n_draws=16)
    assert low.n == 3
    np.testing.assert_allclose(low.block(np.array([0, 2]), np.array([2])), [[1.0], [3.0]])
    np.testing.assert_allclose(low.diag, [1.5, 2, 3])
    assert low.psi.dtype == float and low.V.dtype == float
    cols = np.array([2, 0])  # (low rank: the factors' fixed draws times V, plus each model's own stream times sqrt(psi))
    want = stream_normals(2, 16, np.arange(1), salt=3) @ np.ones((1, 2)) + stream_normals(2, 16, cols, salt=2) * \
        np.sqrt([2.0, 0.5])
    np.testing.assert_allclose(low.draws(cols), want, atol=1e-12)


def test_uncertainty_is_built_once_per_covariance_seed_and_draws(monkeypatch):
    monkeypatch.setattr(J, "_CACHE", None)
    cov = DenseCovariance(np.eye(3))
    a = J._uncertainty(cov, 1, 64)
    assert J._uncertainty(cov, 1, 64) is a and (a.seed, a.n_draws) == (1, 64)
    assert J._uncertainty(cov, 2, 64) is not a and J._uncertainty(cov, 1, 32).n_draws == 32
    ind = J._uncertainty(4, 5, 16)
    assert (ind.n, ind.seed, ind.n_draws) == (4, 5, 16)


def test_psd_returns_the_cholesky_factor_of_a_positive_definite_matrix():
    S = np.array([[2.0, 0.5], [0.5, 1.0]])
    S2, L = J._psd(S)
    np.testing.assert_allclose(L, np.linalg.cholesky(S))
    S3, L3 = J._psd(np.array([[1.0, 2.0], [2.0, 1.0]]))  # indefinite: the nearest PSD and a square root
    np.testing.assert_allclose(L3 @ L3.T, S3, atol=1e-12)
    assert np.linalg.eigvalsh(S3).min() > -1e-12
    # (eigenvalues 3 and -1, eigenvectors (1, 1) and (1, -1) / sqrt(2): the -1 set to 0 leaves 1.5 everywhere)
    np.testing.assert_allclose(S3, np.full((2, 2), 1.5), atol=1e-12)


# -- one row ---------------------------------------------------------------------------------------------------
def _row(mu, sd, known, cold, pool, cold_pool, n=64, factor=1.0):
    g_all = stream_normals(1, n, np.arange(len(mu)), salt=7)
    return RowPosterior(np.asarray(mu, float), np.asarray(sd, float), np.asarray(known), pool, cold_pool,
                        np.asarray(cold), factor, lambda cols, k: g_all[:k, cols], n)


def test_row_errors_and_draws_against_their_pools():
    pool, cold_pool = Pool(np.linspace(-2, 3, 40)), Pool(np.linspace(-6, 1, 40))
    mu, sd = [0.5, 0.95, 0.02, 0.7], [0.1, 0.2, 0.1, 0.0]
    post = _row(mu, sd, [False, False, False, True], [False, True, False, False], pool, cold_pool)
    g = stream_normals(1, 64, np.arange(4), salt=7)
    cols = np.array([0, 1, 2])
    want_err = np.column_stack([0.1 * pool.transform(g[:, 0].copy()), 0.2 * cold_pool.transform(g[:, 1].copy()),
                                0.1 * pool.transform(g[:, 2].copy())])
    np.testing.assert_allclose(post.errors(cols), want_err, atol=1e-15)
    assert post.errors(cols).shape == (64, 3) and post.errors(cols, 5).shape == (5, 3)
    np.testing.assert_allclose(post.errors(np.array([0, 2])), want_err[:, [0, 2]], atol=1e-15)
    d = post.draws(np.arange(4))
    want = np.clip(np.column_stack([np.array(mu[:3]) + want_err, np.full(64, 0.7)]), 0, 1)
    np.testing.assert_allclose(d, want, atol=1e-15)
    assert d.max() == 1.0 and d.min() == 0.0  # (clipped at both ends here)
    np.testing.assert_allclose(post.draws(cols, factor=0.5, n=7), np.clip(np.array(mu[:3]) + 0.5 * want_err[:7], 0, 1))
    assert post.draws(cols).shape == (64, 3)


def test_row_bounds_and_candidates():
    pool = Pool(np.linspace(-2, 2, 1001))
    post = _row([0.80, 0.70, 0.50, 0.78, 0.90], [0.05, 0.05, 0.05, 0.0, 0.0], [False, False, False, True, False],
                np.zeros(5, bool), pool, pool, factor=0.5)
    cols = np.arange(5)
    lo, hi = post._bounds(cols, 1.0)
    q_lo, q_hi = pool.quantile(J._TAIL), pool.quantile(1 - J._TAIL)
    np.testing.assert_allclose(lo, [0.80 + 0.05 * q_lo, 0.70 + 0.05 * q_lo, 0.50 + 0.05 * q_lo, 0.78, 0.90])
    np.testing.assert_allclose(hi, [0.80 + 0.05 * q_hi, 0.70 + 0.05 * q_hi, 0.50 + 0.05 * q_hi, 0.78, 0.90])
    lo2, hi2 = post._bounds(cols, 2.0)
    np.testing.assert_allclose(hi2[:3] - np.array([0.8, 0.7, 0.5]), 2 * (hi[:3] - np.array([0.8, 0.7, 0.5])))
    # (q_hi = 1.996) among the first four: the known 0.78 is the highest lower bound; model 0 reaches 0.85 above
    # it, models 1 and 2 (0.75, 0.55 with the row's factor 0.5) do not
    among = np.array([True, True, True, True, False])
    assert list(post.candidates(among)) == [0, 3]
    assert list(post.candidates(among, factor=2.0)) == [0, 1, 3]  # model 1 reaches 0.70 + 0.1 * 1.996
    assert list(post.candidates(np.array([False, True, True, True, False]), factor=0.1)) == [3]
    assert list(post.candidates()) == [4]  # model 4 lies at 0.90 (sd 0): nothing else reaches it
    assert list(post.candidates(np.zeros(5, bool))) == []
    # among the known ones, only those tied at the top stay
    post2 = _row([0.6, 0.9, 0.9, 0.5], [0.2, 0, 0, 0], [False, True, True, True], np.zeros(4, bool), pool, pool)
    assert list(post2.candidates()) == [0, 1, 2]


def test_win_shares_share_ties_at_the_ends_and_at_known_values():
    X = np.array([[1.0, 1.0, 0.3],      # a tie at 1: half each
                  [0.0, 0.0, 0.0],      # all at 0: a third each
                  [0.4, 0.7, 0.7],      # a tie at a known value 0.7: half each
                  [0.2, 0.5, 0.1]])     # no tie
    out = J._win_shares(X, np.array([0.7]))
    np.testing.assert_allclose(out, np.array([0.5 + 1 / 3, 0.5 + 1 / 3 + 0.5 + 1, 1 / 3 + 0.5]) / 4)
    assert out.dtype == float
    # a tie that is not at a known value nor at an end is not looked for (continuous draws do not tie)
    np.testing.assert_allclose(J._win_shares(np.array([[0.4, 0.4]]), np.array([])), [1.0, 0.0])


def test_joint_model_of_an_engine_without_a_covariance_is_the_independent_fallback():
    class NoCovariance:
        def row_inputs(self, block):
            raise AssertionError("not asked")

    class NoneCovariance(NoCovariance):
        covariance = None

    class Kriging(NoCovariance):
        covariance = DenseCovariance(np.eye(2))

    for engine in (NoCovariance(), NoneCovariance(), object()):
        jm = JointModel(engine, JointParams(), np.zeros(2, bool))
        assert not jm.kriging and jm.inputs(None) is None
        assert jm.uncertainty.n == 2 and jm.uncertainty.n_draws == N_DRAWS
    assert JointModel(Kriging(), JointParams(), np.zeros(2, bool)).kriging
    assert not JointModel(Kriging(), JointParams(kriging=False), np.zeros(2, bool)).kriging
    jm = JointModel(object(), JointParams(), [0, 1], n_draws=32)
    assert jm.cold_models.dtype == bool and jm.uncertainty.n_draws == 32


def test_conditioned_centres_stay_in_the_unit_interval_whatever_the_engines_map():
    """condition() clips its centres to [0, 1] itself: an engine whose map into accuracies does not (here the
    identity) still gets accuracies, the given results at their values."""
    from recsys.engines.joint import RowInputs, condition

    S = np.full((4, 4), 0.05) + np.eye(4) * 0.1
    inp = RowInputs(profile=np.array([4.0, -4.0, 0.0, 1.0]), spread=0.3, log_spread_prior=math.log(0.3),
                    models=np.zeros(0, np.int64), values=np.zeros(0), fit_profile=np.zeros(0),
                    cov=DenseCovariance(S), clip=lambda a: a)
    centres, s, K, y = condition(inp, np.array([2]), np.array([0.6]))
    assert centres[2] == 0.6 and list(K) == [2] and list(y) == [0.6] and s > 0
    assert centres[0] == 1.0 and centres[1] == 0.0 and 0.0 < centres[3] < 1.0


def test_expected_improvement_is_the_calibrated_distributions_by_default():
    pool = Pool(np.linspace(-2, 2, 9))
    post = RowPosterior(np.array([0.7, 0.8]), np.array([0.1, 0.05]), np.array([False, False]), pool, pool,
                        np.zeros(2, bool), 1.0, None)
    cols = np.arange(2)
    np.testing.assert_array_equal(post.expected_improvement(cols, 0.75), post.expected_improvement(cols, 0.75, 1.0))
    assert not np.allclose(post.expected_improvement(cols, 0.75), post.expected_improvement(cols, 0.75, 2.0))


def _row_inputs(S, counts=True, rows=4, models=(), values=(), fit_profile=()):
    from recsys.engines.joint import RowInputs

    m = len(S)
    return RowInputs(profile=np.linspace(-1.0, 1.0, m), spread=0.2, log_spread_prior=math.log(0.2),
                     models=np.array(models, np.int64), values=np.array(values, float),
                     fit_profile=np.array(fit_profile, float), cov=DenseCovariance(S), clip=lambda a: a,
                     cov_counts=np.full(m, float(rows)) if counts else None, cov_rows=rows, cov_shrink=0.25)


def _joined_block(S, K, y, m_fit, rows, s=None):
    """S with the block of K replaced by (1 - w) S_KK + w R, written out (w = 1 / (rows^2 / rows + 1)); ``s`` the
    row's spread (default: pooled as the fit pools a dataset's records)."""
    from recsys.engines.stages.scale import pooled_scale
    from recsys.features.data import Cells

    k = len(K)
    if s is None:
        s = float(pooled_scale(Cells(np.zeros(k, np.int64), K, y, (1, len(S)), assume_sorted=True),
                               np.array([math.log(0.2)]))[0])
    u = y / s - m_fit
    u = (u - u.mean()) * math.sqrt(k / (k - 1))
    w = 1 / (rows ** 2 / rows + 1)
    R = w * 0.75 * np.outer(u, u)
    R[np.diag_indices(k)] = w * u * u
    S2 = S.copy()
    S2[np.ix_(K, K)] = (1 - w) * S[np.ix_(K, K)] + R
    return S2


@pytest.mark.parametrize("n_given, rows", [(4, 4), (5, 4), (7, 4), (5, 1)])
def test_results_given_to_a_dataset_outside_the_covariance_join_its_block(n_given, rows):
    """condition() of a dataset without records, once it has COV_MIN_KNOWN results or more: exactly the kriging
    with the block of its models replaced by (1 - w) S_kk + w R (kriging.krige_row_joined); with fewer, from a
    model file without the counts, or when no dataset entered the covariance: the covariance as fitted."""
    from recsys.engines.joint import condition

    rng = np.random.default_rng(8)
    A = rng.normal(size=(8, 8))
    S = A @ A.T / 8 + 0.1 * np.eye(8)
    K = np.array([0, 1, 2, 4, 5, 6, 7])[:n_given]
    y = rng.uniform(0.3, 0.9, n_given)
    got = condition(_row_inputs(S, rows=rows), K, y)[0]
    as_fitted = condition(_row_inputs(S, counts=False), K, y)[0]
    np.testing.assert_array_equal(condition(_row_inputs(S, rows=0), K, y)[0], as_fitted)
    if n_given < 5:
        np.testing.assert_array_equal(got, as_fitted)
        return
    # (the spread of a dataset without records weighs the results against the covariance as fitted)
    s = condition(_row_inputs(S, counts=False), K, y)[1]
    profile = np.linspace(-1.0, 1.0, 8)
    S2 = _joined_block(S, K, y, profile[K], rows, s)
    level, alpha = krige_row(DenseCovariance(S2), K, y / s - profile[K])
    want = s * (level + profile + S2[:, K] @ alpha)
    want[K] = y
    np.testing.assert_allclose(got, np.clip(want, 0, 1), rtol=1e-7, atol=1e-9)
    assert np.abs(got - as_fitted).max() > 1e-4


def test_results_given_to_a_dataset_with_records_join_its_block_with_them():
    """A dataset of the zoo (stored records, in the covariance or not) given results: the block of its records
    and results together, its residuals at each (the fit's profile at a record, the row's at a result; a result
    replaces the record of its model); results that only repeat its records: its kriging as fitted."""
    from recsys.engines.joint import condition

    rng = np.random.default_rng(9)
    A = rng.normal(size=(8, 8))
    S = A @ A.T / 8 + 0.1 * np.eye(8)
    F, vals, fprof = np.array([1, 3, 4, 6, 7]), np.array([0.6, 0.7, 0.5, 0.8, 0.4]), np.array([0.3, -0.2, 0.1, 0.5, 0.0])
    stored = dict(models=F, values=vals, fit_profile=fprof)
    inp = _row_inputs(S, rows=3, **stored)
    G, gv = np.array([0, 4]), np.array([0.65, 0.55])  # model 4's result replaces its record
    got = condition(inp, G, gv)[0]
    K = np.array([0, 1, 3, 4, 6, 7])
    y = np.array([0.65, 0.6, 0.7, 0.55, 0.8, 0.4])
    m_fit = np.array([np.linspace(-1.0, 1.0, 8)[0], 0.3, -0.2, 0.1, 0.5, 0.0])
    want = condition(_row_inputs(_joined_block(S, K, y, m_fit, 3), counts=False, **stored), G, gv)[0]
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)
    assert np.abs(got - condition(_row_inputs(S, counts=False, **stored), G, gv)[0]).max() > 1e-4
    as_fitted = condition(_row_inputs(S, counts=False, **stored), F[:2], vals[:2])
    np.testing.assert_array_equal(condition(inp, F[:2], vals[:2])[0], as_fitted[0])
    plus = vals[:2] + [0.0, 0.01]  # a changed value is a result: the block joins
    assert np.abs(condition(inp, F[:2], plus)[0] - condition(_row_inputs(S, counts=False, **stored), F[:2], plus)[0]).max() > 1e-6


def test_stream_normals_wrap_their_hashes_without_a_warning():
    """The hashes multiply uint64 scalars that overflow (seed x golden, salt x M1): wrapping is meant, and no
    RuntimeWarning reaches the user, from the table's rows or from the hashed ones beyond it."""
    import warnings
    cols = np.array([1, 700])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for n in (8, N_DRAWS + 3):
            for salt in (2, 4, 5):
                assert np.isfinite(stream_normals(9, n, cols, salt=salt)).all()


def test_p_stays_is_the_known_models_share_of_p_best_at_most_one():
    """P(the best known cell stays the best): the known models' P(best) summed (capped at 1 against rounding),
    the number `recsys plan` prints and the sequential protocol scores."""
    pool = Pool(np.linspace(-2, 2, 40))
    post = _row([0.8, 0.7, 0.75, 0.6], [0.05, 0.05, 0.0, 0.0], [False, False, True, True], np.zeros(4, bool), pool,
                pool, n=256)
    pb = post.p_best()
    assert post.p_stays(pb) == pytest.approx(pb[2] + pb[3]) and 0 < post.p_stays(pb) < 1
    assert post.p_stays(np.array([0.1, 0.0, 0.5, 0.5 + 1e-9])) == 1.0
