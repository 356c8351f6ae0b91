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
from .protocols import (PROTOCOLS, as_zoo_data, evaluate, logo_targets, missing_edge_folds, p1_folds, p2_folds,
                        p2_targets)

__all__ = ["SUITE_ROWS", "SIMPLE", "ABLATIONS", "SuiteResult", "run_suite", "sign_test", "suite_table",
           "suite_markdown", "suite_plot", "zoos_with_wins", "parts_table"]

log = logging.getLogger(__name__)

#: (zoo, protocol) rows of the suite
SUITE_ROWS = (("domainnet-270", "p1"), ("transfergraph-image", "p2"), ("vtab-hf", "logo"), ("parc-71", "logo"),
              ("domainnet-270", "missing-edge"), ("transfergraph-image", "missing-edge"),
              ("vtab-hf", "missing-edge"), ("parc-71", "missing-edge"))
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
    """Per-dataset rows of every suite row (``per_dataset``) and the timings."""

    per_dataset: pd.DataFrame
    rows: list
    wall_s: dict = field(default_factory=dict)
    has_scores: dict = field(default_factory=dict)


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
              text_encoder=None, ablations: bool = True, progress: bool = False) -> SuiteResult:
    """Evaluate the default engine, ``lightfm``, the simple predictors and the ablations on every row.

    Parameters
    ----------
    rows : sequence of (zoo, protocol)
    repeats : dict, optional
        Repetitions per protocol (default: 10 for missing-edge kinds, 3 for
        ``p2``, 1 for ``logo``).
    text_encoder : str, optional
    ablations : bool
        Also run the default engine without each of its parts.
    """
    repeats = {"p1": 10, "missing-edge": 10, "p2": 3, "logo": 1, **(repeats or {})}
    frames, walls, scored = [], {}, {}
    cache: dict = {}
    for zoo, protocol in rows:
        if zoo not in cache:
            cache[zoo] = as_zoo_data(zoo, text_encoder)
        data, name = cache[zoo]
        has_scores = any(np.isfinite(v).any() for v in data.scores.values())
        scored[zoo] = has_scores
        variants = _variants(has_scores)
        engines = [DEFAULT_ENGINE, "lightfm", *[s for s in SIMPLE if s in ("popularity", "additive") or has_scores]]
        if ablations:
            engines += [v for v in variants if v.startswith(DEFAULT_ENGINE + " - ")]
        folds = _folds(data, protocol, repeats[protocol], None)
        t0 = time.perf_counter()
        res = evaluate(data, PROTOCOLS[protocol], folds, engines, zoo_name=name, coverage="none",
                       progress=progress, variants={k: v for k, v in variants.items() if k in engines})
        walls[f"{zoo}:{protocol}"] = time.perf_counter() - t0
        bad = {e: st for e, st in res.status.items() if st != "ok"}
        if bad:
            log.warning("suite %s %s: %s", zoo, protocol, bad)
        df = res.per_dataset.assign(zoo=zoo, protocol=protocol)
        frames.append(df)
        log.info("suite %s %s done in %.1f s", zoo, protocol, walls[f"{zoo}:{protocol}"])
    return SuiteResult(pd.concat(frames, ignore_index=True), list(rows), walls, scored)


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
                   command: str = "", hardware: str = "", docs: str | None = None) -> str:
    """``suite.md``: the summary table, the verdict per zoo, the parts of the default engine.

    ``docs``: where ``docs/protocols.md`` is from the file's directory (linked when given).
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
