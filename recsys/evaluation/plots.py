"""Figures of a protocol run (PNG, matplotlib's Agg canvas; no pyplot, no global backend change).

Every figure gives each engine the colour of :func:`engine_color`, the default engine always its own.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..engines import DEFAULT_ENGINE, ENGINES
from .protocols import BINS, ProtocolResult
from .report import bin_counts, timing_summary

__all__ = ["DEFAULT_COLOR", "engine_color", "plot_pearson", "plot_heatmap", "plot_fit_time", "plot_regret",
           "write_plots"]

log = logging.getLogger(__name__)

#: the default engine's colour in every figure; no other engine has it
DEFAULT_COLOR = "#1f77b4"
#: the other registered engines' colours (matplotlib's tab10 without the default's blue, and near-black)
_COLORS = {"hybrid": "#393b79", "lightfm": "#17becf", "random": "#7f7f7f", "popularity": "#ff7f0e",
           "additive": "#2ca02c", "lr": "#8c564b", "mc": "#e377c2", "als": "#bcbd22", "logme": "#9467bd",
           "score-stack": "#222222", "gat": "#d62728"}
#: engines registered later, in registry order
_SPARE = ("#98df8a", "#ffbb78", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#ff9896")
#: anything else (ablations, unregistered names)
OTHER_COLOR = "#c7c7c7"


def engine_color(engine: str) -> str:
    """The colour of ``engine`` in every figure of recsys (a ``name:param`` variant takes its engine's).

    Examples
    --------
    >>> engine_color(DEFAULT_ENGINE) == DEFAULT_COLOR
    True
    """
    name = str(engine).split(":")[0]
    if name == DEFAULT_ENGINE:
        return DEFAULT_COLOR
    if name in _COLORS:
        return _COLORS[name]
    later = [e for e in ENGINES if e != DEFAULT_ENGINE and e not in _COLORS]
    return _SPARE[later.index(name) % len(_SPARE)] if name in later else OTHER_COLOR


def _legend_name(engine: str) -> str:
    return engine + (" (default)" if engine == DEFAULT_ENGINE else "")


def _figure(size, layout: str | None = None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=110, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path


def _short(name: str, width: int = 24) -> str:
    """``name`` cut in the middle to ``width`` characters: both ends of an id tell models apart."""
    name = str(name)
    if len(name) <= width:
        return name
    tail = (width - 1) // 2
    return name[:width - 1 - tail] + "…" + name[-tail:]


def _name_ticks(ax, axis: str, names: Sequence[str], max_labels: int = 60) -> None:
    """Names on ``axis`` ("x" or "y"), every k-th one when there are more than ``max_labels``."""
    step = max(1, math.ceil(len(names) / max_labels))
    at = np.arange(0, len(names), step)
    labels = [_short(names[i]) for i in at]
    size = 6 if len(at) <= 30 else 5
    if axis == "x":
        ax.set_xticks(at)
        ax.set_xticklabels(labels, fontsize=size, rotation=90 if len(at) > 12 else 30,
                           ha="center" if len(at) > 12 else "right")
    else:
        ax.set_yticks(at)
        ax.set_yticklabels(labels, fontsize=size)


def plot_pearson(result: ProtocolResult, summary: pd.DataFrame, path: str | Path) -> Path:
    """Grouped bars of Pearson by method: per known-share bin (missing-edge kinds) or per target, ± std over reps."""
    engines = [e for e in result.engines if (summary["engine"] == e).any()]
    if result.spec.kind == "missing-edge":
        groups = ["all", *BINS]
        counts = bin_counts(result)
        labels = ["Avg", "cold", *[b + (f"\n({counts[b]})" if b in counts else "") for b in BINS[1:]]]
        s = summary[summary["metric"] == "pearson"].set_index(["engine", "bin"])
        mean = np.array([[s["mean"].get((e, g), np.nan) for g in groups] for e in engines])
        std = np.array([[s["std"].get((e, g), np.nan) for g in groups] for e in engines])
        xlabel = "share of each dataset's records known to the engine (cold: none)"
    else:
        pd_ = result.per_dataset
        groups = list(dict.fromkeys(pd_["dataset"])) + ["mean"]
        labels = [_short(g) for g in groups]
        per_rep = pd_.groupby(["engine", "rep", "dataset"])["pearson"].mean()
        stat = per_rep.groupby(["engine", "dataset"]).agg(["mean", "std"])
        s = summary[(summary["metric"] == "pearson") & (summary["bin"] == "all")].set_index("engine")
        mean = np.array([[stat["mean"].get((e, g), np.nan) for g in groups[:-1]] + [s["mean"].get(e, np.nan)]
                         for e in engines])
        std = np.array([[stat["std"].get((e, g), np.nan) for g in groups[:-1]] + [s["std"].get(e, np.nan)]
                        for e in engines])
        xlabel = "held-out target dataset (all its records hidden from the engine)"
    fig = _figure((min(16.0, max(7.0, 0.3 * len(groups) * max(len(engines), 1))), 4.2))
    ax = fig.add_subplot()
    width = 0.8 / max(len(engines), 1)
    x = np.arange(len(groups))
    for i, e in enumerate(engines):
        ax.bar(x + (i - (len(engines) - 1) / 2) * width, np.nan_to_num(mean[i]), width, color=engine_color(e),
               yerr=np.nan_to_num(std[i]), capsize=2, label=_legend_name(e))
    ax.set_xticks(x)
    missing_edge = result.spec.kind == "missing-edge"
    ax.set_xticklabels(labels, rotation=0 if missing_edge else 30, ha="center" if missing_edge else "right")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Pearson r, truth vs prediction\n(mean ± std over repetitions)")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_title(f"{result.spec.title}, zoo {result.zoo}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _heatmap_engine(result: ProtocolResult) -> str | None:
    if DEFAULT_ENGINE in result.completed:
        return DEFAULT_ENGINE
    return next((e for e in result.engines if e in result.completed), None)


def plot_heatmap(result: ProtocolResult, path: str | Path, engine: str | None = None) -> Path | None:
    """The true accuracies beside an engine's answer (same colour scale), models and datasets named.

    Missing-edge kinds: models x datasets of the first repetition, datasets
    ordered by how many of their records the engine was given (most first,
    cold last), with the given cells between the two. Leave-one-dataset-out
    kinds: each held-out target's true and predicted accuracies.
    """
    engine = engine or _heatmap_engine(result)
    if engine is None:
        return None
    truth, F = result.truth, result.completed[engine]
    who = f"{engine} (the default engine)" if engine == DEFAULT_ENGINE else engine
    if result.spec.kind == "missing-edge":
        order = np.lexsort((np.arange(truth.shape[0]), result.group_first))
        panels = [("true accuracy of each model on each dataset (white: never recorded)", truth[order].T, False),
                  ("what the engine was given: black = accuracy known; white = hidden (to predict) or never recorded",
                   result.known_first[order].T.astype(float), True),
                  (f"completed matrix F: the known accuracies, and {engine}'s predictions for the hidden ones",
                   F[order].T, False)]
        ynames, xnames = result.model_ids, [result.dataset_ids[i] for i in order]
        ylabel, xlabel = "model", "dataset, ordered by how many of its records the engine was given (most first, cold last)"
        what = f"How {who} fills in hidden accuracies (repetition 1, seed {result.seeds[0]})" if result.seeds else \
            f"How {who} fills in hidden accuracies"
    else:
        rows = np.flatnonzero(~np.isnan(F).all(1))
        panels = [("true accuracy on each held-out dataset (white: not recorded)", truth[rows], False),
                  (f"{engine}'s prediction, every record of that dataset held out", F[rows], False)]
        ynames, xnames = [result.dataset_ids[r] for r in rows], result.model_ids
        ylabel, xlabel = "held-out dataset", "model"
        what = f"How {who} predicts a dataset it has no record of"
    n_rows = panels[0][1].shape[0]
    panel_h = min(5.0, max(1.3, 0.16 * n_rows))
    fig = _figure((12.0, 1.6 + len(panels) * (panel_h + 0.5)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True))
    from matplotlib.colors import ListedColormap

    vmin, vmax = np.nanmin(truth), np.nanmax(truth)
    for ax, (title, mat, is_mask) in zip(axes, panels):
        im = ax.imshow(np.ma.masked_invalid(mat), aspect="auto", interpolation="nearest",
                       cmap=ListedColormap(["white", "black"]) if is_mask else "viridis",
                       vmin=0 if is_mask else vmin, vmax=1 if is_mask else vmax)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=8)
        _name_ticks(ax, "y", ynames)
        if is_mask:  # a legend where the others have their colour bar, so that the panels align
            bar = fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01, ticks=[0.25, 0.75])
            bar.ax.set_yticklabels(["not given", "given"])
        else:
            fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01, label="accuracy")
    _name_ticks(axes[-1], "x", xnames)
    axes[-1].set_xlabel(xlabel)
    fig.suptitle(f"{what} — {result.spec.title}, zoo {result.zoo}", fontsize=10)
    return _save(fig, path)


def plot_fit_time(result: ProtocolResult, path: str | Path) -> Path | None:
    """Mean fit wall time per engine (log scale)."""
    t = timing_summary(result).dropna(subset=["fit_s"])
    if t.empty:
        return None
    fig = _figure((max(5.0, 0.8 * len(t)), 3.6))
    ax = fig.add_subplot()
    ax.bar(np.arange(len(t)), t["fit_s"], color=[engine_color(e) for e in t["engine"]])
    ax.set_xticks(np.arange(len(t)))
    ax.set_xticklabels([_legend_name(e) for e in t["engine"]], rotation=30, ha="right")
    for i, v in enumerate(t["fit_s"]):
        ax.text(i, v, f"{v:.2g}s", ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("fit wall time per fold (s, log)")
    ax.set_title(f"{result.spec.name.upper()}: time to fit each engine once, zoo {result.zoo}", fontsize=10)
    ax.grid(axis="y", alpha=0.3, which="both")
    return _save(fig, path)


def write_plots(result: ProtocolResult, summary: pd.DataFrame, out_dir: str | Path, prefix: str) -> dict[str, Path]:
    """All figures of a run into ``out_dir`` as ``{prefix}_*.png``; returns name → path."""
    out_dir = Path(out_dir)
    files: dict[str, Path] = {}
    if summary.empty:
        return files
    files["pearson_png"] = plot_pearson(result, summary, out_dir / f"{prefix}_pearson.png")
    heat = plot_heatmap(result, out_dir / f"{prefix}_heatmap.png")
    if heat is not None:
        files["heatmap_png"] = heat
    fit = plot_fit_time(result, out_dir / f"{prefix}_fit_time.png")
    if fit is not None:
        files["fit_time_png"] = fit
    return files


#: the sequential protocol's policies drawn in their own style (the others: their engine's colour)
_POLICY_STYLE = {"plan": (DEFAULT_COLOR, "-", 2.4), "plan-refit": (DEFAULT_COLOR, ":", 1.6),
                 "static": ("#393b79", "--", 1.6), "random": ("#7f7f7f", "-.", 1.2)}


def plot_regret(result: ProtocolResult, path, ax=None, title: str | None = None) -> None:
    """The sequential protocol's mean regret@n against n, one line per policy (on ``ax``, else a new figure)."""
    from .sequential import policy_means

    means = policy_means(result)
    steps = result.spec.k
    n = np.arange(1, steps + 1)
    own = ax is None
    if own:
        fig = _figure((5.2, 3.6))
        ax = fig.subplots()
    for policy, r in means.iterrows():
        color, style, width = _POLICY_STYLE.get(policy, (engine_color(policy), "-", 1.2))
        ax.plot(n, [r[f"regret@{k}"] for k in n], style, color=color, lw=width, marker="o", ms=3,
                label=f"{policy} ({int(r['targets'])})")
    ax.set_xticks(n)
    ax.set_xlabel("fine-tunes n")
    ax.set_ylabel("mean regret@n (accuracy points)")
    ax.set_title(title or f"{result.zoo}: sequential protocol", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    if own:
        _save(fig, path)
