"""The calibration's parts against their definitions (issue 21): strata, the conformal quantile and its pools,
intervals, P(best)'s edge cases, the model-file state, the hold-out masks and the rounds of ``calibrate``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys.engines import make_engine
from recsys.engines.calibration import STRATA, Calibration, calibrate, holdout_mask, stratum_of
from recsys.errors import ArtifactError, RecsysError
from recsys.features.data import Cells, ZooData


def test_strata_by_the_share_of_the_row_recorded():
    np.testing.assert_array_equal(stratum_of(np.array([0, 1, 3, 4, 6, 7, 9]), 9), [0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(stratum_of(np.array([0, 1]), 0), [0, 3])  # (no model: no division by 0)
    assert STRATA == ("cold", "few", "some", "most")


def test_the_conformal_quantile_of_each_stratum_and_the_pools_it_borrows():
    own = np.arange(1, 41) / 100.0  # 40 residuals: 0.01 ... 0.40
    cal = Calibration(abs_residuals={"few": own})
    # rank ceil((40 + 1) * 0.8) = 33 -> 0.33; at 0.99 the largest
    assert cal.quantile(1, 0.8) == pytest.approx(0.33)
    assert cal.quantile(1, 0.99) == pytest.approx(0.40)
    assert cal.quantile(1, 0.5) == pytest.approx(math.ceil(41 * 0.5) / 100)
    # a stratum of its own below 30 residuals borrows its neighbours ...
    cal = Calibration(abs_residuals={"cold": np.full(20, 0.5), "few": np.full(20, 0.1), "most": np.full(40, 0.9)})
    assert cal.quantile(0, 0.8) == pytest.approx(0.5)  # cold + few: 40 values, the 33rd is 0.5
    assert cal.quantile(1, 0.4) == pytest.approx(0.1)  # few + its neighbours (cold, some)
    assert cal.quantile(3, 0.8) == pytest.approx(0.9)  # most: its own 40
    # ... then everything; with nothing at all, an infinite half-width
    cal = Calibration(abs_residuals={"cold": np.full(10, 0.2), "most": np.full(10, 0.6)})
    assert cal.quantile(0, 0.3) == pytest.approx(0.2) and cal.quantile(0, 0.9) == pytest.approx(0.6)
    assert Calibration().quantile(2, 0.8) == math.inf
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(RecsysError, match=f"^give an interval level between 0 and 1 \\(e.g. 0.8\\): got {bad}$"):
            cal.quantile(0, bad)


def test_intervals_are_the_prediction_plus_minus_the_stratum_half_width_clipped():
    cal = Calibration(abs_residuals={"cold": np.full(40, 0.3), "most": np.full(40, 0.05)})
    pred = np.array([[0.1, 0.5, 0.9], [0.1, 0.5, 0.9]])
    lo, hi = cal.interval(pred, np.array([0, 3]))
    np.testing.assert_allclose(lo, [[0.0, 0.2, 0.6], [0.05, 0.45, 0.85]])
    np.testing.assert_allclose(hi, [[0.4, 0.8, 1.0], [0.15, 0.55, 0.95]])
    lo2, _ = cal.interval(pred.tolist(), np.array([0, 3]), level=0.5)  # (a list is read as an array)
    np.testing.assert_allclose(lo2, lo)
    # both bounds stay in [0, 1] whatever the prediction (an engine's answer outside it)
    lo3, hi3 = cal.interval(np.array([[1.5, -0.5]]), np.array([0]))
    np.testing.assert_allclose(lo3, [[1.0, 0.0]])
    np.testing.assert_allclose(hi3, [[1.0, 0.0]])


def test_p_best_rows_without_candidates_and_of_records_only():
    cal = Calibration(abs_residuals={"most": np.full(40, 0.1)}, rel_residuals={"most": np.linspace(-0.1, 0.1, 40)})
    pred = np.array([[0.5, 0.6, 0.7], [0.5, 0.6, 0.7]])
    among = np.array([[False, False, False], [True, True, False]])
    p = cal.p_best(pred, among=among)
    np.testing.assert_array_equal(p[0], [0, 0, 0])  # nobody competes: no probability
    assert p[1, 2] == 0 and p[1].sum() == pytest.approx(1.0) and p[1, 1] > p[1, 0]
    known = np.array([[0.8, 0.9, 0.9], [0.2, 0.9, 0.1]])
    np.testing.assert_allclose(cal.p_best(pred, known), [[0, 0.5, 0.5], [0, 1, 0]])  # records: as they are
    free = np.array([True, True, False])  # (models without any record in the zoo: a record here is still exact)
    np.testing.assert_allclose(cal.p_best(pred, known, unrecorded=free), [[0, 0.5, 0.5], [0, 1, 0]])
    np.testing.assert_allclose(cal.p_best(pred, scale=0.0), [[0, 0, 1], [0, 0, 1]], atol=1e-9)  # no noise
    wide = cal.p_best(pred, scale=3.0)
    assert wide[0, 0] > cal.p_best(pred)[0, 0]  # more noise, more chances for the last


def test_the_state_round_trips_and_a_damaged_pool_is_refused():
    cal = Calibration(abs_residuals={"cold": np.array([0.1, 0.2]), "most": np.array([0.3])},
                      rel_residuals={"cold": np.array([-0.1, 0.1]), "most": np.array([0.0])}, noise_scale=0.45)
    state = cal.to_state()
    assert sorted(state) == ["cal_abs_cold", "cal_abs_most", "cal_noise_scale", "cal_rel_cold", "cal_rel_most"]
    back = Calibration.from_state(state)
    assert back.noise_scale == 0.45 and set(back.abs_residuals) == {"cold", "most"}
    np.testing.assert_array_equal(back.rel_residuals["cold"], [-0.1, 0.1])
    assert Calibration.from_state({}) is None and Calibration().to_state() == {}
    assert Calibration.from_state({k: v for k, v in state.items() if k != "cal_noise_scale"}).noise_scale == 1.0
    for bad in (np.array([0.1, np.nan]), np.array([[0.1]]), np.array([np.inf])):
        with pytest.raises(ArtifactError, match="^re-create the model file with `recsys fit`: it holds a damaged "
                                                "residual pool 'cal_rel_most'$"):
            Calibration.from_state({**state, "cal_rel_most": bad})


def _cells(counts):
    """Cells of rows with ``counts`` records each over as many models as the largest count."""
    m = max(counts)
    Y = np.full((len(counts), m), np.nan)
    for r, c in enumerate(counts):
        Y[r, :c] = 0.5
    return Cells.from_dense(Y)


def test_holdout_masks_hide_whole_rows_and_a_share_of_the_others():
    cells = _cells([6, 6, 6, 1, 6, 6, 6, 6, 6, 6])
    for seed in range(5):
        hide = holdout_mask(cells, np.random.default_rng(seed), cold_fraction=0.2, cell_fraction=0.5)
        per_row = np.bincount(cells.d[hide], minlength=10)
        counts = cells.row_counts()
        cold = per_row == counts
        assert cold.sum() == 2  # round(0.2 * 10) whole rows
        partly = ~cold & (counts >= 2)
        assert ((per_row[partly] >= 1) & (per_row[partly] <= counts[partly] - 1)).all()  # each keeps a record
        assert per_row[3] in (0, 1) and (per_row[3] == 0 or cold[3])  # a single record: whole or nothing
    fixed = holdout_mask(cells, np.random.default_rng(0), cold_fraction=0.9, cell_fraction=0.0, cold=np.array([4]))
    per_row = np.bincount(cells.d[fixed], minlength=10)
    assert per_row[4] == 6 and (per_row[[0, 1, 2, 5]] == 1).all()  # (at least one hidden, even at 0%)
    assert not holdout_mask(_cells([3]), np.random.default_rng(0), cold_fraction=0.5, cell_fraction=0.5).any()
    most = holdout_mask(cells, np.random.default_rng(1), cold_fraction=0.99, cell_fraction=0.5)
    assert (np.bincount(cells.d[most], minlength=10) == cells.row_counts()).sum() == 9  # one row always kept


def _zoo(n_datasets, n_models=6, seed=0):
    rng = np.random.default_rng(seed)
    Y = rng.uniform(0.3, 0.9, size=(n_datasets, n_models))
    Y[rng.random(Y.shape) < 0.2] = np.nan
    Y[np.arange(n_datasets), rng.integers(0, n_models, n_datasets)] = 0.6
    return ZooData(Y=Y, model_features=rng.normal(size=(n_models, 2)), dataset_features=rng.normal(size=(n_datasets, 2)))


def test_calibrate_partitions_a_small_zoo_into_cold_rounds():
    data = _zoo(9)
    fits = []
    make = lambda: fits.append(1) or make_engine("popularity", seed=0)  # noqa: E731
    cal = calibrate(make, data, seed=0)
    assert len(fits) == 4  # min(4, 9 - 1) rounds, each dataset cold once
    cold = sum(len(v) for v in [cal.abs_residuals.get("cold", [])])
    assert cold == int(np.isfinite(data.Y).sum())  # every record was a cold-start residual once
    assert set(cal.abs_residuals) <= set(STRATA) and (np.diff(cal.abs_residuals["cold"]) >= 0).all()
    assert cal.noise_scale in (1.0, 0.8, 0.6, 0.45, 0.35, 0.25, 0.15)
    fits.clear()
    calibrate(make, data, seed=0, rounds=2)
    assert len(fits) == 2
    fits.clear()
    calibrate(make, _zoo(40), seed=0)
    assert len(fits) == 1  # above 30 recorded datasets: one round
    again = calibrate(lambda: make_engine("popularity", seed=0), data)  # (the default seed is 0)
    for name in cal.abs_residuals:
        np.testing.assert_array_equal(again.abs_residuals[name], cal.abs_residuals[name])  # same seed, same pools
    assert Calibration.from_state(calibrate(make, _zoo(1), seed=0).to_state()) is None  # nothing to hold out


def test_the_state_reads_pools_as_floats_and_refuses_damaged_joint_parameters():
    state = {"cal_abs_most": np.array([1, 2, 3]), "cal_rel_most": np.array([-1, 0, 1]), "cal_noise_scale": np.array(1)}
    back = Calibration.from_state(state)
    assert back.abs_residuals["most"].dtype == np.float64 and back.rel_residuals["most"].dtype == np.float64
    assert back.joint is None  # (a model file from before the joint distribution)
    for params in (np.array([1.0, 0.5]), np.array([1.0, 0.5, 7, 0, 1]), np.array([-1.0, 0.5, 0, 0, 1])):
        with pytest.raises(ArtifactError, match=r"^model file holds damaged joint parameters; re-create it with "
                                                r"`recsys fit`$"):
            Calibration.from_state({**state, "cal_joint_params": params})
    with pytest.raises(ArtifactError, match=r"^model file holds damaged residual pool 'k1'; re-create it with "
                                            r"`recsys fit`$"):
        Calibration.from_state({**state, "cal_joint_params": np.array([1.0, 0.5, 0, 0, 1]),
                                "cal_joint_pool_k1": np.array([np.nan])})
    joint = Calibration.from_state({**state, "cal_joint_params": np.array([0.25, 0.6, 1, 3, 1]),
                                    "cal_joint_pool_k1": np.array([-1.0, 1.0])}).joint
    assert (joint.rho, joint.factor, joint.scale, joint.seed, joint.kriging) == (0.25, 0.6, "row", 3, True)
    np.testing.assert_array_equal(joint.pools["k1"], [-1.0, 1.0])


def test_holdout_masks_of_few_rows_and_rows_without_records():
    def per_row(cells, **kw):
        return [np.bincount(cells.d[holdout_mask(cells, np.random.default_rng(seed), **kw)],
                            minlength=cells.shape[0]) for seed in range(6)]

    two = _cells([3, 3])  # (two rows: one whole, the other keeps a record)
    for hidden in per_row(two, cold_fraction=0.2, cell_fraction=0.5):
        assert sorted(hidden) == [1, 3] or sorted(hidden) == [2, 3]
    pair = _cells([2, 2, 2])  # (a row of two records not taken whole: one of them hidden)
    for hidden in per_row(pair, cold_fraction=0.01, cell_fraction=0.0):
        assert sorted(hidden) == [1, 1, 2]  # (one row whole: at least one, round(0.03) = 0)
    Y = np.full((8, 4), np.nan)
    Y[:4] = 0.5  # (rows 4 .. 7 without records: never drawn)
    empty = Cells.from_dense(Y)
    for hidden in per_row(empty, cold_fraction=0.5, cell_fraction=0.0):
        assert (hidden[:4] == 4).sum() == 2 and (hidden[:4] == 1).sum() == 2 and not hidden[4:].any()


def _with_empty_rows(data: ZooData, n: int) -> ZooData:
    Y = np.vstack([data.Y, np.full((n, data.n_models), np.nan)])
    return ZooData(Y=Y, model_features=np.asarray(data.models.matrix), dataset_features=np.vstack(
        [np.asarray(data.datasets.matrix), np.zeros((n, np.asarray(data.datasets.matrix).shape[1]))]))


@pytest.mark.parametrize("n_datasets, empty, single, rounds", [
    (2, 0, 0, 1), (3, 0, 0, 2), (9, 0, 0, 4), (30, 0, 0, 4), (31, 0, 0, 1),
    (28, 5, 0, 4),  # (datasets without records do not count: 28 recorded)
    (31, 0, 2, 1),  # (nor do they need two records: 31 recorded)
])
def test_calibrate_rounds_follow_the_recorded_datasets(n_datasets, empty, single, rounds):
    data = _zoo(n_datasets)
    if single:
        Y = data.Y.copy()
        Y[:single] = np.nan
        Y[:single, 0] = 0.6
        data = ZooData(Y=Y, model_features=np.asarray(data.models.matrix),
                       dataset_features=np.asarray(data.datasets.matrix))
    if empty:
        data = _with_empty_rows(data, empty)
    fits = []
    cal = calibrate(lambda: fits.append(1) or make_engine("popularity", seed=0), data, seed=0)
    assert len(fits) == rounds
    if 1 < rounds:  # (the rounds partition the datasets: each one's records are cold-start residuals once)
        assert len(cal.abs_residuals["cold"]) == int(np.isfinite(data.Y).sum())
