"""Per-dataset metrics against hand-computed values and scipy / sklearn; aggregates."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, strategies as st
from scipy import stats
from sklearn.metrics import ndcg_score

from recsys.evaluation.metrics import (dataset_metrics, kendall_tau_b, mean_over_datasets, mean_std_over_reps,
                                       metric_names, ndcg_at_k, pearson, regret_at_k, spearman)

from conftest import expected_regret


def _vectors(seed, n, ties=False):
    rng = np.random.default_rng(seed)
    if ties:
        return rng.integers(0, 4, n) / 4.0, rng.integers(0, 3, n) / 3.0
    return rng.random(n), rng.random(n)


# -- correlations ------------------------------------------------------------------
def test_pearson_hand_computed():
    # x centered (-1, 0, 1), y centered (-1, -1, 2): r = 3 / sqrt(2 * 6)
    assert pearson([1, 2, 3], [0, 0, 3]) == pytest.approx(3 / math.sqrt(12))
    assert pearson([0.1, 0.2, 0.3], [0.3, 0.2, 0.1]) == pytest.approx(-1.0)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_correlations_match_scipy(seed, ties):
    t, p = _vectors(seed, 12, ties)
    assert pearson(t, p) == pytest.approx(stats.pearsonr(t, p)[0], abs=1e-12)
    assert spearman(t, p) == pytest.approx(stats.spearmanr(t, p)[0], abs=1e-12)
    assert kendall_tau_b(t, p) == pytest.approx(stats.kendalltau(t, p)[0], abs=1e-12)


def test_kendall_tau_b_hand_computed():
    # pairs of (1,2,3,4) vs (1,3,2,4): 5 concordant, 1 discordant, no ties -> 4/6
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # tie in x: pairs (12)(13)(23) with x=(1,1,2), y=(1,2,3): C=2, D=0, ties_x=1 -> 2/sqrt(2*3)
    assert kendall_tau_b([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))


@pytest.mark.parametrize("fn", [pearson, spearman, kendall_tau_b])
def test_correlations_nan_when_constant_or_too_short(fn):
    assert math.isnan(fn([0.1, 0.1, 0.1], [0.2, 0.5, 0.3]))
    assert math.isnan(fn([0.2, 0.5, 0.3], [0.7, 0.7, 0.7]))
    assert math.isnan(fn([0.2], [0.3]))
    assert math.isnan(fn([], []))


def test_nan_cells_are_left_out():
    t = [0.1, np.nan, 0.3, 0.5]
    p = [0.2, 0.9, np.nan, 0.6]
    assert pearson(t, p) == pytest.approx(pearson([0.1, 0.5], [0.2, 0.6]))
    assert regret_at_k(t, p, 1) == 0.0


# -- NDCG ----------------------------------------------------------------------------
def test_ndcg_hand_computed():
    t, p = [0.9, 0.5, 0.7], [0.1, 0.3, 0.2]
    dcg = 0.5 + 0.7 / math.log2(3)
    idcg = 0.9 + 0.7 / math.log2(3)
    assert ndcg_at_k(t, p, 2) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(t, p, 1) == pytest.approx(0.5 / 0.9)
    assert ndcg_at_k(t, [3, 1, 2], 3) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 5, 20])
@pytest.mark.parametrize("ties", [False, True])
def test_ndcg_matches_sklearn(seed, k, ties):
    t, p = _vectors(seed, 10, ties)
    t = t + 0.05  # sklearn gives 0 (we: NaN) when every gain is 0
    assert ndcg_at_k(t, p, k) == pytest.approx(ndcg_score([t], [p], k=k), abs=1e-12)


def test_ndcg_nan_without_gain():
    assert math.isnan(ndcg_at_k([0.0, 0.0], [0.3, 0.1], 1))
    with pytest.raises(ValueError, match="k must be at least 1, got 0"):
        ndcg_at_k([0.1], [0.1], 0)


# -- regret ------------------------------------------------------------------------
def test_regret_hand_computed():
    t, p = [0.9, 0.5, 0.7], [0.1, 0.3, 0.2]
    assert regret_at_k(t, p, 1) == pytest.approx(40.0)   # picks 0.5
    assert regret_at_k(t, p, 2) == pytest.approx(20.0)   # best of {0.5, 0.7}
    assert regret_at_k(t, p, 3) == pytest.approx(0.0)
    assert regret_at_k(t, p, 10) == pytest.approx(0.0)   # k larger than n
    assert regret_at_k([0.4], [0.1], 1) == 0.0
    assert math.isnan(regret_at_k([np.nan], [0.1], 1))


def test_regret_ties_are_broken_at_random_in_expectation():
    # tie for first between truth 0.9 and 0.5: expected best (0.9 + 0.5) / 2
    assert regret_at_k([0.9, 0.5, 0.7], [0.2, 0.2, 0.1], 1) == pytest.approx(20.0)
    assert regret_at_k([0.9, 0.5, 0.7], [0.2, 0.2, 0.1], 2) == pytest.approx(0.0)
    # one fixed (0.5) plus one of three tied (0.9, 0.6, 0.7): expected best 2.2 / 3
    assert regret_at_k([0.5, 0.9, 0.6, 0.7], [0.3, 0.2, 0.2, 0.2], 2) == pytest.approx(100 * (0.9 - 2.2 / 3))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("k", [1, 2, 3])
def test_regret_equals_mean_over_tie_orders(seed, k):
    t, p = _vectors(seed, 6, ties=True)
    values = []
    for perm in itertools.permutations(range(6)):
        # a random tie order: sort by -p, then by a random priority
        order = sorted(range(6), key=lambda i: (-p[i], perm[i]))
        values.append(100 * (t.max() - max(t[i] for i in order[:k])))
    assert regret_at_k(t, p, k) == pytest.approx(np.mean(values), abs=1e-9)


def test_dataset_metrics_names_and_values():
    t, p = _vectors(0, 10)
    out = dataset_metrics(t, p, 3)
    assert list(out) == metric_names(3) == ["pearson", "spearman", "kendall", "ndcg@3", "regret@1", "regret@3"]
    assert out["pearson"] == pytest.approx(pearson(t, p))
    assert out["kendall"] == pytest.approx(kendall_tau_b(t, p))
    assert out["ndcg@3"] == pytest.approx(ndcg_at_k(t, p, 3))
    assert out["regret@3"] == pytest.approx(regret_at_k(t, p, 3))
    assert metric_names(1) == ["pearson", "spearman", "kendall", "ndcg@1", "regret@1"]


# -- aggregates ----------------------------------------------------------------------
def test_aggregates_nan_mean_then_mean_std_over_reps():
    df = pd.DataFrame({"engine": ["a"] * 6, "rep": [0, 0, 0, 1, 1, 1],
                       "pearson": [0.2, np.nan, 0.4, 0.5, 0.7, 0.9]})
    per_rep = mean_over_datasets(df, ["pearson"], ["engine", "rep"])
    assert per_rep["pearson"].tolist() == pytest.approx([0.3, 0.7])
    s = mean_std_over_reps(per_rep, ["pearson"], ["engine"])
    assert s.loc[0, "mean"] == pytest.approx(0.5)
    assert s.loc[0, "std"] == pytest.approx(np.std([0.3, 0.7], ddof=1))
    assert s.loc[0, "n_reps"] == 2


# -- every column of dataset_metrics, against independent computations (issue 21) ----------------------
def test_dataset_metrics_regret_at_1_and_spearman_are_their_own_values():
    # regret@1 picks the top prediction (truth 0.5), regret@2 its best of two (0.7): a wrong cut changes the value
    t, p = [0.9, 0.5, 0.7, 0.2], [0.1, 0.4, 0.3, 0.2]
    out = dataset_metrics(t, p, 2)
    assert out["regret@1"] == pytest.approx(40.0)
    assert out["regret@2"] == pytest.approx(20.0)
    assert out["spearman"] == pytest.approx(stats.spearmanr(t, p)[0])
    assert out["spearman"] != pytest.approx(out["pearson"])
    out = dataset_metrics(t, p, 1)
    assert list(out) == ["pearson", "spearman", "kendall", "ndcg@1", "regret@1"] and out["regret@1"] == pytest.approx(40.0)


@pytest.mark.parametrize("seed", range(4))
def test_dataset_metrics_equal_scipy_sklearn_and_the_subsets(seed):
    t, p = _vectors(seed, 9, ties=True)
    t = t + 0.1
    out = dataset_metrics(t, p, 3)
    assert out["pearson"] == pytest.approx(stats.pearsonr(t, p)[0], abs=1e-12)
    assert out["spearman"] == pytest.approx(stats.spearmanr(t, p)[0], abs=1e-12)
    assert out["kendall"] == pytest.approx(stats.kendalltau(t, p)[0], abs=1e-12)
    assert out["ndcg@3"] == pytest.approx(ndcg_score([t], [p], k=3), abs=1e-12)
    assert out["regret@1"] == pytest.approx(expected_regret(t, p, 1), abs=1e-9)
    assert out["regret@3"] == pytest.approx(expected_regret(t, p, 3), abs=1e-9)


@pytest.mark.parametrize("constant", ["truth", "pred"])
def test_dataset_metrics_of_a_constant_vector(constant):
    t, p = [0.9, 0.5, 0.7], [0.1, 0.3, 0.2]
    if constant == "truth":
        t = [0.6, 0.6, 0.6]
    else:
        p = [0.2, 0.2, 0.2]
    out = dataset_metrics(t, p, 2)
    assert math.isnan(out["pearson"]) and math.isnan(out["spearman"]) and math.isnan(out["kendall"])
    assert math.isfinite(out["ndcg@2"]) and math.isfinite(out["regret@1"]) and math.isfinite(out["regret@2"])


def test_a_row_of_a_matrix_is_a_vector():
    t = np.array([[0.9, 0.5, 0.7, 0.2]])
    p = np.array([0.1, 0.4, 0.3, 0.2])
    assert dataset_metrics(t, p, 2) == pytest.approx(dataset_metrics(t[0], p, 2))
    assert dataset_metrics(p, t, 2) == pytest.approx(dataset_metrics(p, t[0], 2))
    with pytest.raises(ValueError, match=r"truth and pred differ in length \(4 vs 3\)"):
        pearson(t, p[:3])


def test_float32_predictions_are_scored_in_float64():
    rng = np.random.default_rng(3)
    t = rng.random(50)
    p = (t + rng.normal(0, 0.1, 50)).astype(np.float32)
    p64 = p.astype(np.float64)
    assert pearson(t, p) == pytest.approx(stats.pearsonr(t, p64)[0], abs=1e-14)
    assert pearson(p, t) == pytest.approx(stats.pearsonr(p64, t)[0], abs=1e-14)


def test_correlations_are_clipped_to_minus_one_and_one():
    # the raw formula gives 1.0000000000000002 and -1.0000000000000002 here
    t = [0.8158535541215322, 0.002738500170148095, 0.8574042765875693, 0.033585575305464355, 0.7296554464299441]
    p = [1.2931067094599502, 0.8646220211906093, 1.3150025632837195, 0.8808774075706125, 1.247683163155954]
    assert pearson(t, p) == 1.0
    t = [0.6884467305709401, 0.3889214239791038, 0.13509650502241122, 0.7214883401940817, 0.5253543224757259,
         0.31024187555895566, 0.4858353588317891]
    p = [-0.9030514583643359, -0.10377910948505731, 0.5735434229147395, -0.9912217877256158, -0.4678453197382093,
         0.10617439391032724, -0.36239040757612284]
    assert pearson(t, p) == -1.0


def test_one_cell():
    assert ndcg_at_k([0.7], [0.2], 5) == 1.0
    assert regret_at_k([0.7], [0.2], 5) == 0.0
    assert math.isnan(pearson([0.7], [0.2])) and math.isnan(spearman([0.7], [0.2]))


def test_k_below_one_is_refused_with_its_value():
    with pytest.raises(ValueError, match="k must be at least 1, got 0"):
        ndcg_at_k([0.1, 0.2], [0.1, 0.2], 0)
    with pytest.raises(ValueError, match="k must be at least 1, got -1"):
        regret_at_k([0.1, 0.2], [0.1, 0.2], -1)


def test_lower_is_better():
    from recsys.evaluation.metrics import lower_is_better

    assert lower_is_better("regret@1") and lower_is_better("regret@5")
    assert not lower_is_better("pearson") and not lower_is_better("ndcg@5")


def test_aggregates_keep_group_order_and_missing_group_keys():
    df = pd.DataFrame({"bin": ["b", "a", None, "b", "a", None], "pearson": [0.1, 0.2, 0.3, 0.5, 0.4, np.nan]})
    out = mean_over_datasets(df, ["pearson"], ["bin"])
    assert out["bin"].tolist()[:2] == ["b", "a"] and pd.isna(out["bin"].iloc[2])
    assert out["pearson"].tolist() == pytest.approx([0.3, 0.3, 0.3])
    reps = pd.DataFrame({"engine": ["z", "z", "a", "a"], "pearson": [0.1, 0.3, 0.5, 0.7], "kendall": [0.0, 0.2, 0.4, 0.6]})
    s = mean_std_over_reps(reps, ["pearson", "kendall"], ["engine"])
    assert s[["engine", "metric"]].values.tolist() == [["z", "pearson"], ["a", "pearson"], ["z", "kendall"],
                                                        ["a", "kendall"]]
    assert s["mean"].tolist() == pytest.approx([0.2, 0.6, 0.1, 0.5])
    one = mean_std_over_reps(reps.iloc[:1], ["pearson"], ["engine"])
    assert math.isnan(one.loc[0, "std"]) and one.loc[0, "n_reps"] == 1


# -- properties: random inputs with ties, constants and NaN, against scipy / scikit-learn -----------------
_LEVELS = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
# (accuracies to 9 decimals: deviations of 1e-160 would underflow to 0 in the correlations' products)
_CELL = st.one_of(_LEVELS, st.floats(0, 1, allow_nan=False).map(lambda x: round(x, 9)), st.just(float("nan")))


@st.composite
def _pairs(draw, min_size=0, max_size=12):
    n = draw(st.integers(min_size, max_size))
    t = draw(st.lists(_CELL, min_size=n, max_size=n))
    p = draw(st.one_of(st.lists(_CELL, min_size=n, max_size=n),
                       st.lists(st.just(draw(_LEVELS)), min_size=n, max_size=n)))  # a constant prediction
    return np.array(t, dtype=float), np.array(p, dtype=float)


def _kept(t, p):
    ok = ~(np.isnan(t) | np.isnan(p))
    return t[ok], p[ok]


def _scipy(fn, t, p):
    if len(t) < 2 or np.ptp(t) == 0 or np.ptp(p) == 0:
        return float("nan")
    return float(fn(t, p)[0])


@given(_pairs())
def test_property_correlations_equal_scipy(pair):
    t, p = _kept(*pair)
    for mine, ref in ((pearson, stats.pearsonr), (spearman, stats.spearmanr), (kendall_tau_b, stats.kendalltau)):
        got, want = mine(*pair), _scipy(ref, t, p)
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-9), mine.__name__
        assert math.isnan(got) or -1.0 <= got <= 1.0


@given(_pairs(), st.integers(1, 14))
def test_property_ndcg_equals_sklearn(pair, k):
    t, p = _kept(*pair)
    got = ndcg_at_k(*pair, k)
    if not (t > 0).any():
        assert math.isnan(got)
    elif len(t) == 1:
        assert got == 1.0
    else:
        assert got == pytest.approx(ndcg_score([t], [p], k=k), abs=1e-9)


@given(_pairs(max_size=9), st.integers(1, 10))
@example((np.array([0.9, 0.5, 0.7, 0.2]), np.array([0.1, 0.4, 0.3, 0.2])), 2)
@example((np.array([0.0, 0.0, 0.0, 0.75, 0.75]), np.zeros(5)), 4)  # (rounding once gave regret -1.1e-14)
def test_property_regret_and_dataset_metrics(pair, k):
    t, p = _kept(*pair)
    out = dataset_metrics(*pair, k)
    assert list(out) == metric_names(k)
    if len(t) == 0:
        assert all(math.isnan(v) for v in out.values())
        return
    for cut in {1, k}:
        want = expected_regret(t, p, cut)
        assert regret_at_k(*pair, cut) == pytest.approx(want, abs=1e-9)
        assert out[f"regret@{cut}"] == pytest.approx(want, abs=1e-9)
        assert 0.0 <= out[f"regret@{cut}"] <= 100.0
    assert out["regret@1"] >= out[f"regret@{k}"] - 1e-9
    spear = _scipy(stats.spearmanr, t, p)
    assert (math.isnan(out["spearman"]) and math.isnan(spear)) or out["spearman"] == pytest.approx(spear, abs=1e-9)
