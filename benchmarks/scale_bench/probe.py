"""The in-process measurements of a fitted model file, run inside a child (``scale.py --probe JSON``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd


def probe(args: dict) -> dict:
    """Load a model file; time topk and topk_new; hold-out Pearson. Runs inside a child process."""
    import recsys

    t0 = time.perf_counter()
    rec = recsys.load_model(args["model"])
    out = {"load_s": time.perf_counter() - t0}
    info = rec.info()
    out["timing"] = info.get("timing", {})
    rng = np.random.default_rng(args["seed"])
    ids = list(rec.dataset_ids)
    known = [ids[i] for i in rng.choice(len(ids), size=min(len(ids), args["repeats"] + 1), replace=False)]
    times = []
    for name in known:
        t = time.perf_counter()
        rec.topk(name, k=10)
        times.append(time.perf_counter() - t)
    out["topk_ms"] = 1000 * float(np.median(times[1:] if len(times) > 1 else times))  # the first warms caches
    new = json.loads(Path(args["new"]).read_text())[:args["repeats"] + 1]
    times = []
    for meta in new:
        t = time.perf_counter()
        rec.topk_new(meta, k=10)
        times.append(time.perf_counter() - t)
    out["topk_new_ms"] = 1000 * float(np.median(times[1:] if len(times) > 1 else times))
    out.update(plan_speed(rec, new[0], args["repeats"], rng))
    out.update(holdout_pearson(rec, Path(args["holdout"]), args["max_datasets"], rng))
    return out


def plan_speed(rec, meta: dict, repeats: int, rng: np.random.Generator, n_results: int = 20,
               budget: int = 5) -> dict:
    """Issue 18's figures, in-process: a brand-new dataset conditioned on ``n_results`` results (its joint
    distribution: the row's kriging re-solved, centres and conditional variances, no refit), and a plan of
    ``budget`` models over every model given that distribution; medians of ``repeats`` after one warm-up."""
    from recsys.engines.answer import answer
    from recsys.features.builder import new_dataset_frame

    if rec.calibration_ is None or rec.calibration_.joint is None:
        return {}
    block = rec.features_.new_datasets(new_dataset_frame(meta), rec.data_.model_ids)
    jm = rec._joint_model()
    pred = rec.engine_.predict(block)
    inp = jm.inputs(block)
    nan = np.full(pred.shape[1], np.nan)
    models = rng.choice(pred.shape[1], size=min(n_results, pred.shape[1] - budget), replace=False)
    given = {int(j): float(np.clip(pred[0, j] + rng.normal(0, 0.03), 0, 1)) for j in models}
    cond, plan = [], []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        post = jm.posterior(pred[0], nan, given, inp[0] if inp else None)
        cond.append(time.perf_counter() - t)
        t = time.perf_counter()
        post.plan(budget)
        plan.append(time.perf_counter() - t)
    t = time.perf_counter()
    answer(rec.engine_, rec.calibration_, block, nan[None, :], given=[given], joint=jm)
    return {"condition_ms": 1000 * float(np.median(cond[1:])), "plan_ms": 1000 * float(np.median(plan[1:])),
            "answer_given_ms": 1000 * (time.perf_counter() - t), "plan_results": len(given)}


def holdout_pearson(rec, holdout: Path, max_datasets: int, rng: np.random.Generator) -> dict:
    """Mean over datasets with >= 3 hidden records of Pearson(predicted, hidden accuracy).

    Datasets whose prediction or truth is constant on their hidden cells have no correlation:
    they are counted, not scored. At most ``max_datasets`` datasets (a seeded sample).
    """
    from recsys.evaluation.metrics import pearson

    hidden = pd.read_csv(holdout, dtype={"model": "category", "dataset": "category"})
    counts = hidden["dataset"].value_counts()
    eligible = np.asarray(counts.index[counts.to_numpy() >= 3].astype(str))
    chosen = eligible if len(eligible) <= max_datasets else rng.choice(eligible, size=max_datasets, replace=False)
    hidden = hidden[hidden["dataset"].isin(chosen)]
    rs, undefined = [], 0
    for lo in range(0, len(chosen), 256):
        batch = [str(d) for d in chosen[lo:lo + 256]]
        pred = rec.predict(batch, uncertainty=False)[["model", "dataset", "predicted"]]
        part = hidden[hidden["dataset"].isin(batch)].astype({"model": str, "dataset": str})
        both = part.merge(pred.astype({"model": str, "dataset": str}), on=["model", "dataset"], how="left")
        for _, g in both.groupby("dataset", sort=False):
            r = pearson(g["accuracy"].to_numpy(float), g["predicted"].to_numpy(float))  # NaN: constant
            if np.isfinite(r):
                rs.append(r)
            else:
                undefined += 1
    return {"pearson": float(np.mean(rs)) if rs else None, "pearson_datasets": len(rs),
            "pearson_undefined": undefined, "pearson_eligible": int(len(eligible))}

