"""The sequential protocol: pick a model, see its true accuracy, pick again (docs/protocols.md).

For every ``logo`` target (a dataset with at least
:data:`~recsys.evaluation.protocols.LOGO_MIN_RECORDS` records) the engines are
fitted without the target's records (its transferability scores stay known,
as in P2). A *policy* picks one model among those with a true record on the
target, the pick's true accuracy is revealed, and it picks again, ``steps``
times. ``regret@n`` is the best true accuracy minus the best revealed after
``n`` picks, in accuracy points; ``found@n`` is 1 when the best (or a model
tied with it) is among the picks.

Policies, in the same run:

- ``plan``: the default engine's joint distribution of the target, conditioned on the results
  revealed so far (no refit), each pick the first step of its plan
  (:meth:`~recsys.engines.joint.RowPosterior.plan`: the expected improvement over the best result so
  far), exactly what ``recsys plan --known ...`` answers;
- ``plan-refit`` (zoos whose targets are held out one at a time): the same, but the engine is refitted
  with the revealed records after each reveal (the fold's calibration kept): conditioning against a refit;
- ``static``: the default engine's ranking of the target without records, never updated;
- each other engine's ranking (``popularity``, ``additive``, ``logme:METRIC`` for each raw
  transferability score, on targets with scores), never updated;
- ``random``: the exact expectation of picking uniformly without replacement.

Beside the picks, ``plan``'s answers are scored as a user reads them: ``coverage@n`` is the share of the
target's recorded models not yet revealed whose true accuracy lies in the answer's interval (at the run's
level, 80% by default) after ``n`` results, n = 0 .. steps - 1 (``recsys topk --known ...``: after none, a
brand-new dataset's split-conformal intervals; after some, the joint distribution's marginals), and
``stay@n`` the probability it gives that the best result so far stays the best of the target's recorded
models (the revealed models' P(best); ``recsys plan --known ...`` says it), n = 1 .. steps - 1, against
``stayed@n``, whether it does: 1, or the revealed share of the models tied for the best (as P(best)'s Brier
score shares a tie).

Folds: a zoo with at most :data:`MAX_SINGLE` targets holds each out alone; above, the targets are
split into :data:`N_FOLDS` folds (seeded), each fit hiding a tenth of them, as the ``missing-edge``
groups do, so that a zoo of hundreds of targets costs ten fits.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..engines import DEFAULT_ENGINE, get_engine_class, make_engine
from ..engines.answer import answer, joint_model
from ..engines.base import quiet_fits
from ..errors import RecsysError
from ..features import ZooData
from ..features.data import Cells
from .protocols import (PROTOCOLS, Fold, FitCache, ProtocolResult, ProtocolSpec, _check_engines, _describe, _seeds,
                        LOGO_MIN_RECORDS, as_zoo_data, fold_zoo_data, logo_targets)

__all__ = ["STEPS", "MAX_SINGLE", "N_FOLDS", "SPEC", "sequential_folds", "random_expectation", "regrets",
           "evaluate_sequential", "sequential", "POLICIES_BASE"]

#: picks per target
STEPS = 5
#: zoos with at most this many targets hold each out alone (and play ``plan-refit``)
MAX_SINGLE = 30
#: folds of targets on larger zoos
N_FOLDS = 10
#: the engines whose rankings are the baseline policies (with ``logme:METRIC`` per raw score where the zoo has them)
POLICIES_BASE = ("popularity", "additive")

SPEC = PROTOCOLS["sequential"]


def sequential_folds(data: ZooData, seeds: Sequence[int], targets: np.ndarray | None = None) -> list[Fold]:
    """Per seed, the folds of the logo targets: one target each up to :data:`MAX_SINGLE`, else :data:`N_FOLDS`."""
    targets = logo_targets(data) if targets is None else np.asarray(targets, dtype=np.int64)
    recorded = data.known
    folds = []
    for rep, seed in enumerate(seeds):
        if len(targets) <= MAX_SINGLE:
            groups = [np.array([t]) for t in targets]
        else:
            rng = np.random.default_rng([int(seed), 18])
            groups = [np.sort(g) for g in np.array_split(rng.permutation(targets), N_FOLDS)]
        for i, g in enumerate(groups):
            known = recorded.copy()
            known[g] = False
            label = data.dataset_ids[g[0]] if len(g) == 1 else f"fold {i + 1}/{len(groups)}"
            folds.append(Fold(rep=rep, seed=int(seed), label=label, known=known, rows=g,
                              group=np.full(data.n_datasets, -1, dtype=np.int64)))
    return folds


def random_expectation(truth: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact expected regret@n (points) and found@n, n = 1..steps, of uniform picks without replacement."""
    v = np.sort(np.asarray(truth, dtype=float))
    N = len(v)
    best = v[-1]
    n_best = int((v >= best).sum())
    reg, found = [], []
    for n in range(1, steps + 1):
        n = min(n, N)
        # P(the largest of a random n-subset is the i-th smallest) = C(i - 1, n - 1) / C(N, n)
        w = np.array([math.comb(i - 1, n - 1) for i in range(1, N + 1)], float) / math.comb(N, n)
        reg.append(100.0 * (best - float(w @ v)))
        found.append(1.0 - math.comb(N - n_best, n) / math.comb(N, n))
    return np.array(reg), np.array(found)


def regrets(truth: np.ndarray, candidates: np.ndarray, picks: Sequence[int], steps: int
            ) -> tuple[list[float], list[float]]:
    """regret@n (points) and found@n, n = 1..steps, of ``picks`` (fewer picks than steps: the last value stays)."""
    best = float(truth[candidates].max())
    reg, found = [], []
    for n in range(1, steps + 1):
        got = max(float(truth[p]) for p in picks[:n]) if picks else -np.inf
        reg.append(100.0 * (best - got) if np.isfinite(got) else np.nan)
        found.append(float(got >= best))
    return reg, found


def _order(pred: np.ndarray, candidates: np.ndarray, steps: int) -> list[int]:
    cols = np.flatnonzero(candidates)
    return [int(j) for j in cols[np.lexsort((cols, -pred[cols]))][:steps]]


class _Sequential:
    """One :func:`evaluate_sequential` call: its inputs and what it has measured."""

    def __init__(self, data: ZooData, folds: Sequence[Fold], engines: list[str], steps: int, refit: bool,
                 cache: FitCache, level: float):
        self.data, self.folds, self.engines, self.steps, self.refit = data, folds, engines, steps, refit
        self.cache, self.level = cache, level
        self.Y, self.recorded = data.Y, data.known
        self.has_scores = any(np.isfinite(v).any() for v in data.scores.values())
        self.planner = DEFAULT_ENGINE if DEFAULT_ENGINE in engines else engines[0]
        self.rows: list[dict] = []
        self.timing: list[dict] = []
        self.errors: list[dict] = []
        self.t_start = time.perf_counter()

    def make(self, name: str, seed: int):
        if name.startswith("logme:"):
            return make_engine("logme", seed=seed, metric=name.split(":", 1)[1])
        return make_engine(name, seed=seed)

    def baselines(self) -> list[str]:
        out = [e for e in self.engines if e != self.planner and not e.startswith("logme")]
        if "logme" in self.engines and self.has_scores:
            out += [f"logme:{m}" for m in sorted(self.data.scores)]
        return out

    def fold(self, fold: Fold) -> None:
        train = fold_zoo_data(self.data, fold)
        seed = fold.seed
        unrecorded = ~fold.known.any(0)
        t0 = time.perf_counter()
        engine, fit_s = self.cache.fit(self.planner, seed, train, lambda: self.make(self.planner, seed))
        cal, cal_s = self.cache.calibrate(self.planner, seed, train, lambda: self.make(self.planner, seed))
        if cal is None or cal.joint is None:
            raise RecsysError(f"engine {self.planner!r} could not be calibrated on {fold.label}: no plan to play")
        jm = joint_model(engine, cal, unrecorded)
        block = train.block(fold.rows)
        nan = np.full((len(fold.rows), self.data.n_models), np.nan)
        picks: dict[str, dict[int, list[int]]] = {"static": {}, "plan": {}}
        loop: dict[int, dict[str, float]] = {}  # target -> plan's coverage@n, stay@n, stayed@n
        static = answer(engine, None, block, nan, uncertainty=False).predicted
        for i, t in enumerate(fold.rows):
            cand = self.recorded[t]
            picks["static"][t] = _order(static[i], cand, self.steps)
            picks["plan"][t], loop[t] = self._plan(engine, cal, jm, train, int(t), cand, unrecorded)
        for name in self.baselines():
            cls = get_engine_class(name.split(":")[0])
            if getattr(cls, "requires_scores", False) and not self.has_scores:
                continue
            try:
                e, _ = self.cache.fit(name, seed, train, lambda: self.make(name, seed))
                pred = e.predict(block)
            except Exception as exc:  # a baseline that fails is reported, the others still play
                self.errors.append({"engine": name, "rep": fold.rep, "fold": fold.label, "stage": "fit",
                                    "error": _describe(exc)})
                continue
            picks[name] = {}
            for i, t in enumerate(fold.rows):
                cand = self.recorded[t]
                if name.startswith("logme:") and not np.isfinite(block.scores[name[6:]][i][cand]).any():
                    continue  # no score on this target
                picks[name][t] = _order(pred[i], cand, self.steps)
        t1 = time.perf_counter()
        if self.refit and len(fold.rows) == 1:
            picks["plan-refit"] = self._plan_refit(engine, cal, train, fold, unrecorded)
        self.timing.append({"engine": self.planner, "rep": fold.rep, "fold": fold.label, "fit_s": fit_s,
                            "predict_s": t1 - t0 - fit_s - cal_s, "calibrate_s": cal_s,
                            "refit_s": time.perf_counter() - t1})
        for policy, per in picks.items():
            for t, pk in per.items():
                reg, found = regrets(self.Y[t], self.recorded[t], pk, self.steps)
                self._row(policy, fold, int(t), reg, found, pk, loop[t] if policy == "plan" else None)
        for t in fold.rows:
            reg, found = random_expectation(self.Y[t, self.recorded[t]], self.steps)
            self._row("random", fold, int(t), list(reg), list(found), [])

    def _row(self, policy: str, fold: Fold, t: int, reg, found, picks, loop: dict | None = None) -> None:
        row = {"engine": policy, "rep": fold.rep, "seed": fold.seed, "fold": fold.label,
               "dataset": self.data.dataset_ids[t], "group": -1, "n_recorded": int(self.recorded[t].sum()),
               "n_known": 0, "bin": "cold"}
        row.update({f"regret@{n + 1}": reg[n] for n in range(self.steps)})
        row.update({f"found@{n + 1}": found[n] for n in range(self.steps)})
        row.update(loop or {})
        row["picks"] = " ".join(self.data.model_ids[j] for j in picks)
        self.rows.append(row)

    def _plan(self, engine, cal, jm, train: ZooData, t: int, cand: np.ndarray, unrecorded
              ) -> tuple[list[int], dict[str, float]]:
        """The picks of ``plan`` (the joint distribution conditioned on each revealed result, no refit), and the
        columns of its answer before each pick n + 1: ``coverage@n``, the coverage of its intervals on the recorded
        models not yet revealed, and once there are results ``stay@n``, the probability it gives that the best of
        them stays the best of ``cand``, and ``stayed@n``, the share of the models tied for the best of ``cand``
        among them (0 when none is). Steps not played (every candidate revealed): NaN."""
        given: dict[int, float] = {}
        block = train.block(np.array([t]))
        nan = np.full((1, self.data.n_models), np.nan)
        out = []
        loop = {**{f"coverage@{n}": math.nan for n in range(self.steps)},
                **{f"{c}@{n}": math.nan for c in ("stay", "stayed") for n in range(1, self.steps)}}
        tied = cand & (self.Y[t] >= np.max(self.Y[t, cand]))
        for n in range(self.steps):
            ans = answer(engine, cal, block, nan, level=self.level, unrecorded=unrecorded, given=[given],
                         joint=jm, posteriors=True)
            free = cand & np.isnan(ans.known[0])
            if not free.any():
                break
            y = self.Y[t, free]
            loop[f"coverage@{n}"] = float(np.mean((ans.lower[0, free] <= y) & (y <= ans.upper[0, free])))
            post = ans.posteriors[0]
            if n:
                loop[f"stay@{n}"] = post.p_stays(post.p_best(cand))
                loop[f"stayed@{n}"] = float(tied[post.known].sum() / tied.sum())
            j = post.plan(1, free, summary=False).models[0]
            out.append(j)
            given[j] = float(self.Y[t, j])
        return out, loop

    def _plan_refit(self, engine, cal, train: ZooData, fold: Fold, unrecorded) -> dict[int, list[int]]:
        """The picks of ``plan`` with a full refit after each reveal (all of the fold's reveals in one refit)."""
        picks: dict[int, list[int]] = {int(t): [] for t in fold.rows}
        cur, eng = train, engine
        added: list[tuple[int, int, float]] = []
        for n in range(self.steps):
            if n:
                rec = train.records
                d, m, y = (np.array([a[k] for a in added]) for k in range(3))
                cur = self.data.with_records(Cells(np.r_[rec.d, d], np.r_[rec.m, m], np.r_[rec.y, y], rec.shape))
                with quiet_fits():
                    eng = self.make(self.planner, fold.seed).fit(cur)
            jm = joint_model(eng, cal, cur.records.col_counts() == 0)
            for t in fold.rows:
                cand = self.recorded[t]
                stored = cur.records.dense(np.array([t]))
                ans = answer(eng, cal, cur.block(np.array([t])), stored, unrecorded=cur.records.col_counts() == 0,
                             uncertainty=False, joint=jm, posteriors=True)
                free = cand & np.isnan(stored[0])
                if not free.any():
                    continue
                j = ans.posteriors[0].plan(1, free, summary=False).models[0]
                picks[int(t)].append(j)
                added.append((int(t), j, float(self.Y[t, j])))
        return picks

    def result(self, zoo_name: str, seeds: list) -> ProtocolResult:
        per = pd.DataFrame(self.rows)
        status = {p: "ok" for p in dict.fromkeys(per["engine"])} if len(per) else {}
        return ProtocolResult(
            spec=spec_for(self.steps), zoo=zoo_name, engines=list(status), seeds=seeds, per_dataset=per,
            timing=pd.DataFrame(self.timing, columns=["engine", "rep", "fold", "fit_s", "predict_s", "calibrate_s",
                                                      "refit_s"]),
            status=status, errors=pd.DataFrame(self.errors, columns=["engine", "rep", "fold", "stage", "error"]),
            truth=self.Y.copy(), completed={}, known_first=np.zeros(self.Y.shape, bool),
            group_first=np.full(self.Y.shape[0], -1, dtype=np.int64), model_ids=tuple(self.data.model_ids),
            dataset_ids=tuple(self.data.dataset_ids), level=self.level, has_scores=self.has_scores,
            wall_s=time.perf_counter() - self.t_start)


def spec_for(steps: int) -> ProtocolSpec:
    """The sequential protocol's spec for ``steps`` picks."""
    if steps == SPEC.k:
        return SPEC
    return ProtocolSpec(SPEC.name, SPEC.title, steps, SPEC.default_zoo, SPEC.default_repeats,
                        tuple(f"regret@{n}" for n in (1, 3, 5) if n <= steps), SPEC.kind)


def evaluate_sequential(data: ZooData, folds: Sequence[Fold], engines: Sequence[str], *, zoo_name: str = "zoo",
                        steps: int = STEPS, refit: bool = True, cache: FitCache | None = None, level: float = 0.8,
                        progress: bool = False) -> ProtocolResult:
    """Play every policy on every target of ``folds`` (see the module docstring)."""
    from tqdm import tqdm

    if steps < 1:
        raise RecsysError(f"steps must be at least 1, got {steps}")
    engines = _check_engines(engines)
    run = _Sequential(data, folds, engines, steps, refit, cache or FitCache(()), level)
    with quiet_fits():
        for fold in tqdm(folds, desc="sequential", disable=not progress, leave=False, dynamic_ncols=True):
            run.fold(fold)
    return run.result(zoo_name, list(dict.fromkeys(f.seed for f in folds)))


def sequential(zoo, engines: Sequence[str] | None = None, repeats: int | None = None,
               seeds: Sequence[int] | None = None, *, steps: int = STEPS, targets: Sequence[int | str] | None = None,
               refit: bool = True, text_encoder=None, cache: FitCache | None = None, level: float = 0.8,
               progress: bool = False) -> ProtocolResult:
    """The sequential protocol on ``zoo`` (default engines: the default one and :data:`POLICIES_BASE`, plus
    ``logme`` where the zoo has scores)."""
    data, name = as_zoo_data(zoo, text_encoder)
    if engines is None:
        has_scores = any(np.isfinite(v).any() for v in data.scores.values())
        engines = [DEFAULT_ENGINE, *POLICIES_BASE, *(["logme"] if has_scores else [])]
    idx = None if targets is None else np.array(
        [int(t) if isinstance(t, (int, np.integer)) else data.dataset_ids.index(t) for t in targets], dtype=np.int64)
    folds = sequential_folds(data, _seeds(repeats, seeds, 1), idx)
    if not folds:
        raise RecsysError(f"name the targets to play (--targets A,B; targets= in Python): zoo {name!r} has no "
                          f"dataset with at least {LOGO_MIN_RECORDS} records, the default targets")
    return evaluate_sequential(data, folds, engines, zoo_name=name, steps=steps, refit=refit, cache=cache,
                               level=level, progress=progress)


# -- summaries and the report ---------------------------------------------------------------------------------
#: the policies a plan is held against (``static`` and ``plan-refit`` are reported beside, not as baselines)
BASELINE_POLICIES = ("popularity", "additive", "logme:LOG_ME", "logme:REG_H_SCORE", "random")


#: the per-target columns averaged by the summaries
_MEASURES = ("regret@", "found@", "coverage@", "stay@", "stayed@")


def policy_means(result: ProtocolResult) -> pd.DataFrame:
    """Per policy: targets played and the mean regret@n, found@n (and ``plan``'s coverage@n, stay@n, stayed@n)
    over them (targets averaged over repetitions)."""
    per = _per_target(result)
    cols = [c for c in per.columns if c.startswith(_MEASURES)]
    out = per.groupby("engine", sort=False)[cols].mean()
    out.insert(0, "targets", per.groupby("engine", sort=False).size())
    return out


def _per_target(result: ProtocolResult) -> pd.DataFrame:
    df = result.per_dataset
    cols = [c for c in df.columns if c.startswith(_MEASURES)]
    return df.groupby(["engine", "dataset"], sort=False)[cols].mean().reset_index()


def paired(result: ProtocolResult, policy: str, other: str, n: int) -> dict:
    """``policy`` against ``other`` at regret@n over the targets both played: wins-ties-losses (lower regret
    wins), the two-sided sign test, and both means on those targets."""
    from .suite import sign_test

    per = _per_target(result)
    a = per[per["engine"] == policy].set_index("dataset")[f"regret@{n}"]
    b = per[per["engine"] == other].set_index("dataset")[f"regret@{n}"]
    both = a.index.intersection(b.index)
    d = (b[both] - a[both]).to_numpy()
    wins, losses = int((d > 1e-9).sum()), int((d < -1e-9).sum())
    p = sign_test(wins, losses)
    return {"policy": policy, "other": other, "n": n, "targets": len(both), "mean": float(a[both].mean()),
            "other_mean": float(b[both].mean()), "wins": wins, "ties": len(both) - wins - losses,
            "losses": losses, "p": p, "room": int((b[both] > 1e-9).sum()),  # (``other`` at 0: no win possible)
            "verdict": "win" if p < 0.05 and wins > losses else "loss" if p < 0.05 and losses > wins else "tie"}


def sequential_markdown(result: ProtocolResult, *, heading: str = "##", docs: str | None = None) -> str:
    """The sequential protocol's report: mean regret@n and found@n per policy, and ``plan``'s sign tests."""
    steps = result.spec.k
    means = policy_means(result)
    n_targets = result.per_dataset["dataset"].nunique() if len(result.per_dataset) else 0
    n_folds = result.per_dataset["fold"].nunique() if len(result.per_dataset) else 0
    link = f"[docs/protocols.md]({docs}#sequential-pick-see-the-result-pick-again)" if docs else "`docs/protocols.md`"
    lines = [f"{heading} {result.spec.title}", "",
             f"Zoo `{result.zoo}`: {n_targets} target datasets in {n_folds} fold(s), {steps} picks each; "
             f"wall time {result.wall_s:.1f} s. regret@n: the best true accuracy minus the best revealed after n "
             f"picks, in accuracy points (0 is best); found@n: the best is among the picks. The protocol and "
             f"the policies: {link}.", ""]
    shown = [n for n in (1, 2, 3, 4, 5) if n <= steps] or [steps]
    found = list(dict.fromkeys(n for n in (1, 3, steps) if n <= steps))  # (--steps 1 or 3: each column once)
    header = ["policy", "targets", *[f"regret@{n}" for n in shown], *[f"found@{n}" for n in found]]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for policy, r in means.iterrows():
        name = f"**{policy}**" if policy == "plan" else policy
        cells = [name, str(int(r["targets"])), *[f"{r[f'regret@{n}']:.2f}" for n in shown],
                 *[f"{r[f'found@{n}']:.2f}" for n in found]]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    cover = [c for c in means.columns if c.startswith("coverage@")]
    if "plan" in means.index and cover:
        level = f"{round(100 * result.level):d}%"
        after = " / ".join(c.split("@")[1] for c in cover)
        values = " / ".join(f"{means.loc['plan', c]:.2f}" for c in cover)
        lines += [f"`plan`'s answers along the way: coverage of their {level} intervals on the recorded models not "
                  f"yet revealed, after {after} results: {values}.", ""]
    stay = [c for c in means.columns if c.startswith("stay@")]
    if "plan" in means.index and stay:
        after = " / ".join(c.split("@")[1] for c in stay)
        values = " / ".join(f"{means.loc['plan', c]:.2f} vs {means.loc['plan', 'stayed' + c[4:]]:.2f}" for c in stay)
        lines += [f"The probability they give that the best result so far stays the best, after {after} results, "
                  f"against how often it did (stayed@n, a tie shared): {values}.", ""]
    others = [p for p in means.index if p != "plan"]
    if "plan" in means.index and others:
        ns = [n for n in (1, 3, 5) if n <= steps]
        lines += ["`plan` against each policy: wins-ties-losses of `plan` over the targets both played (lower "
                  "regret wins), two-sided sign test, and both means on those targets:", "",
                  "| policy | " + " | ".join(f"n = {n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
        for o in others:
            cells = []
            for n in ns:
                t = paired(result, "plan", o, n)
                mark = {"win": " **win**", "loss": " **LOSS**", "tie": ""}[t["verdict"]]
                cells.append(f"{t['mean']:.2f} vs {t['other_mean']:.2f}; {t['wins']}-{t['ties']}-{t['losses']} "
                             f"p={t['p']:.3f}{mark}")
            lines.append(f"| {o} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
