"""How sure is each prediction: split-conformal intervals and P(best model).

:func:`calibrate` hides part of the known cells (all cells of some datasets, to
learn how wrong cold-start predictions are, and a share of the cells of the
others), fits a fresh engine on the rest and keeps the residuals on the hidden
cells. The residuals are pooled by *stratum*: how much of a dataset's row was
known to the engine (none, a third or less, two thirds or less, more).

- An interval at level ``a`` is ``prediction ± q``, ``q`` the split-conformal
  quantile (the ``ceil((n + 1) a)``-th smallest absolute residual) of the
  dataset's stratum (Vovk et al. 2005; Mondrian conformal prediction). Under
  exchangeability of datasets it covers the truth with probability >= ``a``.
- ``p_best`` is the probability that a model is the best of the zoo on the
  dataset: recorded accuracies are taken as they are, unknown ones are
  perturbed by residuals resampled from the stratum after removing each
  dataset's shared offset (a common shift does not change which model wins),
  and the share of draws each model wins is reported.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from ..errors import RecsysError
from ..features.data import Cells, TrainData
from .base import Engine

__all__ = ["Calibration", "calibrate", "stratum_of", "STRATA"]

STRATA = ("cold", "few", "some", "most")
_MIN_POOL = 30


def stratum_of(n_known: np.ndarray, n_models: int) -> np.ndarray:
    """Stratum index (into :data:`STRATA`) of datasets with ``n_known`` recorded models."""
    frac = np.asarray(n_known, dtype=float) / max(n_models, 1)
    return np.select([frac <= 0, frac <= 1 / 3, frac <= 2 / 3], [0, 1, 2], 3)


@dataclass
class Calibration:
    """Residual pools per stratum (absolute, and offset-free for p_best).

    Attributes
    ----------
    abs_residuals : dict of str to ndarray
        |truth - prediction| on held-out cells, sorted, per stratum name.
    rel_residuals : dict of str to ndarray
        Residuals minus their dataset's mean residual (rescaled), per stratum.
    """

    abs_residuals: dict = field(default_factory=dict)
    rel_residuals: dict = field(default_factory=dict)
    #: factor on the resampled residuals of ``p_best``, fitted by Brier score on held-out datasets
    noise_scale: float = 1.0

    def _pool(self, table: Mapping[str, np.ndarray], stratum: int) -> np.ndarray:
        own = table.get(STRATA[stratum])
        if own is not None and len(own) >= _MIN_POOL:
            return own
        # Too few residuals of its own: borrow the neighbouring strata, then everything.
        near = [table.get(STRATA[s]) for s in (stratum - 1, stratum, stratum + 1) if 0 <= s < len(STRATA)]
        near = np.concatenate([p for p in near if p is not None and len(p)]) if any(p is not None and len(p) for p in near) else np.zeros(0)
        if len(near) >= _MIN_POOL:
            return np.sort(near)
        pooled = [p for p in table.values() if len(p)]
        return np.sort(np.concatenate(pooled)) if pooled else np.zeros(0)

    def quantile(self, stratum: int, level: float) -> float:
        """Split-conformal half-width for ``level`` in a stratum."""
        if not 0 < level < 1:
            raise RecsysError(f"interval level must be between 0 and 1 (e.g. 0.8), got {level}")
        pool = self._pool(self.abs_residuals, stratum)
        if len(pool) == 0:
            return float("inf")
        rank = math.ceil((len(pool) + 1) * level)
        return float(pool[min(rank, len(pool)) - 1])

    def interval(self, pred: np.ndarray, n_known: np.ndarray, level: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds, same shape as ``pred`` (n_datasets, n_models), clipped to [0, 1]."""
        pred = np.asarray(pred, dtype=float)
        strata = stratum_of(n_known, pred.shape[1])
        half = np.array([self.quantile(int(s), level) for s in strata])[:, None]
        return np.clip(pred - half, 0.0, 1.0), np.clip(pred + half, 0.0, 1.0)

    def p_best(self, pred: np.ndarray, known: np.ndarray | None = None, n_known: np.ndarray | None = None,
               *, n_draws: int = 2000, seed: int = 0, scale: float | None = None,
               keys: np.ndarray | None = None, among: np.ndarray | None = None,
               unrecorded: np.ndarray | None = None) -> np.ndarray:
        """Probability that each model is the best on each dataset.

        Parameters
        ----------
        pred : ndarray, shape (n_datasets, n_models)
            Predicted accuracies.
        known : ndarray, same shape, optional
            Recorded accuracies (NaN where unknown); recorded values are used as they are.
        n_known : ndarray, shape (n_datasets,), optional
            Recorded models per dataset (default: counted from ``known``).
        scale : float, optional
            Factor on the resampled residuals (default: the fitted ``noise_scale``).
        keys : ndarray of int, shape (n_datasets,), optional
            A stable key per dataset (e.g. a hash of its name) seeding its draws,
            so a dataset's P(best) is the same whatever else is asked with it.
            Default: the row number.
        among : ndarray of bool, same shape as ``pred``, optional
            Compete only among these models (the others get 0): the
            probability of being the best of a subset, from the same draws.
        unrecorded : ndarray of bool, shape (n_models,), optional
            Models without any record in the zoo. Their errors share nothing with
            the recorded models' (no common offset cancels them), so they are drawn
            from the stratum's absolute residuals with a random sign, unscaled: as
            uncertain as their intervals say.

        Returns
        -------
        ndarray, same shape as ``pred``; rows sum to 1.

        Notes
        -----
        Only the models that can win are drawn: a model whose highest possible
        value (record, or prediction plus the largest residual) is below another
        model's lowest possible value has probability exactly 0. On a zoo of
        thousands of models the few that can win are drawn, not all.
        """
        factor = self.noise_scale if scale is None else scale
        pred = np.asarray(pred, dtype=float)
        n, m = pred.shape
        if known is None:
            known = np.full_like(pred, np.nan)
        is_known = ~np.isnan(known)
        if n_known is None:
            n_known = is_known.sum(1)
        base = np.where(is_known, known, pred)
        strata = stratum_of(n_known, m)
        keys = np.arange(n) if keys is None else np.asarray(keys, dtype=np.int64)
        out = np.zeros((n, m))
        free = np.zeros(m, dtype=bool) if unrecorded is None else np.asarray(unrecorded, dtype=bool)
        work = np.empty(n_draws * m, dtype=np.float32)
        pools: dict[int, tuple] = {}
        for row in range(n):
            stratum = int(strata[row])
            if stratum not in pools:
                pools[stratum] = self._draw_pools(stratum)
            pool, wide, pool_min, pool_max, wide_max = pools[stratum]
            unknown = ~is_known[row]
            indep = unknown & free
            shared = unknown & ~free
            b = base[row]
            lo = np.where(shared, b + factor * pool_min, np.where(indep, b - wide_max, b))
            hi = np.where(shared, b + factor * pool_max, np.where(indep, b + wide_max, b))
            comp = np.ones(m, dtype=bool) if among is None else np.asarray(among[row], dtype=bool)
            if not comp.any():
                continue
            cand = np.flatnonzero(comp & (hi >= lo[comp].max()))
            out[row, cand] = _win_shares(b[cand], shared[cand], indep[cand], pool, wide, factor, n_draws,
                                         np.random.default_rng([seed, int(keys[row]) & 0x7FFFFFFF]), work)
        return out

    def _draw_pools(self, stratum: int) -> tuple:
        """The stratum's pools to draw from (:func:`_quantile_pool`) and their bounds, built once per object."""
        cache = self.__dict__.setdefault("_pools_cache", {})
        key = (stratum, *map(id, self.rel_residuals.values()), *map(id, self.abs_residuals.values()))
        if key not in cache:
            pool = self._pool(self.rel_residuals, stratum)
            wide = self._pool(self.abs_residuals, stratum)
            pool = pool if len(pool) else np.zeros(1)
            wide = wide if len(wide) else np.zeros(1)
            cache[key] = (_quantile_pool(pool), _quantile_pool(np.r_[wide, -wide]),  # random sign built in
                              float(pool.min()), float(pool.max()), float(wide.max()))
        return cache[key]

    def coverage_table(self) -> dict[str, int]:
        """Residuals available per stratum (for reports)."""
        return {k: int(len(v)) for k, v in self.abs_residuals.items()}

    # -- persistence --------------------------------------------------------
    def to_state(self) -> dict[str, np.ndarray]:
        arrays = {}
        for name in STRATA:
            if name in self.abs_residuals:
                arrays[f"cal_abs_{name}"] = self.abs_residuals[name]
                arrays[f"cal_rel_{name}"] = self.rel_residuals[name]
        if arrays:
            arrays["cal_noise_scale"] = np.array(self.noise_scale)
        return arrays

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray]) -> "Calibration | None":
        cal = cls()
        for name in STRATA:
            if f"cal_abs_{name}" in arrays:
                cal.abs_residuals[name] = np.asarray(arrays[f"cal_abs_{name}"], dtype=float)
                cal.rel_residuals[name] = np.asarray(arrays[f"cal_rel_{name}"], dtype=float)
        if "cal_noise_scale" in arrays:
            cal.noise_scale = float(arrays["cal_noise_scale"])
        return cal if cal.abs_residuals else None


#: size of the pools P(best) draws from: a power of two, so uniform 16-bit integers index them
_QPOOL = 1 << 16


def _quantile_pool(values: np.ndarray) -> np.ndarray:
    """``values``' empirical distribution as :data:`_QPOOL` float32 quantiles (each value ~equally often).

    Drawing uniformly from it is drawing from ``values`` (up to 1/65,536 in the weights), at the
    cost of 16-bit random integers, the cheapest numpy generates.
    """
    v = np.sort(np.asarray(values, dtype=float))
    return v[((np.arange(_QPOOL) + 0.5) * len(v) / _QPOOL).astype(np.int64)].astype(np.float32)


def _win_shares(b: np.ndarray, shared: np.ndarray, indep: np.ndarray, pool: np.ndarray, wide: np.ndarray,
                factor: float, n_draws: int, rng: np.random.Generator, work: np.ndarray | None = None) -> np.ndarray:
    """Share of ``n_draws`` draws each candidate wins (ties share the win); ``b`` are their base values.

    ``shared`` candidates get ``factor`` times a residual drawn from ``pool``; ``indep`` ones a
    residual drawn from ``wide`` (symmetric: the random sign is in the pool); the others (recorded)
    stay at ``b``. Both pools are :func:`_quantile_pool` s. Only the perturbed candidates are drawn
    (the draws dominate the cost), and the recorded ones compete through their best value.
    """
    n_sh, n_ind = int(shared.sum()), int(indep.sum())
    moving = np.concatenate([np.flatnonzero(shared), np.flatnonzero(indep)])  # shared first: column blocks
    fixed = np.flatnonzero(~(shared | indep))
    out = np.zeros(len(b))
    if len(moving) == 0:
        top = b >= b.max()
        return top / top.sum()
    # One float32 buffer reused across rows: fresh (n_draws x candidates) arrays per row cost more
    # in page faults than the arithmetic.
    if work is None or work.size < n_draws * len(moving):
        work = np.empty(n_draws * len(moving), dtype=np.float32)
    draws = work[: n_draws * len(moving)].reshape(n_draws, len(moving))
    if n_sh:
        np.multiply(pool[rng.integers(0, _QPOOL, size=(n_draws, n_sh), dtype=np.uint16)], np.float32(factor),
                    out=draws[:, :n_sh])
    if n_ind:
        np.take(wide, rng.integers(0, _QPOOL, size=(n_draws, n_ind), dtype=np.uint16), out=draws[:, n_sh:])
    draws += b[moving].astype(np.float32)
    best_fixed = np.float32(b[fixed].max()) if len(fixed) else np.float32(-np.inf)
    row_max = np.maximum(draws.max(axis=1), best_fixed)
    top = draws >= row_max[:, None]
    fixed_top = (b[fixed].astype(np.float32) >= best_fixed) if len(fixed) else np.zeros(0, dtype=bool)
    fixed_wins = best_fixed >= row_max  # the recorded best reaches the top of this draw
    share = 1.0 / (top.sum(axis=1) + fixed_wins * int(fixed_top.sum()))
    out[moving] = (share @ top) / n_draws
    if len(fixed):
        out[fixed[fixed_top]] = float((fixed_wins * share).mean())
    return out


def holdout_mask(cells: Cells, rng: np.random.Generator, *, cold_fraction: float, cell_fraction: float,
                 cold: np.ndarray | None = None) -> np.ndarray:
    """Cells to hide (bool per cell): every cell of some datasets (``cold``, else a random share), and a share of
    the others' cells.

    Each partly hidden dataset keeps at least one record.
    """
    hide = np.zeros(len(cells), dtype=bool)
    counts = cells.row_counts()
    rows = np.flatnonzero(counts > 0)
    if len(rows) < 2:
        return hide
    if cold is None:
        n_cold = max(1, int(round(cold_fraction * len(rows))))
        cold = rng.choice(rows, size=min(n_cold, len(rows) - 1), replace=False)
    hide |= cells.rows_mask(cold)
    for r in np.setdiff1d(rows, cold):
        n = int(counts[r])
        if n < 2:
            continue
        k = rng.binomial(n, cell_fraction)
        k = min(max(k, 1), n - 1)
        hide[cells.indptr[r] + rng.choice(n, size=k, replace=False)] = True
    return hide


#: (dataset, model) cells of the held-out datasets kept for fitting P(best)'s noise factor
_MAX_CASE_CELLS = 4_000_000


def calibrate(make: Callable[[], Engine], data: TrainData, *, seed: int = 0, rounds: int | None = None,
              cold_fraction: float = 0.2, cell_fraction: float = 0.25, max_cases: int = 2000,
              block: int = 256) -> Calibration:
    """Residuals of engines refitted with part of the known cells hidden.

    Parameters
    ----------
    make : callable
        Returns a fresh, unfitted engine (same parameters as the one being calibrated).
    data : TrainData
    seed : int
    rounds : int, optional
        Hide/refit rounds. Default: 1 for zoos with more than 30 recorded
        datasets; for smaller zoos, 4 rounds whose entirely hidden datasets
        partition the zoo (every dataset is a cold-start example once, so the
        cold residuals do not hang on two or three datasets).
    cold_fraction, cell_fraction : float
        Share of datasets hidden entirely (when not partitioned); share of the
        other datasets' cells hidden.
    max_cases : int
        Most held-out datasets the P(best) noise factor is fitted on (a random sample above; fewer on
        zoos of over 2,000 models, so that they hold at most :data:`_MAX_CASE_CELLS` cells).
    block : int
        Held-out datasets predicted at a time (their predictions are block x n_models).
    """
    rng = np.random.default_rng([seed, 7919])
    cells = data.records
    rows = np.flatnonzero(cells.row_counts() > 0)
    partition = None
    if rounds is None:
        rounds = 1 if len(rows) > 30 else max(1, min(4, len(rows) - 1))
        if 1 < rounds:
            partition = np.array_split(rng.permutation(rows), rounds)
    abs_pool: dict[str, list] = {s: [] for s in STRATA}
    rel_pool: dict[str, list] = {s: [] for s in STRATA}
    cases: list[tuple] = []  # (prediction, known-to-the-fit values, truth) of held-out datasets, for p_best
    # Each case holds three rows of n_models values: at most _MAX_CASE_CELLS of them in all.
    per_round = max(1, min(max_cases, _MAX_CASE_CELLS // max(data.n_models, 1)) // max(rounds, 1))
    for r in range(rounds):
        hide = holdout_mask(cells, rng, cold_fraction=cold_fraction, cell_fraction=cell_fraction,
                            cold=None if partition is None else partition[r])
        if not hide.any():
            continue
        train = data.with_records(cells.select(~hide))
        with _quiet_engines():  # what a refit on part of the data logs would read as if it were the user's fit
            engine = make().fit(train)
        hidden = np.bincount(cells.d[hide], minlength=cells.shape[0])
        held = np.flatnonzero(hidden > 0)
        # datasets whose P(best) is checked: those with >= 2 hidden records (a random sample on large zoos)
        eligible = np.flatnonzero(hidden >= 2)
        if len(eligible) > per_round:
            eligible = rng.choice(eligible, per_round, replace=False)
        is_case = np.zeros(cells.shape[0], dtype=bool)
        is_case[eligible] = True
        n_known = train.records.row_counts()[held]
        strata = stratum_of(n_known, data.n_models)
        for start in range(0, len(held), block):
            part = held[start:start + block]
            pred = engine.predict(train.block(part))
            for i, d in enumerate(part):
                sl = slice(cells.indptr[d], cells.indptr[d + 1])
                h, m, y = hide[sl], cells.m[sl], cells.y[sl]
                res = y[h] - pred[i, m[h]]
                name = STRATA[strata[start + i]]
                abs_pool[name].append(np.abs(res))
                if len(res) >= 2:
                    rel_pool[name].append((res - res.mean()) * math.sqrt(len(res) / (len(res) - 1)))
                if is_case[d]:
                    kn = np.full(data.n_models, np.nan)
                    kn[m[~h]] = y[~h]
                    truth = np.full(data.n_models, np.nan)
                    truth[m] = y
                    cases.append((pred[i].copy(), kn, truth))  # (a view would keep the whole block alive)
    cal = Calibration()
    for name in STRATA:
        if abs_pool[name]:
            cal.abs_residuals[name] = np.sort(np.concatenate(abs_pool[name]))
            rel = rel_pool[name]
            cal.rel_residuals[name] = np.concatenate(rel) if rel else np.zeros(0)
    if cases:
        cal.noise_scale = _fit_noise_scale(cal, cases, seed)
    return cal


@contextlib.contextmanager
def _quiet_engines():
    logger = logging.getLogger("recsys.engines")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


def _fit_noise_scale(cal: Calibration, cases: list[tuple], seed: int,
                     grid: tuple[float, ...] = (1.0, 0.8, 0.6, 0.45, 0.35, 0.25, 0.15)) -> float:
    """The residual factor whose P(best) has the best Brier score on the held-out datasets.

    Independently resampled residuals ignore that models err together, which
    spreads P(best) too thin; a factor below 1, fitted on the held-out datasets
    by a proper scoring rule, corrects it. The Brier score (squared distance
    between the P(best) vector and the truth's best, a tie shared) is used
    rather than the log score: with a few hundred draws a P(best) below about
    1/draws is estimated as 0, so the log score must be clipped, and the clip
    forgives exactly the over-confidence it should punish (on TransferGraph,
    185 models, a clipped log score chose factors that put P(best) 0.38 on
    top picks that were the best 4% of the time).
    Where a held-out dataset's truth covers only some models, the event scored is
    "best of the recorded models", predicted from the same draws: scoring the
    zoo-wide P(best) against the best of a subset would reward spreading it thin.
    """
    pred = np.stack([c[0] for c in cases])
    known = np.stack([c[1] for c in cases])
    truth = np.stack([c[2] for c in cases])
    recorded = ~np.isnan(truth)
    best = recorded & (np.where(recorded, truth, -np.inf) >= np.nanmax(np.where(recorded, truth, np.nan), axis=1,
                                                                          keepdims=True))
    target = best / np.maximum(best.sum(1, keepdims=True), 1)  # a tie for the best is shared, as P(best) shares it
    scores = []
    for factor in grid:
        # The truth is only recorded for some models: score the probability of being the best of those.
        pb = cal.p_best(pred, known, n_draws=400, seed=seed, scale=factor, among=recorded)
        scores.append(float(((pb - target) ** 2).sum(1).mean()))
    return float(grid[int(np.argmin(scores))])
