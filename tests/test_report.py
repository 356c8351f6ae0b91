"""Reports and figures a newcomer can read alone: sections in order, every metric defined and linked, bins named
by the share of each dataset's records known (whatever the zoo), names on the heatmap, one colour per engine."""

from __future__ import annotations

import re

import numpy as np
import pytest

from recsys.engines import DEFAULT_ENGINE, ENGINES
from recsys.evaluation import plots
from recsys.evaluation.protocols import PROTOCOLS, evaluate, missing_edge_folds
from recsys.evaluation.report import below_baselines, bin_counts, markdown_report, summarize
from recsys.evaluation.runner import PROTOCOLS_DOC, docs_link
from recsys.features.data import ZooData

from conftest import planted_low_rank


def _three_of_six(n_datasets: int = 24, seed: int = 0) -> ZooData:
    """A 6-model zoo whose datasets have 3 records each (the issue's case: 2 of 3 known is more than 60%)."""
    full = planted_low_rank(n_datasets=n_datasets, n_models=6, seed=seed)[1]
    rng = np.random.default_rng(seed)
    Y = np.full_like(full, np.nan)
    for i in range(n_datasets):
        cols = rng.choice(6, 3, replace=False)
        Y[i, cols] = full[i, cols]
    return ZooData(Y=Y, model_features=rng.normal(size=(6, 2)), dataset_features=rng.normal(size=(n_datasets, 2)))


@pytest.fixture(scope="module")
def small_run():
    data = _three_of_six()
    spec = PROTOCOLS["missing-edge"]
    res = evaluate(data, spec, missing_edge_folds(data, [0, 1]), ["random", "popularity", "additive", DEFAULT_ENGINE],
                   zoo_name="three-of-six")
    return res, summarize(res)


def test_sections_come_in_the_designed_order(small_run):
    res, summary = small_run
    md = markdown_report(res, summary)
    leaders = ["## missing-edge protocol", "Metrics, per dataset", "Pearson r between the truth and F",
               "All scored datasets", "Coverage of the 80%", "**Default engine", "Fit and predict times"]
    at = [md.index(x) for x in leaders]
    assert at == sorted(at), leaders
    assert markdown_report(res, summary) == md  # a pure function of the run
    assert markdown_report(res, summary, heading="###").startswith("### missing-edge")


def test_every_metric_of_the_tables_is_defined_in_one_line_and_linked(small_run):
    res, summary = small_run
    md = markdown_report(res, summary, docs="../docs/protocols.md")
    definitions = "\n".join(line for line in md.splitlines() if line.startswith("- **"))
    for name in ("Pearson", "Kendall tau-b", "NDCG@5", "regret@1", "regret@5", "coverage", "width",
                 "P(best) of top pick", "top pick is best", "fit s", "predict s", "calibrate s"):
        assert f"**{name}" in definitions or f"/ {name}" in definitions, name
    links = re.findall(r"\]\(\.\./docs/protocols\.md#([a-z0-9-]+)\)", md)
    assert {"metrics", "bins", "missing-edge-any-zoo"} <= set(links)
    # every anchor exists: GitHub's slug of a heading of docs/protocols.md
    headings = re.findall(r"^#+ (.+)$", PROTOCOLS_DOC.read_text(), flags=re.M)
    slugs = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
    assert set(links) <= slugs
    # without a link target the file is named, not linked
    assert "](" not in markdown_report(res, summary) and "`docs/protocols.md`" in markdown_report(res, summary)


def test_bins_are_shares_of_each_datasets_records_everywhere(small_run):
    res, summary = small_run
    assert set(res.per_dataset["bin"]) <= {"cold", "<= 40%", "> 60%"}  # 1 of 3, 2 of 3: never 1-2 / 7-9
    assert bin_counts(res) == {"<= 40%": "1 of 3", "> 60%": "2 of 3"}
    md = markdown_report(res, summary)
    assert "| <= 40% known (1 of 3) |" in md and "> 60% known (2 of 3)" in md and "coverage > 60% known" in md
    assert "of 10" not in md and "7-9" not in md
    # the summary line names a bin as the table does
    worse = summary.copy()
    sel = (worse["engine"] == "popularity") & (worse["metric"] == "pearson") & (worse["bin"] == "> 60%")
    worse.loc[sel, "mean"] = -1.0
    lines = below_baselines(res, worse, default="popularity", baselines=["additive"])
    assert any(line.startswith("Pearson [> 60% known]: popularity") for line in lines)


def test_docs_link_leads_to_the_protocols_file(tmp_path):
    link = docs_link(tmp_path / "out")
    assert (tmp_path / "out" / link).resolve() == PROTOCOLS_DOC.resolve()


def test_one_colour_per_engine_and_the_default_always_its_own():
    colors = {e: plots.engine_color(e) for e in ENGINES}
    assert len(set(colors.values())) == len(colors)
    assert colors[DEFAULT_ENGINE] == plots.DEFAULT_COLOR
    assert plots.engine_color("logme:LOG_ME") == colors["logme"]
    assert plots.engine_color(f"{DEFAULT_ENGINE} - kernel") != plots.DEFAULT_COLOR


def _captured(monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    return figures


def test_heatmap_names_models_and_datasets(small_run, monkeypatch):
    res, summary = small_run
    figures = _captured(monkeypatch)
    plots.write_plots(res, summary, "unused", "me")
    heat = figures[1]
    axes = [ax for ax in heat.axes if ax.get_ylabel() == "model"]
    assert len(axes) == 3
    assert [t.get_text() for t in axes[0].get_yticklabels()] == list(res.model_ids)
    assert [t.get_text() for t in axes[-1].get_xticklabels()][:3] == \
        [res.dataset_ids[i] for i in np.lexsort((np.arange(len(res.dataset_ids)), res.group_first))][:3]
    titles = [ax.get_title() for ax in axes]
    assert not any(t.startswith("F:") for t in titles) and "true accuracy" in titles[0]
    assert DEFAULT_ENGINE in heat.get_suptitle() and "three-of-six" in heat.get_suptitle()
    pearson = figures[0].axes[0]
    assert "(1 of 3)" in " ".join(t.get_text() for t in pearson.get_xticklabels())
    assert "of 10" not in pearson.get_xlabel()
    bars = {c.get_label(): c.patches[0].get_facecolor() for c in pearson.containers if hasattr(c, "patches")}
    from matplotlib.colors import to_rgba

    assert bars[f"{DEFAULT_ENGINE} (default)"] == to_rgba(plots.DEFAULT_COLOR)


def test_long_names_are_cut_in_the_middle_and_many_are_thinned():
    assert plots._short("x" * 10) == "x" * 10
    cut = plots._short("organisation/very-long-model-name-patch16-224-in21k")
    assert len(cut) == 24 and cut.startswith("organisation") and cut.endswith("in21k") and "…" in cut
    ax = plots._figure((6, 3)).add_subplot()
    names = [f"dataset-{i}" for i in range(270)]
    plots._name_ticks(ax, "x", names)
    shown = [t.get_text() for t in ax.get_xticklabels()]
    assert 30 <= len(shown) <= 60 and shown[0] == "dataset-0" and set(shown) <= set(names)
