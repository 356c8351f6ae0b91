"""``scale.md`` (the zoos, every figure per size and engine, growth exponents, the command), ``scale.csv``
(every figure) and ``scale.png`` (:mod:`.plot`)."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import ROOT
from .generator import GENERATOR_VERSION
from .plot import plot
from .units import fmt, secs, size_text

if TYPE_CHECKING:
    from .measure import Config


def hardware_line() -> str:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count()
    cpu, mem = platform.processor() or platform.machine(), None
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
        with open("/proc/meminfo") as fh:
            mem = int(next(ln for ln in fh if ln.startswith("MemTotal")).split()[1]) / 2**20
    except (OSError, StopIteration):
        pass
    mem_text = f", {mem:.0f} GiB RAM" if mem else ""
    return (f"{cores} CPU cores ({cpu}){mem_text}, no GPU used — {platform.platform()}, Python "
            f"{platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}")


def code_version() -> str | None:
    """The checkout's commit (and whether it had uncommitted changes) the children import."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"commit {head}" + (" with uncommitted changes" if dirty else "") if head else None


def growth(rows: list[dict], key: str) -> dict[str, tuple[float, int]]:
    """Per engine: slope of log(key) on log(records) (least squares) over its finished ladder sizes, and their count."""
    out = {}
    for engine in dict.fromkeys(r["engine"] for r in rows):
        pts = [(r["records"], r[key]) for r in rows if r["engine"] == engine and r.get("fit") == "ok"
               and r.get(key) and r.get("ladder", True)]
        if len({n for n, _ in pts}) >= 3:
            x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
            out[engine] = (float(np.polyfit(x, y, 1)[0]), len(pts))
    return out


def write_report(cfg: Config, rows: list[dict], meta: dict) -> None:
    """``scale.md``, ``scale.csv`` and ``scale.png`` in ``cfg.out``."""
    pd.DataFrame(rows).to_csv(cfg.out / "scale.csv", index=False, float_format="%.6g")
    t_exp, m_exp = growth(rows, "fit_s"), growth(rows, "fit_rss_mb")
    lines = [*_setup(cfg, meta), *_zoos(meta), *_results(cfg, rows, meta.get("floor_s")), *_growth(t_exp, m_exp)]
    if plot(rows, cfg.out / "scale.png", t_exp, m_exp):
        lines += ["", "![fit time and peak memory against records](scale.png)"]
    lines += ["", "## Command", "", f"```\n{cfg.command}\n```", ""]
    (cfg.out / "scale.md").write_text("\n".join(lines))


def _setup(cfg: Config, meta: dict) -> list[str]:
    """Title, what the zoos are, and how the run was made (machine, code, limits, encoder, interpreter floor)."""
    return [
        "# Scale benchmark",
        "",
        "Synthetic zoos (`benchmarks/scale.py`, generator v{v}, seed {s}): low-rank accuracies partly explained by "
        "model metadata (family, pretraining data, parameters, ImageNet accuracy) and dataset metadata (domain, "
        "classes, samples, label-name text), popular models and big datasets recorded more often; 10% of each "
        "zoo's records hidden before fitting (the hold-out). Every figure below is measured by the command at the "
        "end, each in its own child process.".format(v=GENERATOR_VERSION, s=cfg.seed),
        "",
        f"- Hardware: {meta['hardware']}",
        f"- Code: {meta.get('code') or 'unknown'}",
        f"- Run: {meta['started']} → {meta.get('finished', '…')}; load average {_load(meta.get('load_start'))} at the "
        f"start, {_load(meta.get('load_end'))} at the end (the machine is shared: times are noisy).",
        f"- Limits per child: {cfg.timeout:.0f} s wall, {cfg.mem_cap_mb / 1024:.0f} GiB resident (killed above it); an "
        f"engine that times out or runs out of memory is not run at larger sizes"
        + (", nor is a fit projected from the smaller sizes (at least linear growth) to take over twice the "
           "timeout, or a predict-all projected (linear in cells) to take over the timeout." if cfg.project else "."),
        f"- Text encoder: {cfg.text_encoder or 'the default (all-MiniLM-L6-v2)'}"
        + ("; each zoo starts with an empty embedding cache that a warm-up fit fills (its time, in the zoo "
           "table, is the cold cost: loading the encoder and encoding every distinct text once), so the timed fits "
           "exclude encoding." if cfg.warm else "."),
        f"- Interpreter floor `python -c \"import numpy, click, json\"`: {fmt(meta.get('floor_s'), '.3f', ' s')} "
        f"(median of {cfg.floor_repeats}); recsys byte-compiled first (`python -m compileall`), as a wheel install "
        f"is, like numpy and click.",
    ]


def _zoos(meta: dict) -> list[str]:
    """One row per generated zoo: its shape, generation, ``load_zoo``, fingerprint and text warm-up."""
    lines = [
        "",
        "## Zoos",
        "",
        "`recsys.load_zoo` reads and validates the zoo directory; `fingerprint` is the zoo's content hash that "
        "every fit stores; both in a child of their own (peak memory: that child's).",
        "",
        "| size | models × datasets | density | records fitted + hidden | distinct label lists | datasets without "
        "records | generated + written | load_zoo (peak memory) | fingerprint | text warm-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for z in meta["zoos"]:
        s = z["size"]
        load = (f"{secs(z['load_s'])} ({size_text(z['load_rss_mb'])})" if z.get("load") == "ok"
                else z.get("load", "—"))
        warm = (secs(z["warm_s"]) if z["warm"] == "ok" else
                z["warm"] if z["warm_s"] is None else f"{z['warm']} after {z['warm_s']:.0f} s")
        lines.append(f"| {z['name']} | {s['models']:,} × {s['datasets']:,} | "
                     f"{s['records'] / (s['models'] * s['datasets']):.2%} | {z['records']:,} + {z['holdout']:,} | "
                     f"{z['label_lists']:,} | {z['datasets_without_records']:,} | "
                     f"{z['generate_s']:.1f} + {z['write_s']:.1f} s | {load} | "
                     f"{secs(z.get('fingerprint_s'))} | {warm} |")
    return lines


def _results(cfg: Config, rows: list[dict], floor: float | None) -> list[str]:
    """One row per (size, engine): fit, its split, memory, model file, topk, CLI topk, predict-all, hold-out."""
    lines = [
        "",
        "## Results",
        "",
        "Whole-process `recsys fit` (selection and calibration included): wall time, the split recorded in the "
        "model file (features / engine / calibration), the child's peak resident memory. `topk` in-process: "
        "median of rec.topk(dataset, k=10) over 20 known datasets, and of rec.topk_new(metadata, k=10) over 20 "
        "brand-new ones. CLI topk: whole-process `recsys topk`, median of "
        f"{cfg.cli_repeats}, and its ratio to the interpreter floor, once the file is verified; then the first "
        "load's time (an empty cache: it reads every mapped array once for its checksum). Predict-all: "
        "whole-process `recsys predict --format csv` of every (model, dataset) pair, streamed into a pipe. "
        "Hold-out Pearson: mean over datasets with ≥ 3 hidden records (at most "
        f"{cfg.pearson_datasets:,}, a seeded sample) of Pearson(predicted, hidden accuracy); Δ is the engine minus "
        "`additive` on the same zoo.",
        "",
        "| size | records | engine | fit | features / engine / calibration | peak memory | model file | topk known / "
        "new | CLI topk | predict-all | hold-out Pearson (Δ additive) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    plan_lines = _plan_lines(rows, floor)
    additive = {r["size"]: r.get("pearson") for r in rows if r["engine"] == "additive"}
    for r in rows:
        head = f"| {r['size']} | {r['records']:,} | {r['engine']} |"
        if r.get("fit") != "ok":
            fit = r.get("fit", "")
            after = f" after {r['fit_s']:.0f} s, peak {size_text(r.get('fit_rss_mb'))}" if "fit_s" in r else ""
            lines.append(f"{head} {fit}{after} | | | | | | | |")
            continue
        split = " / ".join(secs(r.get(k)).removesuffix(" s") for k in ("features_s", "engine_s", "calibration_s"))
        topk = (f"{fmt(r.get('topk_ms'), '.1f')} / {fmt(r.get('topk_new_ms'), '.1f')} ms" if r.get("probe") == "ok"
                else r.get("probe", ""))
        cli = (f"{r['cli_topk_s']:.2f} s ({r['cli_topk_s'] / floor:.1f}×)" if r.get("cli_topk_s") and floor
               else r.get("cli_topk", ""))
        if r.get("cli_topk_first_s"):
            cli += f"; first load {r['cli_topk_first_s']:.2f} s"
        predict = (f"{secs(r['predict_s'])}, {size_text(r['predict_mb'])}" if r.get("predict") == "ok"
                   else r.get("predict", "") + (f" after {r['predict_s']:.0f} s" if r.get("predict_s") else ""))
        pearson = r.get("pearson")
        base = additive.get(r["size"])
        delta = f" ({pearson - base:+.3f})" if pearson is not None and base is not None and r["engine"] != "additive" \
            else ""
        lines.append(f"{head} {secs(r['fit_s'])} | {split} s | {size_text(r.get('fit_rss_mb'))} | "
                     f"{size_text(r.get('model_mb'))} | {topk} | {cli} | {predict} | "
                     f"{fmt(pearson, '.3f')}{delta} |")
    return lines + plan_lines


def _plan_lines(rows: list[dict], floor: float | None) -> list[str]:
    """The joint distribution's speed (issue 18): conditioning a brand-new dataset on 20 results and a plan of 5
    models, in-process, and whole-process `recsys plan` against the interpreter floor."""
    done = [r for r in rows if r.get("condition_ms") is not None or r.get("cli_plan_s")]
    if not done:
        return []
    lines = ["", "## Results given and plans", "",
             "The default engine's joint distribution (`recsys.engines.joint`), in the probe's process: a brand-new "
             "dataset conditioned on 20 results (its kriging re-solved: centres and conditional variances, no "
             "refit; median of the probe's repeats after a warm-up), a plan of 5 models over every model given "
             "that distribution, and the whole answer with the results given (intervals and P(best) of every "
             "model, once). `recsys plan --budget 5` for the dataset of the CLI topk (`--budget 1` on the 10-model "
             "zoo), whole process, median of the CLI repeats (the file verified by the CLI topk's first load), and its "
             "ratio to the interpreter floor. Goals: 5 ms, "
             "50 ms, 3× the floor.", "",
             "| size | models | condition on 20 results | plan of 5 | answer with the results | `recsys plan` |",
             "|---|---|---|---|---|---|"]
    for r in done:
        cli = (f"{r['cli_plan_s']:.2f} s ({r['cli_plan_s'] / floor:.1f}×)" if r.get("cli_plan_s") and floor
               else r.get("cli_plan", ""))
        lines.append(f"| {r['size']} | {r['models']:,} | {fmt(r.get('condition_ms'), '.1f')} ms | "
                     f"{fmt(r.get('plan_ms'), '.1f')} ms | {fmt(r.get('answer_given_ms'), '.0f')} ms | {cli} |")
    return lines


def _growth(t_exp: dict, m_exp: dict) -> list[str]:
    """Fitted growth exponents of fit time and peak memory per engine."""
    lines = ["", "## Growth", "",
             "Least-squares slope of log(fit wall time) and log(peak memory) on log(records fitted), over the sizes "
             "of the ladder (not `real` or `smoke`, which have other shapes) each engine finished (≥ 3). The memory "
             "slope is flattened by the interpreter's fixed few hundred MiB.",
             "", "| engine | fit time ∝ records^a | peak memory ∝ records^b | sizes |", "|---|---|---|---|"]
    for engine, (a, n) in t_exp.items():
        b = m_exp.get(engine, (float("nan"), 0))[0]
        lines.append(f"| {engine} | {a:.2f} | {b:.2f} | {n} |")
    if not t_exp:
        lines.append("| (fewer than 3 sizes finished) | | | |")
    return lines


def _load(v) -> str:
    return "/".join(f"{x:.1f}" for x in v) if v else "—"
