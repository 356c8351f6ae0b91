"""One answer for users and for the benchmarks: predictions, intervals and P(best) of some datasets.

:func:`answer` assembles what :class:`~recsys.recommender.Recommender` returns
and what every evaluation protocol scores, from a fitted engine and its
calibration (:mod:`.calibration`): the prediction of every model, the
split-conformal interval at a level, and P(best) from the joint distribution of
each dataset's accuracies (:mod:`.joint`), made consistent with the intervals
(:func:`consistent`); results given for a dataset condition its answer. The
plan (:meth:`.joint.RowPosterior.plan`) is made on the same distributions.
Benchmarks therefore measure what ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..features.data import DatasetBlock
from .base import Engine
from .calibration import Calibration
from .joint import JointModel, JointParams

__all__ = ["Answer", "answer", "joint_model", "consistent", "P_FLOOR"]

#: the smallest P(best) given to a model whose interval reaches the best record
P_FLOOR = 1e-4


@dataclass
class Answer:
    """Every model's answer for some datasets; arrays of shape (n_datasets, n_models).

    ``known`` is the recorded accuracy, or the result given for the pair (NaN without either);
    ``lower``, ``upper`` and ``p_best`` are None when not asked for, NaN without a calibration;
    ``p_best_independent`` (asked for by ``independent=True``) is the independent P(best) of
    :meth:`Calibration.p_best` beside the joint one; ``posteriors`` holds each dataset's
    :class:`~recsys.engines.joint.RowPosterior` where the joint distribution answered.
    """

    predicted: np.ndarray
    known: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    p_best: np.ndarray | None = None
    p_best_independent: np.ndarray | None = None
    posteriors: list | None = None


def joint_model(engine: Engine, calibration: Calibration | None, unrecorded: np.ndarray | None) -> JointModel:
    """The joint distribution of ``engine``'s answers: calibrated (:attr:`Calibration.joint`, engines that
    krige); for the other engines (and model files from before the joint distribution) the independent
    fallback made of the calibration's own pools (:meth:`JointParams.independent`); without a calibration,
    uncalibrated parameters (enough to condition the centres on given results)."""
    seed = int(getattr(engine, "seed", 0) or 0)
    if calibration is None:
        params = JointParams(seed=seed)
    elif calibration.joint is not None:
        params = calibration.joint
    else:
        params = JointParams.independent(calibration, seed)
    cold = np.zeros(engine.n_models_, bool) if unrecorded is None else np.asarray(unrecorded, bool)
    return JointModel(engine, params, cold)


def answer(engine: Engine, calibration: Calibration | None, block: DatasetBlock, known: np.ndarray, *,
           level: float = 0.8, unrecorded: np.ndarray | None = None, uncertainty: bool = True,
           given: Sequence[Mapping[int, float] | None] | None = None, joint: JointModel | None = None,
           independent: bool = False, posteriors: bool = False) -> Answer:
    # (over 80 lines by its docstring: 11 parameters, each documented; the body is 49 lines, one answer path)
    """Predictions of ``engine`` for ``block``, with intervals at ``level`` and P(best) from ``calibration``.

    Parameters
    ----------
    engine : Engine
        Fitted.
    calibration : Calibration or None
        None: ``lower``, ``upper`` and ``p_best`` are NaN (same columns either way). With joint
        parameters (:attr:`Calibration.joint`: engines that krige) P(best) comes from the joint
        distribution (:mod:`.joint`), and so do the intervals of a dataset with known cells and of the
        models without records (:func:`_joint_intervals`); the other intervals are split-conformal
        (:meth:`Calibration.interval`). Without joint parameters (other engines, model files from before
        them), P(best) comes from the independent residual pools. A known cell's prediction and interval are
        its value.
    block : DatasetBlock
    known : ndarray, shape (len(block), n_models)
        Recorded accuracies of the block's datasets (NaN where unknown).
    level : float
        Interval level.
    unrecorded : ndarray of bool, shape (n_models,), optional
        Models without any record in the zoo (see :meth:`Calibration.p_best`).
    uncertainty : bool
        False: predictions only.
    given : sequence of mappings model index -> accuracy, optional
        Per dataset of ``block`` (None or empty: none), results just obtained: that dataset's answer is
        conditioned on them (:func:`.joint.condition`: no refit) and they are its known cells (a result
        replaces a stored record). The other datasets' answers are exactly those without ``given``.
    joint : JointModel, optional
        Reused (its fixed draws are made once); default :func:`joint_model`.
    independent : bool
        Also the independent P(best) (``p_best_independent``), for the benchmarks.
    posteriors : bool
        The joint distributions (``Answer.posteriors``) even without ``uncertainty`` (a plan's steps).
    """
    pred = engine.predict(block)
    given = [g or None for g in given] if given is not None else [None] * len(block)
    rows_given = [i for i, g in enumerate(given) if g]
    known = np.array(known, dtype=float)
    for i in rows_given:
        cols = np.fromiter(given[i].keys(), dtype=np.int64)
        known[i, cols] = np.fromiter(given[i].values(), dtype=float)
    # the joint distribution answers where the calibration fitted it (engines that krige); else the independent
    # residual pools do, as before it, and the joint fallback only conditions centres and makes plans
    use_joint = uncertainty and calibration is not None and calibration.joint is not None
    posts = None
    if use_joint or posteriors or rows_given:
        jm = joint or joint_model(engine, calibration, unrecorded)
        need = range(len(block)) if use_joint or posteriors else rows_given
        inputs = jm.inputs(block.take(np.asarray(list(need), dtype=np.int64))) if jm.kriging else None
        stored = np.array(known)
        for i in rows_given:  # (the stored records, without the results given)
            stored[i, np.fromiter(given[i].keys(), dtype=np.int64)] = np.nan
        posts = [None] * len(block)
        for n, i in enumerate(need):  # (each row's draws on one BLAS thread: JointModel.posterior)
            post = jm.posterior(pred[i], stored[i], given[i], None if inputs is None else inputs[n])
            posts[i] = post
            if given[i]:
                pred[i] = post.mu
    # a known cell is its record (or result): every engine's prediction there, as the kriging's already is (an
    # engine that smooths its records would otherwise show an estimate outside the cell's interval, and a
    # result given for another model would change it)
    rec = ~np.isnan(known)
    pred[rec] = known[rec]
    out = Answer(pred, known, posteriors=posts if use_joint or posteriors else None)
    if not uncertainty:
        return out
    if calibration is None:
        out.lower = out.upper = out.p_best = np.full(pred.shape, np.nan)
        return out
    n_known = (~np.isnan(known)).sum(1)
    out.lower, out.upper = calibration.interval(pred, n_known, level)
    if use_joint:
        for i, post in enumerate(posts):
            _joint_intervals(post, level, out.lower[i], out.upper[i], brand_new=n_known[i] == 0)
        out.p_best = np.stack([post.p_best() for post in posts]) if posts else np.empty(pred.shape)
    else:
        out.p_best = calibration.p_best(pred, known, n_known, unrecorded=unrecorded)
    out.lower[rec] = out.upper[rec] = known[rec]  # (P(best) and the plan take a known cell as it is)
    out.p_best = consistent(out.p_best, known, out.lower, out.upper)
    if independent:
        out.p_best_independent = consistent(calibration.p_best(pred, known, n_known, unrecorded=unrecorded),
                                            known, out.lower, out.upper)
    return out


def _joint_intervals(post, level: float, lower: np.ndarray, upper: np.ndarray, brand_new: bool) -> None:
    """The joint distribution's marginal intervals (:meth:`.joint.RowPosterior.interval`) in place of the
    split-conformal ones, for the unknown cells of a dataset with known cells (records or results given), and
    for the models without any record everywhere.

    Where a dataset has known cells, its errors are on its own scale (its spread, and how well its known cells
    pin the others down): split-conformal residuals in accuracy units, one width per stratum, are too narrow on
    some datasets and too wide on others (TransferGraph, missing-edge, a fifth or fewer of the models known:
    coverage 0.63 at level 0.8; 0.79 from the joint's marginals). On a brand-new dataset the scale is only the
    feature prior's spread, and the joint's marginals cover worse than the residuals of brand-new datasets as they
    are (P2: 0.96 against 0.81; vtab-hf and parc-71 ``logo``: 0.75 and 0.73 against 0.81 and 0.82), which keep
    their intervals there, but for the models without records: those have their own pool (how such models'
    predictions err), where the split-conformal width would be a recorded model's."""
    cols = np.flatnonzero(~post.known & (post.cold_models if brand_new else True))
    if len(cols):
        lower[cols], upper[cols] = post.interval(cols, level)


def consistent(p_best: np.ndarray, known: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """P(best) that agrees with the intervals: a model whose interval reaches the best record cannot have 0.

    P(best) perturbs predictions by the stratum's residuals times the fitted
    noise factor (below 1 where models err together), the intervals by the
    unscaled absolute residuals: a model can be out of P(best)'s reach while its
    interval reaches above the best record (or, on a dataset without records,
    above every other model's lower bound). Such a model is given
    :data:`P_FLOOR` instead of a 0 that the intervals contradict; each row is
    renormalized.
    """
    out = p_best.copy()
    rec = ~np.isnan(known)
    best = np.where(rec.any(1), np.nanmax(np.where(rec, known, -np.inf), axis=1), np.max(lower, axis=1))
    lift = ~rec & (upper > best[:, None]) & (out < P_FLOOR)
    if lift.any():
        out = np.where(lift, P_FLOOR, out)
        out /= out.sum(1, keepdims=True)
    return out
