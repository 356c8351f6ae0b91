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
