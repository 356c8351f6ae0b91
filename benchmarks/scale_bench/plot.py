"""``scale.png``: fit time and peak memory against records fitted, log-log, one line per engine (in the
colours of every recsys figure)."""

from __future__ import annotations

from pathlib import Path


def plot(rows: list[dict], file: Path, t_exp: dict, m_exp: dict) -> bool:
    """Log-log fit time and peak memory against records fitted, one line per engine."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from recsys.engines import DEFAULT_ENGINE
    from recsys.evaluation.plots import engine_color  # each engine's colour in every figure of recsys

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for engine in dict.fromkeys(r["engine"] for r in rows):
        ok = sorted((r["records"], r["fit_s"], r["fit_rss_mb"] / 1024) for r in rows
                    if r["engine"] == engine and r.get("fit") == "ok")
        if not ok:
            continue
        n, t, m = zip(*ok)
        name, color = engine + (" (default)" if engine == DEFAULT_ENGINE else ""), engine_color(engine)
        axes[0].plot(n, t, "o-", color=color, label=name + (f" (∝ N^{t_exp[engine][0]:.2f})" if engine in t_exp else ""))
        axes[1].plot(n, m, "o-", color=color, label=name + (f" (∝ N^{m_exp[engine][0]:.2f})" if engine in m_exp else ""))
    for ax, title in zip(axes, ("whole-process fit time (s)", "peak resident memory (GiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("records fitted")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(file, dpi=110)
    plt.close(fig)
    return True

