"""The runner end to end on the real reference zoos, checked against a direct recomputation."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import ndcg_score

from recsys.engines import make_engine
from recsys.engines.calibration import calibrate
from recsys.evaluation import run
from recsys.evaluation.report import P1_PUBLISHED

from conftest import expected_regret

ROOT = Path(__file__).resolve().parents[1]


def conformal_half_width(pool: np.ndarray, level: float) -> float:
    """The split-conformal quantile, by its definition: the ceil((n + 1) level)-th smallest absolute residual."""
    ranked = np.sort(np.asarray(pool))
    return float(ranked[min(math.ceil((len(ranked) + 1) * level), len(ranked)) - 1])


STRATA = ("cold", "few", "some", "most")


def stratum_pool(pools: dict, n_known: int, n_models: int) -> np.ndarray:
    """The residuals an interval is drawn from: the stratum of how much of the dataset's row the engine saw (none,
    a third or less, two thirds or less, more), its own pool from 30 residuals on, else with its neighbours'."""
    frac = n_known / n_models
    s = 0 if frac <= 0 else 1 if frac <= 1 / 3 else 2 if frac <= 2 / 3 else 3
    own = pools.get(STRATA[s], np.zeros(0))
    if len(own) >= 30:
        return own
    near = np.concatenate([pools.get(STRATA[t], np.zeros(0)) for t in (s - 1, s, s + 1) if 0 <= t < 4])
    return near if len(near) >= 30 else np.concatenate(list(pools.values()))


@pytest.fixture(scope="module")
def p1_run(domainnet, tmp_path_factory):
    out = tmp_path_factory.mktemp("p1")
    return run("p1", domainnet, ["popularity", "additive"], repeats=2, out_dir=out, progress=False,
               text_encoder="hashing", coverage="all"), out


def test_p1_writes_every_file(p1_run):
    res, out = p1_run
    for name in ("per_dataset.csv", "summary.csv", "timing.csv", "errors.csv", "report.md", "pearson.png",
                 "heatmap.png", "fit_time.png"):
        assert (out / f"p1_{name}").is_file(), name
        assert res.files[name.replace(".", "_")] == out / f"p1_{name}"
    assert res.status == {"popularity": "ok", "additive": "ok"}
    per = pd.read_csv(out / "p1_per_dataset.csv")
    assert len(per) == 2 * 2 * 270
    assert set(per["bin"]) == {"cold", "<= 20%", "<= 40%", "<= 60%", "> 60%"}


def test_p1_additive_beats_popularity(p1_run):
    res, _ = p1_run
    assert res.value("additive", "pearson") > res.value("popularity", "pearson")


def test_p1_numbers_equal_a_direct_recomputation(p1_run, dn_data):
    res, out = p1_run
    per = pd.read_csv(out / "p1_per_dataset.csv")
    summary = pd.read_csv(out / "p1_summary.csv")
    Y = dn_data.Y
    for name in ("popularity", "additive"):
        avg, cold, kendall, covered, hidden = [], [], [], 0, 0
        for seed in (0, 1):
            rng = np.random.default_rng(seed)
            perm = rng.permutation(270)
            known = np.zeros_like(Y, dtype=bool)
            for g in range(10):
                for j in perm[g * 27:(g + 1) * 27]:
                    known[j, rng.choice(10, 9 - g, replace=False)] = True
            train = dn_data.with_Y(np.where(known, Y, np.nan))
            engine = make_engine(name, seed=seed).fit(train)
            pred = engine.predict(dn_data.block())
            F = np.where(known, Y, pred)
            r = np.array([stats.pearsonr(Y[j], F[j])[0] for j in range(270)])
            tau = np.array([stats.kendalltau(Y[j], F[j])[0] for j in range(270)])
            ndcg3 = np.array([ndcg_score([Y[j]], [F[j]], k=3) for j in range(270)])
            ndcg5 = np.array([ndcg_score([Y[j]], [F[j]], k=5) for j in range(270)])
            regret1 = np.array([expected_regret(Y[j], F[j], 1) for j in range(270)])
            regret3 = np.array([expected_regret(Y[j], F[j], 3) for j in range(270)])
            avg.append(np.nanmean(r))
            cold.append(np.nanmean(r[known.sum(1) == 0]))
            kendall.append(np.nanmean(tau))
            mine = per[(per["engine"] == name) & (per["rep"] == seed)].set_index("dataset")
            # the per-dataset CSV keeps 5 significant digits
            np.testing.assert_allclose(mine.loc[list(dn_data.dataset_ids), "pearson"], r, rtol=1e-4, atol=1e-12)
            # (P1's cut-off is 3; NDCG@5 is every protocol's too)
            for col, want in (("ndcg@3", ndcg3), ("ndcg@5", ndcg5), ("regret@1", regret1), ("regret@3", regret3)):
                np.testing.assert_allclose(mine.loc[list(dn_data.dataset_ids), col], want, rtol=1e-4, atol=1e-9)
            assert (regret1 > 0).sum() > 50 and (regret3 < regret1).any()  # (values that tell the cuts apart)
            cal = calibrate(lambda: make_engine(name, seed=seed), train, seed=seed)
            # Coverage recomputed from its definition, not through the intervals the runner uses: a hidden cell is
            # covered when |truth - prediction| is at most its stratum's conformal quantile.
            half = np.array([conformal_half_width(stratum_pool(cal.abs_residuals, n, 10), 0.8) for n in known.sum(1)])
            inside = (np.abs(Y - pred) <= half[:, None]) & ~known
            covered += inside.sum()
            hidden += (~known).sum()
            assert mine["covered"].sum() == inside.sum()
            # P(best) shares ties, so does the hit of its top pick: 0, or 1/n when tied with n - 1 others
            n_tied = pd.Series((Y >= Y.max(1, keepdims=True)).sum(1), index=list(dn_data.dataset_ids))
            hit = mine["top_hit"].dropna()
            credit = hit * n_tied[hit.index]
            assert len(hit) > 200 and (np.isclose(credit, 0, atol=1e-4) | np.isclose(credit, 1, atol=1e-4)).all()
            assert (hit[n_tied[hit.index] > 1] > 0).any() and (hit < 1).any() and (hit == 1).any()

        def stat(metric, bin_="all"):
            row = summary[(summary["engine"] == name) & (summary["metric"] == metric) & (summary["bin"] == bin_)]
            return row["mean"].iloc[0], row["std"].iloc[0]

        assert stat("pearson") == pytest.approx((np.mean(avg), np.std(avg, ddof=1)), abs=1e-12)
        assert stat("pearson", "cold")[0] == pytest.approx(np.mean(cold), abs=1e-12)
        assert stat("kendall")[0] == pytest.approx(np.mean(kendall), abs=1e-12)
        # per-rep pooled coverage, then mean over reps: both reps hide the same number of cells
        assert stat("coverage")[0] == pytest.approx(covered / hidden, abs=1e-12)


def test_p1_report_is_honest(p1_run):
    res, out = p1_run
    md = (out / "p1_report.md").read_text()
    assert md == res.markdown
    for method in P1_PUBLISHED:
        assert f"{method} (published)" in md
    assert "0-20%" in md and "1:1" in md
    # hybrid did not run here: the report must say so instead of claiming anything
    assert "`hybrid` was not part of this run" in md
    timing = pd.read_csv(out / "p1_timing.csv")
    assert timing["engine"].tolist() == ["popularity", "additive"]
    assert (timing["fit_s"] > 0).all() and (timing["n_folds"] == 2).all()


def test_p2_run_on_two_targets(transfergraph, tg_data, tmp_path):
    from recsys.evaluation.protocols import fold_zoo_data, p2_folds

    res = run("p2", transfergraph, ["popularity", "logme"], out_dir=tmp_path, progress=False,
              targets=["dtd", "svhn"], coverage="none")
    assert res.status == {"popularity": "ok", "logme": "ok"}
    per = res.result.per_dataset
    assert sorted(per["dataset"].unique()) == ["dtd", "svhn"]
    # Each target's metrics, recomputed: fit without its records, predict it, score against its records.
    Y = tg_data.Y
    for fold in p2_folds(tg_data, [0], targets=["dtd", "svhn"]):
        (j,) = fold.rows
        rec = ~np.isnan(Y[j])
        for name in ("popularity", "logme"):
            pred = make_engine(name, seed=fold.seed).fit(fold_zoo_data(tg_data, fold)).predict(tg_data.block([j]))[0]
            t, p = Y[j, rec], pred[rec]
            row = per[(per["engine"] == name) & (per["dataset"] == tg_data.dataset_ids[j])].iloc[0]
            assert row["pearson"] == pytest.approx(stats.pearsonr(t, p)[0], abs=1e-9)
            assert row["kendall"] == pytest.approx(stats.kendalltau(t, p)[0], abs=1e-9)
            assert row["ndcg@5"] == pytest.approx(ndcg_score([t], [p], k=5), abs=1e-9)
            assert row["regret@1"] == pytest.approx(expected_regret(t, p, 1), abs=1e-9)
            assert row["regret@5"] == pytest.approx(expected_regret(t, p, 5), abs=1e-9)
    assert "TransferGraph (best variant, XGBoost on node2vec features) (published)" in res.markdown
    assert (tmp_path / "p2_heatmap.png").is_file()


@pytest.mark.slow
def test_run_all_smoke(tmp_path, data_dir):
    env = dict(os.environ)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--smoke", "--out", str(tmp_path),
           "--engines", "random,popularity,additive,hybrid", "--text-encoder", "hashing", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    md = (tmp_path / "results.md").read_text()
    assert "SMOKE RUN" in md and "CPU cores" in md and "Command:" in md
    assert "## P1" in md and "## P2" in md
    for p in ("p1", "p2"):
        assert (tmp_path / f"{p}_summary.csv").is_file()
    per2 = pd.read_csv(tmp_path / "p2_per_dataset.csv.gz")  # the benchmark gzips its per-dataset rows
    assert per2["dataset"].nunique() == 2
    per1 = pd.read_csv(tmp_path / "p1_per_dataset.csv.gz")
    assert sorted(per1["rep"].unique()) == [0, 1]
    assert not (tmp_path / "p1_per_dataset.csv").exists()


def test_below_baselines_lists_every_headline_loss_including_cold_regret(p1_run):
    from recsys.evaluation.report import below_baselines

    run_result, _ = p1_run
    res, summary = run_result.result, run_result.summary
    lines = below_baselines(res, summary, default="popularity", baselines=["additive"])
    assert any(line.startswith("Pearson") for line in lines)  # additive beats popularity on P1 Pearson
    # flip the cold regret@1 of popularity: now it must be listed, labelled as cold start
    worse = summary.copy()
    sel = (worse["engine"] == "popularity") & (worse["metric"] == "regret@1") & (worse["bin"] == "cold")
    assert sel.sum() == 1
    worse.loc[sel, "mean"] += 1.0
    assert any("regret@1" in line and "[cold start]" in line
               for line in below_baselines(res, worse, default="popularity", baselines=["additive"]))


@pytest.mark.slow
def test_suite_smoke_on_parc(data_dir):
    """The cross-zoo suite on one small zoo (its rows, its sequential protocol and one conditioning check): every
    engine of a row runs, and the table's verdicts follow the sign test."""
    from recsys.evaluation.suite import run_suite, suite_markdown, suite_table

    res = run_suite([("parc-71", "logo"), ("parc-71", "missing-edge")], repeats={"missing-edge": 2},
                    text_encoder="hashing", ablations=False, sequential_zoos=("parc-71",), conditioning_seeds=(0,),
                    sequential_repeats=2)
    assert set(res.sequential) == {"parc-71"} and set(res.conditioning) == {"parc-71"}
    seq = res.sequential["parc-71"]
    assert list(seq.seeds) == [0, 1] and set(seq.per_dataset.groupby(["engine", "dataset"]).size()) == {2}
    assert set(res.per_dataset["engine"]) == {"hybrid", "lightfm", "popularity", "additive"}
    table = suite_table(res)
    assert len(table) == 8 and set(table["unit"]) == {"dataset", "rep"}
    for r in table.itertuples():
        assert r.wins + r.ties + r.losses == (7 if r.protocol == "logo" else 2)
    md = suite_markdown(res, table)
    assert "| parc-71 | logo |" in md and "**Verdict.**" in md
    assert "Every target is played with 2 engine seeds" in md
    seeds = md.splitlines()
    at = seeds.index("| zoo | seed 0 | seed 1 |")
    assert seeds[at + 2].startswith("| parc-71 | ") and seeds[at + 2].count(" / ") == 4  # (2 seeds x @1/@3/@5)


def test_suite_table_counts_and_verdicts_on_known_differences():
    """Hand-made per-dataset rows: 9 datasets where hybrid beats additive and 1 tie -> a significant win;
    regret (lower is better) with 2 wins and 1 loss -> a tie."""
    from scipy.stats import binomtest

    from recsys.evaluation.suite import METRICS, SuiteResult, suite_table

    rows = []
    for i in range(10):
        for engine, shift in (("hybrid", 0.0 if i == 9 else 0.1), ("additive", 0.0), ("popularity", -0.5)):
            row = {"zoo": "z", "protocol": "logo", "engine": engine, "dataset": f"d{i}"}
            row.update({m: 0.5 + shift for m in METRICS})
            row["regret@1"] = {"hybrid": [1, 1, 3] + [2] * 7, "additive": [2] * 10, "popularity": [9] * 10}[engine][i]
            rows.append(row)
    table = suite_table(SuiteResult(per_dataset=pd.DataFrame(rows), rows=[("z", "logo")]))
    pear = table[table["metric"] == "pearson"].iloc[0]
    assert (pear.best_simple, pear.wins, pear.ties, pear.losses) == ("additive", 9, 1, 0)
    assert pear.p == pytest.approx(binomtest(9, 9).pvalue) and pear.verdict == "win"
    reg = table[table["metric"] == "regret@1"].iloc[0]
    assert (reg.best_simple, reg.wins, reg.ties, reg.losses, reg.verdict) == ("additive", 2, 7, 1, "tie")


def test_sign_test_exact_values():
    from scipy.stats import binomtest

    from recsys.evaluation.suite import sign_test

    assert sign_test(0, 0) == 1.0
    assert sign_test(10, 0) == pytest.approx(2 / 1024)
    for w, l in ((9, 1), (7, 2), (3, 3), (15, 4), (0, 6)):
        assert sign_test(w, l) == pytest.approx(binomtest(w, w + l).pvalue)
