"""Quality floors of the default engine on both published protocols (real data, fixed seeds).

The floors sit below the measured figures (benchmarks/results/results.md) with a margin for the
fast hashing text encoder used here; the default engine must also beat the baselines of the same
run. These are regressions guards, not the benchmark: `make bench` measures the real thing.
"""

from __future__ import annotations

import pytest

from recsys.evaluation import run

BASELINES = ["popularity", "additive", "lr", "gat"]


@pytest.fixture(scope="module")
def p1(domainnet):
    return run("p1", domainnet, [*BASELINES, "lightfm"], repeats=3, progress=False, text_encoder="hashing",
               coverage="default", plots=False)


@pytest.fixture(scope="module")
def p2(transfergraph):
    return run("p2", transfergraph, [*BASELINES, "lightfm"], repeats=1, progress=False, coverage="default",
               plots=False)


@pytest.mark.slow
def test_p1_default_engine_beats_every_baseline(p1):
    ours = {m: p1.value("lightfm", m) for m in ("pearson", "kendall")}
    assert ours["pearson"] >= 0.78 and ours["kendall"] >= 0.67
    assert p1.value("lightfm", "pearson", "cold") >= 0.62
    for b in BASELINES:
        assert ours["pearson"] > p1.value(b, "pearson") + 0.03, b
        assert ours["kendall"] > p1.value(b, "kendall") + 0.02, b
        assert p1.value("lightfm", "pearson", "cold") > p1.value(b, "pearson", "cold"), b


@pytest.mark.slow
def test_p1_interval_coverage_near_nominal(p1):
    assert 0.75 <= p1.value("lightfm", "coverage") <= 0.88


@pytest.mark.slow
def test_p2_default_engine_beats_every_baseline(p2):
    ours = p2.value("lightfm", "pearson")
    assert ours >= 0.84 and p2.value("lightfm", "kendall") >= 0.41
    for b in BASELINES:
        assert ours > p2.value(b, "pearson"), b
        assert p2.value("lightfm", "kendall") > p2.value(b, "kendall"), b
    assert 0.7 <= p2.value("lightfm", "coverage") <= 0.92
