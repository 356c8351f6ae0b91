"""Figures of a protocol run (PNG, matplotlib's Agg canvas; no pyplot, no global backend change)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..engines import DEFAULT_ENGINE, ENGINES
from .protocols import BINS, ProtocolResult
from .report import timing_summary

__all__ = ["plot_pearson", "plot_heatmap", "plot_fit_time", "write_plots"]

log = logging.getLogger(__name__)


def _figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _color(engine: str) -> str:
    """One colour per registered engine, the same in every figure."""
    names = list(ENGINES)
    i = names.index(engine) if engine in names else len(names)
    return f"C{i % 10}"


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path


def plot_pearson(result: ProtocolResult, summary: pd.DataFrame, path: str | Path) -> Path:
    """Grouped bars of Pearson by method: per known-model bin (P1) or per target dataset (P2), ± std over reps."""
    engines = [e for e in result.engines if (summary["engine"] == e).any()]
    if result.spec.kind == "missing-edge":
        groups = ["all", *BINS]
        labels = ["Avg", "cold", "1-2", "3-4", "5-6", "7-9"]
        s = summary[summary["metric"] == "pearson"].set_index(["engine", "bin"])
        mean = np.array([[s["mean"].get((e, g), np.nan) for g in groups] for e in engines])
        std = np.array([[s["std"].get((e, g), np.nan) for g in groups] for e in engines])
        xlabel = "known models (of 10)"
    else:
        pd_ = result.per_dataset
        groups = list(dict.fromkeys(pd_["dataset"])) + ["mean"]
        labels = groups
        per_rep = pd_.groupby(["engine", "rep", "dataset"])["pearson"].mean()
        stat = per_rep.groupby(["engine", "dataset"]).agg(["mean", "std"])
        s = summary[(summary["metric"] == "pearson") & (summary["bin"] == "all")].set_index("engine")
        mean = np.array([[stat["mean"].get((e, g), np.nan) for g in groups[:-1]] + [s["mean"].get(e, np.nan)]
                         for e in engines])
        std = np.array([[stat["std"].get((e, g), np.nan) for g in groups[:-1]] + [s["std"].get(e, np.nan)]
                        for e in engines])
        xlabel = "held-out target dataset"
    fig = _figure((min(16.0, max(7.0, 0.3 * len(groups) * max(len(engines), 1))), 4.2))
    ax = fig.add_subplot()
    width = 0.8 / max(len(engines), 1)
    x = np.arange(len(groups))
    for i, e in enumerate(engines):
        ax.bar(x + (i - (len(engines) - 1) / 2) * width, np.nan_to_num(mean[i]), width, color=_color(e),
               yerr=np.nan_to_num(std[i]), capsize=2, label=e + (" (default)" if e == DEFAULT_ENGINE else ""))
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=0 if result.spec.kind == "missing-edge" else 30, ha="center" if result.spec.kind == "missing-edge" else "right")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Pearson r (mean ± std over repetitions)")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_title(f"{result.spec.title} — zoo {result.zoo}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _heatmap_engine(result: ProtocolResult) -> str | None:
    if DEFAULT_ENGINE in result.completed:
        return DEFAULT_ENGINE
    return next((e for e in result.engines if e in result.completed), None)


def plot_heatmap(result: ProtocolResult, path: str | Path, engine: str | None = None) -> Path | None:
    """Truth beside the completed matrix F of one repetition (same colour scale).

    P1: models x datasets, datasets ordered by group (most known first, cold
    last), with the known-cell mask between the two. P2: the held-out
    predictions of every target.
    """
    engine = engine or _heatmap_engine(result)
    if engine is None:
        return None
    truth, F = result.truth, result.completed[engine]
    if result.spec.kind == "missing-edge":
        order = np.lexsort((np.arange(truth.shape[0]), result.group_first))
        rows_t, rows_f, known = truth[order].T, F[order].T, result.known_first[order].T
        ylabels, xlabel, ylabel = result.model_ids, "datasets (by group: 9 known → cold)", "model"
    else:
        rows = np.flatnonzero(~np.isnan(F).all(1))
        rows_t, rows_f, known = truth[rows], F[rows], None
        ylabels, xlabel, ylabel = [result.dataset_ids[r] for r in rows], "models", "held-out dataset"
    vmin, vmax = np.nanmin(truth), np.nanmax(truth)
    panels = [("truth", rows_t)] + ([("known cells (rep 0)", known.astype(float))] if known is not None else []) \
        + [(f"F: {engine}" + (", rep 0 (truth where known)" if known is not None else ", leave-one-out"), rows_f)]
    fig = _figure((12.0, 1.2 + 0.22 * rows_t.shape[0] * len(panels) + 0.6 * len(panels)))
    axes = fig.subplots(len(panels), 1, sharex=True)
    for ax, (title, mat) in zip(np.atleast_1d(axes), panels):
        is_mask = title.startswith("known")
        im = ax.imshow(np.ma.masked_invalid(mat), aspect="auto", interpolation="nearest",
                       cmap="Greys" if is_mask else "viridis", vmin=0 if is_mask else vmin, vmax=1 if is_mask else vmax)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=8)
        if len(ylabels) <= 30:
            ax.set_yticks(np.arange(len(ylabels)))
            ax.set_yticklabels(ylabels, fontsize=6)
        if not is_mask:
            fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01, label="accuracy")
    np.atleast_1d(axes)[-1].set_xlabel(xlabel)
    return _save(fig, path)


def plot_fit_time(result: ProtocolResult, path: str | Path) -> Path | None:
    """Mean fit wall time per engine (log scale)."""
    t = timing_summary(result).dropna(subset=["fit_s"])
    if t.empty:
        return None
    fig = _figure((max(5.0, 0.8 * len(t)), 3.6))
    ax = fig.add_subplot()
    colors = ["tab:red" if e == DEFAULT_ENGINE else "tab:blue" for e in t["engine"]]
    ax.bar(t["engine"], t["fit_s"], color=colors)
    ax.tick_params(axis="x", labelrotation=30)
    for i, v in enumerate(t["fit_s"]):
        ax.text(i, v, f"{v:.2g}s", ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("fit wall time per fold (s, log)")
    ax.set_title(f"{result.spec.name.upper()} fit time, zoo {result.zoo} (default engine in red)", fontsize=10)
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
