"""The loop on zoos of fine-tune families: does the plan leave a family that fails on the new dataset?

Many real zoos hold families of fine-tunes of one checkpoint (issue 18's NLP zoo: on one target, popularity's five
picks were all DeBERTa-v3 fine-tunes, 35 points below a T5 fine-tune). A family errs together on every dataset; which
family is best changes from dataset to dataset. None of the four reference zoos is built that way, so this script
generates such zoos, seeded, and plays the sequential protocol on them (:mod:`recsys.evaluation.sequential`: each
dataset in turn the brand-new target, one pick at a time, each pick's accuracy revealed before the next).

Each zoo: ``--datasets`` datasets x ``--families`` families of ``--per-family`` models. Accuracy = 0.7 + the
dataset's level (sd 0.05) + the family's effect on the dataset (sd 0.12) + the family's quality everywhere (sd 0.05)
+ the model's own (sd 0.02) + noise (sd 0.015), clipped to [0.01, 0.99]. Model features: the family one-hot, its
parameters (log) and a reported accuracy (the family's quality plus noise); dataset features: two random numbers
(metadata that say nothing, as a new user's often do). A second table plays ``--large-seeds`` zoos of
``--large-shape`` (default 6 datasets x 8 families of 160: 1,280 models, above the kriging's dense cap, the shape
of issue 18's zoo of 1,284 NLP checkpoints and 6 targets), where the joint's errors come from
``stages.kriging.shrunk_factors``.

These zoos were made to study the joint distribution's correlations (``stages.kriging.entrywise_shrunk``) and the
narrowing of its "row" scale by the results given (``joint.JointModel.posterior``): they are development zoos, not a
hold-out.

    python benchmarks/families.py --out benchmarks/results          # families.md, families.csv
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

from recsys.engines.base import quiet_fits
from recsys.engines.stages.kriging import DENSE_MAX_MODELS, PAIRWISE_MAX_MODELS
from recsys.evaluation.sequential import policy_means, sequential
from recsys.features.data import ZooData

POLICIES = ("plan", "static", "popularity", "additive", "random")


def family_zoo(seed: int, n_datasets: int = 8, n_families: int = 8, per_family: int = 30) -> ZooData:
    """A zoo of fine-tune families (module docstring), every cell recorded."""
    rng = np.random.default_rng([seed, 2026])
    family = np.repeat(np.arange(n_families), per_family)
    quality = rng.normal(0, 0.05, n_families)
    Y = (0.7 + rng.normal(0, 0.05, (n_datasets, 1)) + rng.normal(0, 0.12, (n_datasets, n_families))[:, family]
         + quality[family] + rng.normal(0, 0.02, len(family)) + rng.normal(0, 0.015, (n_datasets, len(family))))
    models = np.column_stack([np.eye(n_families)[family], rng.normal(18 + 0.3 * family, 0.2),
                              0.8 + quality[family] + rng.normal(0, 0.02, len(family))])
    return ZooData(Y=np.clip(Y, 0.01, 0.99), model_features=models,
                   dataset_features=rng.normal(size=(n_datasets, 2)),
                   model_ids=[f"org{j % 7}/family{f}-ft{j}" for j, f in enumerate(family)],
                   dataset_ids=[f"task{d}" for d in range(n_datasets)])


def _play(seeds: int, shape: tuple[int, int, int], t0: float) -> list[dict]:
    """Mean regret@1/3/5 of each policy on ``seeds`` generated zoos of ``shape`` (datasets, families, per family)."""
    rows = []
    for seed in range(1, seeds + 1):
        data = family_zoo(seed, *shape)
        with quiet_fits():
            res = sequential(data, engines=["hybrid", "popularity", "additive"], refit=False)
        means = policy_means(res)
        for policy in POLICIES:
            rows.append({"shape": "x".join(map(str, shape)), "zoo": seed, "policy": policy,
                         **{f"regret@{n}": float(means.loc[policy, f"regret@{n}"]) for n in (1, 3, 5)}})
        print(f"{data.n_models} models, zoo {seed} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return rows


def _table(df: pd.DataFrame) -> list[str]:
    seeds = sorted(df["zoo"].unique())
    lines = ["| policy | " + " | ".join(f"zoo {s}" for s in seeds) + " | mean |", "|---|" + "---|" * (len(seeds) + 1)]
    for policy in POLICIES:
        part = df[df.policy == policy].set_index("zoo")
        cells = [" / ".join(f"{part.loc[s, f'regret@{n}']:.2f}" for n in (1, 3, 5)) for s in part.index]
        mean = " / ".join(f"{part[f'regret@{n}'].mean():.2f}" for n in (1, 3, 5))
        lines.append(f"| {policy} | " + " | ".join(cells) + f" | {mean} |")
    return lines


def _shape(raw: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in raw.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"give DATASETS,FAMILIES,PER_FAMILY as three positive integers: got {raw!r}")
    return shape


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=5, help="zoos generated (seeds 1..N)")
    ap.add_argument("--datasets", type=int, default=8)
    ap.add_argument("--families", type=int, default=8)
    ap.add_argument("--per-family", type=int, default=30)
    ap.add_argument("--large-seeds", type=int, default=3,
                    help="zoos generated of --large-shape (0: none), above the kriging's dense cap of models")
    ap.add_argument("--large-shape", type=_shape, default=(6, 8, 160), metavar="DATASETS,FAMILIES,PER_FAMILY")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    shape = (args.datasets, args.families, args.per_family)
    small = pd.DataFrame(_play(args.seeds, shape, t0))
    large = pd.DataFrame(_play(args.large_seeds, args.large_shape, t0)) if args.large_seeds > 0 else None
    df = pd.concat([small, large]) if large is not None else small
    df.to_csv(args.out / "families.csv", index=False, float_format="%.4f")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = ["# The loop on zoos of fine-tune families", "",
             __doc__.split("\n\n")[1].replace("\n", " "), "",
             f"- Zoos: {args.seeds} generated, {args.datasets} datasets x {args.families} families of "
             f"{args.per_family} models each; every dataset a target once; 5 picks each.",
             f"- Code: commit {commit}; {platform.platform()}, Python {platform.python_version()}; "
             f"wall time {time.perf_counter() - t0:.0f} s", "",
             "Mean regret after 1 / 3 / 5 fine-tunes, in accuracy points (lower is better):", "", *_table(small)]
    if large is not None:
        d, f, k = args.large_shape
        lines += ["", f"## Above the kriging's dense cap: {d} datasets x {f} families of {k} models", "",
                  f"{args.large_seeds} zoos of {f * k:,} models (the kriging's covariance is low rank above "
                  f"{DENSE_MAX_MODELS:,} models; the joint distribution's errors are still shrunk pair by pair up to "
                  f"{PAIRWISE_MAX_MODELS:,}), a few datasets, as in issue 18's zoo of 1,284 NLP checkpoints "
                  f"and 6 targets. Mean regret after 1 / 3 / 5 fine-tunes:", "", *_table(large)]
    command = "python benchmarks/families.py --out benchmarks/results"
    lines += ["", "## Command", "", "```", command, "```", ""]
    (args.out / "families.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
