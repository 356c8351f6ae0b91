"""What every answer promises, whatever the zoo (issue 21), through the public API only.

``recsys.Recommender`` and ``recsys.engines.answer`` (the function users and benchmarks get their answers
from) are asked about random small zoos (fast engines, fitted per example) and about the example zoo under
the default engine (fitted once); for every answer:

- P(best) is a distribution over the models of each dataset (>= 0, each row sums to 1), and it is 0 nowhere
  an interval reaches the best (a model without a record whose upper bound is above the best record, or on a
  dataset without records above every lower bound);
- a known cell (record or result given) is its own prediction and interval; every other interval holds its
  prediction, and a higher level gives an interval at least as wide on both sides;
- ``topk`` is sorted by the estimate it ranks by (the record, else the prediction), best first, and holds
  min(k, n_models) models ranked 1, 2, ...;
- the same seed gives the same answers and the same model file (its arrays, bit for bit).

The calibration and P(best) internals are being reworked (issue 18): nothing here reaches below these APIs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import recsys
from recsys.engines.answer import P_FLOOR, answer, consistent, joint_model
from recsys.zoo import Zoo, load_zoo

from conftest import ROOT

EXAMPLE = ROOT / "data" / "example-zoo"
LEVELS = st.floats(0.05, 0.95).map(lambda x: round(x, 3))


# -- the invariants, checked on one answer ----------------------------------------------------------------


def check_answer(frame: pd.DataFrame, n_models: int) -> None:
    """``frame``: Recommender.predict's columns, one block of n_models rows per dataset."""
    pred = frame["predicted"].to_numpy(float).reshape(-1, n_models)
    known = frame["known"].to_numpy(float).reshape(-1, n_models)
    lower = frame["lower"].to_numpy(float).reshape(-1, n_models)
    upper = frame["upper"].to_numpy(float).reshape(-1, n_models)
    p = frame["p_best"].to_numpy(float).reshape(-1, n_models)
    assert np.isfinite(pred).all()
    rec = ~np.isnan(known)
    assert (pred[rec] == known[rec]).all(), "a known cell is its own prediction"
    if np.isnan(p).all():  # no calibration: the three columns are empty together
        assert np.isnan(lower).all() and np.isnan(upper).all()
        return
    assert (p >= 0).all() and np.allclose(p.sum(1), 1.0, atol=1e-9)
    assert (lower[~rec] <= pred[~rec] + 1e-12).all() and (pred[~rec] <= upper[~rec] + 1e-12).all(), \
        "an interval misses its prediction"
    assert (lower[rec] == known[rec]).all() and (upper[rec] == known[rec]).all(), "a known cell is its own interval"
    assert ((lower >= 0) & (upper <= 1)).all()
    best = np.where(rec.any(1), np.nanmax(np.where(rec, known, -np.inf), axis=1), lower.max(1))
    reach = ~rec & (upper > best[:, None])
    assert (p[reach] > 0).all(), "P(best) is 0 where an interval reaches the best"


def check_widening(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """``a`` at a lower level than ``b``: b's intervals hold a's."""
    if a["lower"].isna().all():
        return
    assert (b["lower"].to_numpy() <= a["lower"].to_numpy() + 1e-12).all()
    assert (a["upper"].to_numpy() <= b["upper"].to_numpy() + 1e-12).all()


def check_topk(top: pd.DataFrame, k: int, n_models: int) -> None:
    assert len(top) == min(k, n_models)
    assert top["rank"].tolist() == list(range(1, len(top) + 1))
    estimate = top["known"].where(top["known"].notna(), top["predicted"]).to_numpy(float)
    assert (np.diff(estimate) <= 0).all(), "topk is not sorted best first"
    assert top["model"].is_unique


# -- random small zoos, fast engines ----------------------------------------------------------------------


ACCURACIES = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]))


@st.composite
def zoos(draw) -> Zoo:
    """A zoo of 2-6 models and 3-9 datasets: random accuracies (ties, 0 and 1 included), some datasets cold."""
    n_models, n_datasets = draw(st.integers(2, 6)), draw(st.integers(3, 9))
    models = pd.DataFrame({"model": [f"m{i}" for i in range(n_models)],
                           "family": draw(st.lists(st.sampled_from(["a", "b"]), min_size=n_models,
                                                   max_size=n_models))})
    datasets = pd.DataFrame({"dataset": [f"d{i}" for i in range(n_datasets)],
                             "size": draw(st.lists(st.integers(1, 10**6), min_size=n_datasets,
                                                   max_size=n_datasets)),
                             "domain": draw(st.lists(st.sampled_from(["x", "y", "z"]), min_size=n_datasets,
                                                     max_size=n_datasets))})
    cells = draw(st.lists(st.tuples(st.integers(0, n_datasets - 1), st.integers(0, n_models - 1), ACCURACIES),
                          min_size=1, max_size=n_models * n_datasets, unique_by=lambda c: c[:2]))
    records = pd.DataFrame({"model": [f"m{m}" for _, m, _ in cells], "dataset": [f"d{d}" for d, _, _ in cells],
                            "accuracy": [a for _, _, a in cells]})
    return Zoo.from_frames(models, datasets, records, name="random")


_SLOW = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_SLOW
@given(zoos(), st.sampled_from(["popularity", "additive"]), st.integers(0, 2**32 - 1), LEVELS, LEVELS,
       st.integers(1, 8))
def test_property_answers_of_random_zoos(zoo, engine, seed, level_a, level_b, k):
    assume(level_a != level_b)
    level_a, level_b = sorted((level_a, level_b))
    rec = recsys.Recommender(engine, seed=seed, text_encoder="hashing").fit(zoo)
    n = len(zoo.models)
    a, b = rec.predict(level=level_a), rec.predict(level=level_b)
    check_answer(a, n)
    check_answer(b, n)
    check_widening(a, b)
    for name in zoo.dataset_ids[:3]:
        check_topk(rec.topk(name, k=k), k, n)
    again = recsys.Recommender(engine, seed=seed, text_encoder="hashing").fit(zoo).predict(level=level_a)
    pd.testing.assert_frame_equal(a, again)  # the same seed, the same answer


# -- the default engine, fitted once on the example zoo ---------------------------------------------------


@pytest.fixture(scope="module")
def example_rec():
    return recsys.Recommender(seed=0, text_encoder="hashing").fit(load_zoo(EXAMPLE))


@_SLOW
@given(st.data(), LEVELS, LEVELS, st.integers(1, 7))
def test_property_answers_of_the_default_engine(example_rec, data, level_a, level_b, k):
    assume(level_a != level_b)
    level_a, level_b = sorted((level_a, level_b))
    names = data.draw(st.lists(st.sampled_from(example_rec.dataset_ids), min_size=1, max_size=4, unique=True))
    n = len(example_rec.model_ids)
    a, b = example_rec.predict(names, level=level_a), example_rec.predict(names, level=level_b)
    check_answer(a, n)
    check_answer(b, n)
    check_widening(a, b)
    check_topk(example_rec.topk(names[0], k=k, level=level_a), k, n)
    # A dataset's answer does not depend on what else is asked with it.
    alone = example_rec.predict(names[:1], level=level_a)
    pd.testing.assert_frame_equal(alone, a.iloc[:n].reset_index(drop=True))


@_SLOW
@given(st.fixed_dictionaries({}, optional={"domain": st.sampled_from(["photo", "sketch", "x-ray", ""]),
                                           "num_classes": st.integers(1, 10**5),
                                           "train_samples": st.integers(1, 10**7),
                                           "labels": st.sampled_from(["cat, dog", "", "a, b, c, d"])}),
       LEVELS, st.integers(1, 7))
def test_property_answers_for_new_datasets(example_rec, metadata, level, k):
    n = len(example_rec.model_ids)
    frame = example_rec.predict_new(metadata, level=level)
    check_answer(frame, n)
    assert frame["known"].isna().all()
    check_topk(example_rec.topk_new(metadata, k=k, level=level), k, n)


def test_the_same_seed_gives_the_same_model_file_and_answers(tmp_path):
    import zipfile

    from click.testing import CliRunner

    from recsys.cli import main

    outs = []
    for i in range(2):
        path = tmp_path / f"m{i}.npz"
        res = CliRunner().invoke(main, ["-q", "fit", "--zoo", str(EXAMPLE), "--text-encoder", "hashing", "--seed", "7",
                                        "--out", str(path)])
        assert res.exit_code == 0, res.stderr
        answer_csv = CliRunner().invoke(main, ["-q", "predict", "--model", str(path), "--format", "csv"])
        assert answer_csv.exit_code == 0, answer_csv.stderr
        with zipfile.ZipFile(path) as zf:
            arrays = {n: zf.read(n) for n in zf.namelist() if n != "meta.json"}
        outs.append((answer_csv.stdout, arrays))
    assert outs[0][0] == outs[1][0]  # the same answers file, byte for byte
    assert outs[0][1] == outs[1][1]  # every array of the model file, byte for byte
    other = tmp_path / "other.npz"
    CliRunner().invoke(main, ["-q", "fit", "--zoo", str(EXAMPLE), "--text-encoder", "hashing", "--seed", "8",
                              "--out", str(other)])
    assert CliRunner().invoke(main, ["-q", "predict", "--model", str(other), "--format", "csv"]).stdout != outs[0][0]


# -- the floor-and-renormalize path of P(best) ------------------------------------------------------------


def test_consistent_lifts_the_cells_an_interval_contradicts_and_renormalizes_each_row():
    # Row 0 has records (best 0.8): model 2 (no record) reaches 0.85 but was given 0; model 3 does not reach.
    # Row 1 has none: the best lower bound is 0.6; model 0 reaches 0.7 but was given 0.
    p = np.array([[0.7, 0.3, 0.0, 0.0],
                  [0.0, 0.5, 0.5, 0.0]])
    known = np.array([[0.8, 0.6, np.nan, np.nan],
                      [np.nan, np.nan, np.nan, np.nan]])
    lower = np.array([[0.8, 0.6, 0.5, 0.1],
                      [0.4, 0.6, 0.5, 0.2]])
    upper = np.array([[0.8, 0.6, 0.85, 0.7],
                      [0.7, 0.9, 0.8, 0.55]])
    out = consistent(p, known, lower, upper)
    assert np.allclose(out.sum(1), 1.0)
    lifted = np.array([[False, False, True, False], [True, False, False, False]])
    assert (out[lifted] > 0).all() and (out[~lifted & (p == 0)] == 0).all()
    row0 = np.array([0.7, 0.3, P_FLOOR, 0.0]) / (1 + P_FLOOR)
    row1 = np.array([P_FLOOR, 0.5, 0.5, 0.0]) / (1 + P_FLOOR)
    np.testing.assert_allclose(out, [row0, row1], rtol=1e-12)
    np.testing.assert_array_equal(p[0], [0.7, 0.3, 0.0, 0.0])  # the input is left as it was
    # A recorded model is never lifted, nor one already above the floor.
    untouched = consistent(np.array([[1.0, 0.0]]), np.array([[0.9, 0.5]]), np.array([[0.9, 0.5]]),
                           np.array([[0.9, 0.95]]))
    np.testing.assert_array_equal(untouched, [[1.0, 0.0]])


class _FixedCalibration:
    """The calibration an answer asks for, as a stub: intervals of half-width ``half``, a fixed P(best)."""

    joint = None  # (no joint parameters: the answer takes the independent intervals and P(best) asked here)

    def __init__(self, half: float, p_best: np.ndarray):
        self.half, self._p = half, p_best

    def interval(self, pred, n_known, level=0.8):
        return np.clip(pred - self.half, 0, 1), np.clip(pred + self.half, 0, 1)

    def p_best(self, pred, known, n_known, *, unrecorded=None):
        return self._p.copy()


def test_answer_lifts_p_best_where_the_intervals_reach_the_best(example_rec):
    rec = example_rec
    idx = rec.dataset_index(rec.dataset_ids[:2])
    block, known = rec.data_.block(idx), rec.data_.records.dense(idx)
    pred = rec.engine_.predict(block)
    p = np.zeros_like(pred)
    p[:, 0] = 1.0  # all the mass on model 0, whatever the intervals say
    ans = answer(rec.engine_, _FixedCalibration(1.0, p), block, known, level=0.8)
    reach = np.isnan(known) & (ans.upper > np.nanmax(np.where(np.isnan(known), -np.inf, known), axis=1)[:, None])
    assert reach.any(), "the stub's wide intervals must reach the best somewhere"
    assert (ans.p_best[reach] > 0).all() and np.allclose(ans.p_best.sum(1), 1.0)
    tight = answer(rec.engine_, _FixedCalibration(0.0, p), block, known, level=0.8)
    check_answer(pd.DataFrame({"predicted": tight.predicted.ravel(), "known": known.ravel(),
                               "lower": tight.lower.ravel(), "upper": tight.upper.ravel(),
                               "p_best": tight.p_best.ravel()}), pred.shape[1])


def test_answer_defaults_and_what_it_passes_on(example_rec):
    rec = example_rec
    idx = rec.dataset_index(rec.dataset_ids[:3])
    block, known = rec.data_.block(idx), rec.data_.records.dense(idx)
    cal = rec.calibration_
    default, explicit = answer(rec.engine_, cal, block, known), answer(rec.engine_, cal, block, known, level=0.8)
    for col in ("predicted", "lower", "upper", "p_best"):
        np.testing.assert_array_equal(getattr(default, col), getattr(explicit, col))  # the default level is 0.8
    np.testing.assert_array_equal(default.known, known)
    narrow, wide = (answer(rec.engine_, cal, block, known, level=lv) for lv in (0.3, 0.95))
    assert ((wide.upper - wide.lower) > (narrow.upper - narrow.lower) + 1e-9).any()  # the level reaches the intervals
    only = answer(rec.engine_, cal, block, known, uncertainty=False)
    assert only.lower is None and only.upper is None and only.p_best is None
    none = answer(rec.engine_, None, block, known)
    for col in ("lower", "upper", "p_best"):
        values = getattr(none, col)
        assert values.dtype == np.float64 and values.shape == none.predicted.shape and np.isnan(values).all()


def test_answer_tells_p_best_which_models_have_no_record_in_the_zoo(example_rec):
    """A model without any record errs on its own (no shared offset cancels): its independent P(best) (a calibration
    without joint parameters: other engines, older model files) is not the one of a model that errs with the others."""
    rec = example_rec
    independent = dataclasses.replace(rec.calibration_, joint=None)
    idx = rec.dataset_index(rec.dataset_ids[:4])
    block = rec.data_.block(idx)
    known = np.full((len(idx), len(rec.model_ids)), np.nan)  # (every model unknown on these rows)
    unrecorded = np.zeros(len(rec.model_ids), dtype=bool)
    unrecorded[0] = True
    alone = answer(rec.engine_, independent, block, known, unrecorded=unrecorded)
    shared = answer(rec.engine_, independent, block, known, unrecorded=None)
    assert not np.allclose(alone.p_best, shared.p_best)
    assert np.allclose(alone.p_best.sum(1), 1.0)
    # the joint distribution draws such a model's errors from the cold-model pool (the example zoo has none of its
    # own, so the widest pool stands in): it is told which models they are
    assert joint_model(rec.engine_, rec.calibration_, unrecorded).cold_models.tolist() == unrecorded.tolist()


def test_consistent_lifts_only_an_interval_above_the_best():
    # upper == best: the interval reaches the best record but not above it; not lifted
    p = np.array([[1.0, 0.0]])
    out = consistent(p, np.array([[1.0, np.nan]]), np.array([[1.0, 0.6]]), np.array([[1.0, 1.0]]))
    np.testing.assert_array_equal(out, p)


def test_consistent_measures_reach_against_the_best_record_not_a_higher_interval():
    """On a dataset with records the bar is its best record, even where a model without one has an interval
    wholly above it (its lower bound is not a record): a model reaching above the record is lifted."""
    p = np.array([[0.0, 1.0, 0.0]])
    known = np.array([[0.5, np.nan, np.nan]])
    lower = np.array([[0.5, 0.7, 0.55]])
    upper = np.array([[0.5, 0.9, 0.65]])
    out = consistent(p, known, lower, upper)
    np.testing.assert_allclose(out, [[0.0, 1.0 / (1 + P_FLOOR), P_FLOOR / (1 + P_FLOOR)]], rtol=1e-12)
