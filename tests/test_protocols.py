"""P1 masks and P2 folds, exactly as docs/protocols.md; the evaluation loop's bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.engines import make_engine
from recsys.errors import RecsysError
from recsys.evaluation.protocols import (BINS, PROTOCOLS, evaluate, fold_zoo_data, known_bin, p1_folds,
                                         p1_keep_count, p1_masks, p2_folds, p2_targets)

from conftest import expected_regret

LOGME_TARGETS = {"caltech101", "cifar100", "dtd", "flowers", "pets", "smallnorb_label_elevation",
                 "stanfordcars", "svhn"}


def reference_masks(seed, n_datasets=270, n_models=10):
    """The call sequence the protocol fixes for DomainNet (written out independently)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_datasets)
    known = np.zeros((n_datasets, n_models), dtype=bool)
    for g in range(10):
        for j in perm[g * 27:(g + 1) * 27]:
            known[j, rng.choice(n_models, 9 - g, replace=False)] = True
    return known


# -- P1 ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_p1_masks_on_domainnet(dn_data, seed):
    recorded = dn_data.known
    assert recorded.all()  # DomainNet is complete: every dataset has 10 recorded models
    known, group = p1_masks(recorded, seed)
    assert np.array_equal(known, reference_masks(seed))
    assert np.bincount(group, minlength=10).tolist() == [27] * 10
    for g in range(10):
        assert (known[group == g].sum(1) == 9 - g).all()
    assert not (known & ~recorded).any()
    counts = np.bincount(known.sum(1), minlength=10)
    assert counts.tolist() == [27] * 10  # 27 datasets each with 0..9 known


def test_p1_masks_reproducible_and_seed_dependent(dn_data):
    a, ga = p1_masks(dn_data.known, 3)
    b, gb = p1_masks(dn_data.known, 3)
    c, _ = p1_masks(dn_data.known, 4)
    assert np.array_equal(a, b) and np.array_equal(ga, gb)
    assert not np.array_equal(a, c)


def test_p1_keep_count():
    assert [p1_keep_count(g, 10) for g in range(10)] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    # round half up of (9-g)/10 * n, capped at n-1 so that something stays hidden
    assert [p1_keep_count(g, 5) for g in range(10)] == [4, 4, 4, 3, 3, 2, 2, 1, 1, 0]
    assert [p1_keep_count(g, 180) for g in (0, 4, 9)] == [162, 90, 0]
    assert p1_keep_count(0, 1) == 0 and p1_keep_count(0, 0) == 0


def test_p1_masks_on_a_sparse_zoo():
    rng = np.random.default_rng(0)
    recorded = rng.random((53, 20)) < 0.6
    recorded[5] = False  # a dataset without records
    known, group = p1_masks(recorded, 11)
    assert not (known & ~recorded).any()
    n_rec = recorded.sum(1)
    expected = [p1_keep_count(g, n) for g, n in zip(group, n_rec)]
    assert known.sum(1).tolist() == expected
    assert sorted(np.bincount(group).tolist()) == [5] * 7 + [6] * 3  # np.array_split of 53 into 10


def test_p1_folds_and_bins(dn_data):
    folds = p1_folds(dn_data, [0, 5])
    assert [(f.rep, f.seed) for f in folds] == [(0, 0), (1, 5)]
    assert np.array_equal(folds[1].known, reference_masks(5))
    assert len(folds[0].rows) == 270
    assert known_bin(np.arange(10), np.full(10, 10)).tolist() == \
        ["cold", "<= 20%", "<= 20%", "<= 40%", "<= 40%", "<= 60%", "<= 60%", "> 60%", "> 60%", "> 60%"]
    assert known_bin([0, 36, 37, 162], [180] * 4).tolist() == ["cold", "<= 20%", "<= 40%", "> 60%"]
    # shares of each dataset's own records, whatever the zoo: 2 of 3 known is more than 60%
    assert known_bin([1, 2, 1], [3, 3, 5]).tolist() == ["<= 40%", "> 60%", "<= 20%"]
    assert BINS == ("cold", "<= 20%", "<= 40%", "<= 60%", "> 60%")


# -- P2 ------------------------------------------------------------------------------
def test_p2_targets(tg_data, dn_data):
    assert {tg_data.dataset_ids[i] for i in p2_targets(tg_data)} == LOGME_TARGETS
    assert len(p2_targets(dn_data)) == 270  # no scores: every dataset with records


def test_p2_fold_removes_target_records_and_keeps_scores(tg_data):
    folds = p2_folds(tg_data, [0, 1])
    assert len(folds) == 16
    assert {f.label for f in folds} == LOGME_TARGETS
    for fold in folds[:8]:
        (t,) = fold.rows
        train = fold_zoo_data(tg_data, fold)
        assert np.isnan(train.Y[t]).all()
        other = np.arange(tg_data.n_datasets) != t
        assert np.array_equal(train.known[other], tg_data.known[other])
        np.testing.assert_array_equal(train.Y[other], tg_data.Y[other])
        for metric, arr in tg_data.scores.items():
            assert np.isfinite(train.scores[metric][t]).sum() > 100  # the target's scores stay
            np.testing.assert_array_equal(train.scores[metric], arr)


def test_p2_folds_named_targets(tg_data):
    folds = p2_folds(tg_data, [0], targets=["dtd", "svhn"])
    assert [f.label for f in folds] == ["dtd", "svhn"]
    with pytest.raises(RecsysError, match="did you mean 'svhn'"):
        p2_folds(tg_data, [0], targets=["svhm"])


# -- the loop ---------------------------------------------------------------------------
class _Spy:
    """Wraps a real engine and records what fit saw."""

    seen = []

    def __init__(self, name, seed):
        self.engine = make_engine(name, seed=seed)

    def fit(self, data):
        _Spy.seen.append(data)
        self.engine.fit(data)
        return self

    def predict(self, block):
        return self.engine.predict(block)


def test_p2_engine_sees_no_target_record_but_its_scores(tg_data):
    _Spy.seen = []
    spec = PROTOCOLS["p2"]
    folds = p2_folds(tg_data, [0], targets=["dtd", "pets"])
    res = evaluate(tg_data, spec, folds, ["popularity"], coverage="none",
                   engine_factory=lambda name, seed: _Spy(name, seed))
    assert len(_Spy.seen) == 3  # one untimed warm-up fit (on fold 0's data), then one fit per fold
    for fold, data in zip(folds, _Spy.seen[1:]):
        (t,) = fold.rows
        assert np.isnan(data.Y[t]).all()
        assert np.isfinite(data.scores["LOG_ME"][t]).any()
    pd_ = res.per_dataset
    assert pd_["dataset"].tolist() == ["dtd", "pets"]
    assert (pd_["n_known"] == 0).all() and (pd_["bin"] == "cold").all()
    assert pd_["n_hidden"].tolist() == [int(tg_data.known[f.rows[0]].sum()) for f in folds]


def test_failures_are_reported_not_dropped(dn_data):
    def factory(name, seed):
        if name == "additive" and seed == 1:
            raise RuntimeError("boom in fold")
        return make_engine(name, seed=seed)

    folds = p1_folds(dn_data, [0, 1])
    res = evaluate(dn_data, PROTOCOLS["p1"], folds, ["popularity", "additive", "logme"], coverage="none",
                   engine_factory=factory)
    assert res.status["popularity"] == "ok"
    assert res.status["additive"].startswith("partly failed (1 of 2 folds): RuntimeError: boom in fold")
    assert res.status["logme"] == "n/a: no scores"
    assert res.errors[["engine", "rep", "stage"]].values.tolist() == [["additive", 1, "fit"]]
    assert set(res.per_dataset.query("engine == 'additive'")["rep"]) == {0}


def test_unknown_engine_is_a_user_error(dn_data):
    with pytest.raises(RecsysError, match="did you mean 'additive'"):
        evaluate(dn_data, PROTOCOLS["p1"], p1_folds(dn_data, [0]), ["aditive"])


# -- the protocols for any zoo ----------------------------------------------------


def test_missing_edge_is_p1_on_domainnet(dn_data):
    from recsys.evaluation.protocols import missing_edge_folds

    for a, b in zip(missing_edge_folds(dn_data, [0, 3]), p1_folds(dn_data, [0, 3])):
        np.testing.assert_array_equal(a.known, b.known)
        np.testing.assert_array_equal(a.group, b.group)


def test_missing_edge_on_a_small_zoo_spreads_keep_counts_from_cold():
    """7 datasets: 7 groups, keeping 6/7 ... 0 of each dataset's records; unrecorded datasets left out."""
    from recsys.evaluation.protocols import missing_edge_folds
    from recsys.features.data import ZooData

    rng = np.random.default_rng(0)
    Y = rng.uniform(0.2, 0.9, size=(8, 14))
    Y[7] = np.nan  # a dataset without records
    data = ZooData(Y=Y, model_features=np.zeros((14, 0)), dataset_features=np.zeros((8, 0)))
    (fold,) = missing_edge_folds(data, [5])
    np.testing.assert_array_equal(fold.rows, np.arange(7))
    assert fold.group[7] == -1 and sorted(fold.group[:7]) == list(range(7))
    kept = fold.known.sum(1)
    for j in range(7):
        assert kept[j] == round((6 - fold.group[j]) / 7 * 14)  # 12, 10, 8, 6, 4, 2, 0
    assert kept[7] == 0 and (fold.known <= ~np.isnan(Y)).all()


def test_logo_targets_and_named_targets(tg_data, dn_data):
    from recsys.evaluation.protocols import LOGO_MIN_RECORDS, logo_targets, p2_folds

    t = logo_targets(tg_data)
    assert len(t) == 13  # every TransferGraph dataset, not only the 8 with scores
    folds = p2_folds(tg_data, [0], ["dtd", "svhn"], default_targets=logo_targets)
    assert [f.label for f in folds] == ["dtd", "svhn"]
    assert len(logo_targets(dn_data)) == 270


@pytest.mark.parametrize("protocol,zoo", [("logo", "parc-71"), ("missing-edge", "parc-71")])
def test_run_new_protocols_end_to_end(protocol, zoo, data_dir):
    from recsys.evaluation import run

    res = run(protocol, zoo, ["popularity", "additive"], repeats=2 if protocol == "missing-edge" else None,
              progress=False, text_encoder="hashing", coverage="none", plots=False)
    df = res.result.per_dataset
    assert set(df["engine"]) == {"popularity", "additive"}
    assert {"pearson", "kendall", "ndcg@5", "regret@1", "regret@5"} <= set(df.columns)
    if protocol == "logo":
        assert df["dataset"].nunique() == 7 and (df["n_known"] == 0).all()
        # The values, recomputed: each target fitted without its records, predicted, scored against them.
        from sklearn.metrics import ndcg_score

        from recsys.evaluation.protocols import as_zoo_data, logo_targets, p2_folds

        data, _ = as_zoo_data(zoo, "hashing")
        for fold in p2_folds(data, [0], default_targets=logo_targets):
            (j,) = fold.rows
            rec = ~np.isnan(data.Y[j])
            for name in ("popularity", "additive"):
                engine = make_engine(name, seed=fold.seed).fit(fold_zoo_data(data, fold))
                t, p = data.Y[j, rec], engine.predict(data.block([j]))[0, rec]
                row = df[(df["engine"] == name) & (df["dataset"] == data.dataset_ids[j])].iloc[0]
                assert row["ndcg@5"] == pytest.approx(ndcg_score([t], [p], k=5), abs=1e-9)
                assert row["regret@1"] == pytest.approx(expected_regret(t, p, 1), abs=1e-9)
                assert row["regret@5"] == pytest.approx(expected_regret(t, p, 5), abs=1e-9)
    else:
        assert df["rep"].nunique() == 2 and (df["bin"] == "cold").any()
    assert res.value("popularity", "pearson") > 0.3
    assert "## " + PROTOCOLS[protocol].title in res.markdown


def test_targets_only_for_leave_one_out(dn_data):
    from recsys.errors import UsageError
    from recsys.evaluation import run

    with pytest.raises(UsageError, match="targets apply to the leave-one-dataset-out protocols"):
        run("missing-edge", dn_data, ["popularity"], targets=["1_painting_2"], progress=False, plots=False)
