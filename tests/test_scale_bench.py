"""benchmarks/scale.py and its package scale_bench: the synthetic zoo generator, the child-process harness,
the report and a smoke run."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, load_benchmark
from recsys.zoo import load_zoo


if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

from scale_bench.generator import cached_zoo  # noqa: E402
from scale_bench.measure import Config, projected_fit_s, projected_predict_s  # noqa: E402
from scale_bench.report import growth, write_report  # noqa: E402
from scale_bench.sizes import SIZES, parse_size  # noqa: E402
from scale_bench.watchdog import run_child  # noqa: E402


@pytest.fixture(scope="module")
def scale_main():
    """The command line, ``benchmarks/scale.py``'s ``main``."""
    return load_benchmark("scale", "scale_entry").main


def test_parse_size():
    assert parse_size("10m") == SIZES["10m"]
    assert parse_size("10m").records == 10_000_000 and parse_size("10m").fitted == 9_000_000
    assert parse_size("500x10000@2%").records == 100_000
    assert parse_size("500x10000@0.02").records == 100_000
    assert parse_size("1300x36@46k").records == 46_000
    assert parse_size("1300x36@46000").records == 46_000
    for bad in ("10x10@200%", "big", "1x10@1", "10x10@0"):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)


def test_generated_zoo_has_the_documented_structure(tmp_path):
    size = parse_size("60x400@10%")
    path, info = cached_zoo(size, 0, tmp_path)
    zoo = load_zoo(path / "zoo")  # the canonical format, valid
    hidden = pd.read_csv(path / "holdout.csv")
    assert len(zoo.records) == size.fitted == info["records"] and len(hidden) == size.records - size.fitted
    pairs = set(zip(zoo.records["model"].astype(str), zoo.records["dataset"].astype(str)))
    assert not pairs & set(zip(hidden["model"], hidden["dataset"]))  # the hold-out is not in the zoo
    assert zoo.records["accuracy"].between(0, 1).all() and zoo.records["accuracy"].std() > 0.1
    assert zoo.dataset_roles.text == ("domain", "labels") and zoo.model_roles.log == ("params_millions",)
    assert info["label_lists"] < len(zoo.datasets) / 3  # label lists repeat across datasets
    assert zoo.models["imagenet_top1"].isna().any()  # metadata have missing values
    # Non-uniform recording: some models far more often than others (uniform: about +-30% here).
    per_model = zoo.records["model"].value_counts()
    assert per_model.max() > 3 * max(per_model.min(), 1)
    # Low rank: on a dense zoo, after removing model and dataset means, rank 8 explains most of the logits.
    dense_path, _ = cached_zoo(parse_size("40x120@1.0"), 0, tmp_path)
    dense = load_zoo(dense_path / "zoo")
    table = dense.accuracy_table().to_numpy().copy()
    hid = pd.read_csv(dense_path / "holdout.csv")
    table[dense.datasets.index.get_indexer(hid["dataset"]), dense.models.index.get_indexer(hid["model"])] = \
        hid["accuracy"]
    logit = np.log(np.clip(table, 1e-4, 1 - 1e-4) / (1 - np.clip(table, 1e-4, 1 - 1e-4)))
    resid = logit - logit.mean(0) - logit.mean(1, keepdims=True) + logit.mean()
    sv = np.linalg.svd(resid, compute_uv=False) ** 2
    assert resid.var() > 0.3 * logit.var()  # the interaction is not negligible against the biases
    assert sv[:8].sum() / sv.sum() > 0.85  # ... and it is low-rank (noise sd 0.15 on the logit)


def test_zoos_are_cached_by_size_and_seed(tmp_path):
    size = parse_size("smoke")
    first, _ = cached_zoo(size, 0, tmp_path)
    stamp = (first / "zoo" / "records.csv").stat().st_mtime_ns
    again, _ = cached_zoo(size, 0, tmp_path)
    assert again == first and (again / "zoo" / "records.csv").stat().st_mtime_ns == stamp  # not regenerated
    other, _ = cached_zoo(size, 1, tmp_path)
    assert other != first
    assert (other / "zoo" / "records.csv").read_text() != (first / "zoo" / "records.csv").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no half-written zoo left


def test_children_that_fail_are_recorded_not_fatal():
    py = sys.executable
    # (the children sleep 600 s: killed, they end long before that however busy the machine)
    run = run_child([py, "-c", "import time; time.sleep(600)"], timeout=0.5, mem_cap_mb=2048)
    assert run.status == "timeout (> 0.5 s)" and run.wall_s < 300
    # touches 600 MiB: over a 300 MiB cap, the watchdog kills it
    run = run_child([py, "-c", "import numpy as np, time; a = np.ones(600 * 2**17); time.sleep(600)"],
                          timeout=500, mem_cap_mb=300)
    assert run.status.startswith("out of memory (> 300 MiB resident") and run.wall_s < 300 and run.peak_rss_mb > 300
    # asks for more than the address-space backstop (2 x cap) at once: MemoryError in the child
    run = run_child([py, "-c", "import numpy as np; np.ones(2**31)"], timeout=300, mem_cap_mb=1024)
    assert run.status.startswith("out of memory (") and "Unable to allocate" in run.status
    run = run_child([py, "-c", "import sys; print('partial'); sys.exit('bad input on line 3')"], timeout=300,
                          mem_cap_mb=1024)
    assert run.status == "error: bad input on line 3" and run.stdout == "partial\n"
    run = run_child([py, "-c", "print('x' * 99, end='\\n' * 5)"], timeout=300, mem_cap_mb=1024, stdout="count")
    assert run.ok and (run.stdout_bytes, run.stdout_lines, run.stdout) == (104, 5, "")


def test_peak_memory_is_the_childs_own():
    """Linux counts a forking process's memory in its child's ru_maxrss: the launcher keeps it out."""
    ballast = np.ones(400 * 2**17)  # 400 MiB resident in this process
    run = run_child([sys.executable, "-c", "pass"], timeout=300, mem_cap_mb=2048)
    assert run.ok and 2 < run.peak_rss_mb < 100 and ballast.sum() > 0
    run = run_child([sys.executable, "-c", "import numpy as np; a = np.ones(300 * 2**17)"], timeout=300,
                          mem_cap_mb=2048)
    assert 300 < run.peak_rss_mb < 400


def test_growth_exponent_and_report(tmp_path):
    rows = []
    for n in (1e3, 1e4, 1e5, 1e6):
        rows.append({"size": f"s{n:g}", "models": 10, "datasets": 100, "records": int(n), "engine": "additive",
                     "fit": "ok", "fit_s": 2e-4 * n ** 1.5, "fit_rss_mb": 100 + n / 1e3, "pearson": 0.5})
        rows.append({"size": f"s{n:g}", "models": 10, "datasets": 100, "records": int(n), "engine": "lightfm",
                     **({"fit": "ok", "fit_s": 0.01 * n, "fit_rss_mb": 200.0, "pearson": 0.6} if n < 1e5 else
                        {"fit": "out of memory (> 8 GiB resident, killed)", "fit_s": 30.0, "fit_rss_mb": 8300.0}
                        if n == 1e5 else {"fit": "not run (out of memory at s100000)"})})
    t_exp = growth(rows, "fit_s")
    assert t_exp["additive"] == (pytest.approx(1.5), 4) and "lightfm" not in t_exp  # 2 sizes finished
    cfg = Config(out=tmp_path, cache_dir=tmp_path, engines=["additive", "lightfm"], sizes=[],
                       command="python benchmarks/scale.py --test")
    meta = {"started": "then", "finished": "now", "hardware": "a machine", "floor_s": 0.2, "zoos": []}
    write_report(cfg, rows, meta)
    md = (tmp_path / "scale.md").read_text()
    assert "| additive | 1.50 |" in md and "0.600 (+0.100)" in md
    assert "out of memory (> 8 GiB resident, killed) after 30 s, peak 8.11 GiB" in md
    assert "not run (out of memory at s100000)" in md and "python benchmarks/scale.py --test" in md
    assert len(pd.read_csv(tmp_path / "scale.csv")) == 8
    assert (tmp_path / "scale.png").stat().st_size > 10_000


def test_projections_from_smaller_sizes():
    rows = [{"engine": "e", "records": n, "models": 10, "datasets": n // 10, "fit": "ok", "fit_s": t,
             "predict": "ok", "predict_s": n / 1e4} for n, t in ((1_000, 1.0), (10_000, 100.0))]
    assert projected_fit_s(rows, "e", 100_000) == pytest.approx(10_000)  # the last slope, 2
    assert projected_fit_s(rows[:1], "e", 100_000) == pytest.approx(100)  # at least linear
    assert projected_fit_s(rows, "other", 100_000) is None
    assert projected_predict_s(rows, "e", 100_000) == pytest.approx(10)  # linear in cells


@pytest.mark.slow
def test_smoke_run_measures_every_step(scale_main, tmp_path):
    out = tmp_path / "out"
    assert scale_main(["--smoke", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    row = pd.read_csv(out / "scale.csv").iloc[0]
    assert (row["engine"], row["fit"], row["probe"], row["cli_topk"], row["predict"]) == \
        ("additive", "ok", "ok", "ok", "ok")
    assert row["fit_s"] > 0 and 20 < row["fit_rss_mb"] < 4096 and row["model_mb"] > 0
    assert 0 < row["topk_ms"] < 5000 and 0 < row["topk_new_ms"] < 5000 and row["cli_topk_s"] > 0
    assert row["predict_mb"] > 0 and row["pearson_datasets"] >= 3 and 0.3 < row["pearson"] <= 1
    md = (out / "scale.md").read_text()
    assert "| smoke | 346 | additive |" in md and "hold-out Pearson" in md
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".run-")]  # work files removed
