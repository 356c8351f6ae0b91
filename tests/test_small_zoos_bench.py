"""benchmarks/small_zoos.py: results given on a zoo of a handful of datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def small_zoos(data_dir):
    return load_benchmark("small_zoos")


def test_a_draw_fits_on_its_datasets_only_and_scores_the_models_not_given(small_zoos):
    """k = 0 is the engine's own answer for the target fitted on the n drawn datasets (none of the target's
    records); the results given are nested, and each k is scored on the target's other recorded models."""
    from recsys.engines import make_engine
    from recsys.engines.base import quiet_fits
    from recsys.evaluation.metrics import pearson
    from recsys.evaluation.protocols import as_zoo_data

    data, _ = as_zoo_data("parc-71")
    rows = small_zoos.play(data, 3, 0, [0, 2, 5], min_records=20)
    assert [r["k"] for r in rows] == [0, 2, 5] and len({r["target"] for r in rows}) == 1
    rng = np.random.default_rng([0, 99])
    pick = rng.choice(np.flatnonzero(data.known.sum(1) >= 20), 4, replace=False)
    t = int(pick[-1])
    assert rows[0]["target"] == data.dataset_ids[t]
    Y = np.full(data.Y.shape, np.nan)
    Y[pick[:-1]] = data.Y[pick[:-1]]
    with quiet_fits():
        engine = make_engine("hybrid", seed=0).fit(data.with_Y(Y))
    rec = data.known[t]
    assert rows[0]["pearson"] == pytest.approx(pearson(data.Y[t, rec], engine.predict(data.block(np.array([t])))[0, rec]),
                                               abs=1e-12)
    assert rows[0]["shrink"] == engine.cov_shrink_
    assert rows[1]["pearson"] != rows[0]["pearson"] != rows[2]["pearson"]


def test_the_report_has_a_row_per_zoo_and_size(small_zoos, tmp_path):
    assert small_zoos.main(["--zoos", "parc-71", "--datasets", "3,4", "--draws", "2", "--k", "0,4",
                            "--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "small_zoos.csv")
    assert len(df) == 2 * 2 * 2 and set(df["k"]) == {0, 4} and set(df["datasets"]) == {3, 4}
    text = (tmp_path / "small_zoos.md").read_text()
    assert "| zoo | datasets | draws | k = 0 | k = 4 | shrinkage (mean) |" in text
    row = next(line for line in text.splitlines() if line.startswith("| parc-71 | 4 | 2 |"))
    want = df[(df["datasets"] == 4) & (df["k"] == 4)]["pearson"]
    assert f"{want.mean():.3f} ± {want.std(ddof=1) / np.sqrt(2):.3f}" in row
