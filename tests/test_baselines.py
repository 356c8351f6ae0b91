"""The baselines on the real reference zoos: accuracy floors, hand-computed answers, published figures."""

from __future__ import annotations


import numpy as np
import pytest
from conftest import mean_pearson_hidden
from scipy.stats import kendalltau, pearsonr

from recsys.engines import make_engine
from recsys.errors import RecsysError
from recsys.features.data import DatasetBlock, ZooData

#: TransferGraph's targets with LogME scores (benchmark protocol P2)
TG_TARGETS = ["caltech101", "cifar100", "dtd", "flowers", "pets", "smallnorb_label_elevation", "stanfordcars", "svhn"]


@pytest.fixture(scope="module")
def dn_hidden(dn_data):
    """DomainNet with a seeded random 30% of the cells hidden (about 3 per dataset)."""
    hide = np.random.default_rng(0).random(dn_data.Y.shape) < 0.3
    return dn_data.with_Y(np.where(hide, np.nan, dn_data.Y))


# -- floors on DomainNet's hidden cells -----------------------------------------------------
# Measured with hiding seed 0 (seeds 1 and 2 in brackets): popularity 0.589 (0.670, 0.588),
# additive 0.589 (0.668, 0.583), mc 0.578 (0.668, 0.572), als 0.536 (0.560, 0.446),
# lr 0.497 (0.556, 0.493), random 0.029 (-0.010, -0.007). DomainNet is close to additive:
# one model ranking fits most datasets, so learning interactions gains little here.
FLOORS = {"popularity": 0.50, "additive": 0.50, "mc": 0.48, "als": 0.40, "lr": 0.40}


@pytest.mark.parametrize("name", list(FLOORS), ids=list(FLOORS))
def test_domainnet_hidden_cells_floor(name, dn_hidden, dn_data):
    pred = make_engine(name, seed=0).fit(dn_hidden).predict(dn_hidden.block())
    assert mean_pearson_hidden(pred, dn_hidden.Y, dn_data.Y) >= FLOORS[name]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_is_chance_on_domainnet(seed, dn_hidden, dn_data):
    pred = make_engine("random", seed=seed).fit(dn_hidden).predict(dn_hidden.block())
    assert abs(mean_pearson_hidden(pred, dn_hidden.Y, dn_data.Y)) < 0.15


@pytest.mark.parametrize("name", ["random", "popularity", "additive", "lr", "mc", "als", "logme"])
def test_fits_and_predicts_on_both_zoos(name, dn_data, tg_data):
    # (how long a fit takes is measured by the benchmarks, benchmarks/results/scale.md, not asserted on a shared
    # machine's clock)
    for data in (dn_data, tg_data):
        if name == "logme" and not data.scores:
            continue
        pred = make_engine(name, seed=0).fit(data).predict(data.block())
        assert pred.shape == (data.n_datasets, data.n_models) and np.isfinite(pred).all()


# -- hand-computed answers --------------------------------------------------------------------
def test_popularity_is_the_mean_standardized_accuracy(dn_data):
    Y = dn_data.Y  # fully known
    z = (Y - Y.mean(1, keepdims=True)) / Y.std(1, ddof=1, keepdims=True)
    hand = z.mean(0)
    order = np.argsort(-hand, kind="stable")
    exact = make_engine("popularity", prior=0.0).fit(dn_data)
    assert exact.popularity_ == pytest.approx(hand, abs=1e-12)
    for engine in (exact, make_engine("popularity").fit(dn_data)):  # the default prior keeps the ranking
        index, _ = engine.topk(dn_data.block(), k=Y.shape[1])
        assert (index == order).all()


def test_additive_is_the_closed_form_ridge_solution():
    Y = np.array([[0.70, 0.80, np.nan, 0.60],
                  [np.nan, 0.90, 0.85, 0.70],
                  [0.50, np.nan, 0.60, np.nan]])
    lam = 0.5
    d, m = np.nonzero(~np.isnan(Y))
    y = Y[d, m]
    mu = y.mean()
    # min sum (y - mu - b[m] - c[d])^2 + lam (|b|^2 + |c|^2), with mu the mean of the known cells
    X = np.zeros((len(y), 4 + 3))
    X[np.arange(len(y)), m] = 1.0
    X[np.arange(len(y)), 4 + d] = 1.0
    theta = np.linalg.solve(X.T @ X + lam * np.eye(7), X.T @ (y - mu))
    data = ZooData(Y=Y, model_features=np.zeros((4, 0)), dataset_features=np.zeros((3, 0)))
    engine = make_engine("additive", lam=lam).fit(data)
    assert engine.mu_ == pytest.approx(mu, abs=1e-12)
    assert engine.model_bias_ == pytest.approx(theta[:4], abs=1e-8)
    assert engine.dataset_bias_ == pytest.approx(theta[4:], abs=1e-8)
    expected = mu + theta[:4][None, :] + theta[4:][:, None]
    assert engine.predict(data.block()) == pytest.approx(expected, abs=1e-8)
    new = DatasetBlock(index=[-1], features=np.zeros((1, 0)))
    assert engine.predict(new)[0] == pytest.approx(mu + theta[:4], abs=1e-8)


def test_lr_recovers_a_logistic_linear_truth():
    rng = np.random.default_rng(0)
    Xm, Xd = rng.normal(size=(6, 2)), rng.normal(size=(25, 3))
    w_m, w_d = np.array([0.8, -0.5]), np.array([0.3, 0.0, -0.6])
    full = 1 / (1 + np.exp(-(0.4 + (Xm @ w_m)[None, :] + (Xd @ w_d)[:, None])))
    Y = np.where(rng.random(full.shape) < 0.5, full, np.nan)
    data = ZooData(Y=Y, model_features=Xm, dataset_features=Xd)
    engine = make_engine("lr", alpha=0.0).fit(data)
    assert engine.predict(data.block()) == pytest.approx(full, abs=2e-4)
    new = DatasetBlock(index=[-1], features=Xd[:1])
    assert engine.predict(new) == pytest.approx(full[:1], abs=2e-4)


def test_random_new_datasets_are_reproducible(dn_data):
    engine = make_engine("random", seed=3).fit(dn_data)
    block = DatasetBlock(index=[-1, -1, -1], features=dn_data.dataset_features[[0, 0, 1]] + 0.5)
    pred = engine.predict(block)
    np.testing.assert_array_equal(pred[0], pred[1])  # same features, same answer
    assert not np.array_equal(pred[0], pred[2])
    np.testing.assert_array_equal(make_engine("random", seed=3).fit(dn_data).predict(block), pred)
    assert not np.array_equal(make_engine("random", seed=4).fit(dn_data).predict(block), pred)
    # the noise has the zoo's within-dataset spread around the zoo's level
    assert pred.mean() == pytest.approx(engine.zoo_mu_, abs=3 * engine.zoo_sd_)


def test_mc_picks_its_shrinkage_from_the_grid(dn_hidden):
    from recsys.engines.mc import GRID

    engine = make_engine("mc", seed=0).fit(dn_hidden)
    assert engine.shrinkage_fraction_ in GRID
    assert len(engine.validation_rmse_) == len(GRID)
    assert engine.shrinkage_fraction_ == GRID[int(np.argmin(engine.validation_rmse_))]
    fixed = make_engine("mc", shrinkage=engine.shrinkage_fraction_, seed=0).fit(dn_hidden)
    np.testing.assert_allclose(fixed.predict(dn_hidden.block()), engine.predict(dn_hidden.block()), atol=1e-9)


# -- LogME on TransferGraph -------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["LOG_ME", "REG_H_SCORE"])
def test_logme_keeps_the_metric_ordering_exactly(metric, tg_data):
    engine = make_engine("logme", metric=metric).fit(tg_data)
    scores = tg_data.scores[metric]
    for target in TG_TARGETS:
        i = tg_data.dataset_ids.index(target)
        scored = np.flatnonzero(np.isfinite(scores[i]))
        pred = engine.predict(tg_data.block([i]))[0]
        expected = scored[np.argsort(-scores[i, scored], kind="stable")]
        np.testing.assert_array_equal(scored[np.argsort(-pred[scored], kind="stable")], expected)
        assert len(np.unique(pred[scored])) == len(np.unique(scores[i, scored]))  # no ties from clipping
        index, _ = engine.topk(tg_data.block([i]), k=5)
        np.testing.assert_array_equal(index[0], expected[:5])


# Published (benchmark protocol P2, mean over the 8 targets): LogME Pearson 0.43, Kendall 0.25;
# Reg-H-Score 0.58, 0.24. On models with a score the prediction is linear in it, so these are
# reproduced; measured 0.4352 / 0.2565 and 0.5846 / 0.2445.
@pytest.mark.parametrize("metric,pearson,kendall", [("LOG_ME", 0.43, 0.25), ("REG_H_SCORE", 0.58, 0.24)])
def test_logme_leave_one_dataset_out_matches_the_published_figures(metric, pearson, kendall, tg_data):
    ps, ks = [], []
    for target in TG_TARGETS:
        i = tg_data.dataset_ids.index(target)
        Y = tg_data.Y.copy()
        truth = Y[i].copy()
        Y[i] = np.nan
        pred = make_engine("logme", metric=metric).fit(tg_data.with_Y(Y)).predict(tg_data.block([i]))[0]
        ok = ~np.isnan(truth) & np.isfinite(tg_data.scores[metric][i])
        ps.append(pearsonr(pred[ok], truth[ok])[0])
        ks.append(kendalltau(pred[ok], truth[ok])[0])
    assert np.mean(ps) == pytest.approx(pearson, abs=0.01)
    assert np.mean(ks) == pytest.approx(kendall, abs=0.01)


def test_logme_refuses_a_zoo_without_scores(dn_data):
    with pytest.raises(RecsysError, match="^choose another engine .*, or add a scores.csv to the zoo") as info:
        make_engine("logme").fit(dn_data)
    assert "\n" not in str(info.value)


def test_logme_refuses_a_metric_the_zoo_lacks(tg_data):
    with pytest.raises(RecsysError, match=r"^pick a metric of the zoo with --param metric=NAME \(LOG_ME, "
                                          r"REG_H_SCORE\): this zoo has no 'LEEP' scores") as info:
        make_engine("logme", metric="LEEP").fit(tg_data)
    assert "\n" not in str(info.value)


def test_logme_new_dataset_is_ranked_by_its_scores(tg_data):
    engine = make_engine("logme").fit(tg_data)
    i = tg_data.dataset_ids.index("dtd")
    new = DatasetBlock(index=[-1], features=tg_data.dataset_features[[i]],
                       scores={k: v[[i]] for k, v in tg_data.scores.items()})
    pred = engine.predict(new)[0]
    s = tg_data.scores["LOG_ME"][i]
    scored = np.flatnonzero(np.isfinite(s))
    np.testing.assert_array_equal(scored[np.argsort(-pred[scored], kind="stable")],
                                  scored[np.argsort(-s[scored], kind="stable")])
    assert np.allclose(pred[np.isnan(s)], engine.zoo_level_)  # no score: the zoo's level
