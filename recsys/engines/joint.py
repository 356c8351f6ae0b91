"""The joint distribution of one dataset's accuracies, its update by results just obtained, and the plan.

For a dataset (of the zoo or brand-new), the accuracies of the models without
a result get one joint predictive distribution:

- **centres**: the engine's predictions, unchanged (``Engine.predict``); once
  results are given for the dataset, the kriging of that one row re-solved on
  its records plus the results (:func:`condition`; no refit, milliseconds);
- **correlated errors**: in the kriging's standardized units ``r = y / s - M``
  (``s`` the dataset's spread, ``M`` its profile), ``r_j = c + e_j`` with
  ``e ~ N(0, S)``, ``S`` the engine's residual covariance across models as low
  rank plus diagonal (``error_covariance``: each pair's covariance shrunk by its
  own noise, not by the kriging's one shrinkage, so that fine-tunes that err
  together on every dataset are drawn together even on a zoo of a few datasets
  (``stages.kriging.entrywise_shrunk``); each model's variance from the median
  of its squared residuals, so that one outlying record does not make a model
  look uncertain everywhere: the tails are the pools' job). Given known cells
  ``K`` the unknown errors are Gaussian with the universal-kriging covariance
  (the level ``c`` unknown: its uncertainty is in it); a dataset without records has
  ``S + rho 11'``, ``rho`` the level's variance relative to the models' errors,
  and keeps that prior on its level once results are given (the kriging of
  ``S + rho 11'``: without it, a result would make the models that err apart
  from it more uncertain than before it, and the plan chase them);
- **heavy tails**: each model's error is ``sd_j T(g_j)``: ``g`` the Gaussian
  errors in standard units (correlated as above), ``T`` the empirical
  quantile function of out-of-fold normalized residuals ``(y - centre) / sd``
  of the dataset's *pool* (by its number of known cells: ``cold``, ``k1`` ..
  ``k4``, then a third or less of the models, two thirds or less, more), so a
  Gaussian copula over each pool's empirical distribution; ``sd_j`` is the
  dataset's spread times the model's conditional standard deviation
  (``scale="model"``) or the spread alone (``"row"``), as the calibration
  chose; results given narrow each model's scale from the answer without
  them by the share of its variance they leave (its conditional variance given
  the known cells over that given the stored records alone, at least
  :data:`VAR_FLOOR`) to the power ``narrow / 2``: 1 pins the twin of a
  fine-tune with a result down, 0 leaves the answer's scale; how far the
  zoo's estimated correlations deserve trust is the calibration's choice
  (:data:`NARROWS`, by the CRPS of its simulated first results). Models
  without any record in the fit have a pool of their own (``cold-model``):
  how such models' predictions err.

Everything random is a function of fixed draws (common random numbers, seeded
by the model's seed; one stream per model): P(best), the expected best of a
plan and its P(found) are deterministic, and a model's draws do not depend on
what else is asked. The parameters (pools, ``rho``, the scale, the factor on
the errors in P(best)) are fitted out of fold by
:func:`recsys.engines.calibration.calibrate` from the refits it makes anyway.

Engines without a kriging (all but ``hybrid``) get the documented fallback:
their predictions as centres, given results replacing a centre but moving no
other model (no conditioning), and independent errors (``S`` the identity,
``sd = 1``: pools of plain residuals in accuracy units).

Numpy only (``recsys topk`` imports no scipy): the normal CDF of the copula is
tabulated once with ``math.erf``; the per-model streams are read from one table of
fixed normals (:func:`stream_normals`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from ..features.data import Cells
from ..threads import one_blas_thread
from .stages.kriging import COV_MIN_KNOWN, DenseCovariance, LowRankCovariance, krige_row, krige_row_joined
from .stages.scale import PRIOR_WEIGHT, pool_log_sd, pooled_scale, row_sd

__all__ = ["POOLS", "COLD_MODEL", "N_DRAWS", "FACTORS", "SCALES", "NARROWS", "Pool", "JointParams", "RowInputs",
           "RowPosterior", "JointModel", "Plan", "pool_name", "condition", "brier", "stream_normals"]

#: the pools of normalized residuals, by known cells of the dataset: none, 1 .. 4 results given (a user's first
#: results), then a third or less of the models, two thirds or less, more
POOLS = ("cold", "k1", "k2", "k3", "k4", "few", "some", "most")
#: the pool of models without any record in the fit
COLD_MODEL = "cold-model"
#: a pool borrows its neighbours' residuals below this many
MIN_POOL = 30
#: Monte Carlo draws of P(best), the plan's expected best and P(found)
N_DRAWS = 1024
#: P(best) draws at most this many model values (fewer draws, at least MIN_DRAWS, when more models can win)
P_BEST_CELLS = 1_000_000
MIN_DRAWS = 128
#: a model's conditional variance is at least this share of its own (correlations near 1 would otherwise
#: make a model certain once its twin is known)
VAR_FLOOR = 0.05
#: quantiles beyond which a model is taken not to reach (P(best)'s and the plan's pruning)
_TAIL = 0.001
#: most models the plan's draws hold after the first step (the ones with the highest upper quantiles), and its draws
MAX_PLAN_POOL = 256
PLAN_DRAWS = 512
#: candidate factors on the errors in P(best) (the calibration's Brier fit; as the independent P(best)'s)
FACTORS = (1.0, 0.8, 0.6, 0.45, 0.35, 0.25, 0.15)


def pool_name(k: int, n_models: int, given: bool = False) -> str:
    """The pool of a dataset with ``k`` known cells out of ``n_models`` models: ``k1`` .. ``k4`` for a user's first
    results (``given``: up to 4 known cells, some of them results given), else by the share of models known (its
    stored records then reflect the zoo's, not the plan's, choice of models)."""
    if k <= 0:
        return "cold"
    if given and k <= 4:
        return f"k{k}"
    frac = k / max(n_models, 1)
    return "few" if frac <= 1 / 3 else "some" if frac <= 2 / 3 else "most"


# -- pools ----------------------------------------------------------------------------------------------
_GRID = np.linspace(-6.0, 6.0, 2401)  # the copula's normal grid (step 0.005)


@functools.lru_cache(maxsize=1)
def _phi_grid() -> np.ndarray:
    """The standard normal CDF on :data:`_GRID` (math.erf: no scipy)."""
    return np.array([0.5 * (1.0 + math.erf(x / math.sqrt(2.0))) for x in _GRID])


class Pool:
    """An empirical distribution of normalized residuals ``z = (truth - centre) / sd`` (sorted)."""

    def __init__(self, values: np.ndarray):
        v = np.sort(np.asarray(values, dtype=float))
        if not len(v):  # no calibration residuals at all: standard normal quantiles
            v = np.interp((np.arange(200) + 0.5) / 200, _phi_grid(), _GRID)
        self.values = v
        self.n = len(v)
        self.mean = float(v.mean())
        self._csum = np.cumsum(v)

    @functools.cached_property
    def _table(self) -> np.ndarray:
        return np.interp(_phi_grid(), (np.arange(self.n) + 0.5) / self.n, self.values)

    def transform(self, g: np.ndarray) -> np.ndarray:
        """``Q(Phi(g))``: standard normal values mapped onto the pool (the copula's marginal), read from its table
        on the normal grid (the nearest of 2,401 points from -6 to 6)."""
        i = g + 6.0  # (in place from here: arrays of a million draws)
        i *= 200.0
        np.rint(i, out=i)
        np.clip(i, 0, len(_GRID) - 1, out=i)
        return self._table[i.astype(np.intp)]

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the pool (plotting positions ``(i + 1/2) / n``)."""
        return float(np.interp(q, (np.arange(self.n) + 0.5) / self.n, self.values))

    def crps(self, z: np.ndarray) -> np.ndarray:
        """The CRPS of each value ``z`` against the pool: ``E|v - z| - E|v - v'| / 2`` (exact over the pool)."""
        z = np.asarray(z, dtype=float)
        return 2 * self.excess(z) - self.mean + z - self._half_gini

    @functools.cached_property
    def _half_gini(self) -> float:
        """``E|v - v'| / 2`` over the (sorted) pool."""
        i = np.arange(1, self.n + 1)
        return float(((2 * i - self.n - 1) * self.values).sum()) / self.n ** 2

    def excess(self, t: np.ndarray) -> np.ndarray:
        """``E[max(z - t, 0)]`` for each ``t`` (exact over the pool)."""
        t = np.asarray(t, dtype=float)
        i = np.searchsorted(self.values, t, side="right")
        above = self.n - i
        total = self._csum[-1] - np.where(i > 0, self._csum[np.maximum(i - 1, 0)], 0.0)
        return (total - above * t) / self.n


# -- parameters -----------------------------------------------------------------------------------------
@dataclass
class JointParams:
    """What the calibration fitted (see :func:`recsys.engines.calibration.calibrate`).

    Attributes
    ----------
    pools : dict of str to ndarray
        Normalized out-of-fold residuals per pool (:data:`POOLS`, :data:`COLD_MODEL`).
    rho : float
        Variance of the level of a dataset without records, relative to the models' errors.
    scale : {"model", "row"}
        The marginals' scale: the spread times the model's conditional sd, or the spread alone (narrowed by
        the results given, as the module docstring says).
    factor : float
        Factor on the errors in P(best) (as :attr:`Calibration.noise_scale`), by Brier score.
    seed : int
        Seed of the fixed draws.
    kriging : bool
        The engine kriges (False: the independent fallback, pools in accuracy units).
    narrow : float
        Results given narrow each unknown model's scale by the share of its variance they leave to the power
        ``narrow / 2`` (of :data:`NARROWS`; 0: not at all), as the calibration chose.
    """

    pools: dict = field(default_factory=dict)
    rho: float = 1.0
    scale: str = "model"
    factor: float = 1.0
    seed: int = 0
    kriging: bool = True
    narrow: float = 1.0

    def pool(self, name: str) -> Pool:
        """The pool ``name``, borrowing its neighbours' residuals when it has fewer than :data:`MIN_POOL`."""
        cache = self.__dict__.setdefault("_pool_cache", {})
        if name not in cache:
            cache[name] = Pool(self._values(name))
        return cache[name]

    def _values(self, name: str) -> np.ndarray:
        own = self.pools.get(name)
        if own is not None and len(own) >= MIN_POOL:
            return own
        if name == COLD_MODEL:  # none of its own: the widest of the others (a cold model is at least as uncertain)
            if own is not None and len(own):
                return own
            name = "cold"
        i = POOLS.index(name)
        for reach in range(1, len(POOLS)):
            near = [self.pools.get(POOLS[j]) for j in range(max(0, i - reach), min(len(POOLS), i + reach + 1))]
            near = [v for v in near if v is not None and len(v)]
            if near and sum(map(len, near)) >= MIN_POOL:
                return np.concatenate(near)
        rest = [v for k, v in self.pools.items() if k != COLD_MODEL and len(v)]
        return np.concatenate(rest) if rest else np.zeros(0)

    @classmethod
    def independent(cls, calibration, seed: int = 0) -> "JointParams":
        """The fallback of engines that do not krige: independent errors in accuracy units, each pool the
        calibration's absolute residuals of that stratum with both signs, P(best)'s factor its noise factor."""
        pools = {name: np.r_[v, -v] for name, v in calibration.abs_residuals.items() if len(v)}
        return cls(pools, 1.0, "row", float(calibration.noise_scale), seed, False)

    # -- persistence ----------------------------------------------------------
    def to_state(self, prefix: str = "cal_joint_") -> dict[str, np.ndarray]:
        arrays = {f"{prefix}pool_{k}": np.asarray(v, dtype=float) for k, v in self.pools.items()}
        arrays[f"{prefix}params"] = np.array([self.rho, self.factor, SCALES.index(self.scale), self.seed,
                                              float(self.kriging), self.narrow])
        return arrays

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], prefix: str = "cal_joint_") -> "JointParams | None":
        if f"{prefix}params" not in arrays:
            return None  # a model file from before the joint distribution: today's P(best) answers
        p = np.asarray(arrays[f"{prefix}params"], dtype=float)
        if p.shape not in ((5,), (6,)) or not np.isfinite(p).all() or p[0] < 0 or p[1] <= 0 \
                or p[2] not in (0, 1) or (len(p) == 6 and p[5] not in NARROWS):
            raise ValueError("damaged joint parameters")
        pools = {}
        for name in (*POOLS, COLD_MODEL):
            if f"{prefix}pool_{name}" in arrays:
                v = np.asarray(arrays[f"{prefix}pool_{name}"], dtype=float)
                if v.ndim != 1 or not np.isfinite(v).all():
                    raise ValueError(f"damaged residual pool {name!r}")
                pools[name] = v
        # (files from before the exponent: the whole share)
        return cls(pools, float(p[0]), SCALES[int(p[2])], float(p[1]), int(p[3]), bool(p[4]),
                   float(p[5]) if len(p) == 6 else 1.0)


#: the marginals' scales (stored by position)
SCALES = ("model", "row")
#: candidate exponents of the narrowing by the results given (the calibration's choice)
NARROWS = (0.0, 0.5, 1.0)


# -- what an engine gives ---------------------------------------------------------------------------------
@dataclass
class RowInputs:
    """What the joint distribution of one dataset needs from a kriging engine (standardized units).

    Attributes
    ----------
    profile : ndarray, shape (n_models,)
        ``M``: the engine's profile of the dataset over every model.
    spread : float
        The spread ``s`` the engine answers with (records pooled with the feature prior).
    log_spread_prior : float
        The feature prior of the log-spread (pooled with the records, as the fit pools them).
    models, values : ndarray
        The dataset's stored records.
    fit_profile : ndarray
        The profile at those records as the fit saw it (each candidate without the record itself).
    cov : DenseCovariance or LowRankCovariance
        The engine's residual covariance (its kriging's).
    clip : callable
        The engine's map of accuracies into [0, 1].
    cov_counts, cov_rows, cov_shrink : ndarray, int, float
        Per model the datasets behind the covariance recording it, how many datasets, its shrinkage
        (:func:`~.stages.kriging.krige_row_joined`; ``cov_counts`` None: a model file from before them).
    """

    profile: np.ndarray
    spread: float
    log_spread_prior: float
    models: np.ndarray
    values: np.ndarray
    fit_profile: np.ndarray
    cov: object
    clip: Callable[[np.ndarray], np.ndarray]
    cov_counts: np.ndarray | None = None
    cov_rows: int = 0
    cov_shrink: float = 0.0


def condition(inp: RowInputs, models: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float, np.ndarray,
                                                                                   np.ndarray]:
    """The engine's kriging of one dataset re-solved with results ``values`` of ``models`` added (no refit).

    A result replaces a stored record of the same model. The spread is pooled again from the records and
    results with the feature prior (a dataset without records: the results' sd weighed against the variance
    the profile and the covariance expect over those models, :func:`_expected_var`; the user chose them, often
    the top few, which look alike: pooled as records, they would make the dataset look narrow), the GLS level
    and kriging weights solved again with the engine's own
    covariance: exactly the engine's answer for a dataset that had these records when it was fitted, but
    for what they would have changed elsewhere in the fit (the stack, the other datasets' standardization,
    the covariance outside the block of its known models). Its residuals at its records and results join the
    block of its known models, once it has :data:`~.stages.kriging.COV_MIN_KNOWN` of them
    (:func:`~.stages.kriging.krige_row_joined`): on a zoo of a handful of datasets its own residuals are a
    good part of what a fit would have known, and a block estimated without them can be close to singular
    in the directions they take (kriged there, a dataset of the zoo given results far from what its records
    said could end up worse than without them). Results that only repeat its stored records change nothing.

    The level stays unknown, as in the fit, also for a dataset without records, whose variances keep the
    level's prior (:meth:`JointModel.posterior`): its first result moves every centre alike (one known cell
    tells the level and leaves no residual to krige), the second and later ones move the models that err
    with them. Centres with the level's prior too (Bayesian kriging: the prior mean the answer without
    results, its variance the calibrated ``rho``) were measured in the sequential protocol (each zoo's
    ``logo`` targets, no refit) at commit 2f2a1ba: their intervals covered closer to 0.80 after 1-4 results
    on TransferGraph (0.81 / 0.78 / 0.80 / 0.77 against 0.81 / 0.84 / 0.93 / 0.87) but further from it on
    vtab-hf (0.72 / 0.64 / 0.69 / 0.81 against 0.77 / 0.77 / 0.83 / 0.79), and the plan's regret@3 was
    worse on three zoos (TransferGraph 5.75 against 5.50 points, vtab-hf 5.06 against 4.06, DomainNet-270
    0.51 against 0.47; parc-71 0.19 both).

    Returns
    -------
    centres : ndarray, shape (n_models,)
        Known cells hold their value.
    spread : float
    known_models, known_values : ndarray
        The stored records and the results together (sorted by model).
    """
    stored = dict(zip(inp.models.tolist(), zip(inp.values.tolist(), inp.fit_profile.tolist())))
    news = False  # (results that only repeat stored records change nothing)
    for j, y in zip(np.asarray(models).tolist(), np.asarray(values, dtype=float).tolist()):
        # the profile at the cell as a fit with the result would see it: the fit's own where the cell had a
        # record (without the record itself), the row's profile where it had none (it never saw the cell)
        news = news or int(j) not in stored or stored[int(j)][0] != float(y)
        stored[int(j)] = (float(y), stored[int(j)][1] if int(j) in stored else float(inp.profile[j]))
    K = np.array(sorted(stored), dtype=np.int64)
    y = np.array([stored[j][0] for j in K])
    m_fit = np.array([stored[j][1] for j in K])
    n_models = len(inp.profile)
    cells = Cells(np.zeros(len(K), np.int64), K, y, (1, n_models), assume_sorted=True)
    if len(inp.models):  # (as the fit pools a dataset's records)
        s = float(pooled_scale(cells, np.array([inp.log_spread_prior]))[0])
    else:  # the user chose the models: their spread, relative to what the row's profile makes of them
        k, sd = row_sd(cells)
        if len(K) >= 2:
            sd *= math.sqrt(_expected_var(inp.cov, inp.profile) / max(_expected_var(inp.cov, inp.profile, K), 1e-12))
        s = float(pool_log_sd(k, sd, np.array([inp.log_spread_prior]), PRIOR_WEIGHT)[0])
    if news and inp.cov_counts is not None and len(K) >= COV_MIN_KNOWN and inp.cov_rows > 0:
        level, alpha = krige_row_joined(inp.cov, K, y / s - m_fit, inp.cov_counts, inp.cov_rows, inp.cov_shrink)
    else:
        level, alpha = krige_row(inp.cov, K, y / s - m_fit)
    centres = inp.clip(s * (level + inp.profile + inp.cov.cross(alpha[None, :], K[None, :])[0]))
    centres[K] = y
    return np.clip(centres, 0.0, 1.0), s, K, y


def _expected_var(cov, profile: np.ndarray, idx: np.ndarray | None = None) -> float:
    """The expected (population) variance of ``profile + e`` over the models ``idx`` (all: None), ``e ~ N(0, S)``:
    the profile's variance there plus ``(tr S - 1'S1 / k) / k``. A dataset's spread is the sd of its accuracies
    over the zoo's models; results at models of a smaller expected variance say as much times ``sqrt(v_all /
    v_idx)``."""
    M = profile if idx is None else profile[idx]
    tr, tot = cov.moments(idx)
    return float(M.var()) + (tr - tot / len(M)) / len(M)


# -- fixed draws --------------------------------------------------------------------------------------------
_M1, _M2, _GOLD = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (wrapping uint64 arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


#: columns of the table of fixed normals the per-model streams are read from
_TABLE_WIDTH = 1024


@functools.lru_cache(maxsize=4)
def _normal_table(seed: int) -> np.ndarray:
    """(N_DRAWS, _TABLE_WIDTH) fixed standard normals (made once per seed and process)."""
    return np.random.default_rng([seed, 77]).standard_normal((N_DRAWS, _TABLE_WIDTH))


def stream_normals(seed: int, n: int, cols: np.ndarray, salt: int = 0) -> np.ndarray:
    """(n, len(cols)) standard normals; column ``j`` is a fixed function of (seed, salt, j) alone, and its first
    ``n`` values do not depend on ``n``.

    The first :data:`N_DRAWS` rows are read from one table of fixed normals: model ``j`` takes column ``j mod
    width``, cyclically shifted by a hash of (``j div width``, salt), so models sharing a column get unrelated
    orders of it (three passes over the draws instead of hashing each one). Rows from :data:`N_DRAWS` on are
    each hashed (splitmix64, Box-Muller).
    """
    cols = np.asarray(cols, dtype=np.int64)
    if n > N_DRAWS:  # the table's rows first, so that the first n never depend on n
        return np.concatenate([stream_normals(seed, N_DRAWS, cols, salt),
                               _hashed_normals(seed, np.arange(N_DRAWS, n), cols, salt)])
    with np.errstate(over="ignore"):
        shift = (_mix((cols // _TABLE_WIDTH).astype(np.uint64) * _GOLD + np.uint64(salt) * _M1 + _GOLD)
                 % np.uint64(N_DRAWS)).astype(np.int64)
    flat = np.arange(n)[:, None] + shift[None, :]  # the rows, then the flat positions, in place
    flat %= N_DRAWS
    flat *= _TABLE_WIDTH
    flat += (cols % _TABLE_WIDTH)[None, :]
    return np.take(_normal_table(int(seed)).reshape(-1), flat)


def _hashed_normals(seed: int, rows: np.ndarray, cols: np.ndarray, salt: int) -> np.ndarray:
    """Standard normals of rows ``rows`` of :func:`stream_normals` beyond its table, each hashed."""
    with np.errstate(over="ignore"):
        base = _mix(np.uint64(seed) * _GOLD + np.uint64(salt) + _GOLD)
        key = _mix(base ^ (cols.astype(np.uint64)[None, :] * _GOLD)) + rows.astype(np.uint64)[:, None] * _GOLD
        x = _mix(key)  # two 32-bit uniforms from one 64-bit mix (Box-Muller)
    u1 = ((x >> np.uint64(32)).astype(np.float64) + 0.5) / 2.0 ** 32
    u2 = (x & np.uint64(0xFFFFFFFF)).astype(np.float64) / 2.0 ** 32
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


class _Uncertainty:
    """The covariance of the errors (the engine's, made positive semi-definite) and its fixed draws.

    One per (covariance, seed, draws): :func:`_uncertainty` keeps it while the covariance lives. Draws are
    ``Z L'`` (dense: ``L`` a square root of ``S``, ``Z`` one fixed stream of normals per model) or
    ``Zf V' + Zi sqrt(psi)`` (low rank: ``Zf`` fixed factor draws, ``Zi`` a stream per model); conditional
    draws are made from the rows of ``L`` or ``V`` the known and the asked models need, never the whole matrix
    of draws.
    """

    def __init__(self, cov, seed: int, n_draws: int = N_DRAWS):
        self.seed, self.n_draws = seed, n_draws
        self.S = self.V = self._L = None
        if isinstance(cov, LowRankCovariance):
            self.V, self.psi = np.asarray(cov.V, float), np.asarray(cov.psi, float)
            self.n = len(self.psi)
        elif isinstance(cov, DenseCovariance):
            self.S, self._L = _psd(np.asarray(cov.S, float))
            self.n = len(self.S)
        else:  # independent (the fallback): S = I
            self.n = int(cov)

    @functools.cached_property
    def diag(self) -> np.ndarray:
        if self.S is not None:
            return np.diag(self.S).copy()
        if self.V is not None:
            return (self.V * self.V).sum(1) + self.psi
        return np.ones(self.n)

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if self.S is not None:
            return self.S[np.ix_(rows, cols)]
        if self.V is not None:
            out = self.V[rows] @ self.V[cols].T
            hit = rows[:, None] == cols[None, :]
            return out + hit * self.psi[rows][:, None] if hit.any() else out
        return (rows[:, None] == cols[None, :]).astype(float)

    @functools.cached_property
    def _Z(self) -> np.ndarray:
        """Dense: the fixed (n_draws, n_models) normals (one stream per model)."""
        return stream_normals(self.seed, self.n_draws, np.arange(self.n), salt=1)

    @functools.cached_property
    def _Zf(self) -> np.ndarray:
        """Low rank: the fixed (n_draws, rank) normals of the factors."""
        return stream_normals(self.seed, self.n_draws, np.arange(self.V.shape[1]), salt=3)

    def _idio(self, cols: np.ndarray, n: int) -> np.ndarray:
        return stream_normals(self.seed, n, cols, salt=2)

    def draws(self, cols: np.ndarray, n: int | None = None) -> np.ndarray:
        """(n, len(cols)) fixed draws of N(0, S) at ``cols`` (the first ``n`` of every model's stream)."""
        cols = np.asarray(cols, dtype=np.int64)
        n = self.n_draws if n is None else n
        if self.S is not None:
            return self._Z[:n] @ self._L[cols].T
        if self.V is None:
            return self._idio(cols, n)
        return self._Zf[:n] @ self.V[cols].T + self._idio(cols, n) * np.sqrt(self.psi[cols])

    def full(self, n: int) -> np.ndarray | None:
        """Dense: the draws of every model, ``Z L'``, once the models asked for add up to twice the zoo's (one
        matrix product then costs less than a product per dataset); None before."""
        self._asked = getattr(self, "_asked", 0) + 1
        if getattr(self, "_E", None) is None and self._asked * 8 >= self.n:
            self._E = self._Z @ self._L.T
        return None if getattr(self, "_E", None) is None else self._E[:n]

    @functools.cached_property
    def level_draws(self) -> np.ndarray:
        """(n_draws,) fixed standard normals of the level of a dataset without records."""
        return stream_normals(self.seed, self.n_draws, np.zeros(1, np.int64), salt=4)[:, 0]

    def kriging(self, K: np.ndarray, U: np.ndarray, rho: float = 0.0) -> "_Kriged":
        """The conditional of the models ``U`` given the known ``K``: universal kriging (the level unknown, no
        prior on it), or with ``rho > 0`` the level's prior ``N(0, rho)`` (the kriging of ``S + rho 11'``)."""
        if self.V is not None:  # Woodbury: A^-1 = Psi^-1 - Psi^-1 V (I + V' Psi^-1 V)^-1 V' Psi^-1
            VK, pinv = self.V[K], 1.0 / self.psi[K]
            PV = VK * pinv[:, None]
            inner = VK.T @ PV
            inner[np.diag_indices(len(inner))] += 1.0
            C = np.linalg.solve(inner, PV.T)  # V_K' A^-1 (r, k): W = V_U C, as U and K share no model
            Ai1 = pinv - PV @ np.linalg.solve(inner, PV.sum(0))
            VU = self.V[U]
            reduce = ((VU @ (C @ VK)) * VU).sum(1)
            b = 1.0 - VU @ C.sum(1)
            Wt = None
        else:
            A = self.block(K, K)
            A[np.diag_indices(len(K))] += 1e-9 * max(float(np.trace(A)) / max(len(K), 1), 1e-12)
            B = self.block(U, K)
            sol = np.linalg.solve(A, np.column_stack([B.T, np.ones(len(K))]))
            Wt, Ai1 = sol[:, :-1], sol[:, -1]  # W' = A^-1 B'
            reduce = (Wt.T * B).sum(1)
            b = 1.0 - Wt.sum(0)
            C = None
        q = float(Ai1.sum())
        qe = q + 1.0 / rho if rho > 0 else q  # the level's posterior precision
        var = self.diag[U] - reduce + b * b / qe
        # (with the prior, P 1 = 1 - b / (1 + rho q): the level's own draws enter the conditional draws)
        lev = math.sqrt(rho) * b / (1.0 + rho * q) if rho > 0 else None
        return _Kriged(self, K, U, Wt, C, Ai1 / qe, b, np.maximum(var, 1e-12), lev)


_CACHE: "weakref.WeakKeyDictionary" = None


def _uncertainty(cov, seed: int, n_draws: int) -> _Uncertainty:
    """The :class:`_Uncertainty` of an engine's covariance (built once per covariance object, seed and draws)."""
    import weakref

    global _CACHE
    if isinstance(cov, int):
        return _Uncertainty(cov, seed, n_draws)
    if _CACHE is None:
        _CACHE = weakref.WeakKeyDictionary()
    per = _CACHE.setdefault(cov, {})
    if (seed, n_draws) not in per:
        per[(seed, n_draws)] = _Uncertainty(cov, seed, n_draws)
    return per[(seed, n_draws)]


@dataclass
class _Kriged:
    unc: _Uncertainty
    K: np.ndarray
    U: np.ndarray
    Wt: np.ndarray | None  # A^-1 S_KU (dense)
    C: np.ndarray | None   # V_K' A^-1 (low rank: W = V_U C)
    g: np.ndarray          # A^-1 1 / q: the GLS level's weights (with the level's prior: / (q + 1 / rho))
    b: np.ndarray          # 1 - W 1 per unknown model
    var: np.ndarray        # conditional variance per unknown model
    lev: np.ndarray | None = None  # the level's draws' weight per unknown model (a prior on the level), or None

    def standard_draws(self, pos: np.ndarray, n: int | None = None) -> np.ndarray:
        """Conditional draws (standard units) of the unknown models ``U[pos]``: Matheron's rule with the
        universal-kriging predictor ``P`` (exact conditional covariance, the level integrated out),
        ``e_C - P e_K``, made from the rows of the square root the models need; with the level's prior
        (``lev``), ``P 1 != 1`` and the level's own fixed draws add ``c (1 - P 1)``."""
        unc = self.unc
        n = unc.n_draws if n is None else n
        cols = self.U[pos]
        b = self.b[pos]
        if unc.S is None and len(self.K) <= len(cols):
            # Low rank, as many known models as asked or fewer: with P = V_c C + b g' the draws
            # Zf (V_c - P V_K)' + Zi_c sqrt(psi_c) - (Zi_K sqrt(psi_K)) P' are
            # (Zf M' - A C') V_c' - (Zf h + A g) b' + Zi_c sqrt(psi_c), M = I - C V_K, h = V_K' g, A = Zi_K sqrt(psi_K):
            # one (draws x rank) by (rank x models) product instead of one over the known models
            VK = unc.V[self.K]
            Zf = unc._Zf[:n]
            A = unc._idio(self.K, n) * np.sqrt(unc.psi[self.K])
            M = np.eye(VK.shape[1]) - self.C @ VK
            left = np.column_stack([Zf @ M.T - A @ self.C.T, -(Zf @ (VK.T @ self.g) + A @ self.g)])
            G = left @ np.column_stack([unc.V[cols], b]).T  # (the rank-one part as one more factor)
            G += unc._idio(cols, n) * np.sqrt(unc.psi[cols])
            return self._standardized(G, pos, n)
        W = self.Wt[:, pos].T if self.Wt is not None else unc.V[cols] @ self.C
        P = W + b[:, None] * self.g[None, :]
        if unc.S is not None:
            E = unc.full(n)
            if E is not None:  # (every model's draws, made once many rows are asked for)
                G = E[:, cols] - E[:, self.K] @ P.T
            else:
                G = unc._Z[:n] @ (unc._L[cols] - P @ unc._L[self.K]).T
        else:  # more known models than asked: their own parts, projected: N(0, P Psi_K P'), in the asked models' size
            G = unc._Zf[:n] @ (unc.V[cols] - P @ unc.V[self.K]).T + unc._idio(cols, n) * np.sqrt(unc.psi[cols])
            Q = (P * unc.psi[self.K][None, :]) @ P.T
            G -= stream_normals(unc.seed, n, cols, salt=5) @ _psd(Q)[1].T
        return self._standardized(G, pos, n)

    def _standardized(self, G: np.ndarray, pos: np.ndarray, n: int) -> np.ndarray:
        """The conditional draws ``G`` (a fresh array, changed in place) plus the level's part, over their sd."""
        if self.lev is not None:
            G += self.unc.level_draws[:n, None] * self.lev[pos][None, :]
        G /= np.sqrt(self.var[pos])[None, :]
        return G


def _psd(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(``S``, its Cholesky factor) if positive definite, else its nearest positive semi-definite matrix
    (negative eigenvalues at 0) and a square root of it."""
    S = (S + S.T) / 2
    try:
        return S, np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        w, U = np.linalg.eigh(S)
        L = U * np.sqrt(np.maximum(w, 0.0))
        return L @ L.T, L


def _one_thread(method):
    """Run ``method`` with one BLAS thread: a row's products are small, and threads only synchronize."""
    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with one_blas_thread():
            return method(*args, **kwargs)
    return wrapped


# -- one row's distribution -------------------------------------------------------------------------------
@dataclass
class Plan:
    """A plan: models in order, the expected best accuracy and P(found) once the first ``n`` are fine-tuned."""

    models: list
    expected_best: list
    p_found: list


class RowPosterior:
    """The joint distribution of one dataset's accuracies.

    Attributes
    ----------
    mu : ndarray, shape (n_models,)
        Centres (known cells: their value).
    sd : ndarray
        Scale of each unknown model's error (0 at known cells), accuracy units.
    known : ndarray of bool
    pool, cold_pool : Pool
        The dataset's pool; that of models without records in the fit.
    cold_models : ndarray of bool
    """

    def __init__(self, mu, sd, known, pool: Pool, cold_pool: Pool, cold_models, factor: float,
                 draw: Callable[[np.ndarray], np.ndarray], n_draws: int = N_DRAWS):
        self.mu, self.sd, self.known, self.n_draws = mu, sd, known, n_draws
        self.pool, self.cold_pool = pool, cold_pool
        self.cold_models = cold_models & ~known
        self.factor = factor
        self._draw = draw  # (unknown models, n) -> (n, k) standard draws (the first n of each model's)

    @property
    def n_models(self) -> int:
        return len(self.mu)

    def _by_pool(self, cols: np.ndarray, fn) -> np.ndarray:
        """``fn(pool, sel)`` per pool over the models ``cols`` (the dataset's pool, then the cold models')."""
        cold = self.cold_models[cols]
        out = np.empty(len(cols))
        for pool, sel in ((self.pool, ~cold), (self.cold_pool, cold)):
            if sel.any():
                out[sel] = fn(pool, sel)
        return out

    def _bounds(self, cols: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.mu[cols].copy(), self.mu[cols].copy()
        unk = ~self.known[cols]
        if unk.any():
            c = cols[unk]
            s = factor * self.sd[c]
            lo[unk] = self.mu[c] + s * self._by_pool(c, lambda p, sel: p.quantile(_TAIL))
            hi[unk] = self.mu[c] + s * self._by_pool(c, lambda p, sel: p.quantile(1 - _TAIL))
        return lo, hi

    def errors(self, cols: np.ndarray, n: int | None = None) -> np.ndarray:
        """(n, len(cols)) joint draws of the errors ``sd_j T(g_j)`` of the unknown models ``cols`` (``n``: the
        first draws only; default all)."""
        cols = np.asarray(cols, dtype=np.int64)
        g = self._draw(cols, self.n_draws if n is None else n)
        cold = self.cold_models[cols]
        if not cold.any():  # (one pool: no masked copies of the draws)
            z = self.pool.transform(g)
        else:
            z = np.empty_like(g)
            for pool, sel in ((self.pool, ~cold), (self.cold_pool, cold)):
                if sel.any():
                    z[:, sel] = pool.transform(g[:, sel])
        z *= self.sd[cols]
        return z

    def draws(self, cols: np.ndarray, factor: float = 1.0, n: int | None = None) -> np.ndarray:
        """(n, len(cols)) joint draws of the accuracies of ``cols`` (known cells constant), in [0, 1]."""
        cols = np.asarray(cols, dtype=np.int64)
        n = self.n_draws if n is None else n
        unk = ~self.known[cols]
        out = np.repeat(self.mu[cols][None, :], n, axis=0)
        if unk.any():
            out[:, unk] += factor * self.errors(cols[unk], n)
        return np.clip(out, 0.0, 1.0)

    def interval(self, cols: np.ndarray, level: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        """The central ``level`` interval of each unknown model of ``cols`` (its marginal: the centre plus ``sd``
        times its pool's quantiles), clipped to [0, 1]. It holds the centre (a pool's quantiles are taken no
        further in than 0: at low levels an asymmetric pool's central quantiles can both be on one side), so
        only the lower bound can fall below 0 and only the upper one above 1."""
        a = (1.0 - level) / 2
        lo = self._by_pool(cols, lambda p, sel: min(p.quantile(a), 0.0))
        hi = self._by_pool(cols, lambda p, sel: max(p.quantile(1.0 - a), 0.0))
        mu, sd = self.mu[cols], self.sd[cols]
        return np.maximum(mu + sd * lo, 0.0), np.minimum(mu + sd * hi, 1.0)

    def candidates(self, among: np.ndarray | None = None, factor: float | None = None) -> np.ndarray:
        """Models of ``among`` that can be the best of ``among``: the upper tail reaches every other's lower tail."""
        factor = self.factor if factor is None else factor
        cand = np.ones(self.n_models, bool) if among is None else np.asarray(among, bool)
        cols = np.flatnonzero(cand)
        if not len(cols):
            return cols
        lo, hi = self._bounds(cols, factor)
        keep = hi >= lo.max()
        known = self.known[cols]
        if known.any():  # of the known ones, only those tied at the top can be the best
            top = self.mu[cols][known].max()
            keep &= ~known | (self.mu[cols] >= top)
        return cols[keep]

    def p_stays(self, p_best: np.ndarray) -> float:
        """The probability that the best known cell (record or result) stays the best: the known models' share of
        ``p_best`` (this row's P(best), e.g. :meth:`p_best`'s), at most 1. What ``recsys plan`` says on stderr
        and the sequential protocol scores (``stay@n``)."""
        return min(float(np.asarray(p_best)[self.known].sum()), 1.0)

    @_one_thread
    def p_best(self, among: np.ndarray | None = None, factors=None) -> np.ndarray | dict:
        """P(each model is the best of ``among``; default all), from the joint draws; ties shared.

        ``factors``: a sequence of factors on the errors (the calibration's fit): a dict factor -> P(best).
        """
        grid = (self.factor,) if factors is None else tuple(factors)
        out = {f: np.zeros(self.n_models) for f in grid}
        cand = self.candidates(among, max(grid))
        if len(cand) == 1:
            for f in grid:
                out[f][cand] = 1.0
        elif len(cand):
            unk = ~self.known[cand]
            base = self.mu[cand][None, :]
            # thousands of models that can still win: fewer draws each (a draw costs a pass over all of them)
            n = max(MIN_DRAWS, min(self.n_draws, P_BEST_CELLS // len(cand)))
            if unk.all():
                E = self.errors(cand, n)
            else:
                E = np.zeros((n if unk.any() else 1, len(cand)))
                if unk.any():
                    E[:, unk] = self.errors(cand[unk], n)
            ties = np.unique(self.mu[cand][~unk])
            for i, f in enumerate(grid):  # (the last factor works in E itself: arrays of a million draws)
                X = E if i == len(grid) - 1 else E.copy()
                if f != 1.0:
                    X *= f
                X += base
                out[f][cand] = _win_shares(np.clip(X, 0.0, 1.0, out=X), ties)
        return out[grid[0]] if factors is None else out

    def expected_improvement(self, cols: np.ndarray, best: float, spread: float = 1.0) -> np.ndarray:
        """``E[max(min(X_j, 1) - best, 0)]`` of each model of ``cols`` (exact over its pool; ``best`` -inf: the
        expected accuracy, capped at 1 but not floored at 0).

        The missing floor matters only on a dataset without known cells, for a model whose uncertainty reaches
        below 0; flooring it there would favour such uncertain models and was measured to pick worse on
        brand-new datasets (vtab-hf ``logo``: regret@1 15.0 points against 10.9; its draws, and P(best), are
        clipped at both ends).

        On a dataset without records, the pool's mean (the centres' bias) counts in proportion to each model's
        scale, so of two near-equal centres the one with the larger (smaller) scale is preferred where the bias
        is up (down); a bias common to all models was measured and not adopted (DEVELOPERS.md, "Measured and not
        adopted").

        ``spread``: of ``X'_j = m_j + spread (min(X_j, 1) - m_j)`` instead, ``m_j`` the expected accuracy: the
        distribution narrowed (``spread`` < 1) or widened around its mean; 0 is ``max(m_j - best, 0)``, greedy
        on the expected accuracy (``benchmarks/plan_exploration.py`` compares them; the plan uses 1).
        """
        cols = np.asarray(cols, dtype=np.int64)
        if not spread >= 0:
            raise ValueError(f"spread must be >= 0, got {spread!r}")
        if not np.isfinite(best):
            return self._improvement(cols, None)
        if spread == 1.0:
            return self._improvement(cols, np.full(len(cols), float(best)))
        m = self._improvement(cols, None)
        if spread == 0.0:
            return np.maximum(m - best, 0.0)
        # E[max(m + s (Y - m) - best, 0)] = s E[max(Y - (m + (best - m) / s), 0)]
        return spread * self._improvement(cols, m + (best - m) / spread)

    def _improvement(self, cols: np.ndarray, best: np.ndarray | None) -> np.ndarray:
        """``E[max(min(X_j, 1) - best_j, 0)]`` per model of ``cols``; ``best`` None: ``E[min(X_j, 1)]``."""
        mu, sd = self.mu[cols], np.maximum(self.sd[cols], 1e-12)

        def ei(pool, sel):
            top = sd[sel] * pool.excess((1.0 - mu[sel]) / sd[sel])  # accuracies end at 1
            if best is None:
                return mu[sel] + sd[sel] * pool.mean - top
            return np.maximum(sd[sel] * pool.excess((best[sel] - mu[sel]) / sd[sel]) - top, 0.0)

        out = self._by_pool(cols, ei)
        k = self.known[cols]
        if k.any():
            out[k] = self.mu[cols][k] if best is None else np.maximum(self.mu[cols][k] - best[k], 0.0)
        return out

    @_one_thread
    def plan(self, budget: float, candidates: np.ndarray | None = None, cost: np.ndarray | None = None, *,
             summary: bool = True, spread: float = 1.0) -> Plan:
        """Greedy plan on the expected best accuracy (known results included) under the joint distribution.

        Each step takes the model that raises the expected best of the whole plan the most (per unit of
        ``cost`` when given, within ``budget`` in that unit; else ``budget`` models): the first exactly
        (expected improvement over the best result so far, from the pools), the next ones on the joint
        draws, so a model that errs with those already chosen adds little. Greedy on a monotone
        submodular objective (Nemhauser et al., 1978). Ties: the higher centre, then the lower index.
        ``summary=False``: a plan of one model without its expected best and P(found) (the first step only needs
        the exact expected improvement; the sequential protocol's picks). ``spread``: the first step's expected
        improvement on the distribution narrowed around its mean (:meth:`expected_improvement`; the benchmark of
        how much a plan should explore, ``benchmarks/plan_exploration.py``); the next steps do not use it.
        """
        cand = np.ones(self.n_models, bool) if candidates is None else np.asarray(candidates, bool).copy()
        cand &= ~self.known
        price = np.ones(self.n_models) if cost is None else np.asarray(cost, dtype=float)
        best0 = float(self.mu[self.known].max()) if self.known.any() else -np.inf
        cols = np.flatnonzero(cand)
        left = float(budget)
        chosen: list[int] = []
        expected: list[float] = []
        found: list[float] = []

        def affordable(idx):
            return idx[price[idx] <= left * (1 + 1e-12)]

        first_cols = affordable(cols)
        if not len(first_cols) or (cost is None and budget < 1):
            return Plan([], [], [])
        # step 1, exact: the expected improvement over the best result so far (per unit of cost)
        gain = self.expected_improvement(first_cols, best0, spread) / np.maximum(price[first_cols], 1e-12)
        first = int(first_cols[np.lexsort((first_cols, -self.mu[first_cols], -np.round(gain, 12)))[0]])
        if not summary and cost is None and budget < 2:
            return Plan([first], [], [])
        # the next steps on the joint draws of the models that can still matter (the others by centre)
        pool = self.candidates(cand | self.known, 1.0)
        pool = np.union1d(pool[~self.known[pool]], [first])
        if len(pool) > MAX_PLAN_POOL:
            _, hi = self._bounds(pool, 1.0)
            pool = np.union1d(pool[np.argsort(-hi, kind="stable")[:MAX_PLAN_POOL]], [first])
        X = self.draws(pool, n=min(PLAN_DRAWS, self.n_draws))
        best_any = np.maximum(X.max(1), best0)
        cur = np.full(len(X), best0)
        free = np.ones(len(pool), bool)
        j = first
        while True:
            i = int(np.searchsorted(pool, j))
            if i < len(pool) and pool[i] == j:
                free[i] = False
                cur = np.maximum(cur, X[:, i])
            chosen.append(j)
            left -= price[j]
            expected.append(float(cur.mean()))
            found.append(float((cur >= best_any).mean()))
            if cost is None and len(chosen) >= budget:
                break
            idx = np.flatnonzero(free)
            idx = idx[price[pool[idx]] <= left * (1 + 1e-12)]
            if len(idx):
                g = (np.maximum(cur[:, None], X[:, idx]).mean(0) - cur.mean()) / np.maximum(price[pool[idx]], 1e-12)
                j = int(pool[idx[np.lexsort((pool[idx], -self.mu[pool[idx]], -np.round(g, 12)))[0]]])
                continue
            rest = np.setdiff1d(affordable(cols), chosen)
            if not len(rest):
                break
            j = int(rest[np.lexsort((rest, -self.mu[rest] / np.maximum(price[rest], 1e-12)))[0]])
        return Plan(chosen, expected, found)


def _win_shares(X: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """Per column, the share of rows (draws) where it is the largest, a tie shared. Ties arise only at the ends of
    [0, 1] (clipped draws) or at known values (``ties``): only those rows are compared in full."""
    first = X.argmax(1)
    m = X[np.arange(len(X)), first]  # (the largest value: one pass over the draws, not two)
    out = np.bincount(first, minlength=X.shape[1]).astype(float)
    special = (m >= 1.0) | (m <= 0.0) | np.isin(m, ties)
    if special.any():
        Xs = X[special]
        top = Xs >= m[special, None]
        out -= np.bincount(Xs.argmax(1), minlength=X.shape[1])
        out += (top / top.sum(1, keepdims=True)).sum(0)
    return out / len(X)


# -- the model ---------------------------------------------------------------------------------------------
class JointModel:
    """Joint distributions of datasets for one fitted engine and its calibrated :class:`JointParams`.

    Parameters
    ----------
    engine : Engine
        Fitted; its ``row_inputs`` (kriging engines) or None (the independent fallback).
    params : JointParams
    cold_models : ndarray of bool, shape (n_models,)
        Models without any record in the fit.
    """

    def __init__(self, engine, params: JointParams, cold_models: np.ndarray, n_draws: int = N_DRAWS):
        self.engine, self.params = engine, params
        self.cold_models = np.asarray(cold_models, dtype=bool)
        self.kriging = params.kriging and hasattr(engine, "row_inputs") and getattr(engine, "covariance", None) \
            is not None
        self.n_draws = n_draws

    @functools.cached_property
    def uncertainty(self) -> _Uncertainty:
        if not self.kriging:
            return _uncertainty(len(self.cold_models), self.params.seed, self.n_draws)
        cov = getattr(self.engine, "error_covariance", None) or self.engine.covariance
        return _uncertainty(cov, self.params.seed, self.n_draws)

    def inputs(self, block) -> list[RowInputs] | None:
        return self.engine.row_inputs(block) if self.kriging else None

    @_one_thread
    def posterior(self, pred: np.ndarray, stored: np.ndarray, given: Mapping[int, float] | None = None,
                  inp: RowInputs | None = None, *, scale: str | None = None) -> RowPosterior:
        """The joint distribution of one dataset.

        Parameters
        ----------
        pred : ndarray, shape (n_models,)
            The engine's answer for the dataset (its centres when no result is given).
        stored : ndarray, shape (n_models,)
            Its stored records (NaN elsewhere).
        given : mapping of model index to accuracy, optional
            Results just obtained: the centres are conditioned on them (kriging engines) and they are
            known cells (a result replaces a stored record).
        inp : RowInputs
            The engine's inputs for the dataset (kriging engines).
        scale : {"model", "row"}, optional
            Default: the calibrated one (:class:`JointParams`).
        """
        p = self.params
        scale = scale or p.scale
        m = len(pred)
        known_vals = np.array(stored, dtype=float)
        if self.kriging and inp is not None and len(inp.models):  # (the engine's own records: always known)
            gap = np.isnan(known_vals[inp.models])
            known_vals[inp.models[gap]] = inp.values[gap]
        known0 = ~np.isnan(known_vals)  # (before the results given)
        if given:
            gm = np.fromiter(given.keys(), dtype=np.int64, count=len(given))
            gv = np.fromiter(given.values(), dtype=float, count=len(given))
            known_vals[gm] = gv
        known = ~np.isnan(known_vals)
        K = np.flatnonzero(known)
        U = np.flatnonzero(~known)
        mu = np.array(pred, dtype=float)
        unc = self.uncertainty
        if not self.kriging:
            mu[K] = known_vals[K]
            sd = np.where(known, 0.0, 1.0)
            draw = unc.draws  # independent: (cols, n) -> the models' own streams
        else:
            if given:
                mu, s, _, _ = condition(inp, gm, gv)
            else:
                s = inp.spread
            if len(K):
                # a dataset without records before the results: its level keeps its prior
                kr = unc.kriging(K, U, 0.0 if known0.any() else p.rho)
                var = kr.var
                pos = np.full(m, -1)
                pos[U] = np.arange(len(U))

                def draw(cols, n, kr=kr, pos=pos):
                    return kr.standard_draws(pos[cols], n)
            else:
                var = unc.diag + p.rho
                zc = math.sqrt(p.rho) * unc.level_draws

                def draw(cols, n, var=var, zc=zc):
                    return (unc.draws(cols, n) + zc[:n, None]) / np.sqrt(var[cols])[None, :]

                var = var[U]
            sd = np.zeros(m)
            moved = bool(given) and not np.array_equal(known, known0)
            if moved:  # the answer without the results, narrowed by the share of variance they leave
                prior = self._prior_var(known0, U)
                narrowed = np.maximum(var / prior, VAR_FLOOR) ** (p.narrow / 2)
                var = prior
            if scale == "model":
                own = unc.diag[U] + (0.0 if known0.any() else p.rho)
                sd[U] = s * np.sqrt(np.maximum(var, VAR_FLOOR * own))
            else:
                sd[U] = s
            if moved:
                sd[U] *= narrowed
        mu[K] = known_vals[K]
        return RowPosterior(mu, sd, known, p.pool(pool_name(len(K), m, bool(given))), p.pool(COLD_MODEL),
                            self.cold_models,
                            p.factor, draw, self.n_draws)

    def _prior_var(self, known: np.ndarray, U: np.ndarray) -> np.ndarray:
        """The variance (standardized units) of each model of ``U`` given the cells ``known`` only."""
        K0 = np.flatnonzero(known)
        if not len(K0):
            return self.uncertainty.diag[U] + self.params.rho
        return self.uncertainty.kriging(K0, U).var  # (U holds no model of K0: the results only add known cells)


def brier(p: np.ndarray, truth: np.ndarray, among: np.ndarray) -> float:
    """Brier score of P(best of ``among``) against the truth's best (a tie for the best shared)."""
    t = np.where(among, truth, -np.inf)
    best = among & (t >= t.max())
    target = best / best.sum()
    return float(((p - target) ** 2)[among].sum())
