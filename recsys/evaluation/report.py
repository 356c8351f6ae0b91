"""Aggregates of a protocol run, and its markdown report beside the published figures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..engines import DEFAULT_ENGINE
from .metrics import lower_is_better, mean_std_over_reps
from .protocols import BINS, ProtocolResult, known_bin

__all__ = ["BASELINES", "P1_PUBLISHED", "P2_PUBLISHED", "summarize", "timing_summary", "below_baselines",
           "fit_time_ratio", "bin_counts", "markdown_report"]

#: the baselines every report carries (docs/protocols.md, "Baselines")
BASELINES = ("random", "popularity", "additive", "lr", "mc", "als", "logme", "gat")

#: P1 published Pearson (Chen et al., 2024), mean over 10 repetitions, columns as :data:`P1_COLUMNS`
P1_COLUMNS = ("all", *BINS)
P1_PUBLISHED = {
    "Random": (0.27, -0.01, 0.01, 0.10, 0.29, 0.56),
    "MC (randomized SVD)": (0.47, 0.39, 0.43, 0.32, 0.38, 0.56),
    "LogME": (0.28, 0.01, 0.03, 0.13, 0.29, 0.55),
    "LEEP": (0.39, 0.34, 0.26, 0.24, 0.33, 0.56),
    "LR (linear regression on metadata)": (0.65, 0.56, 0.54, 0.56, 0.65, 0.77),
    "G4Trf (GAT)": (0.74, 0.61, 0.63, 0.68, 0.78, 0.87),
    "SCG4Trf (GAT with skip-combination)": (0.76, 0.61, 0.63, 0.70, 0.79, 0.88),
}
#: the paper's labels of the bins, mapped 1:1 onto ours (the same shares; see :func:`bin_counts`)
P1_PUBLISHED_BIN_LABELS = dict(zip(P1_COLUMNS, ("Avg", "cold", "0-20%", "20-40%", "40-60%", "60-80%")))
#: P2 published (Li et al., 2024): Pearson, Kendall, mean over the 8 LogME targets
P2_PUBLISHED = {
    "LogME score as the prediction": (0.43, 0.25),
    "Reg-H-Score as the prediction": (0.58, 0.24),
    "TransferGraph (best variant, XGBoost on node2vec features)": (0.85, 0.43),
}

#: each protocol's section in docs/protocols.md (GitHub's anchors of its headings)
_PROTOCOL_ANCHORS = {"p1": "p1-domainnet-270-missing-edge", "p2": "p2-transfergraph-leave-one-dataset-out",
                     "missing-edge": "missing-edge-any-zoo", "logo": "logo-leave-one-dataset-out-any-zoo"}

_LABELS = {"pearson": "Pearson", "spearman": "Spearman", "kendall": "Kendall tau-b", "coverage": "coverage",
           "width": "width (pts)"}


def _label(metric: str) -> str:
    if metric in _LABELS:
        return _LABELS[metric]
    if metric.startswith("ndcg@"):
        return "NDCG@" + metric[5:]
    if metric.startswith("regret@"):
        return f"regret@{metric[7:]} (pts)"
    return metric


# -- aggregation -------------------------------------------------------------------
def _coverage_per_rep(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    d = df[df["covered"].notna() & (df["n_hidden"] > 0)].copy()
    if d.empty:
        return pd.DataFrame(columns=by + ["coverage", "width"])
    d["w_width"] = d["width"] * d["n_hidden"]
    g = d.groupby(by, sort=False)[["covered", "n_hidden", "w_width"]].sum()
    return pd.DataFrame({"coverage": g["covered"] / g["n_hidden"], "width": g["w_width"] / g["n_hidden"]}).reset_index()


def per_rep(result: ProtocolResult) -> pd.DataFrame:
    """Per (engine, rep, bin) nan-means over datasets (bin ``"all"`` = every scored dataset).

    Coverage columns: share of hidden recorded cells inside the interval, and
    the mean width, pooled over the cells of the group.
    """
    df = result.per_dataset
    metrics = result.spec.metrics
    parts = []
    extra = [c for c in ("p_top", "top_hit", "brier", "brier_independent") if c in df.columns]
    for by, fill in ((["engine", "rep"], "all"), (["engine", "rep", "bin"], None)):
        m = df.groupby(by, sort=False)[[*metrics, *extra]].mean().reset_index()
        c = _coverage_per_rep(df, by)
        m = m.merge(c, on=by, how="left") if len(c) else m.assign(coverage=np.nan, width=np.nan)
        if fill is not None:
            m.insert(2, "bin", fill)
        parts.append(m)
    return pd.concat(parts, ignore_index=True)


def summarize(result: ProtocolResult) -> pd.DataFrame:
    """Long table ``engine, bin, metric, mean, std, n_reps`` (mean and std over repetitions).

    ``bin`` is ``"all"`` or one of :data:`~recsys.evaluation.protocols.BINS`;
    metrics are the protocol's plus ``coverage`` and ``width``.
    """
    cols = ["engine", "bin", "metric", "mean", "std", "n_reps"]
    if result.per_dataset.empty:
        return pd.DataFrame(columns=cols)
    reps = per_rep(result)
    names = [*result.spec.metrics, "coverage", "width",
             *[c for c in ("p_top", "top_hit", "brier", "brier_independent") if c in reps.columns]]
    out = mean_std_over_reps(reps, names, ["engine", "bin"])
    ranks = {"engine": {e: i for i, e in enumerate(result.engines)},
             "metric": {m: i for i, m in enumerate(names)},
             "bin": {b: i for i, b in enumerate(("all", *BINS))}}
    out = out.sort_values(["engine", "metric", "bin"], key=lambda col: col.map(ranks[col.name]))
    return out[cols].reset_index(drop=True)


def timing_summary(result: ProtocolResult) -> pd.DataFrame:
    """Per engine: mean fit / predict / calibration wall time over successful folds, and status."""
    rows = []
    t = result.timing
    for name in result.engines:
        e = t[t["engine"] == name]
        rows.append({"engine": name, "fit_s": e["fit_s"].mean() if len(e) else np.nan,
                     "predict_s": e["predict_s"].mean() if len(e) else np.nan,
                     "calibrate_s": e["calibrate_s"].mean() if e["calibrate_s"].notna().any() else np.nan,
                     "n_folds": int(len(e)), "status": result.status.get(name, "not run")})
    return pd.DataFrame(rows, columns=["engine", "fit_s", "predict_s", "calibrate_s", "n_folds", "status"])


def _undefined_counts(result: ProtocolResult) -> dict[str, tuple[int, int]]:
    """Per engine with any: (scored datasets whose Pearson is undefined, scored datasets), over all reps."""
    df = result.per_dataset
    if df.empty or "pearson" not in df.columns:
        return {}
    g = df.groupby("engine", sort=False)["pearson"]
    nan, total = g.apply(lambda x: int(x.isna().sum())), g.size()
    return {e: (int(nan[e]), int(total[e])) for e in result.engines if e in nan.index and nan[e] > 0}


def _value(summary: pd.DataFrame, engine: str, metric: str, bin_: str = "all") -> tuple[float, float]:
    s = summary[(summary["engine"] == engine) & (summary["metric"] == metric) & (summary["bin"] == bin_)]
    if s.empty:
        return float("nan"), float("nan")
    return float(s["mean"].iloc[0]), float(s["std"].iloc[0])


def _headline(result: ProtocolResult) -> list[tuple[str, str]]:
    """(metric, bin) pairs the default engine is held against the baselines on."""
    pairs = [("pearson", "all")]
    if result.spec.kind == "missing-edge":
        pairs += [("pearson", b) for b in BINS]
    pairs += [(m, "all") for m in result.spec.headline if m != "pearson"]
    if result.spec.kind == "missing-edge" and "regret@1" in result.spec.metrics:
        pairs.append(("regret@1", "cold"))  # the first pick for a brand-new dataset: a headline of its own
    return pairs


def below_baselines(result: ProtocolResult, summary: pd.DataFrame, default: str = DEFAULT_ENGINE,
                    baselines: Sequence[str] = BASELINES) -> list[str]:
    """Every headline metric where ``default`` is worse (by its mean) than a baseline of the same run."""
    out = []
    if not (summary["engine"] == default).any():
        return out
    for metric, bin_ in _headline(result):
        ours, _ = _value(summary, default, metric, bin_)
        for base in baselines:
            if base == default or base not in result.status or result.status[base] == "n/a: no scores":
                continue
            theirs, _ = _value(summary, base, metric, bin_)
            if math.isnan(ours) or math.isnan(theirs):
                continue
            # Compared as printed (3 decimals): a difference nobody can see is not a loss.
            ours_r, theirs_r = round(ours, 3), round(theirs, 3)
            worse = ours_r > theirs_r if lower_is_better(metric) else ours_r < theirs_r
            if worse:
                where = {"all": "", "cold": " [cold start]"}.get(bin_, f" [{bin_} known]")
                out.append(f"{_label(metric)}{where}: {default} {ours:.3f} vs {base} {theirs:.3f}")
    return out


def fit_time_ratio(result: ProtocolResult, slow: str = "gat", fast: str = DEFAULT_ENGINE) -> float:
    """Mean fit time of ``slow`` over that of ``fast`` in this run (NaN if either did not run)."""
    t = timing_summary(result).set_index("engine")["fit_s"]
    if slow not in t or fast not in t or not np.isfinite(t[slow]) or not np.isfinite(t[fast]) or t[fast] <= 0:
        return float("nan")
    return float(t[slow] / t[fast])


def bin_counts(result: ProtocolResult) -> dict[str, str]:
    """What each share bin holds in counts, where every scored dataset has the same number of records.

    ``{"<= 20%": "1-2 of 10", ...}`` on DomainNet-270 (10 records each); empty when the
    datasets' record counts differ, or for a bin no dataset of that size can fall in.
    """
    n = _records_each(result)
    if n is None:
        return {}
    k = np.arange(1, n)  # a dataset keeps at most n - 1 of its records
    bins = known_bin(k, np.full(k.size, n))
    out = {}
    for b in BINS[1:]:
        ks = k[bins == b]
        if ks.size:
            out[b] = (f"{ks[0]}" if ks.size == 1 else f"{ks[0]}-{ks[-1]}") + f" of {n}"
    return out


def _records_each(result: ProtocolResult) -> int | None:
    """The number of records of every scored dataset, when they all have the same (DomainNet-270: 10)."""
    per = result.per_dataset
    sizes = per["n_recorded"].unique() if len(per) else ()
    return int(sizes[0]) if len(sizes) == 1 and sizes[0] >= 2 else None


# -- markdown ------------------------------------------------------------------------
def _ms(mean: float, std: float, digits: int = 2) -> str:
    if math.isnan(mean):
        return "–"
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _secs(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    return f"{x:.3g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def _name(engine: str) -> str:
    return f"**{engine}** (default)" if engine == DEFAULT_ENGINE else engine


def _seeds_text(seeds: Sequence[int]) -> str:
    seeds = list(seeds)
    if seeds == list(range(len(seeds))) and len(seeds) > 2:
        return f"seeds 0..{len(seeds) - 1}"
    return "seeds " + ", ".join(map(str, seeds))


@dataclass(frozen=True)
class _Run:
    """What every section of the report reads: the run, its summary and timings, the engines with a result."""

    result: ProtocolResult
    summary: pd.DataFrame
    timing: pd.DataFrame
    ran: list
    docs: str | None = None

    @property
    def spec(self):
        return self.result.spec

    @property
    def published_here(self) -> bool:
        """The published protocol on the zoo its figures were measured on: they are printed beside ours."""
        return self.spec.published and self.result.zoo == self.spec.default_zoo

    def value(self, engine: str, metric: str, bin_: str = "all", digits: int = 2) -> str:
        return _ms(*_value(self.summary, engine, metric, bin_), digits=digits)

    def secs(self, engine: str, column: str) -> str:
        return _secs(self.timing.loc[engine, column]) if engine in self.timing.index else "–"

    def doc(self, anchor: str, text: str = "docs/protocols.md") -> str:
        """A link to a section of ``docs/protocols.md`` (its path as text when there is no link)."""
        return f"[{text}]({self.docs}#{anchor})" if self.docs else f"`{text}`"

    @property
    def calibrated(self) -> bool:
        s = self.summary
        return bool(((s["metric"] == "coverage") & s["mean"].notna()).any())


def markdown_report(result: ProtocolResult, summary: pd.DataFrame | None = None, *, heading: str = "##",
                    docs: str | None = None) -> str:
    """The protocol's tables (ours, mean ± std over repetitions, beside the published figures).

    Sections, in order: what was run; every metric in one line; Pearson per
    known-model bin (missing-edge kinds); every headline metric; Pearson per
    target (leave-one-dataset-out); interval coverage and P(best) calibration;
    the default engine against the baselines; the timing notes; engines without
    a full result.

    ``docs``: where the report links ``docs/protocols.md`` from (a path relative
    to the report's directory, or a URL); without it the path is named, not linked.
    """
    summary = summarize(result) if summary is None else summary
    run = _Run(result, summary, timing_summary(result).set_index("engine"),
               [e for e in result.engines if (summary["engine"] == e).any()], docs)
    sections = (_header(run, heading), _metrics_section(run), _bins_section(run), _headline_section(run),
                _targets_section(run), _coverage_section(run), _baselines_section(run), _failures_section(run))
    return "\n".join([line for section in sections for line in section] + [""])


def _header(run: _Run, heading: str) -> list[str]:
    """Title, then one paragraph: the zoo, the repetitions, what a cell means, undefined correlations."""
    result = run.result
    n_d, n_m = result.truth.shape
    text = (f"Zoo `{result.zoo}` ({n_d} datasets x {n_m} models, {int((~np.isnan(result.truth)).sum())} "
            f"records); {len(result.seeds)} repetition(s), {_seeds_text(result.seeds)}; wall time "
            f"{result.wall_s:.1f} s. Mean ± standard deviation over repetitions of the nan-mean over datasets.")
    if run.spec.kind == "logo":
        n_t = result.per_dataset["dataset"].nunique() if len(result.per_dataset) else 0
        text += f" {n_t} held-out target dataset(s)."
    undefined = _undefined_counts(result)
    if undefined:
        text += (" A correlation is undefined where a prediction (or the truth) is constant over the scored "
                 "models; such datasets are left out of that mean, and counted here so it cannot flatter: "
                 + ", ".join(f"`{e}` {n} of {total}" for e, (n, total) in undefined.items()) + ".")
    return [f"{heading} {run.spec.title}", "", text, ""]


def _metrics_section(run: _Run) -> list[str]:
    """Every metric of the report in one line, and where the protocol and the metrics are defined."""
    spec = run.spec
    missing_edge = spec.kind == "missing-edge"
    scored = "F" if missing_edge else "the prediction"
    regrets = [m for m in spec.headline if m.startswith("regret@")]
    protocol = f" ({run.doc(_PROTOCOL_ANCHORS[spec.name], spec.name)})" if run.docs and spec.name in \
        _PROTOCOL_ANCHORS else ""
    lines = [f"Metrics, per dataset over its recorded models; {run.doc('metrics')} defines them and the "
             f"protocol{protocol}:", ""]
    for m in spec.headline:
        if m == "pearson":
            lines.append(f"- **Pearson**: linear correlation of the true accuracies with "
                         f"{'F (truth where known, prediction elsewhere)' if missing_edge else scored}; 1 is best, "
                         f"undefined when either is constant.")
        elif m == "kendall":
            lines.append("- **Kendall tau-b**: rank correlation of the same two (pairs in the same order minus "
                         "pairs in the opposite order, ties corrected); 1 is best.")
        elif m.startswith("ndcg@"):
            k = m[5:]
            lines.append(f"- **NDCG@{k}**: the true accuracies of the {k} models ranked first by {scored}, "
                         f"discounted by 1 / log2(rank + 1), over the same sum for the true top {k}; 1 is best.")
        elif m == regrets[0]:
            lines.append(f"- **{' / '.join(regrets)}** (pts): the true best accuracy minus the best true accuracy "
                         f"among the {' / '.join(r[7:] for r in regrets)} model(s) ranked first by {scored}, in "
                         f"accuracy points (x100); 0 is best.")
    if run.calibrated:
        lv = int(round(100 * run.result.level))
        lines += [f"- **coverage**: share of the hidden recorded accuracies inside the {lv}% prediction interval "
                  f"({lv}% when calibrated); **width** (pts): the interval's mean width in accuracy points.",
                  "- **P(best) of top pick**: the largest probability of being the dataset's best model that "
                  "P(best) gives; **top pick is best**: how often that model truly is the best (a tie with "
                  "n - 1 others counts 1/n); the two are equal when P(best) is calibrated."]
    lines += ["- **fit s / predict s / calibrate s**: mean wall time per fold, in seconds.", ""]
    return lines


def _bins_section(run: _Run) -> list[str]:
    """Missing-edge kinds: Pearson of F per known-model bin, beside the published rows where they apply."""
    spec = run.spec
    if spec.kind != "missing-edge":
        return []
    counts = bin_counts(run.result)
    header = ["method", "Avg", "cold", *[f"{b} known" + (f" ({counts[b]})" if b in counts else "") for b in BINS[1:]]]
    rows = [[_name(e)] + [run.value(e, "pearson", b) for b in P1_COLUMNS] for e in run.ran]
    if run.published_here:
        rows += [[f"{m} (published)"] + [f"{v:.2f}" for v in vals] for m, vals in P1_PUBLISHED.items()]
    bins = (f"Bins ({run.doc('bins')}): `cold` when none of a dataset's records is "
            f"known to the engine, else the share of its records known")
    n = _records_each(run.result)
    bins += f" (every dataset here has {n} records: the counts known are in brackets)." if counts else "."
    if run.published_here:
        labels = " / ".join(P1_PUBLISHED_BIN_LABELS[b] for b in BINS)
        note = (f"Published rows: Chen et al. (2024), mean of 10 repetitions. Their bins are labelled {labels} "
                f"known; they are ours, mapped 1:1 in that order (group g keeps 9-g of the 10 models, so the "
                f"paper's last bin holds the datasets with 7-9 known, our > 60%). {bins}")
    elif spec.published:
        note = (f"No published figures for zoo `{run.result.zoo}` (they were measured on "
                f"`{spec.default_zoo}`). {bins}")
    else:
        note = bins
    return ["Pearson r between the truth and F (truth where known, prediction elsewhere), per dataset:", "",
            *_table(header, rows), "", note, ""]


def _headline_section(run: _Run) -> list[str]:
    """Every headline metric over all scored datasets, with fit / predict times and each engine's status."""
    spec, result = run.spec, run.result
    metrics = list(spec.headline)
    rows = []
    for e in result.engines:
        cells = [run.value(e, m) for m in metrics] if e in run.ran else ["–"] * len(metrics)
        rows.append([_name(e), *cells, run.secs(e, "fit_s"), run.secs(e, "predict_s"),
                     result.status.get(e, "not run")])
    published = spec.kind == "logo" and run.published_here
    if published:
        for m, (pr, kt) in P2_PUBLISHED.items():
            rows.append([f"{m} (published)", f"{pr:.2f}", f"{kt:.2f}"] + ["–"] * (len(metrics) - 2) + ["–"] * 3)
    header = ["method", *[_label(m) for m in metrics], "fit s", "predict s", "status"]
    lines = ["All scored datasets" + (" (held-out targets)" if spec.kind == "logo" else "") + ":", "",
             *_table(header, rows), ""]
    if published:
        lines += ["Published rows: Li et al. (2024), mean over the same 8 targets (computed from the authors' "
                  "result files); Pearson and Kendall only.", ""]
    return lines


def _targets_section(run: _Run) -> list[str]:
    """Leave-one-dataset-out kinds: Pearson per held-out target, mean over repetitions."""
    per = run.result.per_dataset
    if run.spec.kind != "logo" or not len(per):
        return []
    pt = per.groupby(["engine", "dataset"], sort=False)["pearson"].mean().unstack("dataset")
    targets = list(dict.fromkeys(per["dataset"]))
    rows = [[_name(e)] + [("–" if not np.isfinite(pt.loc[e, d]) else f"{pt.loc[e, d]:.2f}") for d in targets]
            for e in run.ran]
    return ["Pearson per target dataset (mean over repetitions):", "", *_table(["method", *targets], rows), ""]


def _coverage_section(run: _Run) -> list[str]:
    """Coverage and width of the answers' interval, and the calibration of P(best)'s top pick."""
    summary = run.summary
    cov = summary[(summary["metric"] == "coverage") & summary["mean"].notna()]
    if not len(cov):
        return ["Coverage: no engine of this run was calibrated.", ""]
    lv = int(round(100 * run.result.level))
    bins = [b for b in (("all", *BINS) if run.spec.kind == "missing-edge" else ("all",)) if (cov["bin"] == b).any()]
    intro = (f"Coverage of the {lv}% interval on the hidden recorded cells, its width, and the "
             f"calibration of P(best) (defined above; each engine calibrated on its fold's training data only):")
    rows = [[_name(e), *[run.value(e, "coverage", b) for b in bins], run.value(e, "width", digits=1),
             run.value(e, "p_top"), run.value(e, "top_hit"), run.value(e, "brier", digits=3),
             run.value(e, "brier_independent", digits=3), run.secs(e, "calibrate_s")]
            for e in run.ran if (cov["engine"] == e).any()]
    header = ["method", *[f"coverage {b}" + (" known" if b in BINS[1:] else "") for b in bins], "width (pts)",
              "P(best) of top pick", "top pick is best", "Brier P(best) joint", "Brier independent", "calibrate s"]
    note = ("Brier: of P(best of the dataset's recorded models) (a tie for the best shared), from the joint "
            "distribution of each dataset's accuracies (engines that krige: correlated errors) and from the "
            "independent residual pools, same fits and refits; lower is better.")
    return [intro, "", *_table(header, rows), "", note, ""]


def _baselines_section(run: _Run) -> list[str]:
    """The honest line: where the default engine loses to a baseline of the same run; then the timing notes."""
    result = run.result
    baselines = [b for b in BASELINES if b in run.ran and b != DEFAULT_ENGINE]
    if DEFAULT_ENGINE not in result.engines:
        verdict = f"**Default engine vs baselines:** `{DEFAULT_ENGINE}` was not part of this run."
    elif DEFAULT_ENGINE not in run.ran:
        verdict = (f"**Default engine vs baselines:** `{DEFAULT_ENGINE}` produced no result "
                   f"({result.status.get(DEFAULT_ENGINE)}).")
    elif not baselines:
        verdict = f"**Default engine vs baselines:** no baseline ({', '.join(BASELINES)}) ran, no comparison."
    elif below := below_baselines(result, run.summary):
        verdict = ("**Default engine BELOW a baseline** (same run, by mean over repetitions) on: "
                   + "; ".join(below) + ".")
    else:
        verdict = (f"**Default engine vs baselines:** `{DEFAULT_ENGINE}` is not below "
                   f"{', '.join(baselines)} on any headline metric of this table.")
    lines = [verdict]
    ratio = fit_time_ratio(result)
    if np.isfinite(ratio):
        lines += ["", f"Fit time, same run: gat / {DEFAULT_ENGINE} = {ratio:.1f}x "
                      f"(gat {run.timing.loc['gat', 'fit_s']:.3g} s, {DEFAULT_ENGINE} "
                      f"{run.timing.loc[DEFAULT_ENGINE, 'fit_s']:.3g} s per fit)."]
    return lines + ["", "Fit and predict times are means over folds, each engine after one untimed warm-up fit "
                        "(so one-time imports are charged to no engine); calibration is timed separately."]


def _failures_section(run: _Run) -> list[str]:
    """Every engine whose status is not ``ok``, with its status."""
    bad = {e: s for e, s in run.result.status.items() if s != "ok"}
    if not bad:
        return []
    return ["", "Engines without a full result:", "", *[f"- `{e}`: {s}" for e, s in bad.items()]]
