"""benchmarks/families.py: the sequential protocol on generated zoos of fine-tune families."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def families():
    return load_benchmark("families")


def test_a_family_zoo_errs_together_and_changes_its_best_family(families):
    """Seeded (the same zoo twice, another seed another zoo); every cell recorded, in [0.01, 0.99]; a family's
    models move together across datasets (their correlation), and the best family is not the same everywhere."""
    a, b = families.family_zoo(3), families.family_zoo(3)
    np.testing.assert_array_equal(a.Y, b.Y)
    assert not np.array_equal(a.Y, families.family_zoo(4).Y)
    assert a.Y.shape == (8, 240) and np.isfinite(a.Y).all() and a.Y.min() >= 0.01 and a.Y.max() <= 0.99
    assert a.model_ids[31] == "org3/family1-ft31" and a.dataset_ids[7] == "task7"
    family = np.arange(240) // 30
    C = np.corrcoef(a.Y.T)
    within = C[family[:, None] == family[None, :]].mean()
    across = C[family[:, None] != family[None, :]].mean()
    assert within > 0.9 > 0.5 > across
    means = np.stack([a.Y[:, family == f].mean(1) for f in range(8)], axis=1)
    assert len(set(means.argmax(1))) > 1


def test_the_report_has_each_policys_regret_per_zoo_and_their_mean(families, tmp_path):
    assert families.main(["--out", str(tmp_path), "--seeds", "2", "--datasets", "4", "--families", "3",
                          "--per-family", "4", "--large-seeds", "1", "--large-shape", "4,2,5"]) == 0
    everything = pd.read_csv(tmp_path / "families.csv")
    assert everything.groupby("shape")["zoo"].nunique().to_dict() == {"4x3x4": 2, "4x2x5": 1}
    df = everything[everything["shape"] == "4x3x4"]
    assert list(df["policy"].unique()) == list(families.POLICIES) and set(df["zoo"]) == {1, 2}
    assert (df[["regret@1", "regret@3", "regret@5"]] >= 0).all().all()
    assert (df["regret@5"] <= df["regret@1"] + 1e-12).all()  # (the best revealed only grows)
    text = (tmp_path / "families.md").read_text()
    assert "| policy | zoo 1 | zoo 2 | mean |" in text
    plan = df[df["policy"] == "plan"]
    row = next(line for line in text.splitlines() if line.startswith("| plan |"))
    assert row.endswith(" / ".join(f"{plan[f'regret@{n}'].mean():.2f}" for n in (1, 3, 5)) + " |")


def test_the_large_zoos_have_their_own_table_and_can_be_left_out(families, tmp_path):
    import re

    assert families.main(["--out", str(tmp_path), "--seeds", "1", "--datasets", "4", "--families", "2",
                          "--per-family", "5", "--large-seeds", "2", "--large-shape", "4,2,5"]) == 0
    text = (tmp_path / "families.md").read_text()
    assert "## Above the kriging's dense cap: 4 datasets x 2 families of 5 models" in text
    tables = re.findall(r"^\| policy \|.*$", text, flags=re.M)
    assert tables == ["| policy | zoo 1 | mean |", "| policy | zoo 1 | zoo 2 | mean |"]
    assert families.main(["--out", str(tmp_path), "--seeds", "1", "--datasets", "4", "--families", "2",
                          "--per-family", "5", "--large-seeds", "0"]) == 0
    assert "dense cap" not in (tmp_path / "families.md").read_text()
    assert set(pd.read_csv(tmp_path / "families.csv")["shape"]) == {"4x2x5"}
    with pytest.raises(SystemExit):
        families.main(["--out", str(tmp_path), "--large-shape", "4,2"])
