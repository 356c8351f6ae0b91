"""The cross-zoo suite: the default engine against the best simple predictor of each zoo and protocol.

Rows are (zoo, protocol) pairs: P1 and P2 on their published zoos, ``logo``
on ``vtab-hf`` and ``parc-71``, ``missing-edge`` on all four. Per row and
metric (Pearson, Kendall tau-b, NDCG@5, regret@1) the default engine is held
against the **best simple predictor of that row**: the best, by its mean on
that metric, of popularity, additive and, where the zoo has transferability
scores, each raw score (``logme`` with each metric) and ``score-stack``
(popularity stacked with the scores). A paired sign test decides win, tie or
loss (two-sided, 5%):

- leave-one-dataset-out rows (P2, logo): over the target datasets (each
  dataset's metric averaged over the repetitions);
- missing-edge rows (P1, missing-edge): over the repetitions (each
  repetition's metric averaged over the datasets): the repetitions are the
  independent draws of the protocol, the datasets within one are not.

Ties (equal values) are left out of a sign test, as usual. Beside them, the
suite reports the default engine's parts: the plain ``lightfm`` engine and
the default without each stage (ablations), so a reader sees what each part
earns on each zoo.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from math import comb
from typing import Sequence

import numpy as np
import pandas as pd

from ..engines import DEFAULT_ENGINE
from ..engines.hybrid import CANDIDATES
from .protocols import (PROTOCOLS, RELIABILITY_BINS, FitCache, as_zoo_data, evaluate, logo_targets,
                        missing_edge_folds, p1_folds, p2_folds, p2_targets)

__all__ = ["SUITE_ROWS", "SEQUENTIAL_ZOOS", "SEQUENTIAL_REPEATS", "SIMPLE", "ABLATIONS", "SuiteResult", "run_suite",
           "sign_test", "suite_table", "suite_markdown", "suite_plot", "zoos_with_wins", "parts_table",
           "sequential_table", "pbest_table", "reliability_markdown", "sequential_plot"]

log = logging.getLogger(__name__)

#: (zoo, protocol) rows of the suite
SUITE_ROWS = (("domainnet-270", "p1"), ("transfergraph-image", "p2"), ("vtab-hf", "logo"), ("parc-71", "logo"),
              ("domainnet-270", "missing-edge"), ("transfergraph-image", "missing-edge"),
              ("vtab-hf", "missing-edge"), ("parc-71", "missing-edge"))
#: zoos of the suite's sequential rows (recsys.evaluation.sequential)
SEQUENTIAL_ZOOS = ("domainnet-270", "transfergraph-image", "vtab-hf", "parc-71")
#: engine seeds the suite plays the sequential protocol with (each target's regret their mean): one seed's plays
#: turn on a pick or two of a small zoo (vtab-hf, seeds 0-4: the plan's regret@1 13.6 to 18.5, @3 4.1 to 9.2)
SEQUENTIAL_REPEATS = 5
#: the simple predictors; the score-based ones only where the zoo has scores
SIMPLE = ("popularity", "additive", "logme:LOG_ME", "logme:REG_H_SCORE", "score-stack")
#: the default engine without one of its parts
ABLATIONS = {
    "hybrid - lightfm": ("hybrid", {"candidates": tuple(c for c in CANDIDATES if c != "lightfm")}),
    "hybrid - kernel": ("hybrid", {"candidates": tuple(c for c in CANDIDATES if c != "kernel")}),
    "hybrid - scores": ("hybrid", {"candidates": tuple(c for c in CANDIDATES if c != "scores")}),
    "hybrid - kriging": ("hybrid", {"cov_shrinks": (1.0,)}),
}
METRICS = ("pearson", "kendall", "ndcg@5", "regret@1")
LABELS = {"pearson": "Pearson", "kendall": "Kendall", "ndcg@5": "NDCG@5", "regret@1": "regret@1 (pts)"}


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: P(a split at least as uneven as ``wins``-``losses`` | no difference)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    p = sum(comb(n, i) for i in range(k + 1)) / 2 ** n
    return float(min(1.0, 2 * p))


@dataclass
class SuiteResult:
    """Per-dataset rows of every suite row (``per_dataset``), the timings, the sequential protocol's results
    per zoo (``sequential``) and the reliability of P(best) per row (``reliability``: ``zoo, protocol`` and
    the columns of :attr:`~recsys.evaluation.protocols.ProtocolResult.reliability`)."""

    per_dataset: pd.DataFrame
    rows: list
    wall_s: dict = field(default_factory=dict)
    has_scores: dict = field(default_factory=dict)
    sequential: dict = field(default_factory=dict)
    reliability: pd.DataFrame | None = None
    conditioning: dict = field(default_factory=dict)


def _variants(has_scores: bool) -> dict:
    out = {f"logme:{m}": ("logme", {"metric": m}) for m in ("LOG_ME", "REG_H_SCORE")} if has_scores else {}
    out.update({k: v for k, v in ABLATIONS.items() if has_scores or k != "hybrid - scores"})
    return out


def _folds(data, protocol: str, repeats: int | None, seeds: Sequence[int] | None):
    spec = PROTOCOLS[protocol]
    seeds = list(seeds) if seeds is not None else list(range(repeats or spec.default_repeats))
    if protocol == "p1":
        return p1_folds(data, seeds)
    if protocol == "missing-edge":
        return missing_edge_folds(data, seeds)
    if protocol == "p2":
        return p2_folds(data, seeds, default_targets=p2_targets)
    return p2_folds(data, seeds, default_targets=logo_targets)


def run_suite(rows: Sequence[tuple[str, str]] = SUITE_ROWS, *, repeats: dict | None = None,
              text_encoder=None, ablations: bool = True, progress: bool = False,
              sequential_zoos: Sequence[str] = SEQUENTIAL_ZOOS, cache: FitCache | None = None,
              conditioning_seeds: Sequence[int] = (0, 1, 2),
              sequential_repeats: int = SEQUENTIAL_REPEATS) -> SuiteResult:
    """Evaluate the default engine, ``lightfm``, the simple predictors and the ablations on every row; the
    sequential protocol on ``sequential_zoos``.

    Parameters
    ----------
    rows : sequence of (zoo, protocol)
    repeats : dict, optional
        Repetitions per protocol (default: 10 for missing-edge kinds, 3 for
        ``p2``, 1 for ``logo``).
    text_encoder : str, optional
    ablations : bool
        Also run the default engine without each of its parts.
    sequential_zoos : sequence of str
        Zoos the sequential protocol is played on (its policies against each other).
    sequential_repeats : int
        Engine seeds it is played with (``0 .. sequential_repeats - 1``; each target's regret is their mean).
    cache : FitCache, optional
        Fits and calibrations of the default engine shared between rows (and with the caller's other runs):
        P1 and missing-edge on DomainNet-270 hide the same cells, ``logo`` and ``sequential`` the same targets.
    conditioning_seeds : sequence of int
        Repetitions of the conditioning variant of ``missing-edge`` on each sequential zoo
        (:mod:`recsys.evaluation.conditioning`); empty: not run.
    """
    from .conditioning import conditioning_check
    from .sequential import sequential

    repeats = {"p1": 10, "missing-edge": 10, "p2": 3, "logo": 1, **(repeats or {})}
    cache = cache if cache is not None else FitCache()
    frames, walls, scored, seq, rel = [], {}, {}, {}, []
    data_of: dict = {}

    def load(zoo):
        if zoo not in data_of:
            data_of[zoo] = as_zoo_data(zoo, text_encoder)
        return data_of[zoo]

    for zoo, protocol in rows:
        data, name = load(zoo)
        has_scores = any(np.isfinite(v).any() for v in data.scores.values())
        scored[zoo] = has_scores
        variants = _variants(has_scores)
        engines = [DEFAULT_ENGINE, "lightfm", *[s for s in SIMPLE if s in ("popularity", "additive") or has_scores]]
        if ablations:
            engines += [v for v in variants if v.startswith(DEFAULT_ENGINE + " - ")]
        folds = _folds(data, protocol, repeats[protocol], None)
        t0 = time.perf_counter()
        res = evaluate(data, PROTOCOLS[protocol], folds, engines, zoo_name=name, coverage="default",
                       progress=progress, variants={k: v for k, v in variants.items() if k in engines}, cache=cache)
        walls[f"{zoo}:{protocol}"] = time.perf_counter() - t0
        bad = {e: st for e, st in res.status.items() if st != "ok"}
        if bad:
            log.warning("suite %s %s: %s", zoo, protocol, bad)
        frames.append(res.per_dataset.assign(zoo=zoo, protocol=protocol))
        if res.reliability is not None and len(res.reliability):
            rel.append(res.reliability.assign(zoo=zoo, protocol=protocol))
        log.info("suite %s %s done in %.1f s", zoo, protocol, walls[f"{zoo}:{protocol}"])
    for zoo in sequential_zoos:
        data, name = load(zoo)
        t0 = time.perf_counter()
        seq[zoo] = sequential(data, repeats=sequential_repeats, cache=cache, progress=progress)
        seq[zoo].zoo = name if name != "data" else zoo
        walls[f"{zoo}:sequential"] = time.perf_counter() - t0
        log.info("suite %s sequential done in %.1f s", zoo, walls[f"{zoo}:sequential"])
    cond = {}
    for zoo in sequential_zoos if len(conditioning_seeds) else ():
        data, _ = load(zoo)
        t0 = time.perf_counter()
        cond[zoo] = conditioning_check(data, conditioning_seeds, cache=cache)
        walls[f"{zoo}:conditioning"] = time.perf_counter() - t0
    return SuiteResult(pd.concat(frames, ignore_index=True), list(rows), walls, scored, seq,
                       pd.concat(rel, ignore_index=True) if rel else None, cond)


def suite_table(result: SuiteResult, default: str = DEFAULT_ENGINE) -> pd.DataFrame:
    """One row per (zoo, protocol, metric): default's mean, the best simple predictor and its mean, the sign test."""
    out = []
    df = result.per_dataset
    for zoo, protocol in result.rows:
        g = df[(df["zoo"] == zoo) & (df["protocol"] == protocol)]
        simple = [e for e in SIMPLE if (g["engine"] == e).any()]
        kind = PROTOCOLS[protocol].kind
        unit = "dataset" if kind == "logo" else "rep"
        for metric in METRICS:
            lower = metric.startswith("regret")
            means = g.groupby("engine")[metric].mean()
            best = min(simple, key=lambda e: means[e]) if lower else max(simple, key=lambda e: means[e])
            paired = g[g["engine"].isin([default, best])].pivot_table(index=unit, columns="engine", values=metric,
                                                                      aggfunc="mean")
            diff = (paired[default] - paired[best]).dropna() * (-1 if lower else 1)
            wins, losses = int((diff > 1e-12).sum()), int((diff < -1e-12).sum())
            ties = int(len(diff) - wins - losses)
            p = sign_test(wins, losses)
            verdict = "win" if p < 0.05 and wins > losses else "loss" if p < 0.05 and losses > wins else "tie"
            out.append({"zoo": zoo, "protocol": protocol, "metric": metric, "default": float(means[default]),
                        "best_simple": best, "simple": float(means[best]), "difference": float(means[default] - means[best]),
                        "unit": unit, "wins": wins, "ties": ties, "losses": losses, "p": p, "verdict": verdict})
    return pd.DataFrame(out)


def zoos_with_wins(table: pd.DataFrame) -> list[str]:
    """Zoos where one protocol row has significant wins on both Pearson and Kendall."""
    won = set()
    for (zoo, _), g in table.groupby(["zoo", "protocol"], sort=False):
        verdict = dict(zip(g["metric"], g["verdict"]))
        if verdict.get("pearson") == "win" and verdict.get("kendall") == "win":
            won.add(zoo)
    return sorted(won)


def parts_table(result: SuiteResult) -> pd.DataFrame:
    """Mean of each metric per (row, engine) for the default engine, ``lightfm`` and the ablations."""
    df = result.per_dataset
    names = [DEFAULT_ENGINE, "lightfm", *ABLATIONS]
    g = df[df["engine"].isin(names)].groupby(["zoo", "protocol", "engine"], sort=False)[list(METRICS)].mean()
    return g.reset_index()


def _f(v: float, metric: str) -> str:
    return f"{v:.2f}" if metric.startswith("regret") else f"{v:.3f}"


def suite_markdown(result: SuiteResult, table: pd.DataFrame | None = None, *, heading: str = "#",
                   command: str = "", hardware: str = "", docs: str | None = None,
                   sequential_plots: dict | None = None) -> str:
    """``suite.md``: the summary table, the verdict per zoo, the sequential protocol, the joint distribution's
    P(best) and intervals, the parts of the default engine.

    ``docs``: where ``docs/protocols.md`` is from the file's directory (linked when given);
    ``sequential_plots``: per zoo, the path of its regret@n figure.
    """
    table = suite_table(result) if table is None else table
    lines = [f"{heading} Cross-zoo suite: the default engine against the best simple predictor", ""]
    if command:
        lines.append(f"- Command: `{command}`")
    if hardware:
        lines.append(f"- Hardware: {hardware}")
    if result.wall_s:
        lines.append(f"- Wall time: {sum(result.wall_s.values()):.0f} s (" +
                     ", ".join(f"{k} {v:.0f} s" for k, v in result.wall_s.items()) + ")")
    lines += [
        "",
        f"Each cell: `{DEFAULT_ENGINE}` (the default engine) vs the best simple predictor of that row and metric "
        "(the best by mean of popularity, additive and, on zoos with scores, each raw score and score-stack), "
        "then the paired sign test: wins-ties-losses over target datasets (P2, logo) or repetitions "
        "(P1, missing-edge), two-sided p, and the verdict at 5%. Regret@1 in accuracy points, lower is better. "
        "The metrics, the protocols and the suite's statistics are defined in "
        + (f"[docs/protocols.md]({docs}#the-cross-zoo-suite)." if docs else "`docs/protocols.md`."),
        "",
    ]
    header = ["zoo", "protocol"] + [LABELS[m] for m in METRICS]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for zoo, protocol in result.rows:
        cells = []
        for metric in METRICS:
            r = table[(table["zoo"] == zoo) & (table["protocol"] == protocol) & (table["metric"] == metric)].iloc[0]
            mark = {"win": "**win**", "loss": "**LOSS**", "tie": "tie"}[r["verdict"]]
            cells.append(f"{_f(r['default'], metric)} vs {_f(r['simple'], metric)} ({r['best_simple']}); "
                         f"{r['wins']}-{r['ties']}-{r['losses']} p={r['p']:.3f} {mark}")
        lines.append(f"| {zoo} | {protocol} | " + " | ".join(cells) + " |")
    lines.append("")
    # the goals of the suite, checked
    losses = table[table["verdict"] == "loss"]
    zoos_won = zoos_with_wins(table)
    lines.append("**Verdict.** " + (
        "No significant loss to the best simple predictor on any row and metric." if losses.empty else
        "Significant losses: " + "; ".join(f"{r.zoo} {r.protocol} {LABELS[r.metric]}" for r in losses.itertuples())
        + "."))
    lines.append(f"Significant wins on both Pearson and Kendall (in one protocol) on {len(zoos_won)} of "
                 f"{len(set(z for z, _ in result.rows))} zoos: {', '.join(zoos_won) or 'none'}.")
    worse = table[table["difference"] * np.where(table["metric"].str.startswith("regret"), -1, 1) < 0]
    if len(worse):
        lines.append("Rows where the default's mean is below the best simple predictor's (not significant unless "
                     "marked above): " + "; ".join(f"{r.zoo} {r.protocol} {LABELS[r.metric]} "
                                                    f"({_f(r.default, r.metric)} vs {_f(r.simple, r.metric)} "
                                                    f"{r.best_simple})" for r in worse.itertuples()) + ".")
    lines.append("")
    lines += sequential_section(result, heading=heading + "#", docs=docs, plots=sequential_plots)
    lines += conditioning_section(result, heading=heading + "#", docs=docs)
    lines += pbest_section(result, heading=heading + "#")
    parts = parts_table(result)
    if len(parts):
        lines += [f"{heading}# What each part earns", "",
                  f"Means of each metric: `{DEFAULT_ENGINE}`, the plain `lightfm` engine (LightFM on soft labels "
                  f"alone), and `{DEFAULT_ENGINE}` without one of its parts (`- lightfm`, `- kernel`, `- scores`: "
                  f"that candidate profile left out of the stack; `- kriging`: the residual covariance across models "
                  f"replaced by its diagonal, so a dataset's records move only its level).", ""]
        names = [n for n in [DEFAULT_ENGINE, "lightfm", *ABLATIONS] if (parts["engine"] == n).any()]
        header = ["zoo", "protocol", "metric", *names]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        for zoo, protocol in result.rows:
            sub = parts[(parts["zoo"] == zoo) & (parts["protocol"] == protocol)].set_index("engine")
            for metric in ("pearson", "kendall"):
                vals = [(_f(sub.loc[n, metric], metric) if n in sub.index else "–") for n in names]
                lines.append(f"| {zoo} | {protocol} | {LABELS[metric]} | " + " | ".join(vals) + " |")
        lines.append("")
    return "\n".join(lines)


def suite_plot(table: pd.DataFrame, path) -> None:
    """Default minus best simple predictor, per row and metric (regret sign-flipped: up is better)."""
    from .plots import _figure, _save

    rows = list(dict.fromkeys(zip(table["zoo"], table["protocol"])))
    fig = _figure((11, 4.2))
    axes = fig.subplots(1, len(METRICS))
    for ax, metric in zip(axes, METRICS):
        sub = table[table["metric"] == metric].set_index(["zoo", "protocol"]).loc[rows]
        d = sub["difference"].to_numpy() * (-1 if metric.startswith("regret") else 1)
        colors = ["C2" if v == "win" else "C3" if v == "loss" else "0.6" for v in sub["verdict"]]
        ax.barh(np.arange(len(rows)), d, color=colors)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(np.arange(len(rows)))
        ax.set_yticklabels([f"{z} {p}" for z, p in rows] if ax is axes[0] else [], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(LABELS[metric] + (" (lower is better, flipped)" if metric.startswith("regret") else ""),
                     fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(f"{DEFAULT_ENGINE} minus the best simple predictor (green: significant win, red: significant "
                 f"loss, grey: tie)", fontsize=10)
    _save(fig, path)


# -- the sequential protocol and P(best) -----------------------------------------------------------------------
def sequential_table(result: SuiteResult, ns: Sequence[int] = (1, 3, 5)) -> pd.DataFrame:
    """Per sequential zoo and n: ``plan``'s mean regret@n against the best baseline policy's (the lowest mean of
    popularity, additive, each raw score and random), ``static``'s and ``plan-refit``'s, each with the sign test
    over the targets both played."""
    from .sequential import BASELINE_POLICIES, paired, policy_means

    out = []
    for zoo, res in result.sequential.items():
        means = policy_means(res)
        base = [p for p in BASELINE_POLICIES if p in means.index]
        for n in ns:
            if f"regret@{n}" not in means.columns or "plan" not in means.index:
                continue
            # the toughest baseline: the smallest margin over plan on the targets both played (the raw scores
            # play only the targets with scores)
            tests = {p: paired(res, "plan", p, n) for p in base}
            best = min(base, key=lambda p: (tests[p]["other_mean"] - tests[p]["mean"], base.index(p)))
            row = {"zoo": zoo, "n": n, "plan": float(means.loc["plan", f"regret@{n}"]), "targets":
                   int(means.loc["plan", "targets"]), "best_baseline": best}
            for tag, other in (("baseline", best), ("static", "static"), ("refit", "plan-refit")):
                if other not in means.index:
                    continue
                t = tests.get(other) or paired(res, "plan", other, n)
                row.update({tag: t["other_mean"], f"{tag}_plan": t["mean"], f"{tag}_targets": t["targets"],
                            f"{tag}_room": t["room"],
                            f"{tag}_wins": t["wins"], f"{tag}_ties": t["ties"], f"{tag}_losses": t["losses"],
                            f"{tag}_p": t["p"], f"{tag}_verdict": t["verdict"]})
            row["below_every_baseline"] = all(t["mean"] < t["other_mean"] - 1e-12 for t in tests.values())
            row["significant_baselines"] = sum(t["verdict"] == "win" for t in tests.values())
            out.append(row)
    return pd.DataFrame(out)


def _bootstrap(values: np.ndarray, seed: int = 0, n: int = 2000, level: float = 0.9) -> tuple[float, float]:
    """Bootstrap ``level`` interval of the mean of ``values`` (seeded)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(v), size=(n, len(v)))
    means = v[idx].mean(1)
    return float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, (1 + level) / 2))


def pbest_table(result: SuiteResult, default: str = DEFAULT_ENGINE, level: float = 0.8) -> pd.DataFrame:
    """Per suite row, the default engine's joint distribution against the independent P(best): the 80%
    interval's coverage (overall, per known-model bin, and ``coverage_gap``: the mean over datasets of the
    distance of each dataset's coverage, its repetitions pooled, from ``level``), the Brier score of P(best of
    the recorded models) of both, and each one's top pick: its mean P(best) and how often it is the best, with a
    bootstrap 90% interval over the scored datasets (a tie for the best counts 1/n)."""
    from .protocols import BINS

    df = result.per_dataset
    out = []
    for zoo, protocol in result.rows:
        g = df[(df["zoo"] == zoo) & (df["protocol"] == protocol) & (df["engine"] == default)]
        if "brier" not in g.columns or g["brier"].notna().sum() == 0:
            continue
        row = {"zoo": zoo, "protocol": protocol, "datasets": int(g["brier"].notna().sum())}
        h = g[g["n_hidden"] > 0]
        row["coverage"] = float(h["covered"].sum() / h["n_hidden"].sum())
        for b in BINS:
            hb = h[h["bin"] == b]
            row[f"coverage {b}"] = float(hb["covered"].sum() / hb["n_hidden"].sum()) if len(hb) else float("nan")
        per = h.groupby("dataset")[["covered", "n_hidden"]].sum()
        row["coverage_gap"] = float((per["covered"] / per["n_hidden"] - level).abs().mean())
        for tag in ("", "_independent"):
            s = g[g["brier" + tag].notna()]
            row["brier" + tag] = float(s["brier" + tag].mean())
            row["p_top" + tag] = float(s["p_top_rec" + tag].mean())
            row["hit" + tag] = float(s["top_hit_rec" + tag].mean())
            row["hit_lo" + tag], row["hit_hi" + tag] = _bootstrap(s["top_hit_rec" + tag].to_numpy())
        out.append(row)
    return pd.DataFrame(out)


def reliability_markdown(result: SuiteResult, heading: str = "##") -> str:
    """Per suite row, binned P(best of the recorded models) against how often the model was the best, joint and
    independent (pairs dataset x recorded model; mean P(best) and observed frequency)."""
    lines = [f"{heading} Reliability of P(best): binned P(best) against the observed frequency", "",
             "Each cell: pairs (dataset, recorded model) in the bin, their mean P(best of the recorded models), and "
             "how often such a model was the best (a tie for the best shared). Joint: the joint distribution "
             "(`recsys.engines.joint`); independent: the independent residuals of `Calibration.p_best`, same fits "
             "and calibration refits.", ""]
    rel = result.reliability
    if rel is None or not len(rel):
        return "\n".join(lines + ["No calibrated run.", ""])
    edges = RELIABILITY_BINS
    labels = [f"[{edges[i]:.2f}, {min(edges[i + 1], 1.0):.2f}{']' if i == len(edges) - 2 else ')'}"
              for i in range(len(edges) - 1)]
    header = ["zoo", "protocol", "method", *labels]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for (zoo, protocol), g in rel[rel["engine"] == DEFAULT_ENGINE].groupby(["zoo", "protocol"], sort=False):
        for method in ("joint", "independent"):
            m = g[g["method"] == method].set_index("bin")
            cells = []
            for b in range(len(labels)):
                n = int(m.loc[b, "pairs"]) if b in m.index else 0
                cells.append("–" if n == 0 else f"{n}, {m.loc[b, 'p_sum'] / n:.3f}, {m.loc[b, 'best_sum'] / n:.3f}")
            lines.append(f"| {zoo} | {protocol} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""])


def sequential_plot(result: SuiteResult, path) -> None:
    """One panel per sequential zoo: mean regret@n against n for every policy."""
    from .plots import _figure, _save, plot_regret

    zoos = list(result.sequential)
    if not zoos:
        return
    fig = _figure((5.0 * min(len(zoos), 2), 3.6 * ((len(zoos) + 1) // 2)))
    axes = np.atleast_1d(fig.subplots((len(zoos) + 1) // 2, min(len(zoos), 2))).ravel()
    for ax, zoo in zip(axes, zoos):
        plot_regret(result.sequential[zoo], None, ax=ax, title=zoo)
    for ax in axes[len(zoos):]:
        ax.set_visible(False)
    _save(fig, path)


def _verdict_mark(v: str) -> str:
    return {"win": " **win**", "loss": " **LOSS**", "tie": ""}.get(v, "")


def sequential_section(result: SuiteResult, table: pd.DataFrame | None = None, *, heading: str = "##",
                       docs: str | None = None, plots: dict | None = None) -> list[str]:
    """suite.md's section on the sequential protocol: plan against the best baseline policy, static and
    plan-refit at n = 1, 3, 5, per zoo (and each zoo's regret@n figure)."""
    from .sequential import policy_means

    table = sequential_table(result) if table is None else table
    if not len(table):
        return []
    link = f"[docs/protocols.md]({docs}#sequential-pick-see-the-result-pick-again)" if docs else "`docs/protocols.md`"
    lines = [f"{heading} Sequential protocol: regret after n fine-tunes", "",
             "Each `logo` target is played one pick at a time (its records hidden from the fits; a pick's true "
             "accuracy is revealed before the next pick); regret@n is the best true accuracy minus the best "
             "revealed after n picks, in points. `plan`: the default engine's joint distribution conditioned on "
             "the results so far (no refit), each pick the first step of `recsys plan`; `static`: the default "
             "engine's ranking without records, never updated; `plan-refit`: `plan` with a full refit after each "
             "reveal (zoos whose targets are held out one at a time); the best baseline policy: of popularity, "
             "additive, each raw score and random (its exact expectation), the one closest to `plan` on the "
             f"targets both played. Protocol: {link}. {_seeds_played(result)}Each cell: the policy's mean (and "
             "`plan`'s on the same targets where it played fewer), then `plan`'s wins-ties-losses over those "
             "targets, two-sided sign test.", ""]
    header = ["zoo", "targets", "n", "plan", "best baseline", "static", "plan-refit"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in table.itertuples():
        d = r._asdict()
        cells = [r.zoo, str(r.targets), str(r.n), f"**{r.plan:.2f}**"]
        for tag, name in (("baseline", r.best_baseline), ("static", "static"), ("refit", "plan-refit")):
            if tag not in d or pd.isna(d.get(tag)):
                cells.append("–")
                continue
            label = f"{name} " if tag == "baseline" else ""
            same = (f" (plan {d[tag + '_plan']:.2f} on its {d[tag + '_targets']})"
                    if d[tag + "_targets"] != r.targets else "")
            cells.append(f"{label}{d[tag]:.2f}{same}; {d[tag + '_wins']}-{d[tag + '_ties']}-{d[tag + '_losses']} "
                         f"p={d[tag + '_p']:.3f}{_verdict_mark(d[tag + '_verdict'])}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += _out_of_reach(table)
    lines.append("Every policy's mean regret@1 / @3 / @5 (points):")
    lines.append("")
    zoos = list(result.sequential)
    policies = list(dict.fromkeys(p for z in zoos for p in policy_means(result.sequential[z]).index))
    lines += ["| policy | " + " | ".join(zoos) + " |", "|---|" + "---|" * len(zoos)]
    for p in policies:
        cells = []
        for z in zoos:
            m = policy_means(result.sequential[z])
            cells.append("–" if p not in m.index else " / ".join(f"{m.loc[p, f'regret@{n}']:.2f}" for n in (1, 3, 5)
                                                                if f"regret@{n}" in m.columns))
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += _seed_spread(result)
    lines += _loop_coverage(result)
    for zoo, path in (plots or {}).items():
        lines.append(f"![{zoo}: regret@n per policy]({path})")
    if plots:
        lines.append("")
    return lines


def fewest_significant_wins(alpha: float = 0.05) -> int:
    """The fewest wins without a loss at which the two-sided sign test says p < ``alpha`` (6 at 0.05)."""
    return next(w for w in range(1, 64) if sign_test(w, 0) < alpha)


def _out_of_reach(table: pd.DataFrame) -> list[str]:
    """The rows where no significant win over the best baseline is possible: on a target where the baseline's
    regret is 0, ``plan`` can only tie or lose, and the targets left are fewer than the sign test needs."""
    if "baseline_room" not in table.columns:
        return []
    need = fewest_significant_wins()
    out = table[table["baseline_room"].notna() & (table["baseline_room"] < need)]
    if not len(out):
        return []
    rows = "; ".join(f"{r.zoo} after {r.n} ({r.best_baseline} at 0 on {r.baseline_targets - int(r.baseline_room)} "
                     f"of {r.baseline_targets} targets: at most {int(r.baseline_room)} "
                     f"win{'' if r.baseline_room == 1 else 's'})" for r in out.itertuples())
    return [f"Out of reach: where a policy's regret is 0, `plan` can only tie or lose, and the sign test needs "
            f"{need} wins without a loss for p < 0.05. Against the best baseline, too few targets are left on "
            f"{rows}.", ""]


def _seeds_played(result: SuiteResult) -> str:
    """How many engine seeds played each target (none said for one)."""
    n = max((len(r.seeds) for r in result.sequential.values()), default=1)
    if n <= 1:
        return ""
    return (f"Every target is played with {n} engine seeds (on a zoo of more than 30 targets the folds change "
            f"with the seed too); its regret is their mean, then the means and the sign tests are over the "
            f"targets. ")


def _seed_spread(result: SuiteResult, ns: Sequence[int] = (1, 3, 5)) -> list[str]:
    """The table of ``plan``'s mean regret@n per engine seed, per sequential zoo (none with one seed)."""
    per = {}
    for z, r in result.sequential.items():
        df = r.per_dataset
        if "seed" not in df.columns or df["seed"].nunique() < 2:
            continue
        plan = df[df["engine"] == "plan"]
        cols = [f"regret@{n}" for n in ns if f"regret@{n}" in plan.columns]
        per[z] = plan.groupby("seed")[cols].mean()
    if not per:
        return []
    seeds = sorted({s for m in per.values() for s in m.index})
    lines = ["How much one engine seed's play can say: `plan`'s mean regret@1 / @3 / @5 with each seed alone:", "",
             "| zoo | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
    for z, m in per.items():
        lines.append(f"| {z} | " + " | ".join("–" if s not in m.index else " / ".join(f"{v:.2f}" for v in m.loc[s])
                                             for s in seeds) + " |")
    return lines + [""]


def _loop_coverage(result: SuiteResult) -> list[str]:
    """The table of ``plan``'s interval coverage after n results, per sequential zoo (none without the column)."""
    from .sequential import policy_means

    means = {}
    for z, r in result.sequential.items():
        m = policy_means(r)
        cols = [c for c in m.columns if c.startswith("coverage@")]
        if "plan" in m.index and cols:
            means[z] = m.loc["plan", cols]
    if not means:
        return []
    ns = list(dict.fromkeys(c for m in means.values() for c in m.index))
    level = round(100 * next(iter(result.sequential.values())).level)
    lines = [f"`plan`'s answers along the way (what `recsys topk --known` shows the user): coverage of their {level}% "
             f"intervals on the target's recorded models not yet revealed, after n results (after none: a brand-new "
             f"dataset's intervals; goal {level / 100:.2f} ± 0.03):", "",
             "| zoo | " + " | ".join(f"after {c.split('@')[1]}" for c in ns) + " |", "|---|" + "---|" * len(ns)]
    for z, m in means.items():
        lines.append(f"| {z} | " + " | ".join("–" if pd.isna(m.get(c)) else f"{m[c]:.3f}" for c in ns) + " |")
    return lines + [""] + _loop_stay(result)


def _loop_stay(result: SuiteResult) -> list[str]:
    """The table of ``plan``'s P(the best result so far stays the best) after n results against how often it
    did (``stayed@n``: a tie for the best shared), per sequential zoo (none without the column)."""
    from .sequential import _per_target

    rows = {}
    for z, r in result.sequential.items():
        per = _per_target(r)
        per = per[per["engine"] == "plan"]
        plays = r.per_dataset[r.per_dataset["engine"] == "plan"]  # (the Brier score of each play, not of means)
        ns = [int(c.split("@")[1]) for c in per.columns if c.startswith("stay@")]
        cells = {}
        for n in ns:
            ok = per[f"stay@{n}"].notna()
            p, hit = per.loc[ok, f"stay@{n}"], per.loc[ok, f"stayed@{n}"]
            each = plays[plays[f"stay@{n}"].notna()]
            if ok.any():
                cells[n] = (float(p.mean()), float(hit.mean()),
                            float(((each[f"stay@{n}"] - each[f"stayed@{n}"]) ** 2).mean()))
        if cells:
            rows[z] = cells
    if not rows:
        return []
    ns = sorted({n for c in rows.values() for n in c})
    lines = ["When to stop (what `recsys plan --known` says on stderr): the probability `plan`'s answer gives that the "
             "best result so far stays the best of the target's recorded models, after n results: its mean / how "
             "often it did (1, or the revealed share of the models tied for the best) / Brier score (0 is best; a "
             "constant at the observed rate scores about rate x (1 - rate)):", "",
             "| zoo | " + " | ".join(f"after {n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
    for z, c in rows.items():
        lines.append(f"| {z} | " + " | ".join(f"{c[n][0]:.2f} / {c[n][1]:.2f} / {c[n][2]:.3f}" if n in c else "–"
                                             for n in ns) + " |")
    return lines + [""]


def pbest_section(result: SuiteResult, table: pd.DataFrame | None = None, *, heading: str = "##") -> list[str]:
    """suite.md's section on the joint distribution: coverage of its 80% interval, Brier score of its P(best)
    against the independent one, and the top pick's calibration."""
    from .protocols import BINS

    table = pbest_table(result) if table is None else table
    if not len(table):
        return []
    lines = [f"{heading} P(best) and intervals: the joint distribution against the independent P(best)", "",
             "The default engine's answers, calibrated on each fold's training data. Coverage: share of the hidden "
             "recorded accuracies inside the answers' 80% interval (the joint distribution's marginal on a dataset "
             "with known cells and for models without records, split-conformal on a brand-new dataset), overall, "
             "then per known-model bin; by dataset: each dataset's coverage (its repetitions pooled), its mean "
             "distance from 0.80 (0 when every dataset's interval covers as it says). Brier: of P(best of the "
             "dataset's recorded models) (the only event the truth decides; a tie for the best shared), the joint "
             "distribution's vs the independent residuals' (`Calibration.p_best`), "
             "same fits and refits; lower is better. Top pick: the recorded model with the highest P(best), its "
             "mean P(best) / how often it is the best [bootstrap 90% interval over the datasets]. Reliability "
             "tables: [`pbest.md`](pbest.md).", ""]
    bins = [b for b in BINS if table[f"coverage {b}"].notna().any()]
    header = ["zoo", "protocol", "datasets", "coverage", *[f"coverage {b}" for b in bins], "by dataset ±",
              "Brier joint", "Brier independent", "top pick joint", "top pick independent"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in table.to_dict("records"):
        better = r["brier"] < r["brier_independent"]
        cells = [r["zoo"], r["protocol"], str(r["datasets"]), f"{r['coverage']:.3f}",
                 *[("–" if pd.isna(r[f"coverage {b}"]) else f"{r[f'coverage {b}']:.3f}") for b in bins],
                 f"{r['coverage_gap']:.3f}",
                 (f"**{r['brier']:.3f}**" if better else f"{r['brier']:.3f}"), f"{r['brier_independent']:.3f}"]
        for tag in ("", "_independent"):
            cells.append(f"{r['p_top' + tag]:.2f} / {r['hit' + tag]:.2f} [{r['hit_lo' + tag]:.2f}, "
                         f"{r['hit_hi' + tag]:.2f}]")
        lines.append("| " + " | ".join(cells) + " |")
    n_better = int((table["brier"] < table["brier_independent"]).sum())
    inside = int(((table["p_top"] >= table["hit_lo"]) & (table["p_top"] <= table["hit_hi"])).sum())
    in_cov = int((table["coverage"].sub(0.8).abs() <= 0.03).sum())
    lines += ["", f"Brier score better than the independent P(best) on {n_better} of {len(table)} rows; the top "
                  f"pick's mean P(best) inside the bootstrap 90% interval of its best rate on {inside} of "
                  f"{len(table)}; overall coverage within 0.80 ± 0.03 on {in_cov} of {len(table)}.", ""]
    return lines


def conditioning_section(result: SuiteResult, *, heading: str = "##", docs: str | None = None) -> list[str]:
    """suite.md's section on conditioning instead of fitting (the missing-edge variant)."""
    from .conditioning import conditioning_summary

    if not result.conditioning:
        return []
    link = f"[docs/protocols.md]({docs}#conditioning-instead-of-fitting)" if docs else "`docs/protocols.md`"
    lines = [f"{heading} Results given instead of a refit: the missing-edge variants", "",
             "Per `missing-edge` repetition and group, the engine fitted again with less of the group's kept "
             "records, each of its datasets then answered with the rest given as results (`--known`: the row's "
             "kriging re-solved, no refit), against the protocol's own fit with all of them (mean Pearson over "
             "the datasets, then over the repetitions; " + link + "). `new`: the fit without any of the group's "
             "kept records, all given; `recorded`: the fit with a random half of each dataset's kept records, "
             "the other half given (a dataset of the zoo that gets new results). Goal: within 0.01.", ""]
    bins = ["all", "<= 20%", "<= 40%", "<= 60%", "> 60%"]
    header = ["zoo", "variant", "repetitions", *[f"{b}: fitted / conditioned (gap)" for b in bins],
              "ms per conditioning"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for zoo, rows in result.conditioning.items():
        for variant, summ in conditioning_summary(rows).groupby("variant", sort=False):
            summ = summ.set_index("bin")
            cells = [zoo, variant, str(rows.loc[rows["variant"] == variant, "rep"].nunique())]
            for b in bins:
                if b not in summ.index:
                    cells.append("–")
                    continue
                r = summ.loc[b]
                gap = f"{r['gap']:+.3f}"
                cells.append(f"{r['pearson_fit']:.3f} / {r['pearson_conditioned']:.3f} "
                             f"({gap if abs(r['gap']) <= 0.01 or b != 'all' else '**' + gap + '**'})")
            cells.append(f"{summ.loc['all', 'ms']:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]
