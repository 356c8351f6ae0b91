"""Conditioning instead of fitting: the ``missing-edge`` variants of docs/protocols.md.

Per repetition of ``missing-edge`` (the same masks) and per group of datasets, the engine is fitted again
with less of the group's kept records, and each of its datasets is then answered with the rest given as
results (:func:`recsys.engines.answer.answer` with ``given``: the row's kriging re-solved, no refit),
exactly as ``recsys topk --known`` answers. Two variants:

- ``new``: the fit has none of the group's kept records (its datasets become datasets without records);
  all of them are given.
- ``recorded``: the fit keeps a random half of each dataset's kept records (the larger half; datasets with
  at least two), the other half is given: a dataset of the zoo that gets new results.

Its Pearson correlation with the truth (F: truth where kept, the conditioned prediction elsewhere) is held
against the protocol's own, where the engine was fitted with all those records. The conditioning uses the
joint distribution's parameters calibrated on the full fold.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pandas as pd

from ..engines import DEFAULT_ENGINE, make_engine
from ..engines.answer import answer, joint_model
from ..engines.base import quiet_fits
from ..features import ZooData
from .metrics import pearson
from .protocols import FitCache, fold_zoo_data, known_bin, missing_edge_folds

__all__ = ["conditioning_check", "conditioning_summary", "VARIANTS"]

#: the variants, in the order the reports show them
VARIANTS = ("new", "recorded")


def _given_split(fold, members: np.ndarray, variant: str, group: int) -> dict[int, np.ndarray]:
    """Per member, the kept models given as results (the fit keeps the other kept records)."""
    if variant == "new":  # (else "recorded")
        return {int(d): np.flatnonzero(fold.known[d]) for d in members}
    rng = np.random.default_rng([fold.seed, group, 31])
    out = {}
    for d in members:
        kept = rng.permutation(np.flatnonzero(fold.known[d]))
        if len(kept) >= 2:
            out[int(d)] = np.sort(kept[: len(kept) // 2])
    return out


def conditioning_check(data: ZooData, seeds: Sequence[int] = (0, 1, 2), *, engine: str = DEFAULT_ENGINE,
                       cache: FitCache | None = None, variants: Sequence[str] = VARIANTS) -> pd.DataFrame:
    """One row per (variant, repetition, dataset with kept records): ``variant, rep, dataset, group, n_known,
    n_given, bin, pearson_fit, pearson_conditioned, ms`` (the conditioning's wall time, milliseconds)."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown conditioning variant(s) {unknown}: give some of {', '.join(VARIANTS)}")
    cache = cache or FitCache(())
    Y, recorded = data.Y, data.known
    out = []
    for fold in missing_edge_folds(data, list(seeds)):
        train = fold_zoo_data(data, fold)
        make = lambda: make_engine(engine, seed=fold.seed)  # noqa: E731
        full, _ = cache.fit(engine, fold.seed, train, make)
        cal, _ = cache.calibrate(engine, fold.seed, train, make)
        pred_full = full.predict(train.block(fold.rows))
        at = {int(d): i for i, d in enumerate(fold.rows)}
        bins = known_bin(fold.known.sum(1), recorded.sum(1))
        for variant in variants:
            for g in np.unique(fold.group[fold.group >= 0]):
                members = np.flatnonzero((fold.group == g) & fold.known.any(1))
                given_of = _given_split(fold, members, variant, int(g))
                if not given_of:
                    continue
                known = fold.known.copy()
                for d, cols in given_of.items():
                    known[d, cols] = False
                train_g = data.with_Y(np.where(known, Y, np.nan))
                with quiet_fits():
                    eng = make_engine(engine, seed=fold.seed).fit(train_g)
                jm = joint_model(eng, cal, train_g.records.col_counts() == 0)
                for d, cols in given_of.items():
                    given = {int(j): float(Y[d, j]) for j in cols}
                    stored = np.where(known[d], Y[d], np.nan)[None, :]
                    t0 = time.perf_counter()
                    ans = answer(eng, cal, train_g.block(np.array([d])), stored, uncertainty=False,
                                 given=[given], joint=jm)
                    ms = 1000 * (time.perf_counter() - t0)
                    rec = recorded[d]
                    f_full = np.where(fold.known[d], Y[d], pred_full[at[d]])
                    f_cond = np.where(fold.known[d], Y[d], ans.predicted[0])
                    out.append({"variant": variant, "rep": fold.rep, "dataset": data.dataset_ids[d], "group": int(g),
                                "n_known": int(fold.known[d].sum()), "n_given": len(cols), "bin": bins[d],
                                "pearson_fit": pearson(Y[d, rec], f_full[rec]),
                                "pearson_conditioned": pearson(Y[d, rec], f_cond[rec]), "ms": ms})
    return pd.DataFrame(out)


def conditioning_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per variant, known-model bin and overall: mean Pearson fitted with the records and conditioned on them
    (means over datasets, then over repetitions), the gap, and the mean conditioning time."""
    out = []
    for v, rv in rows.groupby("variant", sort=False):
        for b, g in [("all", rv), *rv.groupby("bin", sort=False)]:
            per = g.groupby("rep")[["pearson_fit", "pearson_conditioned"]].mean().mean()
            out.append({"variant": v, "bin": b, "datasets": int(len(g) / max(g["rep"].nunique(), 1)),
                        "pearson_fit": per.iloc[0], "pearson_conditioned": per.iloc[1],
                        "gap": per.iloc[1] - per.iloc[0], "ms": g["ms"].mean()})
    return pd.DataFrame(out)
