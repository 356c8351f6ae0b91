"""One answer for users and for the benchmarks: predictions, intervals and P(best) of some datasets.

:func:`answer` assembles what :class:`~recsys.recommender.Recommender` returns
and what every evaluation protocol scores, from a fitted engine and its
calibration (:mod:`.calibration`): the prediction of every model, the
split-conformal interval at a level, and P(best), made consistent with the
intervals (:func:`consistent`). Benchmarks therefore measure what ships.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features.data import DatasetBlock
from .base import Engine
from .calibration import Calibration

__all__ = ["Answer", "answer", "consistent", "P_FLOOR"]

#: the smallest P(best) given to a model whose interval reaches the best record
P_FLOOR = 1e-4


@dataclass
class Answer:
    """Every model's answer for some datasets; arrays of shape (n_datasets, n_models).

    ``known`` is the recorded accuracy (NaN without a record); ``lower``,
    ``upper`` and ``p_best`` are None when not asked for, NaN without a calibration.
    """

    predicted: np.ndarray
    known: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    p_best: np.ndarray | None = None


def answer(engine: Engine, calibration: Calibration | None, block: DatasetBlock, known: np.ndarray, *,
           level: float = 0.8, unrecorded: np.ndarray | None = None, uncertainty: bool = True) -> Answer:
    """Predictions of ``engine`` for ``block``, with intervals at ``level`` and P(best) from ``calibration``.

    Parameters
    ----------
    engine : Engine
        Fitted.
    calibration : Calibration or None
        None: ``lower``, ``upper`` and ``p_best`` are NaN (same columns either way).
    block : DatasetBlock
    known : ndarray, shape (len(block), n_models)
        Recorded accuracies of the block's datasets (NaN where unknown).
    level : float
        Interval level.
    unrecorded : ndarray of bool, shape (n_models,), optional
        Models without any record in the zoo (see :meth:`Calibration.p_best`).
    uncertainty : bool
        False: predictions only.
    """
    pred = engine.predict(block)
    out = Answer(pred, known)
    if not uncertainty:
        return out
    if calibration is None:
        out.lower = out.upper = out.p_best = np.full(pred.shape, np.nan)
        return out
    n_known = (~np.isnan(known)).sum(1)
    out.lower, out.upper = calibration.interval(pred, n_known, level)
    p_best = calibration.p_best(pred, known, n_known, unrecorded=unrecorded)
    out.p_best = consistent(p_best, known, out.lower, out.upper)
    return out


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
