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
                          "--per-family", "4"]) == 0
    df = pd.read_csv(tmp_path / "families.csv")
    assert list(df["policy"].unique()) == list(families.POLICIES) and set(df["zoo"]) == {1, 2}
    assert (df[["regret@1", "regret@3", "regret@5"]] >= 0).all().all()
    assert (df["regret@5"] <= df["regret@1"] + 1e-12).all()  # (the best revealed only grows)
    text = (tmp_path / "families.md").read_text()
    assert "| policy | zoo 1 | zoo 2 | mean |" in text
    plan = df[df["policy"] == "plan"]
    row = next(line for line in text.splitlines() if line.startswith("| plan |"))
    assert row.endswith(" / ".join(f"{plan[f'regret@{n}'].mean():.2f}" for n in (1, 3, 5)) + " |")
