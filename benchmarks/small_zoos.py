"""Results given on a small zoo: how much a few fine-tunes of a brand-new dataset help when the zoo holds only a
handful of datasets (the size of a first imported history).

Each draw takes ``n`` datasets with at least ``--min-records`` records from a reference zoo as the whole history
and one more as the target (brand-new: none of its records in the fit). The default engine is fitted and
calibrated on the ``n`` datasets; the target is answered with ``k`` of its recorded models' accuracies given as
results (``answer(..., given=)``: the conditioning ``recsys topk --new --known`` does, no refit), the ``k`` models
drawn at random once per draw and nested (the first 2 of the 4, ...). Score: Pearson correlation of the answer
with the truth over the target's recorded models that were not given. Every draw is seeded (``[draw, 99]``).

Writes ``small_zoos.md`` and ``small_zoos.csv`` (one row per zoo, size, draw and k) into ``--out``::

    RECSYS_DATA_DIR=../shared/data python benchmarks/small_zoos.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.engines import DEFAULT_ENGINE, make_engine
from recsys.engines.answer import answer, joint_model
from recsys.engines.base import quiet_fits
from recsys.engines.calibration import calibrate
from recsys.evaluation.metrics import pearson
from recsys.evaluation.protocols import as_zoo_data

ZOOS = ("parc-71", "transfergraph-image", "vtab-hf")


def play(data, n: int, draw: int, ks: list[int], min_records: int) -> list[dict]:
    """One draw: ``n`` datasets as the zoo, one more as the target given ``k`` results for each ``k``."""
    rng = np.random.default_rng([draw, 99])
    eligible = np.flatnonzero(data.known.sum(1) >= min_records)
    pick = rng.choice(eligible, n + 1, replace=False)
    t = int(pick[-1])
    Y = np.full(data.Y.shape, np.nan)
    Y[pick[:-1]] = data.Y[pick[:-1]]
    train = data.with_Y(Y)
    make = lambda: make_engine(DEFAULT_ENGINE, seed=0)  # noqa: E731
    with quiet_fits():
        engine = make().fit(train)
        cal = calibrate(make, train, seed=0)
    jm = joint_model(engine, cal, train.records.col_counts() == 0)
    order = rng.permutation(np.flatnonzero(data.known[t]))
    block, nan = train.block(np.array([t])), np.full((1, data.n_models), np.nan)
    out = []
    for k in ks:
        given = {int(j): float(data.Y[t, j]) for j in order[:k]}
        ans = answer(engine, cal, block, nan, uncertainty=False, given=[given or None], joint=jm)
        rest = order[k:]
        out.append({"datasets": n, "draw": draw, "target": data.dataset_ids[t], "k": k,
                    "pearson": pearson(data.Y[t, rest], ans.predicted[0][rest]), "shrink": engine.cov_shrink_})
    return out


def markdown(df: pd.DataFrame, command: str, wall: dict) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    ks = sorted(df["k"].unique())
    lines = ["# Results given on a small zoo", "",
             "A zoo of `n` datasets drawn from a reference zoo, one more as a brand-new target given `k` of its "
             "records as results (no refit); mean Pearson over the target's other recorded models, ± its "
             "standard error over the draws (see the script's docstring).", "",
             f"- Code: commit {commit}; {platform.platform()}, Python {platform.python_version()}",
             "- Wall time: " + ", ".join(f"{z} {w:.0f} s" for z, w in wall.items()), "",
             "| zoo | datasets | draws | " + " | ".join(f"k = {k}" for k in ks) + " | shrinkage (mean) |",
             "|---|---|---|" + "---|" * (len(ks) + 1)]
    for (zoo, n), g in df.groupby(["zoo", "datasets"], sort=False):
        cells = []
        for k in ks:
            v = g.loc[g["k"] == k, "pearson"].dropna()
            cells.append(f"{v.mean():.3f} ± {v.std(ddof=1) / np.sqrt(len(v)):.3f}" if len(v) > 1 else
                         f"{v.mean():.3f}" if len(v) else "–")
        lines.append(f"| {zoo} | {n} | {g['draw'].nunique()} | " + " | ".join(cells)
                     + f" | {g['shrink'].mean():.2f} |")
    lines += ["", "## Command", "", "```", command, "```", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--zoos", default=",".join(ZOOS))
    ap.add_argument("--datasets", default="3,5", help="zoo sizes, comma-separated")
    ap.add_argument("--draws", type=int, default=30)
    ap.add_argument("--k", default="0,2,4,8,16", help="results given, comma-separated")
    ap.add_argument("--min-records", type=int, default=20)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    ks = [int(v) for v in args.k.split(",")]
    rows, wall = [], {}
    for zoo in args.zoos.split(","):
        data, _ = as_zoo_data(zoo)
        t0 = time.perf_counter()
        for n in (int(v) for v in args.datasets.split(",")):
            for draw in range(args.draws):
                rows += [{"zoo": zoo, **r} for r in play(data, n, draw, ks, args.min_records)]
        wall[zoo] = time.perf_counter() - t0
        print(f"{zoo}: {wall[zoo]:.0f} s", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "small_zoos.csv", index=False, float_format="%.5g")
    command = "python benchmarks/small_zoos.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = markdown(df, command, wall)
    (args.out / "small_zoos.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
