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
  Answers use it on datasets without known cells; elsewhere, for an engine
  that kriges, the joint distribution's marginals (:mod:`.answer`).
- ``p_best`` is the probability that a model is the best of the zoo on the
  dataset: recorded accuracies are taken as they are, unknown ones are
  perturbed by residuals from the stratum's pool after removing each
  dataset's shared offset (a common shift does not change which model wins),
  each independently, and the probability that each model comes out on top is
  integrated numerically (not sampled).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import numpy as np

from ..errors import ArtifactError, RecsysError
from ..features.data import Cells, ZooData
from ..threads import one_blas_thread
from .base import Engine
from .joint import COLD_MODEL, FACTORS, NARROWS, POOLS, SCALES, JointModel, JointParams, brier, pool_name

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
    #: factor on the shared residuals of ``p_best``, fitted by Brier score on held-out datasets
    noise_scale: float = 1.0
    #: the joint distribution's parameters (:mod:`.joint`), fitted from the same refits; None in model files
    #: from before it (their answers keep the independent P(best) above)
    joint: "JointParams | None" = None

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
            raise RecsysError(f"give an interval level between 0 and 1 (e.g. 0.8): got {level}")
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
               *, scale: float | None = None, among: np.ndarray | None = None,
               unrecorded: np.ndarray | None = None, resolution: tuple[int, int] | None = None) -> np.ndarray:
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
            Factor on the residuals (default: the fitted ``noise_scale``).
        among : ndarray of bool, same shape as ``pred``, optional
            Compete only among these models (the others get 0): the
            probability of being the best of a subset.
        unrecorded : ndarray of bool, shape (n_models,), optional
            Models without any record in the zoo. Their errors share nothing with
            the recorded models' (no common offset cancels them), so their residual
            is the stratum's absolute residual with a random sign, unscaled: as
            uncertain as their intervals say.
        resolution : (int, int), optional
            Bins of the integration grid across the narrowest pool's interquartile range, and
            at most across the widest pool (default :data:`RESOLUTION`; the error shrinks about
            as the bin width).

        Returns
        -------
        ndarray, same shape as ``pred``; rows sum to 1.

        Notes
        -----
        Computed, not sampled: the probabilities are integrals over one grid
        (:func:`_win_probs`), so they are deterministic (a dataset's P(best) is
        the same whatever else is asked with it) and resolve small probabilities
        that a finite number of draws would round to 0. Only the models that can
        win enter the integral: a model whose highest possible value (record, or
        prediction plus the largest residual) is below another model's lowest
        possible value has probability exactly 0, so on a zoo of thousands of
        models the cost follows the few that can win and the grid, not the zoo.
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
        out = np.zeros((n, m))
        free = np.zeros(m, dtype=bool) if unrecorded is None else np.asarray(unrecorded, dtype=bool)
        for row in range(n):
            stratum = int(strata[row])
            unknown = ~is_known[row]
            indep = unknown & free
            shared = unknown & ~free
            comp = np.ones(m, dtype=bool) if among is None else np.asarray(among[row], dtype=bool)
            if not comp.any():
                continue
            kinds = (bool((shared & comp).any()), bool((indep & comp).any()))
            tables, h = self._tables(stratum, float(factor), kinds, resolution or RESOLUTION)
            b = base[row]
            lo = np.where(shared, b + tables[0].lo, np.where(indep, b + tables[1].lo, b))
            hi = np.where(shared, b + tables[0].hi, np.where(indep, b + tables[1].hi, b))
            cand = np.flatnonzero(comp & (hi >= lo[comp].max()))
            kind = np.where(shared[cand], 0, np.where(indep[cand], 1, 2))
            out[row, cand] = _win_probs(b[cand], kind, tables, h)
        return out

    def _tables(self, stratum: int, factor: float, kinds: tuple[bool, bool],
                resolution: tuple[int, int]) -> tuple[tuple["_Table", "_Table"], float]:
        """The stratum's residual tables (shared pool times ``factor``; unrecorded models' symmetric pool) on the
        grid step that suits the ``kinds`` of perturbed models a row holds; built once per object."""
        cache = self.__dict__.setdefault("_tables_cache", {})
        key = (stratum, factor, kinds, resolution, *map(id, self.rel_residuals.values()), *map(id, self.abs_residuals.values()))
        if key not in cache:
            pool = self._pool(self.rel_residuals, stratum)
            wide = self._pool(self.abs_residuals, stratum)
            pools = (factor * pool if len(pool) else np.zeros(1),
                     np.r_[wide, -wide] if len(wide) else np.zeros(1))  # the random sign built in
            kinds = kinds if any(kinds) else (True, False)
            h = _grid_step([p for p, k in zip(pools, kinds) if k], *resolution)
            # Only the tables a row's models use: on another pool's (finer) grid a table could need
            # any number of bins. An unused one stands still (its models are not in the row).
            cache[key] = (tuple(_Table.of(p, h) if k else _ATOM for p, k in zip(pools, kinds)), h)
        return cache[key]

    # -- persistence --------------------------------------------------------
    def to_state(self) -> dict[str, np.ndarray]:
        arrays = {}
        for name in STRATA:
            if name in self.abs_residuals:
                arrays[f"cal_abs_{name}"] = self.abs_residuals[name]
                arrays[f"cal_rel_{name}"] = self.rel_residuals[name]
        if arrays:
            arrays["cal_noise_scale"] = np.array(self.noise_scale)
            if self.joint is not None:
                arrays.update(self.joint.to_state("cal_joint_"))
        return arrays

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray]) -> "Calibration | None":
        cal = cls()
        for name in STRATA:
            if f"cal_abs_{name}" in arrays:
                for kind, table in (("abs", cal.abs_residuals), ("rel", cal.rel_residuals)):
                    pool = np.asarray(arrays[f"cal_{kind}_{name}"], dtype=float)
                    if pool.ndim != 1 or not np.isfinite(pool).all():  # (memory-mapped pools were not checked yet)
                        raise ArtifactError(f"re-create the model file with `recsys fit`: it holds a damaged "
                                            f"residual pool 'cal_{kind}_{name}'")
                    table[name] = pool
        if "cal_noise_scale" in arrays:
            cal.noise_scale = float(arrays["cal_noise_scale"])
        try:
            cal.joint = JointParams.from_state(arrays, "cal_joint_")
        except ValueError as exc:
            raise ArtifactError(f"model file holds {exc}; re-create it with `recsys fit`") from None
        return cal if cal.abs_residuals else None


#: resolution of P(best)'s integration grid: bins across the narrowest pool's interquartile range, and
#: the most bins across the widest pool (heavy tails widen a pool's range, not the grid's work); on
#: TransferGraph's 13 datasets x 185 models, within 6e-4 of a 512 / 32,768 grid everywhere
RESOLUTION = (64, 4096)
#: the coarser grid of the noise factor's fit (seven factors on up to 2,000 held-out datasets; errors
#: of a few 1e-3 move no Brier score between factors)
FIT_RESOLUTION = (16, 1024)
#: above this many (candidate, bin) pairs in a row, the sums over the grid go through FFTs
_DIRECT_MAX_CELLS = 200_000


@dataclass(frozen=True)
class _Table:
    """A residual distribution on bins of width ``h``: bin ``k`` is ``[lo + k h, lo + (k + 1) h)``.

    ``mass``: the bin's probability; ``below``: P(residual below a value in the bin), the bin's own
    mass counted half (the midpoint rule: two models landing in one bin tie, and share).
    """

    lo: float
    hi: float
    mass: np.ndarray
    below: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, h: float) -> "_Table":
        v = np.sort(np.asarray(values, dtype=float))
        lo = float(v[0])
        n = int((v[-1] - lo) // h) + 1
        cdf = np.searchsorted(v, lo + h * np.arange(1, n + 1), side="left") / len(v)
        cdf[-1] = 1.0
        mass = np.diff(cdf, prepend=0.0)
        return cls(lo, float(v[-1]), mass, cdf - mass / 2)  # below > 0: the first bin holds the smallest value

    @property
    def n(self) -> int:
        return len(self.mass)

    @functools.cached_property
    def log_below(self) -> np.ndarray:
        return np.log(self.below)

    @functools.cached_property
    def ratio(self) -> np.ndarray:
        return self.mass / self.below


#: a recorded value: all its mass in one bin
_ATOM = _Table(0.0, 0.0, np.array([1.0]), np.array([0.5]))


def _grid_step(pools: list[np.ndarray], bins_per_iqr: int, max_bins: int) -> float:
    """Bin width for the pools a row draws from (see :data:`RESOLUTION`)."""
    iqr = min(float(np.subtract(*np.quantile(p, [0.75, 0.25]))) for p in pools)
    spread = max(float(p.max() - p.min()) for p in pools)
    # (at least 1e-9: accuracies are in [0, 1], and a pool of (nearly) one value is one bin)
    return max(iqr / bins_per_iqr, spread / max_bins, 1e-9)


def _win_probs(b: np.ndarray, kind: np.ndarray, tables: tuple["_Table", "_Table"], h: float) -> np.ndarray:
    """Probability that each candidate is the best, ties shared; ``b`` are their base values.

    ``kind`` is 0 for a model perturbed by the first table's residuals (the shared pool, scaled), 1
    for the second's (unrecorded models), 2 for a recorded one (its value is ``b``). The values are
    independent given ``b``, so P(model j is the best) = integral of f_j(x) prod_{i != j} F_i(x) dx,
    computed on one grid of bins of width ``h`` shared by every model. A model's distribution is its
    table shifted to ``b``, so every sum over models and over bins is a correlation of a table with
    the models' shifts: taken directly for a few models, with FFTs for many (the cost then grows as
    the grid, not as models x grid).
    """
    fixed = np.flatnonzero(kind == 2)
    moving = np.flatnonzero(kind != 2)
    if len(moving) == 0:
        top = b >= b.max()
        return top / top.sum()
    # The recorded models compete through their best value: one atom (ties split its probability).
    top_fixed = fixed[b[fixed] >= b[fixed].max()] if len(fixed) else fixed
    members = [(tables[k], moving[kind[moving] == k]) for k in (0, 1)]
    start = max(float((b[i] + t.lo).max()) for t, i in members if len(i))  # below: someone is surely above
    atom = len(top_fixed) and b[top_fixed[0]] >= start  # else a moving model is surely above the best record
    if atom:  # the grid starts half a bin below the best record: a bin centred on it (the midpoint rule)
        start = float(b[top_fixed[0]]) - h / 2
    groups = []  # (table, candidate positions, their shifts in bins: grid bin g is the table's bin g + shift)
    for t, idx in members:
        if len(idx):
            shift = np.maximum((start - (b[idx] + t.lo)) / h, 0.0)  # (< 0 only within half a bin of the record)
            keep = shift < t.n  # its top bin below the grid: it cannot win (the record is surely above)
            groups.append((t, idx[keep], shift[keep]))
    if atom:
        groups.append((_ATOM, top_fixed[:1], np.zeros(1)))
    n_bins = max(int(np.ceil((t.n - s).max())) for t, _, s in groups if len(s))
    p = np.zeros(len(b))
    if sum(len(s) for _, _, s in groups) * n_bins <= _DIRECT_MAX_CELLS:
        # A fractional shift mixes the table's two neighbouring placements (its CDF interpolated
        # linearly), and each model's own factor is divided out exactly as it was multiplied in.
        log_prod, parts = np.zeros(n_bins), []
        for t, idx, s in groups:
            whole, f = _split(s)
            f = f[:, None]
            below = (1 - f) * _gather(t.below, whole, n_bins, 1.0) + f * _gather(t.below, whole + 1, n_bins, 1.0)
            mass = (1 - f) * _gather(t.mass, whole, n_bins, 0.0) + f * _gather(t.mass, whole + 1, n_bins, 0.0)
            log_prod += np.log(below).sum(0)
            parts.append((idx, mass / below))
        weight = np.exp(log_prod - log_prod.max())
        for idx, r in parts:
            p[idx] = r @ weight
    else:
        # Many models: the sums over models are correlations of a table with the histogram of the
        # shifts, and over bins correlations of a table with the weights (FFTs; fractional shifts
        # interpolate the log and the ratio linearly, exact for whole shifts).
        log_prod = np.zeros(n_bins)
        for t, _, s in groups:
            log_prod += _correlate_sum(t.log_below, s, n_bins)
        weight = np.exp(log_prod - log_prod.max())
        for t, idx, s in groups:
            p[idx] = _correlate_at(t.ratio, weight, s)
    if len(top_fixed) > 1:  # the atom stands for every recorded model tied at the top
        p[top_fixed] = p[top_fixed[0]] / len(top_fixed)
    p = np.maximum(p, 0.0)
    total = p.sum()
    return p / total if total > 0 else p


def _correlate_sum(table: np.ndarray, shift: np.ndarray, n_bins: int) -> np.ndarray:
    """``sum_i table[g + shift_i]`` for each grid bin ``g`` (0 past the table's end), by FFT."""
    whole, frac = _split(shift)
    n = len(table)
    counts = np.bincount(whole, 1 - frac, minlength=n + 2) + np.bincount(whole + 1, frac, minlength=n + 2)
    size = _fft_size(n_bins + n)
    return np.fft.irfft(np.conj(np.fft.rfft(counts[:n], size)) * np.fft.rfft(table, size), size)[:n_bins]


def _correlate_at(table: np.ndarray, weight: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``sum_g table[g + shift_i] weight[g]`` for each model ``i`` (0 past the table's end), by FFT."""
    whole, frac = _split(shift)
    size = _fft_size(len(weight) + len(table) + 1)
    full = np.fft.irfft(np.conj(np.fft.rfft(weight, size)) * np.fft.rfft(table, size), size)
    return (1 - frac) * full[whole] + frac * full[whole + 1]


def _split(shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whole bins and the fraction of one of each shift (a fractional shift mixes two placements linearly)."""
    whole = np.floor(shift).astype(np.int64)
    return whole, shift - whole


def _gather(table: np.ndarray, start: np.ndarray, n_bins: int, fill: float) -> np.ndarray:
    """``table[start_i + g]`` for ``g < n_bins``, one row per ``start_i`` (``fill`` past the end)."""
    pos = np.arange(n_bins)[None, :] + start[:, None]
    return np.where(pos < len(table), table[np.minimum(pos, len(table) - 1)], fill)


def _fft_size(n: int) -> int:
    return 1 << max(int(n - 1).bit_length(), 1)


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


def calibrate(make: Callable[[], Engine], data: ZooData, *, seed: int = 0, rounds: int | None = None,
              cold_fraction: float = 0.2, cell_fraction: float = 0.25, max_cases: int = 2000,
              block: int = 256, joint: bool = True, independent: bool | None = None) -> Calibration:
    # (over 80 lines by its docstring: 10 parameters, each documented; the body is 57 lines, one hide/refit loop)
    """Residuals of engines refitted with part of the known cells hidden.

    From the same refits, for an engine that kriges, the joint distribution's parameters
    (:attr:`Calibration.joint`, see :func:`fit_joint`); one more refit only where the zoo has models
    without any record (their own pool).

    Parameters
    ----------
    make : callable
        Returns a fresh, unfitted engine (same parameters as the one being calibrated).
    data : ZooData
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
    joint : bool
        Also fit the joint distribution's parameters.
    independent : bool, optional
        Also fit the independent P(best)'s noise factor (:attr:`Calibration.noise_scale`). Default: only
        where answers use it, for engines without the joint distribution (an engine that kriges answers
        from the joint; the benchmarks ask for the factor to compare the two).
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
    refits: list[_Refit] = []  # for the joint distribution
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
        if independent is None:
            independent = not joint or engine.covariance is None
        hidden = np.bincount(cells.d[hide], minlength=cells.shape[0])
        held = np.flatnonzero(hidden > 0)
        # datasets whose P(best) is checked: those with >= 2 hidden records (a random sample on large zoos)
        eligible = np.flatnonzero(hidden >= 2)
        if len(eligible) > per_round:
            eligible = rng.choice(eligible, per_round, replace=False)
        is_case = np.zeros(cells.shape[0], dtype=bool)
        is_case[eligible] = True
        # (the noise factor's cases drawn all the same: the next rounds' holdouts, the joint's cases unchanged)
        _collect(engine, train, cells, hide, held, is_case & independent, block, abs_pool, rel_pool, cases)
        if joint:
            refits.append(_Refit(engine, train, hide, held, is_case))
    engine = train = None  # (the last round's: `refits` holds what the joint needs, until its extra refit)
    cal = Calibration()
    for name in STRATA:
        if abs_pool[name]:
            cal.abs_residuals[name] = np.sort(np.concatenate(abs_pool[name]))
            rel = rel_pool[name]
            cal.rel_residuals[name] = np.concatenate(rel) if rel else np.zeros(0)
    if cases:
        cal.noise_scale = _fit_noise_scale(cal, cases)
    del cases  # (up to _MAX_CASE_CELLS values, three times)
    if refits and cal.abs_residuals and refits[0].engine.covariance is not None:  # (engines that krige)
        with one_blas_thread():  # small matrices: threads only synchronize
            params = fit_joint(data, refits, seed=seed, block=block)
            # The rounds' engines and data are done with: the extra refit of the models without records needs
            # their memory (on a zoo of 10 M records, each holds about a GiB).
            refits.clear()
            if (data.model_record_counts() == 0).any():
                params = replace(params, pools={**params.pools,
                                                COLD_MODEL: _cold_model_pool(make, data, params, seed, block)})
            cal.joint = params
    return cal


def _collect(engine: Engine, train: ZooData, cells: Cells, hide: np.ndarray, held: np.ndarray, is_case: np.ndarray,
             block: int, abs_pool: dict, rel_pool: dict, cases: list) -> None:
    """The residuals of ``engine`` (fitted on ``train``) on the hidden cells of the datasets ``held``, by stratum;
    the held-out datasets flagged ``is_case``, for P(best)'s noise factor."""
    n_models = cells.shape[1]
    strata = stratum_of(train.records.row_counts()[held], n_models)
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
                kn = np.full(n_models, np.nan)
                kn[m[~h]] = y[~h]
                truth = np.full(n_models, np.nan)
                truth[m] = y
                cases.append((pred[i].copy(), kn, truth))  # (a view would keep the whole block alive)


@contextlib.contextmanager
def _quiet_engines():
    logger = logging.getLogger("recsys.engines")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


def _fit_noise_scale(cal: Calibration, cases: list[tuple],
                     grid: tuple[float, ...] = (1.0, 0.8, 0.6, 0.45, 0.35, 0.25, 0.15)) -> float:
    """The residual factor whose P(best) has the best Brier score on the held-out datasets.

    Independent residuals ignore that models err together, which spreads
    P(best) too thin; a factor below 1, fitted on the held-out datasets by a
    proper scoring rule, corrects it. The Brier score (squared distance between
    the P(best) vector and the truth's best, a tie shared) is used rather than
    the log score, which a single held-out dataset whose best got a tiny P(best)
    can dominate: on TransferGraph (185 models) a log score clipped to tame that
    chose factors that put P(best) 0.38 on top picks that were the best 4% of
    the time.
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
        pb = cal.p_best(pred, known, scale=factor, among=recorded, resolution=FIT_RESOLUTION)
        scores.append(float(((pb - target) ** 2).sum(1).mean()))
    return float(grid[int(np.argmin(scores))])


# -- the joint distribution (recsys.engines.joint) -------------------------------------------------------------
#: most held-out datasets whose residuals build the joint's pools (a random sample above; fewer on zoos of over
#: 2,600 models)
_JOINT_ROWS = 1500


def _max_joint_rows(n_models: int) -> int:
    """Most held-out datasets a pool of the joint is built from: :data:`_JOINT_ROWS`, fewer where their rows of
    ``n_models`` values would hold more than :data:`_MAX_CASE_CELLS` of them."""
    return min(_JOINT_ROWS, _MAX_CASE_CELLS // max(n_models, 1))


#: most held-out datasets the joint's P(best) factor and scale are chosen on (a random sample above)
_JOINT_CASES = 300
#: draws of P(best) while choosing its factor and scale (half the answers': Brier scores of 7 factors x 2 scales
#: differ by more than their Monte Carlo error)
_FIT_DRAWS = 512
#: a held-out dataset without records shows a user's first results (revealed one by one) when it has this many
#: hidden records more than revealed
_REVEAL = 4
#: share of the recorded models whose every record one extra refit hides, on zoos with models without records
_COLD_MODEL_SHARE = 0.1


@dataclass
class _Refit:
    """One hide/refit round: the refitted engine, what it was fitted on, the hidden cells and rows."""

    engine: Engine
    train: ZooData
    hide: np.ndarray
    held: np.ndarray
    is_case: np.ndarray


@dataclass
class _Row:
    """A held-out dataset of a refit: its inputs, the engine's answer, its stored and hidden cells."""

    refit: int
    pred: np.ndarray
    stored: np.ndarray
    hidden: np.ndarray
    truth: np.ndarray
    inp: object
    case: bool
    recorded: np.ndarray = field(default=None)


def _held_rows(refits: list[_Refit], cells: Cells, rows_of: list[np.ndarray], block: int) -> list[_Row]:
    """The held-out datasets ``rows_of[i]`` of each refit, with what the joint needs of them."""
    out = []
    for i, (R, rows) in enumerate(zip(refits, rows_of)):
        for start in range(0, len(rows), block):
            part = rows[start:start + block]
            b = R.train.block(part)
            pred = R.engine.predict(b)
            inps = R.engine.row_inputs(b) or [None] * len(part)
            stored = R.train.records.dense(part)
            for j, d in enumerate(part):
                sl = slice(cells.indptr[d], cells.indptr[d + 1])
                h = R.hide[sl]
                out.append(_Row(i, pred[j], stored[j], cells.m[sl][h].astype(np.int64), cells.y[sl][h], inps[j],
                                bool(R.is_case[d]), cells.m[sl].astype(np.int64)))
    return out


def fit_joint(data: ZooData, refits: list[_Refit], *, seed: int = 0, block: int = 256) -> JointParams:
    """The joint distribution's parameters from :func:`calibrate`'s refits (out of fold).

    - ``rho``: the level variance of a dataset without records relative to its models' errors, by
      moments of the held-out datasets without records (their errors' mean and spread around it);
    - the pools: normalized residuals ``(truth - centre) / sd`` of the hidden cells, by the dataset's
      known cells; beside them, each held-out dataset without records shows a user's first results:
      its models with the highest centres are revealed one at a time (the results given, the row
      conditioned, no refit) and the rest are scored (pools ``k1`` .. ``k4``);
    - per scale, how far those results narrow the models that err with them (:data:`NARROWS`): the
      exponent whose first results' marginals score best (:func:`_narrowest`);
    - the marginals' scale (per model or per dataset) and the factor on the errors in P(best): the
      pair with the best Brier score of P(best of the recorded models) on the held-out datasets (one factor
      for all: a factor of its own for datasets without records was measured and not adopted, DEVELOPERS.md).

    The pool of models without any record (:func:`_cold_model_pool`, one more refit) is added by
    :func:`calibrate` once these refits are released.
    """
    rng = np.random.default_rng([seed, 1818])  # (not the hide/refit sequence: today's calibration stays as it is)
    cells = data.records
    kriging = refits[0].engine.covariance is not None
    total = sum(len(R.held) for R in refits)
    # (each row kept holds a few vectors of n_models values: at most _MAX_CASE_CELLS of them in all)
    keep = min(1.0, _max_joint_rows(data.n_models) / max(total, 1))
    rows_of = [np.sort(rng.choice(R.held, max(1, int(round(keep * len(R.held)))), replace=False)) if keep < 1
               else R.held for R in refits]
    rows = _held_rows(refits, cells, rows_of, block)
    models = {i: JointModel(R.engine, JointParams(seed=seed, kriging=kriging), R.train.records.col_counts() == 0)
              for i, R in enumerate(refits)}
    rho = _cold_level(rows, models) if kriging else 1.0
    fits = {scale: _narrowest(rows, refits, models, rho, scale, seed, kriging)
            for scale in (SCALES if kriging else SCALES[:1])}
    cases = [r for r in rows if r.case and len(r.hidden) >= 2]
    if len(cases) > _JOINT_CASES:
        cases = [cases[i] for i in np.sort(rng.choice(len(cases), _JOINT_CASES, replace=False))]
    best = {}
    for scale, params in fits.items():
        jms = {i: JointModel(R.engine, params, R.train.records.col_counts() == 0, n_draws=_FIT_DRAWS)
               for i, R in enumerate(refits)}
        scores = {f: [] for f in FACTORS}
        for r in cases:
            post = jms[r.refit].posterior(r.pred, r.stored, None, r.inp)
            among = np.zeros(data.n_models, bool)
            among[r.recorded] = True
            truth = np.where(np.isnan(r.stored), -1.0, r.stored)
            truth[r.hidden] = r.truth
            for f, pb in post.p_best(among, FACTORS).items():
                scores[f].append(brier(pb, truth, among))
        briers = {f: float(np.mean(v)) if v else np.inf for f, v in scores.items()}
        f = min(FACTORS, key=lambda f: (round(briers[f], 12), -f))
        best[scale] = (briers[f], f)
    scale = min(best, key=lambda k: (round(best[k][0], 12), SCALES.index(k)))
    return JointParams(dict(fits[scale].pools), rho, scale, best[scale][1], seed, kriging, fits[scale].narrow)


def _narrowest(rows: list[_Row], refits: list[_Refit], models: dict, rho: float, scale: str, seed: int,
               kriging: bool) -> JointParams:
    """The parameters of ``scale`` with the exponent of :data:`NARROWS` under which the marginals of the first
    results' datasets score best: the mean CRPS, in accuracy units, of their models not revealed (pools ``k1``
    .. ``k4`` refitted for each exponent; a tie: the larger exponent). How far a result should narrow the
    models that err with it depends on how well the zoo's datasets pin those correlations down. The other
    pools hold answers without results, which no exponent changes: they are computed once."""
    held = None
    scored = []
    for narrow in sorted(NARROWS, reverse=True):
        base = JointParams(rho=rho, scale=scale, seed=seed, kriging=kriging, narrow=narrow)
        jms = _joint_models(refits, models, base)
        held = _held_out_pools(rows, jms) if held is None else held
        first, given = _first_result_pools(rows, jms, kriging)
        params = JointParams({**held, **first}, rho, scale, 1.0, seed, kriging, narrow)
        if not given:  # (no dataset without records to reveal: no result narrows anything)
            return params
        crps = np.concatenate([sd * params.pool(f"k{k}").crps(res / sd) for k, res, sd in given])
        scored.append((round(float(crps.mean()), 12), params))
    return min(scored, key=lambda v: v[0])[1]


def _cold_level(rows: list[_Row], models: dict) -> float:
    """``rho = tau2 / kappa`` by moments of the held-out datasets without records: errors ``e = (truth - pred)
    / s`` with ``e = c + eps``, ``eps ~ N(0, kappa S)``, ``c`` the level's error of variance ``tau2``."""
    num = den = 0.0
    means = []
    for r in rows:
        h = len(r.hidden)
        if not np.isnan(r.stored).all() or h < 2:
            continue
        e = (r.truth - r.pred[r.hidden]) / r.inp.spread
        S = models[r.refit].uncertainty.block(r.hidden, r.hidden)
        num += float(((e - e.mean()) ** 2).sum())
        den += float(np.trace(S) - S.sum() / h)
        means.append((e.mean() ** 2, S.sum() / h ** 2))
    if den <= 0 or not means:
        return 1.0
    kappa = max(num / den, 1e-6)
    tau2 = float(np.mean([a - kappa * b for a, b in means]))
    return max(tau2, 1e-3 * kappa) / kappa


def _joint_models(refits: list[_Refit], models: dict, params: JointParams) -> dict[int, JointModel]:
    """Each refit's joint model under ``params`` (the cold flags of ``models``)."""
    return {i: JointModel(refits[i].engine, params, m.cold_models) for i, m in models.items()}


def _nonempty(out: dict[str, list]) -> dict[str, np.ndarray]:
    return {k: np.sort(np.concatenate(v)) for k, v in out.items() if v and sum(map(len, v))}


def _held_out_pools(rows: list[_Row], jms: dict[int, JointModel]) -> dict[str, np.ndarray]:
    """Normalized residuals of the hidden cells by pool (the answers without results)."""
    out: dict[str, list] = {name: [] for name in POOLS}
    for r in rows:
        post = jms[r.refit].posterior(r.pred, r.stored, None, r.inp)
        cold = post.cold_models[r.hidden]
        if (~cold).any():
            h = r.hidden[~cold]
            out[pool_name(int((~np.isnan(r.stored)).sum()), len(r.pred))].append(
                (r.truth[~cold] - post.mu[h]) / np.maximum(post.sd[h], 1e-12))
    return _nonempty(out)


def _first_result_pools(rows: list[_Row], jms: dict[int, JointModel], kriging: bool
                        ) -> tuple[dict[str, np.ndarray], list[tuple]]:
    """Normalized residuals of the first results of the datasets without records (pools ``k1`` .. ``k4``: their
    models with the highest centres revealed one at a time), and each one's ``(k, residual, sd)`` (accuracy
    units)."""
    out: dict[str, list] = {f"k{k}": [] for k in range(1, _REVEAL + 1)}
    given_res = []
    for r in rows:
        if not kriging or not np.isnan(r.stored).all() or len(r.hidden) < 2 + _REVEAL:
            continue
        jm = jms[r.refit]
        order = np.argsort(-r.pred[r.hidden], kind="stable")
        for k in range(1, _REVEAL + 1):
            given = dict(zip(r.hidden[order[:k]].tolist(), r.truth[order[:k]].tolist()))
            pk = jm.posterior(r.pred, r.stored, given, r.inp)
            rest = order[k:]
            h = r.hidden[rest]
            ok = ~pk.cold_models[h]
            res, sd = r.truth[rest][ok] - pk.mu[h][ok], np.maximum(pk.sd[h][ok], 1e-12)
            out[f"k{k}"].append(res / sd)
            given_res.append((k, res, sd))
    return _nonempty(out), given_res


def _cold_model_pool(make: Callable[[], Engine], data: ZooData, params: JointParams, seed: int,
                     block: int) -> np.ndarray:
    """Normalized residuals of models whose every record was hidden from one more refit."""
    rng = np.random.default_rng([seed, 31337])
    cells = data.records
    recorded = np.flatnonzero(data.model_record_counts() > 0)
    if len(recorded) < 2:
        return np.zeros(0)
    n = min(max(1, int(round(_COLD_MODEL_SHARE * len(recorded)))), len(recorded) - 1)
    hidden_models = rng.choice(recorded, n, replace=False)
    hide = np.isin(cells.m, hidden_models)
    train = data.with_records(cells.select(~hide))
    with _quiet_engines():
        engine = make().fit(train)
    held = np.unique(cells.d[hide])
    cap = max(1, _max_joint_rows(data.n_models))
    if len(held) > cap:
        held = np.sort(rng.choice(held, cap, replace=False))
    R = _Refit(engine, train, hide, held, np.zeros(cells.shape[0], bool))
    jm = JointModel(engine, params, train.records.col_counts() == 0)
    out = []
    for r in _held_rows([R], cells, [held], block):
        post = jm.posterior(r.pred, r.stored, None, r.inp)
        out.append((r.truth - post.mu[r.hidden]) / np.maximum(post.sd[r.hidden], 1e-12))
    return np.sort(np.concatenate(out)) if out else np.zeros(0)
