"""benchmarks/ceilings.py: the reference points quoted against the quality targets."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def ceilings(data_dir):
    return load_benchmark("ceilings")


def test_test_set_sizes_are_the_smallest_consistent_denominator(ceilings):
    T = np.array([[0.95, 0.5, 0.55, np.nan],     # multiples of 1/20
                  [0.77, 0.76, 0.74, 0.7],       # 1/100
                  [1.0, 0.5, 0.0, 1.0]])         # 1/2
    assert ceilings._test_set_sizes(T).tolist() == [20, 100, 2]


def test_p1_reference_points_are_consistent(ceilings):
    fig = {}
    lines = ceilings.p1_section([0, 1], [], "hashing", fig)
    text = "\n".join(lines)
    assert "| popularity |" in text and "cold regret@1" in text
    pop = fig["engines"]["popularity"]["regret"][0]
    hindsight = next(r for label, (r, _) in fig["rules"].items() if "hindsight" in label)[0]
    # popularity picks one fixed model for every cold dataset: the best fixed model in hindsight
    # can only do as well or better on the same datasets.
    assert hindsight <= pop + 1e-9
    for label, ((mean, sd), pearson) in fig["rules"].items():
        assert 0 <= mean < 100 and sd >= 0, label
        assert pearson is None or -1 <= pearson <= 1, label


def test_p2_best_single_neighbour_is_the_best_of_all_others(ceilings, transfergraph):
    from scipy.stats import pearsonr

    from recsys.engines.stages.scale import standardize_dense as standardize
    from recsys.evaluation.protocols import as_zoo_data

    fig = {}
    lines = ceilings.p2_section("hashing", 2, fig)
    assert len(fig["rows"]) == 2 and any("NNLS oracle" in line for line in lines)
    data, _ = as_zoo_data(transfergraph, "hashing")
    T, Z = data.Y, np.nan_to_num(standardize(data.Y))
    for row in fig["rows"]:
        j = data.dataset_ids.index(row[0])
        has = ~np.isnan(T[j])
        others = [pearsonr(T[j, has], Z[i, has])[0] for i in range(len(T)) if i != j and Z[i, has].std() > 0]
        assert row[3] == pytest.approx(max(others))
        assert all(-1 <= v <= 1 for v in row[1:])


def test_wins_needed_is_the_sign_tests_threshold(ceilings):
    from recsys.evaluation.suite import sign_test

    for n in (1, 5, 6, 7, 13, 19, 270):
        w = ceilings.wins_needed(n)
        if w is None:
            assert sign_test(n, 0) >= 0.05
            continue
        assert sign_test(w, n - w) < 0.05 <= sign_test(w - 1, n - w + 1)
    assert ceilings.wins_needed(5) is None and ceilings.wins_needed(7) == 7 and ceilings.wins_needed(19) == 15


def test_fixed_hindsight_order_and_neighbour_oracle_on_a_hand_made_zoo(ceilings):
    # three targets; model 2 is second-best everywhere, models 0 and 1 each best on some, model 3 never recorded
    # on target 2
    T = np.array([[0.90, 0.50, 0.80, 0.10],
                  [0.20, 0.90, 0.80, 0.30],
                  [0.85, 0.40, 0.80, np.nan],
                  [0.88, 0.45, 0.79, 0.12]])  # dataset 3 behaves like dataset 0
    order, reg = ceilings.fixed_hindsight(T, np.array([0, 1, 2]), 2)
    # the most total gain over each target's worst model: model 2 (0.7 + 0.6 + 0.4), then model 0
    # (0.1 + 0 + 0.05 above it)
    assert order[:2] == [2, 0]
    # regret@1: 10, 10, 5 points; regret@2: 0, 10, 0
    np.testing.assert_allclose(reg, [25 / 3, 10 / 3])
    assert ceilings.neighbour_oracle(T, 0) is None  # fewer than 5 models in common
    assert ceilings.neighbour_oracle(T, 0, min_common=3) == 3
    # target 2 against datasets 0, 1 and 3 on its three models: Pearson 0.990, -0.687, 0.995
    assert ceilings.neighbour_oracle(T, 2, min_common=3) == 3
