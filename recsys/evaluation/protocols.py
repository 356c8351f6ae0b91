"""Evaluation protocols (docs/protocols.md): the two published ones, their generalizations to any zoo, and the
evaluation loop.

Four protocols, of two kinds. *Missing-edge* protocols hide part of every
dataset's records (P1 and ``missing-edge``); *leave-one-dataset-out*
protocols hide all records of one target dataset at a time (P2 and ``logo``).

P1, DomainNet-270 missing-edge (Chen et al., 2024)
    Per repetition ``r`` (seed ``s_r``), exactly this random sequence::

        rng = np.random.default_rng(s_r)
        perm = rng.permutation(n_datasets)
        for g, group in enumerate(np.array_split(perm, 10)):        # 10 groups (27 each for 270)
            for j in group:                                         # in permutation order
                keep_j = rng.choice(recorded_models_of_j, n_keep(g, n_recorded_j), replace=False)

    with ``n_keep(g, n) = min(round_half_up((9 - g) / 10 * n), n - 1)`` (and 0
    when ``n == 0``): ``9 - g`` on DomainNet, where every dataset has 10 recorded
    models and ``rng.choice(recorded, ...)`` draws the same models as
    ``rng.choice(10, ...)``. The cap at ``n - 1`` keeps one hidden cell on zoos
    with few records per dataset (a dataset with nothing hidden would score
    F = truth trivially). The engine is fitted on the kept cells plus all
    metadata; F = truth where kept, prediction elsewhere; each dataset is
    scored over its recorded models (NaN truth cells are left out).

P2, TransferGraph leave-one-dataset-out (Li et al., 2024)
    Targets: every dataset with records and at least one transferability score
    (the 8 with LogME on ``transfergraph-image``); on a zoo without scores,
    every dataset with records. Per target (and repetition, i.e. engine seed):
    all its records are removed, the engine is fitted on the rest (metadata
    and every score stay, the target's included: they need no fine-tuning),
    and every model recorded on the target is predicted.

missing-edge (any zoo)
    P1's procedure on any zoo: ``G = min(10, datasets with records)`` groups
    (10 on every zoo with at least 10 recorded datasets, so P1's groups when
    the zoo is DomainNet-270), group ``g`` keeping ``n_keep(g, n)`` of a
    dataset's ``n`` records as above with ``G`` in place of 10: the number
    kept is spread evenly from 0 (cold start) to ``(G - 1) / G`` of the
    records. 10 repetitions (seeds 0..9) by default; scored as P1.

logo (leave-one-dataset-out, any zoo)
    P2's procedure on any zoo. Targets: every dataset with at least
    :data:`LOGO_MIN_RECORDS` records (or a given list). The target's
    transferability scores stay known, as in P2. One repetition by default.

Known-model bins (missing-edge kinds, :data:`BINS`): ``cold`` (none kept), then by the share of
the dataset's recorded models that were kept: ``<= 20%``, ``<= 40%``, ``<= 60%``, ``> 60%`` (on
DomainNet, 10 records per dataset: 1-2, 3-4, 5-6 and 7-9 kept).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..engines import DEFAULT_ENGINE, ENGINES, get_engine_class, make_engine
from ..engines.base import quiet_fits
from ..engines.answer import answer
from ..engines.calibration import calibrate
from ..errors import RecsysError, UsageError, closest
from ..features import FeatureBuilder, ZooData
from ..zoo import Zoo
from .metrics import dataset_metrics, metric_names, ndcg_at_k

__all__ = [
    "BINS",
    "ProtocolSpec",
    "PROTOCOLS",
    "Fold",
    "ProtocolResult",
    "known_bin",
    "p1_keep_count",
    "p1_masks",
    "p1_folds",
    "p2_targets",
    "p2_folds",
    "fold_zoo_data",
    "evaluate",
    "p1",
    "p2",
    "missing_edge",
    "logo",
    "missing_edge_folds",
    "logo_targets",
    "as_zoo_data",
    "LOGO_MIN_RECORDS",
    "FitCache",
    "BRIER_COLUMNS",
    "RELIABILITY_BINS",
]

log = logging.getLogger(__name__)

#: known-model bins: none of a dataset's records known, then the share of them known (docs/protocols.md)
BINS = ("cold", "<= 20%", "<= 40%", "<= 60%", "> 60%")
N_GROUPS = 10
#: a dataset is a logo target when it has at least this many records
LOGO_MIN_RECORDS = 10
#: per-dataset columns of P(best of the recorded models): the joint distribution's and the independent one's
BRIER_COLUMNS = ("brier", "brier_independent", "p_top_rec", "top_hit_rec", "p_top_rec_independent",
                 "top_hit_rec_independent")


@dataclass(frozen=True)
class ProtocolSpec:
    """What a protocol reports.

    Attributes
    ----------
    name : str
        ``"p1"``, ``"p2"``, ``"missing-edge"`` or ``"logo"``.
    title : str
    k : int
        Cut-off of NDCG@k and regret@k.
    default_zoo : str
        The zoo the published figures were measured on.
    default_repeats : int
    headline : tuple of str
        Metrics of the report's main table.
    kind : {"missing-edge", "logo", "sequential"}
        Part of every dataset hidden (scored by known-model bins), one
        whole dataset at a time (scored per target), or targets played one
        pick at a time (:mod:`recsys.evaluation.sequential`).
    published : bool
        The published protocol (P1, P2): its figures are printed beside ours
        when run on its default zoo.
    """

    name: str
    title: str
    k: int
    default_zoo: str
    default_repeats: int
    headline: tuple[str, ...] = ()
    kind: str = "missing-edge"
    published: bool = False

    @property
    def metrics(self) -> list[str]:
        """Per-dataset metrics: those of cut-off ``k``, plus NDCG@5 (the cross-zoo suite's) where ``k`` differs."""
        names = metric_names(self.k)
        return names if "ndcg@5" in names else [*names, "ndcg@5"]


PROTOCOLS: dict[str, ProtocolSpec] = {
    "p1": ProtocolSpec("p1", "P1: DomainNet-270 missing-edge protocol", 3, "domainnet-270", 10,
                       ("pearson", "kendall", "ndcg@3", "regret@1", "regret@3"), "missing-edge", True),
    "p2": ProtocolSpec("p2", "P2: TransferGraph leave-one-dataset-out protocol", 5, "transfergraph-image", 1,
                       ("pearson", "kendall", "ndcg@5", "regret@1", "regret@5"), "logo", True),
    "missing-edge": ProtocolSpec("missing-edge", "missing-edge protocol (P1's procedure on any zoo)", 5,
                                 "domainnet-270", 10, ("pearson", "kendall", "ndcg@5", "regret@1", "regret@5"),
                                 "missing-edge"),
    "logo": ProtocolSpec("logo", "logo: leave-one-dataset-out (P2's procedure on any zoo)", 5, "domainnet-270", 1,
                         ("pearson", "kendall", "ndcg@5", "regret@1", "regret@5"), "logo"),
    # (k: the picks per target; recsys.evaluation.sequential plays it)
    "sequential": ProtocolSpec("sequential", "sequential: pick, see the result, pick again (each logo target)", 5,
                               "domainnet-270", 1, ("regret@1", "regret@3", "regret@5"), "sequential"),
}


def get_spec(protocol: str | ProtocolSpec) -> ProtocolSpec:
    if isinstance(protocol, ProtocolSpec):
        return protocol
    key = str(protocol).lower()
    if key not in PROTOCOLS:
        raise RecsysError(f"unknown protocol {protocol!r}; accepted: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[key]


@dataclass
class Fold:
    """One fit/predict round of a protocol.

    Attributes
    ----------
    rep : int
        Repetition index (0-based).
    seed : int
        Seed of the masks (P1) and of the engine.
    label : str
        ``"rep 3"`` (P1) or the target dataset's name (P2).
    known : ndarray of bool, shape (n_datasets, n_models)
        Cells given to the engine (a subset of the recorded cells).
    rows : ndarray of int
        Datasets scored in this fold.
    group : ndarray of int, shape (n_datasets,)
        P1 group of each dataset (-1 in P2).
    """

    rep: int
    seed: int
    label: str
    known: np.ndarray
    rows: np.ndarray
    group: np.ndarray


# -- P1 ------------------------------------------------------------------------
def p1_keep_count(group: int, n_recorded: int, n_groups: int = N_GROUPS) -> int:
    """Models kept by a dataset of ``group`` with ``n_recorded`` records (``9 - g`` on DomainNet)."""
    if n_recorded <= 0:
        return 0
    # round half up of (n_groups - 1 - g) / n_groups * n, in integers (no float ties).
    num = (n_groups - 1 - group) * n_recorded
    keep = (2 * num + n_groups) // (2 * n_groups)
    return int(min(keep, n_recorded - 1))


def p1_masks(recorded: np.ndarray, seed: int, n_groups: int = N_GROUPS) -> tuple[np.ndarray, np.ndarray]:
    """Known cells of one P1 repetition.

    Parameters
    ----------
    recorded : ndarray of bool, shape (n_datasets, n_models)
    seed : int
        Seeds ``np.random.default_rng``; the call sequence is in the module docstring.

    Returns
    -------
    known : ndarray of bool, same shape
    group : ndarray of int, shape (n_datasets,)
    """
    recorded = np.asarray(recorded, dtype=bool)
    rng = np.random.default_rng(seed)
    return _missing_edge_masks(recorded, rng, rng.permutation(recorded.shape[0]), n_groups)


def _missing_edge_masks(recorded: np.ndarray, rng: np.random.Generator, perm: np.ndarray,
                        n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    known = np.zeros_like(recorded)
    group = np.full(recorded.shape[0], -1, dtype=np.int64)
    for g, members in enumerate(np.array_split(perm, n_groups)):
        for j in members:
            group[j] = g
            cells = np.flatnonzero(recorded[j])
            keep = rng.choice(cells, p1_keep_count(g, cells.size, n_groups), replace=False)
            known[j, keep] = True
    return known, group


def p1_folds(data: ZooData, seeds: Sequence[int]) -> list[Fold]:
    """One fold per seed: the P1 masks over ``data``'s recorded cells."""
    recorded = data.known
    rows = np.flatnonzero(recorded.any(1))
    folds = []
    for rep, seed in enumerate(seeds):
        known, group = p1_masks(recorded, int(seed))
        folds.append(Fold(rep=rep, seed=int(seed), label=f"rep {rep}", known=known, rows=rows, group=group))
    return folds


def missing_edge_folds(data: ZooData, seeds: Sequence[int]) -> list[Fold]:
    """One fold per seed: P1's masks on any zoo (``min(10, recorded datasets)`` groups).

    Datasets without records are left out of the groups (they have nothing to
    hide); with every dataset recorded and at least 10 of them, the masks are
    P1's exactly.
    """
    recorded = data.known
    rows = np.flatnonzero(recorded.any(1))
    n_groups = int(min(N_GROUPS, len(rows)))
    folds = []
    for rep, seed in enumerate(seeds):
        rng = np.random.default_rng(int(seed))
        known, group = _missing_edge_masks(recorded, rng, rng.permutation(rows), n_groups)
        folds.append(Fold(rep=rep, seed=int(seed), label=f"rep {rep}", known=known, rows=rows, group=group))
    return folds


# -- P2 ------------------------------------------------------------------------
def p2_targets(data: ZooData) -> np.ndarray:
    """Datasets held out in turn: those with records and a score (all with records if the zoo has none)."""
    has_records = data.known.any(1)
    scored = np.zeros(data.n_datasets, dtype=bool)
    for arr in data.scores.values():
        scored |= np.isfinite(arr).any(1)
    if scored.any():
        return np.flatnonzero(has_records & scored)
    return np.flatnonzero(has_records)


def logo_targets(data: ZooData, min_records: int = LOGO_MIN_RECORDS) -> np.ndarray:
    """Datasets held out in turn by ``logo``: those with at least ``min_records`` records."""
    return np.flatnonzero(data.known.sum(1) >= min_records)


def p2_folds(data: ZooData, seeds: Sequence[int], targets: Sequence[int | str] | None = None, *,
             default_targets: Callable[[ZooData], np.ndarray] | None = None) -> list[Fold]:
    """One fold per (seed, target): the target's records removed, everything else known.

    ``targets`` restricts the held-out datasets (indices or names; default
    ``default_targets(data)``, :func:`p2_targets` unless given).
    """
    recorded = data.known
    if targets is None:
        idx = (default_targets or p2_targets)(data)
    else:
        idx = np.array([int(t) if isinstance(t, (int, np.integer)) else data.dataset_ids.index(t) for t in targets],
                       dtype=np.int64)
    folds = []
    for rep, seed in enumerate(seeds):
        for t in idx:
            known = recorded.copy()
            known[t] = False
            folds.append(Fold(rep=rep, seed=int(seed), label=data.dataset_ids[t], known=known,
                              rows=np.array([t]), group=np.full(data.n_datasets, -1, dtype=np.int64)))
    return folds


def fold_zoo_data(data: ZooData, fold: Fold) -> ZooData:
    """What the engine of ``fold`` is fitted on: the fold's known cells, every feature and every score."""
    return data.with_Y(np.where(fold.known, data.Y, np.nan))


def known_bin(n_known: np.ndarray, n_recorded: np.ndarray) -> np.ndarray:
    """Bin label (from :data:`BINS`) of each dataset: cold, or the share of its recorded models known.

    Examples
    --------
    >>> known_bin([0, 1, 2, 2], [10, 10, 10, 3]).tolist()
    ['cold', '<= 20%', '<= 20%', '> 60%']
    """
    n_known = np.asarray(n_known, dtype=np.int64)
    n_recorded = np.maximum(np.asarray(n_recorded, dtype=np.int64), 1)
    # ceil(5 k / n) in integers: 1 for <= 20%, 2 for <= 40%, 3 for <= 60%, 4 above.
    idx = np.where(n_known <= 0, 0, np.minimum(-((-5 * n_known) // n_recorded), 4))
    return np.array(BINS, dtype=object)[idx]


# -- results ---------------------------------------------------------------------
@dataclass
class ProtocolResult:
    """Everything a protocol run measured, before aggregation.

    Attributes
    ----------
    spec : ProtocolSpec
    zoo : str
    engines : list of str
        As requested, in order (failed and n/a ones included).
    seeds : list of int
    per_dataset : pandas.DataFrame
        One row per (engine, rep, scored dataset): ``engine, rep, seed, fold,
        dataset, group, n_recorded, n_known, bin``, every metric of
        ``spec.metrics``, and coverage columns ``n_hidden`` (recorded cells not
        given to the engine), ``covered`` (how many of them fall in the
        interval, NaN when not calibrated), ``p_top`` / ``top_hit`` (the largest
        P(best) and whether that model is truly the best recorded one, 1/n when
        it ties with n - 1 others) and ``width`` (mean interval width over them,
        accuracy points).
    timing : pandas.DataFrame
        One row per successful (engine, fold): ``fit_s, predict_s, calibrate_s``.
    status : dict of str to str
        ``"ok"``, ``"failed: <error>"``, ``"partly failed (k of n folds): <error>"``
        or ``"n/a: no scores"`` per engine.
    errors : pandas.DataFrame
        ``engine, rep, fold, stage, error`` of every failure.
    truth : ndarray, shape (n_datasets, n_models)
    completed : dict of str to ndarray
        Per engine, F of the first repetition (P1) or the held-out predictions
        (P2), NaN where not predicted.
    known_first : ndarray of bool
        Cells known in the first repetition (P1; all False rows for P2 targets).
    group_first : ndarray of int
    model_ids, dataset_ids : tuple of str
    level : float
        Interval level whose coverage is measured.
    has_scores : bool
    """

    spec: ProtocolSpec
    zoo: str
    engines: list
    seeds: list
    per_dataset: pd.DataFrame
    timing: pd.DataFrame
    status: dict
    errors: pd.DataFrame
    truth: np.ndarray
    completed: dict
    known_first: np.ndarray
    group_first: np.ndarray
    model_ids: tuple = ()
    dataset_ids: tuple = ()
    level: float = 0.8
    has_scores: bool = False
    wall_s: float = 0.0
    notes: list = field(default_factory=list)
    #: per engine, P(best of the recorded models) binned against how often the model was the best: ``engine,
    #: method, bin, pairs, p_sum, best_sum`` (``method`` joint or independent; see :data:`RELIABILITY_BINS`)
    reliability: pd.DataFrame | None = None


#: bins of P(best) for the reliability tables
RELIABILITY_BINS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0 + 1e-9)


class FitCache:
    """Fitted engines and their calibrations, shared by protocol runs that fit an engine on the same data.

    The suite runs P1 and missing-edge on DomainNet-270 (the same masks), ``logo`` and ``sequential``
    on the same held-out targets: each fit and calibration is made once. Only the engines named are
    kept (the default one); a key is the engine, the seed and a digest of the training records and
    features.
    """

    def __init__(self, engines: Sequence[str] = (DEFAULT_ENGINE,)):
        self.engines = set(engines)
        self._fits: dict = {}
        self._cals: dict = {}

    @staticmethod
    def _key(name: str, seed: int, data: ZooData) -> tuple:
        import hashlib

        h = hashlib.sha1()
        r = data.records
        for a in (r.d, r.m, r.y, data.dataset_features, data.model_features, *[data.scores[k] for k in
                                                                                 sorted(data.scores)]):
            h.update(np.ascontiguousarray(a).tobytes())
        return name, int(seed), r.shape, h.hexdigest()

    def has(self, name: str, seed: int, data: ZooData) -> bool:
        """Is the fit of ``name`` on ``data`` kept?"""
        return name in self.engines and self._key(name, seed, data) in self._fits

    def fit(self, name: str, seed: int, data: ZooData, make: Callable[[], object]) -> tuple[object, float]:
        """The engine ``make()`` fitted on ``data`` and the fit's wall time (kept for the named engines)."""
        key = self._key(name, seed, data) if name in self.engines else None
        if key is not None and key in self._fits:
            return self._fits[key]
        t0 = time.perf_counter()
        engine = make().fit(data)
        out = (engine, time.perf_counter() - t0)
        if key is not None:
            self._fits[key] = out
        return out

    def calibrate(self, name: str, seed: int, data: ZooData, make: Callable[[], object]) -> tuple[object, float]:
        """:func:`~recsys.engines.calibration.calibrate` of engine ``make()`` on ``data`` and its wall time."""
        key = self._key(name, seed, data) if name in self.engines else None
        if key is not None and key in self._cals:
            return self._cals[key]
        t0 = time.perf_counter()
        cal = calibrate(make, data, seed=seed, independent=True)  # (the independent P(best), compared in pbest.md)
        out = (cal, time.perf_counter() - t0)
        if key is not None:
            self._cals[key] = out
        return out


def brier_rows(post, cal, pred: np.ndarray, known: np.ndarray, truth: np.ndarray, recorded: np.ndarray,
               unrecorded: np.ndarray) -> tuple[dict, np.ndarray]:
    """Brier score of P(best of the recorded models) of one dataset, joint and independent, and the
    (P joint, P independent, was the best) triple of each recorded model.

    The event scored is the best of the dataset's recorded models, the only one the truth decides (a
    tie for the best shared): the joint distribution's ``post.p_best(among=recorded)`` and
    :meth:`Calibration.p_best` with ``among`` the same models, both given the known cells.
    """
    from ..engines.joint import brier

    pj = post.p_best(recorded)
    pi = cal.p_best(pred[None, :], known[None, :], among=recorded[None, :], unrecorded=unrecorded)[0]
    t = np.where(recorded, truth, -np.inf)
    best = recorded & (t >= t.max())
    target = best / best.sum()
    out = {"brier": brier(pj, truth, recorded), "brier_independent": brier(pi, truth, recorded)}
    for tag, p in (("", pj), ("_independent", pi)):
        top = int(np.argmax(np.where(recorded, p, -1.0)))
        out["p_top_rec" + tag] = float(p[top])
        out["top_hit_rec" + tag] = float(target[top])  # (1/n for a tie of n at the top)
    return out, np.stack([pj[recorded], pi[recorded], best[recorded] / best.sum()], 1)


def reliability_table(triples: list, engine: str) -> list[dict]:
    """Binned (P(best), outcome) pairs of :func:`brier_rows` (rows of :attr:`ProtocolResult.reliability`)."""
    if not triples:
        return []
    a = np.concatenate(triples)
    out = []
    for col, method in ((0, "joint"), (1, "independent")):
        idx = np.digitize(a[:, col], RELIABILITY_BINS[1:-1])
        for b in range(len(RELIABILITY_BINS) - 1):
            sel = idx == b
            out.append({"engine": engine, "method": method, "bin": b, "pairs": int(sel.sum()),
                        "p_sum": float(a[sel, col].sum()), "best_sum": float(a[sel, 2].sum())})
    return out


def _describe(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _check_engines(engines: Sequence[str]) -> list[str]:
    engines = list(dict.fromkeys(engines))
    if not engines:
        raise RecsysError("no engine to evaluate; give at least one, e.g. --engines popularity,additive")
    for name in engines:
        if name not in ENGINES:
            hint = closest(name, ENGINES)
            raise UsageError(f"unknown engine {name!r}" + (f"; did you mean {', '.join(map(repr, hint))}?" if hint else "")
                              + f" (available: {', '.join(ENGINES)})")
    return engines


def _coverage_engines(coverage: str | bool | Sequence[str] | None, engines: Sequence[str]) -> set[str]:
    if coverage in (None, False, "none", "off"):
        return set()
    if coverage in (True, "default"):
        return {DEFAULT_ENGINE} & set(engines)
    if coverage == "all":
        return set(engines)
    names = [c.strip() for c in coverage.split(",") if c.strip()] if isinstance(coverage, str) else list(coverage)
    unknown = [c for c in names if c not in engines]
    if unknown:
        raise UsageError(f"--coverage names {unknown}, which are not among the evaluated engines "
                         f"({', '.join(engines)}); give some of those, or default, all, none")
    return set(names)


def evaluate(
    data: ZooData,
    spec: ProtocolSpec,
    folds: Sequence[Fold],
    engines: Sequence[str],
    *,
    zoo_name: str = "zoo",
    coverage: str | bool | Sequence[str] | None = "default",
    level: float = 0.8,
    progress: bool = False,
    engine_factory: Callable[..., object] | None = None,
    variants: Mapping[str, tuple[str, dict]] | None = None,
    cache: FitCache | None = None,
) -> ProtocolResult:
    """Fit and score every engine on every fold.

    An engine that raises is reported (``status``, ``errors``), never dropped
    silently: a failure while creating it skips its remaining folds; a failure
    in one fold skips that fold only. Each fold's answer comes from
    :func:`recsys.engines.answer.answer`, the function users get theirs from.

    Parameters
    ----------
    data : ZooData
        All recorded cells and side information.
    spec : ProtocolSpec
    folds : sequence of Fold
    engines : sequence of str
        Registered engine names.
    coverage : "default", "all", "none" or list of names
        Engines whose split-conformal intervals are calibrated on each fold's
        training data (:func:`recsys.engines.calibration.calibrate`) and whose
        coverage at ``level`` is measured on the hidden cells. ``"default"``:
        the default engine only (calibration refits the engine once more).
    level : float
    progress : bool
        A tqdm bar on stderr.
    engine_factory : callable, optional
        ``engine_factory(name, seed=...)``, default :func:`recsys.engines.make_engine`.
    variants : mapping of str to (engine name, parameters), optional
        Named variants of registered engines, usable in ``engines`` (e.g. an
        ablation ``"hybrid - kernel": ("hybrid", {"candidates": (...)})``).
    cache : FitCache, optional
        Fits and calibrations shared with other runs on the same training data.
    """
    from tqdm import tqdm

    variants = dict(variants or {})
    engines = list(dict.fromkeys(engines))
    plain = [e for e in engines if e not in variants]
    if plain or not engines:
        _check_engines(plain)
    run = _Run(data, spec, folds, variants, engine_factory, _coverage_engines(coverage, engines), level, cache)
    bar = tqdm(total=len(folds) * len(engines), desc=spec.name, file=sys.stderr, disable=not progress,
               leave=False, dynamic_ncols=True)
    with quiet_fits():  # this bar counts the fits: none of them shows its own
        try:
            for name in engines:
                run.engine(name, bar, zoo_name)
        finally:
            bar.close()
    return run.result(engines, zoo_name)


class _Run:
    """One :func:`evaluate` call: its inputs, and what it has measured so far."""

    def __init__(self, data: ZooData, spec: ProtocolSpec, folds: Sequence[Fold], variants: dict, factory,
                 cov: set[str], level: float, cache: FitCache | None = None):
        self.data, self.spec, self.folds, self.variants, self.cov, self.level = data, spec, folds, variants, cov, level
        self.cache = cache or FitCache(())
        self.triples: dict[str, list] = {}
        self.factory = factory or make_engine
        self.Y, self.recorded = data.Y, data.known
        self.n_recorded = self.recorded.sum(1)
        self.has_scores = any(np.isfinite(v).any() for v in data.scores.values())
        self.first_rep = min((f.rep for f in folds), default=0)
        self.rows: list[dict] = []
        self.timing: list[dict] = []
        self.errors: list[dict] = []
        self.status: dict[str, str] = {}
        self.completed: dict[str, np.ndarray] = {}
        self.t_start = time.perf_counter()

    def make(self, name: str, seed: int = 0):
        if self.variants:  # named variants of registered engines: "hybrid - kernel" -> ("hybrid", {...})
            base, params = self.variants.get(name, (name, {}))
            return make_engine(base, seed=seed, **params)
        return self.factory(name, seed=seed)

    def fail(self, name: str, fold: Fold | None, stage: str, exc: BaseException) -> None:
        self.errors.append({"engine": name, "rep": fold.rep if fold else -1, "fold": fold.label if fold else "",
                            "stage": stage, "error": _describe(exc)})

    def engine(self, name: str, bar, zoo_name: str) -> None:
        """Every fold of engine ``name``; its status."""
        try:
            cls = get_engine_class(self.variants.get(name, (name,))[0])
        except Exception as exc:  # a missing or broken engine module is a result to report
            self.status[name] = f"failed: {_describe(exc)}"
            self.fail(name, None, "import", exc)
            log.warning("engine %s unavailable: %s", name, _describe(exc))
            bar.update(len(self.folds))
            return
        if getattr(cls, "requires_scores", False) and not self.has_scores:
            self.status[name] = "n/a: no scores"
            log.info("engine %s skipped on %s: it needs transferability scores", name, zoo_name)
            bar.update(len(self.folds))
            return
        if self.folds and not (name in self.cache.engines and self.cache.has(name, self.folds[0].seed,
                                                                          fold_zoo_data(self.data, self.folds[0]))):
            # One untimed fit first, so one-time costs (imports, caches) are charged to no fold:
            # fit times compare the engines' work, not their import times.
            try:
                self.make(name, seed=self.folds[0].seed).fit(fold_zoo_data(self.data, self.folds[0]))
            except Exception:  # the timed folds below report it
                pass
        F_first = np.full(self.Y.shape, np.nan)
        failures = []
        for fold in self.folds:
            bar.set_postfix_str(f"{name} {fold.label}", refresh=False)
            try:
                F = self.fold(name, fold)
                if fold.rep == self.first_rep:
                    F_first[fold.rows] = np.where(self.recorded[fold.rows], F, np.nan)
            except _FoldFailed as exc:
                failures.append(exc.error)
            bar.update(1)
        n_failed = len(failures)
        if n_failed == 0:
            self.status[name] = "ok"
        elif n_failed == len(self.folds):
            self.status[name] = f"failed: {failures[0]}"
        else:
            self.status[name] = f"partly failed ({n_failed} of {len(self.folds)} folds): {failures[0]}"
        if n_failed < len(self.folds):
            self.completed[name] = F_first

    def fold(self, name: str, fold: Fold) -> np.ndarray:
        """Fit on ``fold``, answer for its datasets, score them; F (truth where known, prediction elsewhere)."""
        stage = "fit"
        try:
            train = fold_zoo_data(self.data, fold)
            engine, fit_s = self.cache.fit(name, fold.seed, train, lambda: self.make(name, seed=fold.seed))
            cal, calibrate_s = None, float("nan")
            if name in self.cov:
                try:
                    cal, calibrate_s = self.cache.calibrate(name, fold.seed, train,
                                                            lambda: self.make(name, seed=fold.seed))
                except Exception as exc:
                    self.fail(name, fold, "calibrate", exc)
                    log.warning("calibration of %s failed on %s: %s", name, fold.label, _describe(exc))
            stage = "predict"
            known = np.where(fold.known[fold.rows], self.Y[fold.rows], np.nan)
            t0 = time.perf_counter()
            ans = answer(engine, cal, train.block(fold.rows), known, level=self.level,
                         unrecorded=~fold.known.any(0), uncertainty=cal is not None)
            predict_s = time.perf_counter() - t0
        except Exception as exc:
            self.fail(name, fold, stage, exc)
            log.warning("engine %s failed on %s (%s): %s", name, fold.label, stage, _describe(exc))
            raise _FoldFailed(_describe(exc)) from None
        self.timing.append({"engine": name, "rep": fold.rep, "fold": fold.label, "fit_s": fit_s,
                            "predict_s": predict_s, "calibrate_s": calibrate_s})
        F = np.where(fold.known[fold.rows], self.Y[fold.rows], ans.predicted)
        self.score(name, fold, F, ans, cal, known)
        return F

    def score(self, name: str, fold: Fold, F: np.ndarray, ans, cal=None, known: np.ndarray | None = None) -> None:
        """One row per scored dataset: the metrics, the interval coverage and the P(best) hit."""
        Y, spec = self.Y, self.spec
        n_known = fold.known.sum(1)
        bins = known_bin(n_known[fold.rows], self.n_recorded[fold.rows])
        for i, j in enumerate(fold.rows):
            rec = self.recorded[j]
            row = {"engine": name, "rep": fold.rep, "seed": fold.seed, "fold": fold.label,
                   "dataset": self.data.dataset_ids[j], "group": int(fold.group[j]),
                   "n_recorded": int(self.n_recorded[j]), "n_known": int(n_known[j]), "bin": bins[i]}
            row.update(dataset_metrics(Y[j, rec], F[i, rec], spec.k))
            if "ndcg@5" not in row:
                row["ndcg@5"] = ndcg_at_k(Y[j, rec], F[i, rec], 5)
            hidden = rec & ~fold.known[j]
            row["n_hidden"] = int(hidden.sum())
            row["covered"] = row["width"] = row["p_top"] = row["top_hit"] = float("nan")
            if ans.lower is not None and hidden.any():
                y = Y[j, hidden]
                row["covered"] = float(((y >= ans.lower[i, hidden]) & (y <= ans.upper[i, hidden])).sum())
                row["width"] = float(100.0 * (ans.upper[i, hidden] - ans.lower[i, hidden]).mean())
                # Is P(best) calibrated? The model it favours most, and whether it is the best.
                top = int(np.argmax(ans.p_best[i]))
                row["p_top"] = float(ans.p_best[i, top])
                if rec[top]:
                    # P(best) shares ties, so a tie at the top is shared too: a top pick
                    # tied with two others for the best counts 1/3 (else ties inflate hits).
                    best = Y[j, rec].max()
                    row["top_hit"] = float(Y[j, top] >= best) / float((Y[j, rec] >= best).sum())
                if ans.posteriors is not None and rec.sum() >= 2:
                    # P(best of the recorded models), joint and independent: Brier score and reliability
                    b, triples = brier_rows(ans.posteriors[i], cal, ans.predicted[i], known[i], Y[j], rec,
                                            ~fold.known.any(0))
                    row.update(b)
                    self.triples.setdefault(name, []).append(triples)
            self.rows.append(row)

    def result(self, engines: list, zoo_name: str) -> ProtocolResult:
        cols = ["engine", "rep", "seed", "fold", "dataset", "group", "n_recorded", "n_known", "bin",
                *self.spec.metrics, "n_hidden", "covered", "width", "p_top", "top_hit", *BRIER_COLUMNS]
        known_first = np.zeros(self.Y.shape, dtype=bool)
        group_first = np.full(self.Y.shape[0], -1, dtype=np.int64)
        for f in (f for f in self.folds if f.rep == self.first_rep):
            known_first[f.rows] = f.known[f.rows]
            group_first = np.where(f.group >= 0, f.group, group_first)
        return ProtocolResult(
            spec=self.spec, zoo=zoo_name, engines=list(engines),
            seeds=list(dict.fromkeys(f.seed for f in self.folds)),
            per_dataset=pd.DataFrame(self.rows, columns=cols),
            timing=pd.DataFrame(self.timing, columns=["engine", "rep", "fold", "fit_s", "predict_s", "calibrate_s"]),
            status=self.status, errors=pd.DataFrame(self.errors, columns=["engine", "rep", "fold", "stage", "error"]),
            truth=self.Y.copy(), completed=self.completed, known_first=known_first, group_first=group_first,
            model_ids=tuple(self.data.model_ids), dataset_ids=tuple(self.data.dataset_ids), level=self.level,
            has_scores=self.has_scores, wall_s=time.perf_counter() - self.t_start,
            reliability=pd.DataFrame([r for e, t in self.triples.items() for r in reliability_table(t, e)],
                                     columns=["engine", "method", "bin", "pairs", "p_sum", "best_sum"]))


class _FoldFailed(Exception):
    def __init__(self, error: str):
        self.error = error


# -- entry points -------------------------------------------------------------------
def as_zoo_data(zoo: Zoo | ZooData | str, text_encoder=None) -> tuple[ZooData, str]:
    """``(ZooData, zoo name)`` for a Zoo, a zoo name/path, or ZooData as it is.

    The FeatureBuilder is fitted once, on metadata only (metadata is known for
    every dataset, cold ones included).
    """
    if isinstance(zoo, ZooData):
        return zoo, "data"
    if not isinstance(zoo, Zoo):
        from .. import datasets

        zoo = datasets.load(zoo)
    data = FeatureBuilder(text_encoder=text_encoder).fit(zoo).zoo_data(zoo)
    return data, zoo.name


def _seeds(repeats: int | None, seeds: Sequence[int] | None, default: int) -> list[int]:
    if seeds is not None:
        seeds = [int(s) for s in seeds]
        if repeats is not None and repeats != len(seeds):
            raise RecsysError(f"repeats={repeats} but {len(seeds)} seeds were given; give one or the other")
        if not seeds:
            raise RecsysError("no seed given; give at least one repetition")
        return seeds
    repeats = default if repeats is None else int(repeats)
    if repeats < 1:
        raise RecsysError(f"repeats must be at least 1, got {repeats}")
    return list(range(repeats))


def p1(zoo: Zoo | ZooData | str, engines: Sequence[str], repeats: int | None = None,
       seeds: Sequence[int] | None = None, *, text_encoder=None, coverage="default", level: float = 0.8,
       progress: bool = False, cache: FitCache | None = None) -> ProtocolResult:
    """The P1 missing-edge protocol on ``zoo`` (default 10 repetitions, seeds 0..9).

    Examples
    --------
    >>> res = p1("domainnet-270", ["popularity", "additive"], repeats=2, text_encoder="hashing")  # doctest: +SKIP
    >>> res.per_dataset.groupby("engine").pearson.mean()                                         # doctest: +SKIP
    """
    spec = PROTOCOLS["p1"]
    data, name = as_zoo_data(zoo, text_encoder)
    folds = p1_folds(data, _seeds(repeats, seeds, spec.default_repeats))
    return evaluate(data, spec, folds, engines, zoo_name=name, coverage=coverage, level=level, progress=progress,
                    cache=cache)


def p2(zoo: Zoo | ZooData | str, engines: Sequence[str], repeats: int | None = None,
       seeds: Sequence[int] | None = None, *, targets: Sequence[int | str] | None = None, text_encoder=None,
       coverage="default", level: float = 0.8, progress: bool = False, cache: FitCache | None = None
       ) -> ProtocolResult:
    """The P2 leave-one-dataset-out protocol on ``zoo`` (default 1 repetition, seed 0).

    ``targets`` restricts the held-out datasets (default: :func:`p2_targets`).
    """
    spec = PROTOCOLS["p2"]
    data, name = as_zoo_data(zoo, text_encoder)
    folds = p2_folds(data, _seeds(repeats, seeds, spec.default_repeats), targets)
    if not folds:
        raise RecsysError(f"add records to zoo {name!r}, or name targets that have some (--targets): none of "
                          f"its target datasets has records to hold out")
    return evaluate(data, spec, folds, engines, zoo_name=name, coverage=coverage, level=level, progress=progress,
                    cache=cache)


def missing_edge(zoo: Zoo | ZooData | str, engines: Sequence[str], repeats: int | None = None,
                 seeds: Sequence[int] | None = None, *, text_encoder=None, coverage="default", level: float = 0.8,
                 progress: bool = False, cache: FitCache | None = None) -> ProtocolResult:
    """The missing-edge protocol (P1's procedure) on any zoo; default 10 repetitions, seeds 0..9."""
    spec = PROTOCOLS["missing-edge"]
    data, name = as_zoo_data(zoo, text_encoder)
    folds = missing_edge_folds(data, _seeds(repeats, seeds, spec.default_repeats))
    if not len(folds[0].rows):
        raise RecsysError(f"add records to zoo {name!r}: missing-edge hides some of each dataset's records, and no "
                          f"dataset has any")
    return evaluate(data, spec, folds, engines, zoo_name=name, coverage=coverage, level=level, progress=progress,
                    cache=cache)


def logo(zoo: Zoo | ZooData | str, engines: Sequence[str], repeats: int | None = None,
         seeds: Sequence[int] | None = None, *, targets: Sequence[int | str] | None = None, text_encoder=None,
         coverage="default", level: float = 0.8, progress: bool = False, cache: FitCache | None = None
         ) -> ProtocolResult:
    """Leave-one-dataset-out on any zoo: every dataset with >= :data:`LOGO_MIN_RECORDS` records (or ``targets``)."""
    spec = PROTOCOLS["logo"]
    data, name = as_zoo_data(zoo, text_encoder)
    folds = p2_folds(data, _seeds(repeats, seeds, spec.default_repeats), targets, default_targets=logo_targets)
    if not folds:
        raise RecsysError(f"name the targets to hold out (--targets A,B; targets= in Python): zoo {name!r} has no "
                          f"dataset with at least {LOGO_MIN_RECORDS} records, the default targets")
    return evaluate(data, spec, folds, engines, zoo_name=name, coverage=coverage, level=level, progress=progress,
                    cache=cache)
