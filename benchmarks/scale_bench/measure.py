"""The benchmark: for each size, a cached zoo; for each engine, every step in a child of its own.

Steps per (size, engine): the whole-process fit, the in-process probe (:mod:`.probe`), the
whole-process ``recsys topk`` and ``recsys predict``. A failure is recorded and stops that engine's
later steps; an engine that times out or runs out of memory is not run at larger sizes, and a step
projected from the smaller sizes to overrun the timeout is not started.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import ENTRY, ROOT
from .generator import cached_zoo
from .report import code_version, hardware_line, write_report
from .sizes import Size
from .units import fmt, secs, size_text
from .watchdog import Run, median_wall, run_child

log = logging.getLogger("scale")


@dataclasses.dataclass
class Config:
    out: Path
    cache_dir: Path
    engines: list[str]
    sizes: list[Size]
    seed: int = 0
    text_encoder: str | None = None
    timeout: float = 1200.0
    mem_cap_mb: float = 8 * 1024
    repeats: int = 20  # topk calls timed in-process (after one warm-up)
    cli_repeats: int = 3
    floor_repeats: int = 5
    warm: bool = True  # warm the text-embedding cache before the timed fits
    pearson_datasets: int = 2000
    project: bool = True  # skip steps projected from smaller sizes to overrun the timeout
    max_predict_cells: float = float("inf")  # predict-all only on matrices up to this many cells
    command: str = ""


def recsys_cmd() -> list[str]:
    """The ``recsys`` console script beside this interpreter (what users run), else ``python -m recsys.cli``."""
    script = Path(sys.executable).with_name("recsys")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "recsys.cli"]


def child_env(cfg: Config) -> dict:
    env = dict(os.environ)
    # The children import the recsys of this checkout.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def default_engines() -> list[str]:
    """Every registered engine that can fit a zoo without transferability scores (the synthetic zoos have none)."""
    sys.path.insert(0, str(ROOT))
    from recsys.engines import DEFAULT_ENGINE, ENGINES, get_engine_class

    names = []
    for name in ENGINES:
        try:
            if get_engine_class(name).requires_scores:
                continue
        except ImportError:  # an optional dependency is missing
            continue
        names.append(name)
    return [DEFAULT_ENGINE] + sorted(n for n in names if n != DEFAULT_ENGINE)


def fit_cmd(cfg: Config, zoo: Path, engine: str, out: Path, extra: tuple[str, ...] = ()) -> list[str]:
    cmd = [*recsys_cmd(), "-q", "fit", "--zoo", str(zoo), "--engine", engine, "--out", str(out), "--seed",
           str(cfg.seed), *extra]
    return cmd + (["--text-encoder", cfg.text_encoder] if cfg.text_encoder else [])


def warm_text_cache(cfg: Config, zoo: Path, work: Path, env: dict) -> Run:
    """Fill the embedding cache with the zoo's texts (a quick fit on its metadata and 1,000 records).

    Timed on its own: it is the cold cost of the text encoder (loading it and encoding every
    distinct text once) that the timed fits then do not pay.
    """
    mini = work / "warm-zoo"
    mini.mkdir(parents=True, exist_ok=True)
    for name in ("models.csv", "datasets.csv", "zoo.json"):
        shutil.copyfile(zoo / name, mini / name)
    with open(zoo / "records.csv") as src, open(mini / "records.csv", "w") as dst:
        for i, line in enumerate(src):
            if i > 1000:
                break
            dst.write(line)
    return run_child(fit_cmd(cfg, mini, "popularity", work / "warm.npz", ("--no-calibrate",)),
                     timeout=cfg.timeout, mem_cap_mb=cfg.mem_cap_mb, env=env)


_LOAD_SNIPPET = """
import json, sys, time
import recsys
t0 = time.perf_counter()
zoo = recsys.load_zoo(sys.argv[1])
t1 = time.perf_counter()
zoo.fingerprint()
print(json.dumps({"load_s": t1 - t0, "fingerprint_s": time.perf_counter() - t1, "records": len(zoo.records)}))
"""


def measure_load(cfg: Config, zoo: Path, env: dict) -> dict:
    """``recsys.load_zoo`` (read + validate) and ``Zoo.fingerprint()`` in a child: times and its peak RSS."""
    run = run_child([sys.executable, "-c", _LOAD_SNIPPET, str(zoo)], timeout=cfg.timeout, mem_cap_mb=cfg.mem_cap_mb,
                    env=env)
    out = {"load": run.status, "load_rss_mb": run.peak_rss_mb}
    if run.ok:
        out.update(json.loads(run.stdout.strip().splitlines()[-1]))
    return out


def projected_fit_s(rows: list[dict], engine: str, records: int) -> float | None:
    """Fit time of ``engine`` at ``records``, extrapolated from its two largest finished ladder sizes.

    Growth at least linear: ``t1 (records / n1) ** max(1, slope)``; None without a finished size.
    """
    done = sorted((r["records"], r["fit_s"]) for r in rows if r["engine"] == engine and r.get("fit") == "ok"
                  and r.get("ladder", True) and r["records"] < records)
    if not done:
        return None
    slope = 1.0
    if len(done) >= 2 and done[-1][0] > done[-2][0]:
        slope = max(1.0, math.log(done[-1][1] / done[-2][1]) / math.log(done[-1][0] / done[-2][0]))
    n1, t1 = done[-1]
    return t1 * (records / n1) ** slope


def projected_predict_s(rows: list[dict], engine: str, cells: int) -> float | None:
    """Predict-all time of ``engine`` for ``cells``, linear in cells from its largest finished one."""
    done = sorted((r["models"] * r["datasets"], r["predict_s"]) for r in rows if r["engine"] == engine
                  and r.get("predict") == "ok" and r["models"] * r["datasets"] < cells)
    return done[-1][1] * cells / done[-1][0] if done else None


def measure(cfg: Config, size: Size, engine: str, zoo_dir: Path, work: Path, env: dict,
            rows: list[dict] = ()) -> dict:
    """Every figure for one (size, engine); a failure is recorded and stops that engine's later steps.

    With ``cfg.project``, a fit projected (from ``rows``, the smaller sizes) to take more than twice
    the timeout, or a predict-all projected to take more than the timeout, is not run: the row
    says so and gives the projection.
    """
    zoo, model = zoo_dir / "zoo", work / f"{engine}.npz"
    row: dict = {"size": size.name, "models": size.models, "datasets": size.datasets, "records": size.fitted,
                 "ladder": size.ladder, "engine": engine}
    guess = projected_fit_s(rows, engine, size.fitted) if cfg.project and size.ladder else None
    if guess is not None and guess > 2 * cfg.timeout:
        row["fit"] = f"not run (projected {guess:,.0f} s from smaller sizes)"
        log.info("%s %s: %s", size.name, engine, row["fit"])
        return row
    fit = run_child(fit_cmd(cfg, zoo, engine, model), timeout=cfg.timeout, mem_cap_mb=cfg.mem_cap_mb, env=env)
    row.update(fit=fit.status, fit_s=fit.wall_s, fit_rss_mb=fit.peak_rss_mb)
    log.info("%s %s: fit %s in %.1f s, peak %.0f MiB", size.name, engine, fit.status, fit.wall_s, fit.peak_rss_mb)
    if not fit.ok:
        return row
    row["model_mb"] = model.stat().st_size / 2**20
    args = {"model": str(model), "new": str(zoo_dir / "new_datasets.json"), "holdout": str(zoo_dir / "holdout.csv"),
            "seed": cfg.seed, "repeats": cfg.repeats, "max_datasets": cfg.pearson_datasets}
    pr = run_child([sys.executable, str(ENTRY), "--probe", json.dumps(args)],
                   timeout=cfg.timeout, mem_cap_mb=cfg.mem_cap_mb, env=env)
    row.update(probe=pr.status, probe_rss_mb=pr.peak_rss_mb)
    if pr.ok:
        found = json.loads(pr.stdout.strip().splitlines()[-1])
        timing = found.pop("timing", {}) or {}
        row.update(found)
        row.update({k: v for k, v in timing.items() if isinstance(v, (int, float))})  # features_s, engine_s ...
    name = _a_known_dataset(zoo)
    # A first load verifies the mapped arrays' checksums and remembers the file in its cache (an empty one here),
    # which the timed runs then share: the figure a user sees from the second command on.
    topk = [*recsys_cmd(), "topk", "--model", str(model), "--dataset", name, "-k", "10"]
    env = {**env, "RECSYS_CACHE_DIR": str(work / f"first-load-{engine}")}
    row["cli_topk_first_s"], row["cli_topk_first"] = median_wall(topk, 1, env, cfg.timeout, cfg.mem_cap_mb)
    row["cli_topk_s"], row["cli_topk"] = median_wall(topk, cfg.cli_repeats, env, cfg.timeout, cfg.mem_cap_mb)
    if engine == "hybrid":  # the joint distribution's plan (issue 18), whole process, for the same dataset
        budget = "5" if size.models >= 50 else "1"  # (the smallest zoo's datasets have one model left)
        row["cli_plan_s"], row["cli_plan"] = median_wall(
            [*recsys_cmd(), "plan", "--model", str(model), "--dataset", name, "--budget", budget], cfg.cli_repeats,
            env, cfg.timeout, cfg.mem_cap_mb)
    cells = size.models * size.datasets
    guess = projected_predict_s(rows, engine, cells) if cfg.project else None
    if cells > cfg.max_predict_cells:
        status = f"not run (over --max-predict-cells {cfg.max_predict_cells:,.0f})"
    elif guess is not None and guess > cfg.timeout:
        status = f"not run (projected {guess:,.0f} s)"
    else:
        pred = run_child([*recsys_cmd(), "predict", "--model", str(model), "--format", "csv"], timeout=cfg.timeout,
                         mem_cap_mb=cfg.mem_cap_mb, env=env, stdout="count")
        status = pred.status
        if pred.ok and pred.stdout_lines - 1 != cells:
            status = f"incomplete: {pred.stdout_lines - 1:,} rows for {cells:,} cells"
        row.update(predict_s=pred.wall_s, predict_rss_mb=pred.peak_rss_mb, predict_mb=pred.stdout_bytes / 2**20)
    row["predict"] = status
    log.info("%s %s: probe %s (Pearson %s), CLI topk %s, predict-all %s in %s", size.name, engine, pr.status,
             fmt(row.get("pearson"), ".3f"), row["cli_topk"], status, secs(row.get("predict_s")))
    model.unlink(missing_ok=True)
    return row


def _a_known_dataset(zoo: Path) -> str:
    with open(zoo / "records.csv") as fh:
        next(fh)
        return next(fh).rstrip("\n").split(",")[1]


def run(cfg: Config) -> list[dict]:
    """The whole benchmark; writes the report after every size, so a long run can be read as it goes."""
    env = child_env(cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    started = _dt.datetime.now()
    # Byte-compile recsys, as installing a wheel does: an editable install under PYTHONDONTWRITEBYTECODE
    # (as here) would otherwise compile every module it imports at each start (~0.1 s), where numpy and
    # click, installed from wheels, do not.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "recsys")], check=False,
                   stdout=subprocess.DEVNULL)
    floor, status = median_wall([sys.executable, "-c", "import numpy, click, json"], cfg.floor_repeats, env, 60,
                                cfg.mem_cap_mb)
    meta = {"started": started.isoformat(timespec="seconds"), "hardware": hardware_line(), "code": code_version(),
            "load_start": os.getloadavg(), "floor_s": floor, "zoos": []}
    log.info("interpreter floor %.3f s (%s)", floor or float("nan"), status)
    rows: list[dict] = []
    failed: dict[str, str] = {}
    for size in cfg.sizes:
        zoo_dir, info = cached_zoo(size, cfg.seed, cfg.cache_dir)
        with tempfile.TemporaryDirectory(dir=cfg.cache_dir, prefix=".run-") as tmp:
            meta["zoos"].append({**info, "name": size.name})
            rows += _one_size(cfg, size, zoo_dir, Path(tmp), meta["zoos"][-1], rows, failed)
        meta["load_end"] = os.getloadavg()
        meta["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
        write_report(cfg, rows, meta)
    return rows


def _one_size(cfg: Config, size: Size, zoo_dir: Path, work: Path, zoo: dict, rows: list[dict],
              failed: dict[str, str]) -> list[dict]:
    """The zoo's text warm-up and load (into ``zoo``), then every engine; returns their rows.

    ``failed`` (engine -> why) is updated: an engine that times out or runs out of memory here is
    not run at the larger sizes.
    """
    # A fresh text-embedding cache per zoo: the warm-up pays the cold encoding (timed in
    # the zoo table), the timed fits find every text encoded; the user's cache is untouched.
    env = {**child_env(cfg), "RECSYS_CACHE_DIR": str(work / "recsys-cache")}
    warm = warm_text_cache(cfg, zoo_dir / "zoo", work, env) if cfg.warm else None
    zoo.update({"warm_s": warm.wall_s if warm else None, "warm": warm.status if warm else "not run"})
    if warm:
        log.info("%s: text warm-up %s in %.1f s", size.name, warm.status, warm.wall_s)
    zoo.update(measure_load(cfg, zoo_dir / "zoo", env))
    log.info("%s: load_zoo %s in %s, peak %s", size.name, zoo["load"], secs(zoo.get("load_s")),
             size_text(zoo["load_rss_mb"]))
    out: list[dict] = []
    for engine in cfg.engines:
        if engine in failed:
            out.append({"size": size.name, "models": size.models, "datasets": size.datasets, "records": size.fitted,
                        "ladder": size.ladder, "engine": engine, "fit": f"not run ({failed[engine]})"})
            continue
        row = measure(cfg, size, engine, zoo_dir, work, env, [*rows, *out])
        out.append(row)
        if row["fit"].startswith(("timeout", "out of memory")):
            failed[engine] = f"{row['fit'].split(' (')[0]} at {size.name}"
    return out
