"""Conditioning instead of fitting: the ``missing-edge`` variant of docs/protocols.md.

Per repetition of ``missing-edge`` (the same masks) and per group of datasets, the engine is fitted
without the group's kept records (the group's datasets become datasets without records) and each of
them is then answered with its kept records given as results (:func:`recsys.engines.answer.answer` with
``given``: the row's kriging re-solved, no refit), exactly as ``recsys topk --known`` answers. Its
Pearson correlation with the truth (F: truth where kept, the conditioned prediction elsewhere) is held
against the protocol's own, where the engine was fitted with those records. The conditioning uses the
joint distribution's parameters calibrated on the full fold (how results move a dataset without records).
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

__all__ = ["conditioning_check", "conditioning_summary"]


def conditioning_check(data: ZooData, seeds: Sequence[int] = (0, 1, 2), *, engine: str = DEFAULT_ENGINE,
                       cache: FitCache | None = None) -> pd.DataFrame:
    """One row per (repetition, dataset with kept records): ``rep, dataset, group, n_known, bin,
    pearson_fit, pearson_conditioned, ms`` (the conditioning's wall time, milliseconds)."""
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
        for g in np.unique(fold.group[fold.group >= 0]):
            members = np.flatnonzero((fold.group == g) & fold.known.any(1))
            if not len(members):
                continue
            known = fold.known.copy()
            known[members] = False
            train_g = data.with_Y(np.where(known, Y, np.nan))
            with quiet_fits():
                eng = make_engine(engine, seed=fold.seed).fit(train_g)
            jm = joint_model(eng, cal, train_g.records.col_counts() == 0)
            for d in members:
                kept = np.flatnonzero(fold.known[d])
                given = {int(j): float(Y[d, j]) for j in kept}
                t0 = time.perf_counter()
                ans = answer(eng, cal, train_g.block(np.array([d])), np.full((1, data.n_models), np.nan),
                             uncertainty=False, given=[given], joint=jm)
                ms = 1000 * (time.perf_counter() - t0)
                rec = recorded[d]
                f_full = np.where(fold.known[d], Y[d], pred_full[at[int(d)]])
                f_cond = np.where(fold.known[d], Y[d], ans.predicted[0])
                out.append({"rep": fold.rep, "dataset": data.dataset_ids[d], "group": int(g), "n_known": len(kept),
                            "bin": bins[d], "pearson_fit": pearson(Y[d, rec], f_full[rec]),
                            "pearson_conditioned": pearson(Y[d, rec], f_cond[rec]), "ms": ms})
    return pd.DataFrame(out)


def conditioning_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per known-model bin and overall: mean Pearson fitted with the records and conditioned on them (means
    over datasets, then over repetitions), the gap, and the mean conditioning time."""
    out = []
    for b, g in [("all", rows), *rows.groupby("bin", sort=False)]:
        per = g.groupby("rep")[["pearson_fit", "pearson_conditioned"]].mean().mean()
        out.append({"bin": b, "datasets": int(len(g) / max(g["rep"].nunique(), 1)), "pearson_fit": per.iloc[0],
                    "pearson_conditioned": per.iloc[1], "gap": per.iloc[1] - per.iloc[0], "ms": g["ms"].mean()})
    return pd.DataFrame(out)
