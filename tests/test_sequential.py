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
    """Both variants: `new` gives every kept record of a dataset (none in the refit), `recorded` the smaller half
    (the refit keeps the others); the protocol's fit and calibration are shared through the cache."""
    cache = FitCache()
    rows = conditioning_check(small, [0], cache=cache)
    assert list(dict.fromkeys(rows["variant"])) == ["new", "recorded"]
    assert rows["pearson_conditioned"].notna().any()
    new, rec = rows[rows["variant"] == "new"], rows[rows["variant"] == "recorded"]
    assert (new["n_given"] == new["n_known"]).all()
    assert (rec["n_given"] == rec["n_known"] // 2).all() and (rec["n_known"] >= 2).all()
    assert set(rec["dataset"]) == set(new.loc[new["n_known"] >= 2, "dataset"])
    summ = conditioning_summary(rows).set_index(["variant", "bin"])
    assert math.isfinite(summ.loc[("new", "all"), "gap"]) and math.isfinite(summ.loc[("recorded", "all"), "gap"])
    assert len(cache._fits) == 1 and len(cache._cals) == 1
    again = conditioning_check(small, [0], cache=cache, variants=("recorded",))
    assert again.drop(columns="ms").equals(rec.drop(columns="ms").reset_index(drop=True))  # the same halves
    with pytest.raises(ValueError, match=r"^unknown conditioning variant\(s\) \['half'\]: give some of new, recorded$"):
        conditioning_check(small, [0], cache=cache, variants=("new", "half"))


# -- what the protocol measures, against its definitions written out ----------------------------------------------
def test_regrets_over_the_candidates_only_with_ties_and_short_lists():
    truth = np.array([0.5, 0.9, 0.7, 0.95, 0.9])
    cand = np.array([True, True, True, False, True])  # 0.95 has no record on the target: not a candidate
    reg, found = regrets(truth, cand, [0, 4], 4)
    assert reg == pytest.approx([40.0, 0.0, 0.0, 0.0]) and found == [0.0, 1.0, 1.0, 1.0]  # a tie for the best found
    reg, found = regrets(truth, cand, [], 2)
    assert np.isnan(reg).all() and found == [0.0, 0.0]
    reg, _ = regrets(truth, cand, [2], 3)
    assert reg == pytest.approx([20.0, 20.0, 20.0])  # (fewer picks than steps: the last value stays)


def test_random_expectation_beyond_the_number_of_candidates():
    truth = np.array([0.3, 0.8, 0.8])
    reg, found = random_expectation(truth, 5)
    assert reg == pytest.approx([100 * (0.8 - (0.3 + 0.8 + 0.8) / 3), 0.0, 0.0, 0.0, 0.0])
    assert found == pytest.approx([2 / 3, 1.0, 1.0, 1.0, 1.0])
    reg, found = random_expectation(np.array([0.4]), 2)
    assert reg == pytest.approx([0.0, 0.0]) and found == pytest.approx([1.0, 1.0])


def test_a_rankings_picks_are_its_candidates_by_score_ties_to_the_lower_index():
    from recsys.evaluation.sequential import _order

    pred = np.array([0.5, 0.9, 0.9, 0.1, 0.95])
    cand = np.array([True, True, True, True, False])
    assert _order(pred, cand, 3) == [1, 2, 0]
    assert _order(pred, cand, 10) == [1, 2, 0, 3]
    assert all(isinstance(j, int) for j in _order(pred, cand, 2))


def _result(rows):
    import types

    import pandas as pd

    return types.SimpleNamespace(per_dataset=pd.DataFrame(rows))


def test_policy_means_average_the_repetitions_of_a_target_first():
    rows = [{"engine": "plan", "dataset": "a", "regret@1": 1.0, "found@1": 0.0},
            {"engine": "plan", "dataset": "a", "regret@1": 3.0, "found@1": 1.0},   # a: mean 2 over two reps
            {"engine": "plan", "dataset": "b", "regret@1": 8.0, "found@1": 1.0},
            {"engine": "random", "dataset": "a", "regret@1": 5.0, "found@1": 0.5}]
    m = policy_means(_result(rows))
    assert list(m.index) == ["plan", "random"]
    assert m.loc["plan", "regret@1"] == pytest.approx(5.0) and m.loc["plan", "found@1"] == pytest.approx(0.75)
    assert m.loc["plan", "targets"] == 2 and m.loc["random", "targets"] == 1
    assert list(m.columns) == ["targets", "regret@1", "found@1"]


def test_paired_counts_wins_over_the_targets_both_played():
    from recsys.evaluation.sequential import paired
    from recsys.evaluation.suite import sign_test

    plan = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 0.0, "e": 5.0, "f": 1.0, "g": 1.0, "h": 0.0, "i": 0.0}
    other = {"a": 2.0, "b": 2.0 + 1e-12, "c": 4.0, "d": 1.0, "e": 4.0, "f": 2.0, "g": 3.0, "h": 1.0, "x": 9.0}
    rows = [{"engine": "plan", "dataset": k, "regret@3": v} for k, v in plan.items()]
    rows += [{"engine": "pop", "dataset": k, "regret@3": v} for k, v in other.items()]
    t = paired(_result(rows), "plan", "pop", 3)
    both = sorted(set(plan) & set(other))
    assert t["targets"] == len(both) == 8
    assert (t["wins"], t["ties"], t["losses"]) == (6, 1, 1)  # b: within 1e-9, a tie; e: a loss
    assert t["mean"] == pytest.approx(np.mean([plan[k] for k in both]))
    assert t["other_mean"] == pytest.approx(np.mean([other[k] for k in both]))
    assert t["p"] == pytest.approx(sign_test(6, 1)) and t["verdict"] == "tie"
    assert (t["policy"], t["other"], t["n"]) == ("plan", "pop", 3)
    many = [{"engine": "plan", "dataset": str(i), "regret@1": 0.0} for i in range(12)]
    many += [{"engine": "pop", "dataset": str(i), "regret@1": 1.0} for i in range(12)]
    assert paired(_result(many), "plan", "pop", 1)["verdict"] == "win"
    assert paired(_result(many), "pop", "plan", 1)["verdict"] == "loss"


def test_folds_are_a_seeded_partition_of_the_targets(dn_data):
    a, b, c = (sequential_folds(dn_data, [s]) for s in (0, 0, 1))
    assert [f.rows.tolist() for f in a] == [f.rows.tolist() for f in b]
    assert [f.rows.tolist() for f in a] != [f.rows.tolist() for f in c]
    rng = np.random.default_rng([0, 18])
    want = [np.sort(g) for g in np.array_split(rng.permutation(np.arange(270)), N_FOLDS)]
    assert [f.rows.tolist() for f in a] == [g.tolist() for g in want]
    assert [f.label for f in a][:2] == ["fold 1/10", "fold 2/10"] and all((f.group == -1).all() for f in a)
    assert all(f.seed == 0 and f.rep == 0 for f in a)
    two = sequential_folds(dn_data, [3, 4], targets=np.array([5, 9]))
    assert [(f.rep, f.seed, f.label, f.rows.tolist()) for f in two] == [
        (0, 3, dn_data.dataset_ids[5], [5]), (0, 3, dn_data.dataset_ids[9], [9]),
        (1, 4, dn_data.dataset_ids[5], [5]), (1, 4, dn_data.dataset_ids[9], [9])]
    assert len(sequential_folds(dn_data, [0], targets=np.arange(MAX_SINGLE + 1))) == N_FOLDS


def test_the_edges_of_the_paired_test_and_the_order_of_policies():
    from recsys.evaluation.sequential import paired

    # a difference of exactly 1e-9 is a tie, either way
    rows = [{"engine": "plan", "dataset": "a", "regret@1": 0.0}, {"engine": "pop", "dataset": "a", "regret@1": 1e-9},
            {"engine": "plan", "dataset": "b", "regret@1": 1e-9}, {"engine": "pop", "dataset": "b", "regret@1": 0.0}]
    t = paired(_result(rows), "plan", "pop", 1)
    assert (t["wins"], t["ties"], t["losses"]) == (0, 2, 0)
    # more losses than wins but not significant: a tie
    rows = [{"engine": e, "dataset": d, "regret@1": v} for e, d, v in (
        ("plan", "a", 1.0), ("pop", "a", 2.0), ("plan", "b", 2.0), ("pop", "b", 1.0), ("plan", "c", 2.0),
        ("pop", "c", 1.0))]
    t = paired(_result(rows), "plan", "pop", 1)
    assert (t["wins"], t["losses"], t["verdict"]) == (1, 2, "tie")
    # policies in the order they were played, not alphabetical
    rows = [{"engine": e, "dataset": d, "regret@1": 1.0} for e, d in (
        ("static", "z"), ("static", "a"), ("additive", "z"), ("additive", "a"))]
    from recsys.evaluation.sequential import _per_target

    assert list(policy_means(_result(rows)).index) == ["static", "additive"]
    assert list(_per_target(_result(rows))["dataset"]) == ["z", "a", "z", "a"]


def test_conditioning_summary_averages_datasets_then_repetitions_per_bin():
    import pandas as pd

    rows = pd.DataFrame([
        {"variant": "new", "rep": 0, "bin": "cold", "pearson_fit": 0.9, "pearson_conditioned": 0.8, "ms": 1.0},
        {"variant": "new", "rep": 0, "bin": "cold", "pearson_fit": 0.7, "pearson_conditioned": 0.7, "ms": 3.0},
        {"variant": "new", "rep": 0, "bin": "> 60%", "pearson_fit": 0.5, "pearson_conditioned": 0.6, "ms": 2.0},
        {"variant": "new", "rep": 1, "bin": "cold", "pearson_fit": 0.6, "pearson_conditioned": 0.2, "ms": 6.0},
        {"variant": "recorded", "rep": 0, "bin": "cold", "pearson_fit": 0.1, "pearson_conditioned": 0.3, "ms": 9.0}])
    s = conditioning_summary(rows)
    assert list(zip(s["variant"], s["bin"])) == [("new", "all"), ("new", "cold"), ("new", "> 60%"),
                                                 ("recorded", "all"), ("recorded", "cold")]
    flipped = conditioning_summary(rows.iloc[::-1])  # variants and bins in the order the rows give them
    assert list(zip(flipped["variant"], flipped["bin"]))[:3] == [("recorded", "all"), ("recorded", "cold"), ("new", "all")]
    r = s[s["variant"] == "recorded"].set_index("bin")
    assert r.loc["all", "gap"] == pytest.approx(0.2) and r.loc["all", "ms"] == 9.0 and r.loc["all", "datasets"] == 1
    s = s[s["variant"] == "new"].set_index("bin")
    # all: rep 0 means (0.7, 0.7), rep 1 (0.6, 0.2) -> 0.65 / 0.45
    assert s.loc["all", "pearson_fit"] == pytest.approx(0.65) and s.loc["all", "pearson_conditioned"] == pytest.approx(0.45)
    assert s.loc["all", "gap"] == pytest.approx(-0.2) and s.loc["all", "ms"] == pytest.approx(3.0)
    assert s.loc["all", "datasets"] == 2  # 4 rows over 2 repetitions
    # cold: rep 0 (0.8, 0.75), rep 1 (0.6, 0.2) -> 0.7 / 0.475
    assert s.loc["cold", "pearson_fit"] == pytest.approx(0.7) and s.loc["cold", "gap"] == pytest.approx(0.475 - 0.7)
    assert s.loc["cold", "datasets"] == 1 and s.loc["> 60%", "datasets"] == 1
    assert s.loc["> 60%", "gap"] == pytest.approx(0.1) and s.loc["cold", "ms"] == pytest.approx(10 / 3)


@pytest.mark.parametrize("steps, found", [(1, ["found@1"]), (3, ["found@1", "found@3"]),
                                          (4, ["found@1", "found@3", "found@4"])])
def test_the_report_names_each_found_column_once(played, steps, found):
    """found@1, found@3 and found@steps, each once (--steps 3 once showed found@3 twice)."""
    import dataclasses

    res = dataclasses.replace(played, spec=dataclasses.replace(played.spec, k=steps))
    header = next(line for line in sequential_markdown(res).splitlines() if line.startswith("| policy | targets"))
    cells = header.strip("| ").split(" | ")
    assert [c for c in cells if c.startswith("found@")] == found
    assert [c for c in cells if c.startswith("regret@")] == [f"regret@{n}" for n in range(1, steps + 1)]
    row = next(line for line in sequential_markdown(res).splitlines() if line.startswith("| **plan**"))
    assert len(row.strip("| ").split(" | ")) == len(cells)


def test_a_zoo_without_default_targets_says_how_to_name_some():
    from recsys.errors import RecsysError
    from recsys.evaluation.protocols import logo

    data, _ = planted_low_rank(n_datasets=6, n_models=8, density=1.0, seed=1)  # 8 records a dataset: below 10
    with pytest.raises(RecsysError, match=r"^name the targets to play \(--targets A,B; targets= in Python\): zoo "):
        sequential(data, ["popularity"], steps=2)
    with pytest.raises(RecsysError, match=r"^name the targets to hold out \(--targets A,B"):
        logo(data, ["popularity"])
    assert len(sequential(data, ["hybrid", "popularity"], targets=[0], steps=2).per_dataset)


def test_plans_coverage_along_the_loop_is_its_answers_intervals_on_the_models_not_yet_revealed(played, small):
    """coverage@n: before pick n + 1, the share of the target's recorded models not yet revealed inside the
    answer's interval, recomputed here from the picks with the same fit, calibration and results given; stay@n
    (n >= 1) the probability that same answer gives that the best of the n results stays the best."""
    from recsys.engines import make_engine
    from recsys.engines.answer import answer, joint_model
    from recsys.engines.calibration import calibrate
    from recsys.evaluation.protocols import fold_zoo_data

    df = played.per_dataset
    plan = df[df["engine"] == "plan"].set_index("dataset")
    assert all(c not in df.columns or df.loc[df["engine"] != "plan", c].isna().all()
               for c in [f"coverage@{n}" for n in range(4)])
    fold = next(f for f in sequential_folds(small, [0], targets=np.array([0, 1])) if 0 in f.rows)
    train = fold_zoo_data(small, fold)
    engine = make_engine("hybrid", seed=fold.seed).fit(train)
    cal = calibrate(lambda: make_engine("hybrid", seed=fold.seed), train, seed=fold.seed)
    jm = joint_model(engine, cal, ~fold.known.any(0))
    t, ids = 0, list(small.dataset_ids)
    picks = [list(small.model_ids).index(m) for m in plan.loc[ids[t], "picks"].split()]
    for n in range(4):
        given = {j: float(small.Y[t, j]) for j in picks[:n]}
        ans = answer(engine, cal, train.block(np.array([t])), np.full((1, small.n_models), np.nan),
                     unrecorded=~fold.known.any(0), given=[given], joint=jm)
        free = small.known[t].copy()
        free[picks[:n]] = False
        y = small.Y[t, free]
        want = np.mean((ans.lower[0, free] <= y) & (y <= ans.upper[0, free]))
        assert plan.loc[ids[t], f"coverage@{n}"] == pytest.approx(want)
        if n:  # stay@n: the revealed models' P(best of the target's recorded models) in the same answer
            stay = ans.posteriors[0].p_best(small.known[t])[picks[:n]].sum()
            assert plan.loc[ids[t], f"stay@{n}"] == pytest.approx(stay)
            assert 0 <= stay <= 1
            y = np.where(small.known[t], small.Y[t], -np.inf)  # stayed@n: the revealed share of the tied best
            tied = y >= y.max()
            assert plan.loc[ids[t], f"stayed@{n}"] == pytest.approx(tied[picks[:n]].sum() / tied.sum())
    assert "stay@0" not in df.columns and df.loc[df["engine"] != "plan", "stay@1"].isna().all()
    md = sequential_markdown(played)
    assert "coverage of their 80% intervals on the recorded models not yet revealed, after 0 / 1 / 2 / 3 results" in md
    means = policy_means(played).loc["plan"]
    assert ("the best result so far stays the best, after 1 / 2 / 3 results, against how often it did (stayed@n, "
            "a tie shared): "
            + " / ".join(f"{means[f'stay@{n}']:.2f} vs {means[f'stayed@{n}']:.2f}" for n in (1, 2, 3))) in md
