"""Per-dataset metrics against hand-computed values and scipy / sklearn; aggregates."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import ndcg_score

from recsys.evaluation.metrics import (dataset_metrics, kendall_tau_b, mean_over_datasets, mean_std_over_reps,
                                       metric_names, ndcg_at_k, pearson, regret_at_k, spearman)


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
    with pytest.raises(ValueError):
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
