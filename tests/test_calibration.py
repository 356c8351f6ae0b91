"""The calibration's parts against their definitions (issue 21): strata, the conformal quantile and its pools,
intervals, P(best)'s edge cases, the model-file state, the hold-out masks and the rounds of ``calibrate``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys.engines import Engine, make_engine
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


# -- the pools' thresholds and P(best)'s residual tables (mutation testing, issue 21) ------------------------


def test_a_pool_of_exactly_thirty_residuals_is_enough():
    """A stratum with 30 residuals of its own uses them; a stratum and its neighbours holding 30 together use
    those, not the whole table."""
    own = Calibration(abs_residuals={"few": np.full(30, 0.1), "some": np.full(40, 0.9)})
    assert own.quantile(1, 0.99) == pytest.approx(0.1)
    near = Calibration(abs_residuals={"cold": np.full(20, 0.1), "few": np.full(10, 0.2), "most": np.full(40, 0.9)})
    assert near.quantile(0, 0.99) == pytest.approx(0.2)


def test_unrecorded_models_take_their_strata_absolute_residuals_with_a_random_sign_unscaled():
    """Each unrecorded model is its prediction plus or minus one of the stratum's absolute residuals: with all of
    them 0.1, the one predicted 0.1 lower wins only when it goes up and the other down (1/4), whatever the
    factor on the shared residuals."""
    cal = Calibration(abs_residuals={"cold": np.full(40, 0.1)}, rel_residuals={"cold": np.linspace(-0.5, 0.5, 40)})
    pred = np.array([[0.5, 0.6]])
    for scale in (1.0, 0.2):
        np.testing.assert_allclose(cal.p_best(pred, unrecorded=np.array([True, True]), scale=scale),
                                   [[0.25, 0.75]], atol=0.01)


def test_a_model_can_beat_an_unrecorded_one_that_its_residual_brings_below_it():
    """An unrecorded model predicted 0.7 with absolute residuals up to 0.3 can fall to 0.4: a model predicted 0.5
    whose shared residuals reach 0.6 has a chance (the pruning keeps it)."""
    cal = Calibration(abs_residuals={"cold": np.linspace(0.0, 0.3, 40)},
                      rel_residuals={"cold": np.linspace(-0.1, 0.1, 40)})
    p = cal.p_best(np.array([[0.7, 0.5]]), unrecorded=np.array([True, False]))
    assert p[0, 1] > 0.01 and p[0].sum() == pytest.approx(1.0)


def test_an_unrecorded_model_can_beat_one_that_its_residual_lifts_it_above():
    """An unrecorded model predicted 0.5 with absolute residuals up to 0.3 can rise to 0.8: against a model predicted
    0.7 whose shared residuals reach down to 0.6 it has a chance (the pruning keeps it)."""
    cal = Calibration(abs_residuals={"cold": np.linspace(0.0, 0.3, 40)},
                      rel_residuals={"cold": np.linspace(-0.1, 0.1, 40)})
    p = cal.p_best(np.array([[0.5, 0.7]]), unrecorded=np.array([True, False]))
    assert p[0, 0] > 0.01 and p[0].sum() == pytest.approx(1.0)


def test_p_best_uses_only_the_pools_of_the_models_that_compete():
    """Among unrecorded models only, P(best) does not depend on the shared residuals nor on their factor; without
    unrecorded models, it does not depend on the absolute residuals (to the last bit: the same grid)."""
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.4, 0.6, size=(3, 5))
    wide = {"cold": np.linspace(0.0, 0.2, 40)}
    shared = {"cold": np.linspace(-0.1, 0.1, 40)}
    narrow = {"cold": np.r_[-0.3, np.linspace(-0.001, 0.001, 38), 0.3]}
    free = np.ones(5, bool)
    base = Calibration(abs_residuals=wide, rel_residuals=shared).p_best(pred, unrecorded=free)
    np.testing.assert_array_equal(Calibration(abs_residuals=wide, rel_residuals=narrow).p_best(pred, unrecorded=free),
                                  base)
    np.testing.assert_array_equal(Calibration(abs_residuals=wide, rel_residuals=shared).p_best(
        pred, unrecorded=free, scale=0.15), base)
    base = Calibration(abs_residuals=wide, rel_residuals=shared).p_best(pred)
    np.testing.assert_array_equal(Calibration(abs_residuals=narrow, rel_residuals=shared).p_best(pred), base)
    among = np.ones((3, 5), bool)
    among[:, 0] = False  # (the one unrecorded model does not compete: its pool is not read either)
    first = np.eye(5, dtype=bool)[0]
    base = Calibration(abs_residuals=wide, rel_residuals=shared).p_best(pred, unrecorded=first, among=among)
    np.testing.assert_array_equal(Calibration(abs_residuals=narrow, rel_residuals=shared).p_best(
        pred, unrecorded=first, among=among), base)


def test_without_residuals_p_best_is_the_best_prediction_unrecorded_models_too():
    pred = np.array([[0.5, 0.7, 0.6], [0.9, 0.1, 0.2]])
    for free in (None, np.array([True, True, False]), np.ones(3, bool)):
        np.testing.assert_array_equal(Calibration().p_best(pred, unrecorded=free), [[0, 1, 0], [1, 0, 0]])


def test_a_rows_tables_are_those_of_the_kinds_of_models_it_holds():
    """A table the row's models do not use stands still (one bin): on the other pool's grid it could need any
    number of bins."""
    from recsys.engines.calibration import RESOLUTION

    cal = Calibration(abs_residuals={"cold": np.linspace(0.0, 0.5, 40)},
                      rel_residuals={"cold": np.linspace(-0.001, 0.001, 40)})
    (shared, free), _ = cal._tables(0, 1.0, (True, False), RESOLUTION)
    assert shared.n > 1 and free.n == 1
    (shared, free), _ = cal._tables(0, 1.0, (False, True), RESOLUTION)
    assert shared.n == 1 and free.n > 1


def test_the_noise_factor_has_the_least_brier_score_on_the_fits_grid_a_tie_shared():
    """The noise factor is the factor whose P(best of the recorded models), integrated on the fit's coarser grid
    (FIT_RESOLUTION), has the least mean Brier score against the truth's best; a tie for the best shares it."""
    from recsys.engines.calibration import FIT_RESOLUTION, _fit_noise_scale
    from recsys.engines.joint import FACTORS

    rng = np.random.default_rng(1)
    cal = Calibration(abs_residuals={"cold": np.abs(rng.normal(0, 0.08, 60))},
                      rel_residuals={"cold": rng.normal(0, 0.08, 60)})

    def brier_scores(cases):
        scores = []
        for f in FACTORS:
            total = 0.0
            for pred, known, truth in cases:
                among = ~np.isnan(truth)
                t = np.where(among, truth, -np.inf)
                target = (t >= t.max()) / (t >= t.max()).sum()
                pb = cal.p_best(pred[None], known[None], scale=f, among=among[None], resolution=FIT_RESOLUTION)[0]
                total += float(((pb - target) ** 2).sum())
            scores.append(total / len(cases))
        return scores

    # the truth's best is a tie of the first two: P(best) shared between them scores best, the widest factor
    tie = [(np.array([0.6, 0.3, 0.5]), np.full(3, np.nan), np.array([0.7, 0.7, 0.5]))]
    rng = np.random.default_rng(118)
    pred = rng.uniform(0.4, 0.6, (3, 4))
    truth = np.round(pred + rng.normal(0, 0.05, pred.shape), 2)
    truth[0, 3] = np.nan  # (a model without a record on a held-out dataset: the best of the others)
    cases = [(p, np.full(4, np.nan), t) for p, t in zip(pred, truth)]
    for c in (tie, cases):
        assert _fit_noise_scale(cal, c) == FACTORS[int(np.argmin(brier_scores(c)))]


# -- calibrate's held-out datasets and cases ------------------------------------------------------------------


def test_the_noise_factor_is_fitted_on_at_most_max_cases_held_out_datasets(monkeypatch):
    """Of the held-out datasets with two hidden records or more, at most ``max_cases`` (2,000 by default, at least
    one a round) are the cases of P(best)'s noise factor."""
    from recsys.engines import calibration

    seen = []
    monkeypatch.setattr(calibration, "_fit_noise_scale", lambda cal, cases: seen.append(len(cases)) or 1.0)
    make = lambda: make_engine("popularity", seed=0)  # noqa: E731
    big = _zoo(2400)  # (one round, over 2,100 datasets with two hidden records or more)
    calibrate(make, big, seed=0, cell_fraction=0.6)
    calibrate(make, big, seed=0, cell_fraction=0.6, max_cases=10**6)
    assert seen[0] == 2000 and seen[1] > 2000
    seen.clear()
    calibrate(make, _zoo(40), seed=0, max_cases=1)
    calibrate(make, _zoo(9), seed=0, max_cases=6)  # (4 rounds: one case each)
    assert seen == [1, 4]


def test_a_cap_on_the_cases_at_as_many_as_there_are_changes_nothing():
    """Sampling the cases only when there are more than the cap: a cap equal to their number draws nothing, and
    the rounds after hide the same cells."""
    rng = np.random.default_rng(5)
    data = ZooData(Y=rng.uniform(0.3, 0.9, (9, 6)), model_features=rng.normal(size=(6, 2)),
                   dataset_features=rng.normal(size=(9, 2)))
    make = lambda: make_engine("popularity", seed=0)  # noqa: E731
    # (4 rounds, each hiding at least 2 records of every dataset: 9 cases a round, a cap of 36)
    capped = calibrate(make, data, seed=0, cell_fraction=0.9, max_cases=36)
    free = calibrate(make, data, seed=0, cell_fraction=0.9)
    assert set(capped.abs_residuals) == set(free.abs_residuals)
    for name in free.abs_residuals:
        np.testing.assert_array_equal(capped.abs_residuals[name], free.abs_residuals[name])
        np.testing.assert_array_equal(capped.rel_residuals[name], free.rel_residuals[name])
    assert capped.noise_scale == free.noise_scale


def test_a_stratum_without_held_out_cells_gets_no_pool():
    """Datasets of a single record are held out only whole (cold): the stratum of their row (one model of six
    recorded, "few") gets no pool, where no other held-out dataset falls in it."""
    rng = np.random.default_rng(3)
    Y = rng.uniform(0.3, 0.9, (40, 6))
    Y[:8, 1:] = np.nan
    data = ZooData(Y=Y, model_features=rng.normal(size=(6, 2)), dataset_features=rng.normal(size=(40, 2)))
    cal = calibrate(lambda: make_engine("popularity", seed=0), data, seed=0, cell_fraction=0.1)
    assert "few" not in cal.abs_residuals and "few" not in cal.rel_residuals
    assert all(len(v) for v in cal.abs_residuals.values())
    assert sum(map(len, cal.abs_residuals.values())) >= 8  # (the cold rows' and the partly hidden rows' cells)


class _Oracle(Engine):
    """Predicts the true accuracies ``truth`` (by dataset index), whatever it is fitted on."""

    name = "oracle"
    summary = "the true accuracies"

    def __init__(self, *, truth=None, seed: int = 0):
        self.truth = truth
        self.seed = seed

    def _fit(self, data: ZooData) -> None:
        pass

    def _predict(self, block):
        return self.truth[block.index]


def test_an_engine_that_predicts_every_cell_exactly_leaves_residuals_of_zero():
    """Each held-out dataset's residuals are its truth minus the refit's prediction for that same dataset (also
    where datasets that are not held out lie between them, and past the first block)."""
    rng = np.random.default_rng(4)
    truth = rng.uniform(0.3, 0.9, (45, 5))
    Y = truth.copy()
    Y[::3, 1:] = np.nan  # (one record: held out only when cold)
    data = ZooData(Y=Y, model_features=rng.normal(size=(5, 2)), dataset_features=rng.normal(size=(45, 2)))
    cal = calibrate(lambda: _Oracle(truth=truth), data, seed=0, block=4)
    assert sum(map(len, cal.abs_residuals.values())) > 20
    for name in cal.abs_residuals:
        np.testing.assert_array_equal(cal.abs_residuals[name], 0.0)
        np.testing.assert_array_equal(cal.rel_residuals[name], 0.0)


# -- the joint distribution's fit (fit_joint, its pools, _cold_model_pool) ---------------------------------------


def _hybrid():
    return make_engine("hybrid", seed=0)


@pytest.fixture(scope="module")
def joint_fit():
    """A kriging engine's calibration (seed 3) of a planted zoo of 40 datasets x 12 models, two models without
    records and two with one record each, and the hide/refit round it handed to ``fit_joint``."""
    from recsys.engines import calibration

    from conftest import planted_low_rank

    planted, _ = planted_low_rank(n_datasets=40, n_models=12, density=0.7, noise=0.02, seed=2)
    Y = planted.records.dense()
    Y[:, 10:] = np.nan
    for j in (8, 9):
        Y[np.flatnonzero(~np.isnan(Y[:, j]))[1:], j] = np.nan
    data = ZooData(Y=Y, model_features=np.asarray(planted.models.matrix),
                   dataset_features=np.asarray(planted.datasets.matrix))
    seen = []
    real = calibration.fit_joint
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(calibration, "fit_joint", lambda data, refits, **kw: seen.append(list(refits)) or real(
            data, refits, **kw))
        cal = calibrate(_hybrid, data, seed=3)
    return data, cal, seen[0]


def test_the_joint_parameters_carry_the_calibrations_seed(joint_fit):
    _, cal, refits = joint_fit
    assert cal.joint is not None and cal.joint.seed == 3 and len(refits) == 1


def test_every_joint_model_of_the_fit_flags_the_models_without_records_in_its_refit(joint_fit, monkeypatch):
    """Cold flags: the models without any record in the refit (here, two without records in the zoo and one
    whose single record was hidden), never those with one record."""
    from recsys.engines import calibration

    data, _, refits = joint_fit
    made = []

    class Recorded(calibration.JointModel):
        def __init__(self, engine, params, cold_models, *args, **kwargs):
            super().__init__(engine, params, cold_models, *args, **kwargs)
            made.append(self)

    monkeypatch.setattr(calibration, "JointModel", Recorded)
    calibration.fit_joint(data, refits, seed=3)
    train = {id(R.engine): R.train for R in refits}
    checked = [jm for jm in made if id(jm.engine) in train]
    assert len(checked) >= 2 + 2  # (the moments' and the pools' models, each scale's scoring models)
    counts = refits[0].train.records.col_counts()
    assert (counts == 0).sum() >= 3 and (counts == 1).any()
    for jm in checked:
        np.testing.assert_array_equal(jm.cold_models, train[id(jm.engine)].records.col_counts() == 0)


def test_the_joints_factor_and_scale_are_scored_on_the_held_out_cases_only(joint_fit, monkeypatch):
    """Each factor and scale is scored once per held-out case; without any case, nothing is scored (and nothing
    warns): factor 1 and the first scale."""
    import dataclasses
    import warnings

    from recsys.engines import calibration
    from recsys.engines.joint import FACTORS, SCALES

    data, _, refits = joint_fit
    scored = []
    real = calibration.brier
    monkeypatch.setattr(calibration, "brier", lambda *a: scored.append(1) or real(*a))
    one = np.zeros_like(refits[0].is_case)
    one[np.flatnonzero(refits[0].is_case)[0]] = True
    calibration.fit_joint(data, [dataclasses.replace(refits[0], is_case=one)], seed=3)
    assert len(scored) == len(FACTORS) * len(SCALES)
    scored.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        none = dataclasses.replace(refits[0], is_case=np.zeros_like(one))
        params = calibration.fit_joint(data, [none], seed=3)
    assert not scored and (params.factor, params.scale) == (1.0, SCALES[0])


def test_the_joint_is_fitted_on_at_most_max_case_cells_of_held_out_rows(joint_fit, monkeypatch):
    """The held-out datasets kept for the joint hold at most _MAX_CASE_CELLS values of n_models each (a random
    sample), at least one a refit."""
    from recsys.engines import calibration

    data, _, refits = joint_fit
    kept = []
    real = calibration._held_rows
    monkeypatch.setattr(calibration, "_held_rows", lambda refits, cells, rows_of, *a: kept.append(
        sum(map(len, rows_of))) or real(refits, cells, rows_of, *a))
    for budget in (7 * 12 + 10, 12, 5):  # (7.8 rows, one row, less than a row)
        monkeypatch.setattr(calibration, "_MAX_CASE_CELLS", budget)
        kept.clear()
        calibration.fit_joint(data, refits, seed=3)
        assert kept[0] == max(1, budget // data.n_models)


def test_the_cold_model_pool_hides_a_recorded_model_even_of_a_single_record():
    """Two recorded models, one of them with a single record: the extra refit hides one of them, and the
    models without records get a pool of their own."""
    from conftest import planted_low_rank

    planted, full = planted_low_rank(n_datasets=40, n_models=12, density=0.7, noise=0.02, seed=2)
    Y = np.full_like(full, np.nan)
    Y[:, 0] = full[:, 0]
    Y[5, 1] = full[5, 1]
    data = ZooData(Y=Y, model_features=np.asarray(planted.models.matrix),
                   dataset_features=np.asarray(planted.datasets.matrix))
    cal = calibrate(_hybrid, data, seed=0)
    assert len(cal.joint.pools["cold-model"]) >= 1


def _pools(rows, refits, models, rho, scale, narrow=1.0):
    """The joint's pools of ``rows`` under one scale and exponent (seed 3): the held-out answers' and the first
    results', and the first results' (k, residual, sd)."""
    from recsys.engines import calibration
    from recsys.engines.joint import JointParams

    jms = calibration._joint_models(refits, models, JointParams(rho=rho, scale=scale, seed=3, narrow=narrow))
    first, given = calibration._first_result_pools(rows, jms, True)
    return {**calibration._held_out_pools(rows, jms), **first}, given


def _cold_reveal_rows(joint_fit):
    """The held-out datasets without records of the refit (at least 6 hidden records: first results revealed),
    with what _pools needs."""
    from recsys.engines import calibration
    from recsys.engines.joint import JointModel, JointParams

    data, _, refits = joint_fit
    rows = calibration._held_rows(refits, data.records, [R.held for R in refits], 256)
    cold = [r for r in rows if np.isnan(r.stored).all() and len(r.hidden) >= 6]
    models = {0: JointModel(refits[0].engine, JointParams(seed=3), refits[0].train.records.col_counts() == 0)}
    return cold, refits, models


def test_the_narrowing_exponent_is_the_one_whose_first_results_score_best(joint_fit):
    """Of NARROWS, the exponent with the lowest mean CRPS (accuracy units: sd times the pool's CRPS of the
    normalized residual) of the first results' models not revealed, each exponent's k pools refitted; the
    scores differ (the choice matters), and the other pools are those of exponent 1."""
    from recsys.engines import calibration
    from recsys.engines.joint import NARROWS, JointModel, JointParams

    data, cal, refits = joint_fit
    rows = calibration._held_rows(refits, data.records, [R.held for R in refits], 256)
    models = {0: JointModel(refits[0].engine, JointParams(seed=3), refits[0].train.records.col_counts() == 0)}
    rho, scale = cal.joint.rho, cal.joint.scale
    assert rho == calibration._cold_level(rows, models)
    scores = {}
    for narrow in NARROWS:
        pools, given = _pools(rows, refits, models, rho, scale, narrow)
        params = JointParams(pools, rho, scale, 1.0, 3, True, narrow)
        res = [sd * params.pool(f"k{k}").crps(r / sd) for k, r, sd in given]
        scores[narrow] = float(np.mean(np.concatenate(res)))
        if narrow == cal.joint.narrow:
            assert all(np.array_equal(cal.joint.pools[k], v) for k, v in pools.items())
    assert cal.joint.narrow == min(NARROWS, key=lambda n: (scores[n], -n))
    assert len({round(v, 9) for v in scores.values()}) == len(NARROWS)
    one = _pools(rows, refits, models, rho, scale, 1.0)[0]
    assert all(np.array_equal(one[k], cal.joint.pools[k]) for k in one if not k.startswith("k"))


def test_the_brier_choice_draws_half_the_answers_draws(joint_fit, monkeypatch):
    """The scale and factor are chosen on P(best) from _FIT_DRAWS draws (Brier scores of 7 factors x 2 scales
    differ by more than their Monte Carlo error at half the answers' draws); the pools' and the cold level's
    models draw nothing (the default)."""
    from recsys.engines import calibration
    from recsys.engines.joint import N_DRAWS

    data, _, refits = joint_fit
    seen = []
    real = calibration.JointModel

    def spy(*args, **kwargs):
        seen.append(kwargs.get("n_draws", N_DRAWS))
        return real(*args, **kwargs)

    monkeypatch.setattr(calibration, "JointModel", spy)
    calibration.fit_joint(data, refits, seed=3)
    assert calibration._FIT_DRAWS < N_DRAWS and seen.count(calibration._FIT_DRAWS) == 2  # (one per scale)


def test_first_results_are_revealed_by_centre_ties_in_the_models_order(joint_fit):
    """Models tied at a centre are revealed in the models' order: as if each were a hair above the next."""
    import dataclasses

    from recsys.engines import calibration

    cold, refits, models = _cold_reveal_rows(joint_fit)
    assert len(cold) >= 2
    tied, broken = [], []
    for r in cold:
        n = len(r.hidden)
        level = 0.5 + 0.1 * ((np.arange(n) * 2) % 3)  # (three levels, each shared by several models)
        for out, centre in ((tied, level), (broken, level - 1e-9 * np.arange(n))):
            pred = r.pred.copy()
            pred[r.hidden] = centre
            out.append(dataclasses.replace(r, pred=pred))
    a = _pools(tied, refits, models, 1.0, "model")[0]
    b = _pools(broken, refits, models, 1.0, "model")[0]
    assert set(a) == set(b) and {"k1", "k4"} <= set(a)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-6)


def test_a_pool_without_residuals_is_left_out(joint_fit):
    """When every model after the first four results is without records, the fourth result leaves nothing to
    score: no k4 pool (rather than an empty one)."""
    import dataclasses

    from recsys.engines import calibration
    from recsys.engines.joint import JointModel, JointParams

    cold, refits, _ = _cold_reveal_rows(joint_fit)
    r = cold[0]
    pred = r.pred.copy()
    pred[r.hidden] = np.linspace(0.9, 0.4, len(r.hidden))  # (the first four hidden models revealed first)
    flags = np.zeros(len(pred), bool)
    flags[r.hidden[4:]] = True
    models = {0: JointModel(refits[0].engine, JointParams(seed=3), flags)}
    pools, given = _pools([dataclasses.replace(r, pred=pred)], refits, models, 1.0, "model")
    assert {"k1", "k2", "k3"} <= set(pools) and "k4" not in pools
    assert [k for k, _, _ in given] == [1, 2, 3, 4] and not len(given[3][1])  # (what the exponent is scored on)
    assert all(len(v) for v in pools.values())


def _zoo_with_cold_models(n_datasets=40):
    from conftest import planted_low_rank

    planted, _ = planted_low_rank(n_datasets=n_datasets, n_models=12, density=0.7, noise=0.02, seed=2)
    Y = planted.records.dense()
    Y[:, 10:] = np.nan
    return ZooData(Y=Y, model_features=np.asarray(planted.models.matrix),
                   dataset_features=np.asarray(planted.datasets.matrix))


def test_the_rounds_refits_are_released_before_the_extra_refit_of_the_models_without_records(monkeypatch):
    """The extra refit (models without records) runs once the hide/refit rounds' engines are gone: on a zoo of
    10 M records each engine holds about a GiB, and three at once made the calibration's peak."""
    import gc
    import weakref

    from recsys.engines import calibration

    data = _zoo_with_cold_models()
    refs, alive = [], []
    real_fit, real_pool = calibration.fit_joint, calibration._cold_model_pool

    def fit_joint(data, refits, **kw):
        refs.extend(weakref.ref(R.engine) for R in refits)
        return real_fit(data, refits, **kw)

    def cold_model_pool(*a, **kw):
        gc.collect()
        alive.extend(r() is not None for r in refs)
        return real_pool(*a, **kw)

    monkeypatch.setattr(calibration, "fit_joint", fit_joint)
    monkeypatch.setattr(calibration, "_cold_model_pool", cold_model_pool)
    cal = calibrate(_hybrid, data, seed=3)
    assert refs and alive == [False] * len(refs)
    assert len(cal.joint.pools["cold-model"]) >= 1


def test_the_cold_model_pool_reads_at_most_as_many_held_out_datasets_as_the_joint_keeps(monkeypatch):
    """The extra refit hides every record of some models, which touches nearly every dataset of a large zoo:
    its pool is made from a sample of them, of the size fit_joint keeps (_MAX_CASE_CELLS values of n_models)."""
    from recsys.engines import calibration
    from recsys.engines.joint import JointParams

    data = _zoo_with_cold_models()
    read = []
    real = calibration._held_rows

    def held_rows(refits, cells, rows_of, *a):
        read.append(sorted(map(int, rows_of[0])))
        return real(refits, cells, rows_of, *a)

    monkeypatch.setattr(calibration, "_held_rows", held_rows)
    monkeypatch.setattr(calibration, "_MAX_CASE_CELLS", 7 * data.n_models + 3)
    pool = calibration._cold_model_pool(_hybrid, data, JointParams(seed=3), 3, 256)
    assert len(read) == 1 and len(read[0]) == 7 and len(set(read[0])) == 7 and len(pool) >= 1
    monkeypatch.setattr(calibration, "_MAX_CASE_CELLS", data.n_models + 1)  # (room for one dataset)
    read.clear()
    calibration._cold_model_pool(_hybrid, data, JointParams(seed=3), 3, 256)
    assert len(read[0]) == 1
    monkeypatch.setattr(calibration, "_MAX_CASE_CELLS", 10 ** 9)
    read.clear()
    calibration._cold_model_pool(_hybrid, data, JointParams(seed=3), 3, 256)
    assert len(read[0]) > 7  # (every dataset with a hidden record, without the cap)
