"""The cross-zoo suite's tables (recsys.evaluation.suite), on hand-made per-dataset rows: what is compared with
what, the tolerance of a tie, the verdicts, the sequential and P(best) tables, the bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.evaluation.suite import (METRICS, SuiteResult, _bootstrap, pbest_table, sequential_table, sign_test,
                                     suite_table, zoos_with_wins)


def _suite_rows(hybrid, additive, popularity, unit="dataset", protocol="logo", zoo="z", metric_values=None):
    rows = []
    for i, (h, a, p) in enumerate(zip(hybrid, additive, popularity)):
        for engine, v in (("hybrid", h), ("additive", a), ("popularity", p)):
            row = {"zoo": zoo, "protocol": protocol, "engine": engine, "dataset": f"d{i}", "rep": i}
            row.update({m: v for m in METRICS})
            rows.append(row)
    return rows


def test_suite_table_compares_with_the_best_simple_predictor_per_metric_and_unit():
    # Pearson (higher is better): additive's mean 0.6 beats popularity's 0.5; hybrid wins 3, ties 1 (within 1e-12),
    # loses 1 against it; regret@1 (lower is better): the same numbers make popularity the best
    h, a, p = [0.7, 0.7, 0.7, 0.6 + 1e-13, 0.5], [0.6] * 5, [0.5] * 5
    rows = _suite_rows(h, a, p)
    table = suite_table(SuiteResult(per_dataset=pd.DataFrame(rows), rows=[("z", "logo")]))
    assert list(table["metric"]) == list(METRICS)
    pear = table[table["metric"] == "pearson"].iloc[0]
    assert (pear.best_simple, pear.unit, pear.wins, pear.ties, pear.losses) == ("additive", "dataset", 3, 1, 1)
    assert pear.default == pytest.approx(np.mean(h)) and pear.simple == pytest.approx(0.6)
    assert pear.difference == pytest.approx(np.mean(h) - 0.6) and pear.p == pytest.approx(sign_test(3, 1))
    assert (pear.zoo, pear.protocol, pear.verdict) == ("z", "logo", "tie")
    reg = table[table["metric"] == "regret@1"].iloc[0]
    assert (reg.best_simple, reg.wins, reg.ties, reg.losses) == ("popularity", 0, 1, 4)
    # missing-edge kinds pair by repetition (several datasets per rep averaged first)
    rows = _suite_rows([0.7] * 4, [0.6] * 4, [0.5] * 4, protocol="missing-edge")
    for r in rows:
        r["rep"] = int(r["dataset"][1:]) // 2
    rows[0]["pearson"] = 0.4  # rep 0: hybrid 0.55 vs additive 0.6 -> a loss; rep 1 a win
    t = suite_table(SuiteResult(per_dataset=pd.DataFrame(rows), rows=[("z", "missing-edge")]))
    pear = t[t["metric"] == "pearson"].iloc[0]
    assert (pear.unit, pear.wins, pear.ties, pear.losses) == ("rep", 1, 0, 1)


def test_suite_table_verdicts_win_and_loss():
    n = 8
    win = suite_table(SuiteResult(per_dataset=pd.DataFrame(_suite_rows([0.9] * n, [0.6] * n, [0.5] * n)),
                                  rows=[("z", "logo")]))
    assert set(win.loc[win["metric"] != "regret@1", "verdict"]) == {"win"}
    assert win.loc[win["metric"] == "regret@1", "verdict"].item() == "loss"  # (here a higher regret: worse)
    assert win.loc[win["metric"] == "pearson", "p"].item() == pytest.approx(2 / 2 ** n)
    assert zoos_with_wins(win) == ["z"]
    lose = suite_table(SuiteResult(per_dataset=pd.DataFrame(_suite_rows([0.3] * n, [0.6] * n, [0.5] * n)),
                                   rows=[("z", "logo")]))
    assert lose.loc[lose["metric"] == "pearson", "verdict"].item() == "loss"
    assert zoos_with_wins(lose) == []


def test_zoos_with_wins_need_pearson_and_kendall_in_one_row():
    t = pd.DataFrame([
        {"zoo": "b", "protocol": "p", "metric": "pearson", "verdict": "win"},
        {"zoo": "b", "protocol": "p", "metric": "kendall", "verdict": "win"},
        {"zoo": "a", "protocol": "p", "metric": "pearson", "verdict": "win"},
        {"zoo": "a", "protocol": "q", "metric": "kendall", "verdict": "win"},
        {"zoo": "c", "protocol": "p", "metric": "pearson", "verdict": "win"},
        {"zoo": "c", "protocol": "p", "metric": "kendall", "verdict": "tie"},
        {"zoo": "d", "protocol": "p", "metric": "pearson", "verdict": "win"},
        {"zoo": "d", "protocol": "p", "metric": "kendall", "verdict": "win"}])
    assert zoos_with_wins(t) == ["b", "d"]


def test_sign_test_is_two_sided_and_capped_at_one():
    assert sign_test(3, 3) == 1.0 and sign_test(2, 3) == 1.0
    assert sign_test(1, 5) == pytest.approx(2 * (1 + 6) / 64) == sign_test(5, 1)
    assert sign_test(0, 1) == 1.0 and sign_test(0, 5) == pytest.approx(2 / 32)


def test_bootstrap_interval_of_the_mean_written_out():
    v = np.array([0.0, 1.0, 1.0, 0.0, 1.0, np.nan])
    lo, hi = _bootstrap(v, seed=3, n=500, level=0.8)
    w = v[np.isfinite(v)]
    idx = np.random.default_rng(3).integers(0, 5, size=(500, 5))
    means = w[idx].mean(1)
    assert (lo, hi) == (pytest.approx(np.quantile(means, 0.1)), pytest.approx(np.quantile(means, 0.9)))
    assert _bootstrap(np.array([0.0, 1.0] * 10)) == _bootstrap(np.array([0.0, 1.0] * 10), 0, 2000, 0.9)
    assert np.isnan(_bootstrap(np.array([np.nan]))).all()
    assert _bootstrap([1, 1, 1]) == (1.0, 1.0)


def _seq(rows):
    import types

    return types.SimpleNamespace(per_dataset=pd.DataFrame(rows))


def test_sequential_table_takes_the_toughest_baseline_on_the_targets_both_played():
    # plan vs popularity: 0 / 1 on four targets (margin 1); vs additive: 0 / 0.5 on four (margin 0.5, the toughest);
    # the raw score played two targets only; static and plan-refit beside
    rows = []
    for d in "abcd":
        rows += [{"engine": "plan", "dataset": d, "regret@1": 0.0, "regret@3": 0.0},
                 {"engine": "popularity", "dataset": d, "regret@1": 1.0, "regret@3": 1.0},
                 {"engine": "additive", "dataset": d, "regret@1": 0.5, "regret@3": 0.0},
                 {"engine": "static", "dataset": d, "regret@1": 2.0, "regret@3": 0.0},
                 {"engine": "random", "dataset": d, "regret@1": 9.0, "regret@3": 5.0}]
    rows += [{"engine": "logme:LOG_ME", "dataset": d, "regret@1": 3.0, "regret@3": 3.0} for d in "ab"]
    res = SuiteResult(per_dataset=pd.DataFrame(), rows=[], sequential={"z": _seq(rows)})
    t = sequential_table(res, ns=(1, 3, 5))
    assert list(t["n"]) == [1, 3]  # (no regret@5 played)
    one = t[t["n"] == 1].iloc[0]
    assert (one.zoo, one.plan, one.targets, one.best_baseline) == ("z", 0.0, 4, "additive")
    assert (one.baseline, one.baseline_plan, one.baseline_targets, one.baseline_wins) == (0.5, 0.0, 4, 4)
    assert (one.static, one.static_wins, one.static_ties, one.static_losses) == (2.0, 4, 0, 0)
    assert one.baseline_p == pytest.approx(sign_test(4, 0)) and one.baseline_verdict == "tie"
    assert bool(one.below_every_baseline) and one.significant_baselines == 0
    assert "refit" not in t.columns or pd.isna(one.get("refit"))
    three = t[t["n"] == 3].iloc[0]
    assert three.best_baseline == "additive" and not bool(three.below_every_baseline)  # a tie with additive at 3
    assert (three.baseline_wins, three.baseline_ties) == (0, 4)


def test_pbest_table_written_out():
    rows = []
    for i, (cov, hid, bin_, brier, bi, top, hit) in enumerate((
            (3, 4, "cold", 0.5, 0.6, 0.4, 1.0), (1, 1, "<= 20%", 0.3, 0.2, 0.6, 0.0),
            (0, 0, "> 60%", np.nan, np.nan, np.nan, np.nan), (2, 5, "cold", 0.7, 0.9, 0.2, 0.5))):
        rows.append({"zoo": "z", "protocol": "logo", "engine": "hybrid", "dataset": f"d{i}", "covered": cov,
                     "n_hidden": hid, "bin": bin_, "brier": brier, "brier_independent": bi, "p_top_rec": top,
                     "top_hit_rec": hit, "p_top_rec_independent": top / 2, "top_hit_rec_independent": hit / 2})
    rows.append(dict(rows[0], engine="additive", covered=0))
    res = SuiteResult(per_dataset=pd.DataFrame(rows), rows=[("z", "logo"), ("y", "logo")])
    t = pbest_table(res)
    assert len(t) == 1
    r = t.iloc[0]
    assert (r.zoo, r.protocol, r.datasets) == ("z", "logo", 3)
    assert r.coverage == pytest.approx(6 / 10)
    assert r["coverage cold"] == pytest.approx(5 / 9) and r["coverage <= 20%"] == pytest.approx(1.0)
    assert np.isnan(r["coverage <= 40%"])
    assert r.coverage_gap == pytest.approx(np.mean([abs(3 / 4 - 0.8), abs(1 - 0.8), abs(2 / 5 - 0.8)]))
    assert pbest_table(res, level=0.5).iloc[0].coverage_gap == pytest.approx(np.mean([0.25, 0.5, 0.1]))
    assert r.brier == pytest.approx(0.5) and r.brier_independent == pytest.approx(np.mean([0.6, 0.2, 0.9]))
    assert r.p_top == pytest.approx(0.4) and r.hit == pytest.approx(0.5)
    assert r.p_top_independent == pytest.approx(0.2) and r.hit_independent == pytest.approx(0.25)
    assert (r.hit_lo, r.hit_hi) == _bootstrap(np.array([1.0, 0.0, 0.5]))
    assert r.hit_lo <= r.hit <= r.hit_hi


def _rows_by_metric(values, zoo="z", protocol="logo"):
    """values: engine -> list of (pearson-like value, regret) per dataset."""
    rows = []
    for engine, per in values.items():
        for i, (v, r) in enumerate(per):
            row = {"zoo": zoo, "protocol": protocol, "engine": engine, "dataset": f"d{i}", "rep": i}
            row.update({m: v for m in METRICS})
            row["regret@1"] = r
            rows.append(row)
    return rows


def test_suite_table_edges_of_a_tie_and_rows_kept_apart():
    # Pearson: d0 exactly 1e-12 above additive (a tie), d1 exactly 1e-12 below (a tie), d2 8e-13 above (a tie);
    # regret: d0 8e-13 below popularity's (a tie), d1 and d2 above it (losses, not significant: a tie)
    values = {"hybrid": [(1e-12, 1.0 - 8e-13), (0.0, 2.0), (0.5 + 8e-13, 2.0)],
              "additive": [(0.0, 3.0), (1e-12, 3.0), (0.5, 3.0)],
              "popularity": [(-1.0, 1.0), (-1.0, 1.0), (-1.0, 1.0)]}
    rows = _rows_by_metric(values) + _rows_by_metric({e: [(9.0, 0.0)] * 3 for e in values}, zoo="other")
    res = SuiteResult(per_dataset=pd.DataFrame(rows), rows=[("z", "logo")])
    t = suite_table(res)
    pear = t[t["metric"] == "pearson"].iloc[0]
    assert (pear.best_simple, pear.wins, pear.ties, pear.losses) == ("additive", 0, 3, 0)
    assert pear.default == pytest.approx((1e-12 + 0.5 + 8e-13) / 3)  # (the other zoo's rows left out)
    reg = t[t["metric"] == "regret@1"].iloc[0]
    assert (reg.best_simple, reg.wins, reg.ties, reg.losses, reg.verdict) == ("popularity", 0, 1, 2, "tie")
    assert len(t) == len(METRICS)


def test_pbest_table_skips_rows_without_p_best_wherever_they_come():
    row = {"zoo": "z", "protocol": "logo", "engine": "hybrid", "dataset": "d0", "covered": 1, "n_hidden": 2,
           "bin": "cold", "brier": 0.4, "brier_independent": 0.5, "p_top_rec": 0.3, "top_hit_rec": 1.0,
           "p_top_rec_independent": 0.3, "top_hit_rec_independent": 0.0}
    res = SuiteResult(per_dataset=pd.DataFrame([row]), rows=[("y", "logo"), ("z", "logo")])
    assert list(pbest_table(res)["zoo"]) == ["z"]


def test_bootstrap_is_seeded_and_draws_2000_means_by_default():
    v = np.random.default_rng(7).uniform(size=25)
    idx = np.random.default_rng(0).integers(0, 25, size=(2000, 25))
    means = v[idx].mean(1)
    assert _bootstrap(v) == (pytest.approx(np.quantile(means, 0.05), abs=0), pytest.approx(np.quantile(means, 0.95), abs=0))
    assert _bootstrap(v) == _bootstrap(v)


def test_sequential_table_margins_refits_and_significance():
    # plan's regret: 4 on a and b, 0 on c .. h (mean 1); popularity 3 everywhere (margin 2 over plan); the raw score
    # plays a and b only, 4.5 (margin 0.5 there: the toughest, though its mean is the largest); additive 1e-12
    # above plan on every target (not below it by more than 1e-12)
    targets = "abcdefgh"
    plan = {d: 4.0 if d in "ab" else 0.0 for d in targets}
    rows = [{"engine": "plan", "dataset": d, "regret@1": v} for d, v in plan.items()]
    rows += [{"engine": "popularity", "dataset": d, "regret@1": 3.0} for d in targets]
    rows += [{"engine": "logme:LOG_ME", "dataset": d, "regret@1": 4.5} for d in "ab"]
    rows += [{"engine": "plan-refit", "dataset": d, "regret@1": 1.0} for d in targets]
    res = SuiteResult(per_dataset=pd.DataFrame(), rows=[], sequential={"z": _seq(rows)})
    t = sequential_table(res, ns=(1,)).iloc[0]
    assert t.best_baseline == "logme:LOG_ME" and t.baseline_targets == 2 and t.baseline == pytest.approx(4.5)
    assert (t.refit, t.refit_plan, t.refit_wins, t.refit_losses) == (1.0, 1.0, 6, 2)
    assert "static" not in t.index or pd.isna(t["static"])
    assert t.significant_baselines == 0  # popularity: 6 wins, 2 losses, p = 0.29
    rows2 = [r for r in rows if r["engine"] != "logme:LOG_ME"]
    rows2 = [dict(r, **{"regret@1": 0.0}) if r["engine"] == "plan" else r for r in rows2]
    rows2 += [{"engine": "additive", "dataset": d, "regret@1": 1e-12} for d in targets]
    t2 = sequential_table(SuiteResult(per_dataset=pd.DataFrame(), rows=[], sequential={"z": _seq(rows2)}),
                          ns=(1,)).iloc[0]
    assert t2.significant_baselines == 1 and t2.best_baseline == "additive"  # popularity: 8-0-0, p = 0.008
    assert not bool(t2.below_every_baseline)  # additive exactly 1e-12 above
    # n without regrets in the middle of ns: skipped, the next still made
    assert list(sequential_table(res, ns=(5, 1)).get("n", [])) == [1]


def test_sequential_table_toughest_baseline_is_not_the_first_by_name():
    rows = [{"engine": e, "dataset": d, "regret@1": v} for d in "abc"
            for e, v in (("plan", 0.0), ("additive", 5.0), ("popularity", 1.0), ("random", 9.0))]
    t = sequential_table(SuiteResult(per_dataset=pd.DataFrame(), rows=[], sequential={"z": _seq(rows)}), ns=(1,))
    assert t.iloc[0].best_baseline == "popularity"


def test_the_loop_coverage_table_shows_plans_coverage_after_n_results():
    import types

    from recsys.evaluation.suite import _loop_coverage

    rows = [{"engine": "plan", "dataset": d, "regret@1": 0.0, "coverage@0": c0, "coverage@1": c1}
            for d, c0, c1 in (("a", 1.0, 0.5), ("b", 0.5, np.nan))]
    rows.append({"engine": "static", "dataset": "a", "regret@1": 1.0})
    seq = types.SimpleNamespace(per_dataset=pd.DataFrame(rows), level=0.8)
    old = types.SimpleNamespace(per_dataset=pd.DataFrame([r for r in rows if r["engine"] == "static"]), level=0.8)
    lines = _loop_coverage(SuiteResult(per_dataset=pd.DataFrame(), rows=[], sequential={"z": seq, "old": old}))
    assert lines[2:5] == ["| zoo | after 0 | after 1 |", "|---|---|---|", "| z | 0.750 | 0.500 |"]
    assert "coverage of their 80% intervals" in lines[0] and "goal 0.80 ± 0.03" in lines[0] and lines[-1] == ""
    assert _loop_coverage(SuiteResult(per_dataset=pd.DataFrame(), rows=[], sequential={"old": old})) == []


def test_the_stop_table_sets_plans_p_stay_against_how_often_the_best_so_far_stayed_the_best():
    """Per zoo and n: the mean of stay@n, the mean of stayed@n on the same targets, and the Brier score of one against
    the other; targets without stay@n (not played that far) left out; a zoo without the column: no table."""
    import types

    from recsys.evaluation.suite import _loop_stay

    rows = [{"engine": "plan", "dataset": d, "found@1": 1.0, "stayed@1": f1, "stayed@2": f2, "stay@1": s1,
             "stay@2": s2}
            for d, f1, f2, s1, s2 in (("a", 1.0, 1.0, 0.9, 0.8), ("b", 0.0, 0.5, 0.3, np.nan),
                                      ("c", 0.0, 0.0, 0.2, 0.4))]  # (found@n is not the outcome: stayed@n is)
    rows.append({"engine": "static", "dataset": "a", "found@1": 0.0, "found@2": 0.0})
    seq = types.SimpleNamespace(per_dataset=pd.DataFrame(rows), level=0.8)
    old = types.SimpleNamespace(per_dataset=pd.DataFrame([r for r in rows if r["engine"] == "static"]), level=0.8)
    lines = _loop_stay(SuiteResult(per_dataset=pd.DataFrame(), rows=[], sequential={"z": seq, "old": old}))
    b1 = ((0.9 - 1) ** 2 + 0.3 ** 2 + 0.2 ** 2) / 3
    b2 = ((0.8 - 1) ** 2 + 0.4 ** 2) / 2
    assert lines[2:5] == ["| zoo | after 1 | after 2 |", "|---|---|---|",
                          f"| z | 0.47 / 0.33 / {b1:.3f} | 0.60 / 0.50 / {b2:.3f} |"]
    assert "stays the best" in lines[0] and lines[-1] == ""
    assert _loop_stay(SuiteResult(per_dataset=pd.DataFrame(), rows=[], sequential={"old": old})) == []


def test_the_stop_tables_brier_score_is_each_plays_when_a_target_is_played_with_several_seeds():
    """Two seeds of one target, P(stays) 0.9 and 0.1 where it stayed and did not: the means are 0.50 / 0.50, but the
    Brier score is that of each play (0.010), not that of the means (0)."""
    import types

    from recsys.evaluation.suite import _loop_stay

    rows = [{"engine": "plan", "dataset": "a", "rep": rep, "stay@1": s, "stayed@1": f}
            for rep, s, f in ((0, 0.9, 1.0), (1, 0.1, 0.0))]
    seq = types.SimpleNamespace(per_dataset=pd.DataFrame(rows), level=0.8)
    lines = _loop_stay(SuiteResult(per_dataset=pd.DataFrame(), rows=[], sequential={"z": seq}))
    assert lines[4] == "| z | 0.50 / 0.50 / 0.010 |"


def test_the_seed_table_shows_plans_mean_regret_per_engine_seed_and_nothing_with_one_seed():
    """Two seeds of two targets: each seed's mean over the targets, in seed order; one seed: no table."""
    import types

    from recsys.evaluation.suite import _seed_spread

    rows = [{"engine": e, "dataset": d, "rep": rep, "seed": seed, "regret@1": r1, "regret@3": r3}
            for e, d, rep, seed, r1, r3 in (("plan", "a", 0, 7, 1.0, 0.0), ("plan", "b", 0, 7, 3.0, 1.0),
                                            ("plan", "a", 1, 9, 5.0, 2.0), ("plan", "b", 1, 9, 7.0, 2.0),
                                            ("static", "a", 0, 7, 99.0, 99.0))]
    seq = types.SimpleNamespace(per_dataset=pd.DataFrame(rows))
    lines = _seed_spread(SuiteResult(per_dataset=pd.DataFrame(), rows=[], sequential={"z": seq}))
    assert lines[2:5] == ["| zoo | seed 7 | seed 9 |", "|---|---|---|", "| z | 2.00 / 0.50 | 6.00 / 2.00 |"]
    one = types.SimpleNamespace(per_dataset=pd.DataFrame([r for r in rows if r["rep"] == 0]))
    assert _seed_spread(SuiteResult(per_dataset=pd.DataFrame(), rows=[], sequential={"z": one})) == []


def test_out_of_reach_names_rows_where_the_baseline_leaves_too_few_targets_to_win():
    from recsys.evaluation.suite import _out_of_reach, fewest_significant_wins

    assert fewest_significant_wins() == 6 and sign_test(6, 0) < 0.05 <= sign_test(5, 0)
    # popularity finds the best at once on 5 of 9 targets (regret 0): plan can win on 4 at most, fewer than 6;
    # after 3, additive is the toughest and above 0 on all 9: a significant win is possible
    rows = []
    for i, d in enumerate("abcdefghi"):
        rows += [{"engine": "plan", "dataset": d, "regret@1": 0.5, "regret@3": 0.0},
                 {"engine": "popularity", "dataset": d, "regret@1": 0.0 if i < 5 else 2.0, "regret@3": 3.0},
                 {"engine": "additive", "dataset": d, "regret@1": 9.0, "regret@3": 0.1}]
    t = sequential_table(SuiteResult(per_dataset=pd.DataFrame(), rows=[], sequential={"z": _seq(rows)}), ns=(1, 3))
    assert list(t["best_baseline"]) == ["popularity", "additive"] and list(t["baseline_room"]) == [4, 9]
    lines = _out_of_reach(t)
    assert len(lines) == 2 and lines[1] == ""
    assert "needs 6 wins without a loss" in lines[0]
    assert lines[0].endswith("on z after 1 (popularity at 0 on 5 of 9 targets: at most 4 wins).")
    assert _out_of_reach(t[t["n"] == 3]) == [] and _out_of_reach(pd.DataFrame()) == []
