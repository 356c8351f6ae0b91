"""The sequential protocol and the conditioning check (issue 18)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from recsys.evaluation.conditioning import conditioning_check, conditioning_summary
from recsys.evaluation.protocols import FitCache
from recsys.evaluation.sequential import (MAX_SINGLE, N_FOLDS, random_expectation, regrets, sequential,
                                          sequential_folds, sequential_markdown, policy_means)

from conftest import planted_low_rank


def test_random_expectation_is_exact():
    truth = np.array([0.5, 0.9, 0.7, 0.9, 0.2])
    reg, found = random_expectation(truth, 3)
    for n in (1, 2, 3):
        subsets = list(itertools.combinations(truth, n))
        want = np.mean([100 * (0.9 - max(s)) for s in subsets])
        assert reg[n - 1] == pytest.approx(want)
        assert found[n - 1] == pytest.approx(np.mean([max(s) >= 0.9 for s in subsets]))


def test_regret_and_found():
    truth = np.array([0.5, 0.9, 0.7, np.nan])
    cand = ~np.isnan(truth)
    reg, found = regrets(truth, cand, [2, 0, 1], 3)
    assert reg == pytest.approx([20.0, 20.0, 0.0]) and found == [0.0, 0.0, 1.0]


def test_folds_hold_targets_alone_or_in_ten_folds(dn_data):
    folds = sequential_folds(dn_data, [0])
    assert len(folds) == N_FOLDS and sorted(np.concatenate([f.rows for f in folds]).tolist()) == list(range(270))
    for f in folds:
        assert not f.known[f.rows].any() and f.known[np.setdiff1d(np.arange(270), f.rows)].all()
    few = sequential_folds(dn_data, [0], targets=np.arange(MAX_SINGLE))
    assert len(few) == MAX_SINGLE and all(len(f.rows) == 1 for f in few)


@pytest.fixture(scope="module")
def small():
    data, _ = planted_low_rank(n_datasets=16, n_models=10, density=1.0, seed=5)
    return data


@pytest.fixture(scope="module")
def played(small):
    return sequential(small, ["hybrid", "popularity", "additive"], targets=[0, 1], steps=4)


def test_every_policy_plays_every_target(played, small):
    means = policy_means(played)
    assert set(means.index) == {"plan", "plan-refit", "static", "popularity", "additive", "random"}
    assert (means["targets"] == 2).all()
    df = played.per_dataset
    assert (df[[f"regret@{n}" for n in range(1, 5)]].diff(axis=1).iloc[:, 1:] <= 1e-9).all().all()  # never rises
    plan = df[df["engine"] == "plan"].set_index("dataset")["picks"]
    refit = df[df["engine"] == "plan-refit"].set_index("dataset")["picks"]
    assert all(plan[d].split()[0] == refit[d].split()[0] for d in plan.index)  # the same first pick
    assert "plan" in sequential_markdown(played)


@pytest.mark.slow
def test_the_sequential_protocol_is_deterministic(played, small):
    again = sequential(small, ["hybrid", "popularity", "additive"], targets=[0, 1], steps=4)
    cols = ["engine", "dataset", "picks", *[f"regret@{n}" for n in range(1, 5)]]
    assert played.per_dataset[cols].equals(again.per_dataset[cols])


def test_conditioning_check_runs_and_shares_the_fits(small):
    cache = FitCache()
    rows = conditioning_check(small, [0], cache=cache)
    assert len(rows) and rows["pearson_conditioned"].notna().any()
    summ = conditioning_summary(rows).set_index("bin")
    assert "all" in summ.index and math.isfinite(summ.loc["all", "gap"])
    assert len(cache._fits) == 1 and len(cache._cals) == 1
