"""Score: rank models by a feature-based transferability metric (LogME by default).

LogME (You, Liu, Wang and Long, 2021, "LogME: Practical Assessment of
Pre-trained Models for Transfer Learning", ICML) estimates, from a model's
features on the target data and without fine-tuning, the log marginal
evidence of a linear head; Reg-H-Score and the like are alternatives. The
TransferGraph zoo (Li et al., 2024, "Model Selection with Model Zoo via Graph
Learning", ICDE) ships both in ``scores.csv``; its benchmark reports "LogME
score as the prediction" as a baseline, which this engine reproduces.

The metric's scale differs from dataset to dataset, so within each dataset it
is standardized over the models that have a score (``z``). In accuracy units a
prediction is ``level[dataset] + slope * z``: ``slope`` is fitted on the known
cells (pooled within-dataset least squares), ``level`` comes from the dataset's
known cells when it has any, else it is the zoo's. Where ``level + slope * z``
would leave [0, 1] (a dataset whose level is near 1), that dataset's slope is
reduced until it fits, instead of clipping, so the ranking inside a dataset is
exactly the metric's, top included; a model without a score for a dataset gets
the dataset's level. Scores need no fine-tuning, so a new dataset (``index == -1``)
is ranked from the scores given with it.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import RecsysError
from ..features.data import DatasetBlock, ZooData
from .base import Engine
from .stages.scale import shrunk_location_scale, standardize_rows

__all__ = ["ScoreEngine"]

log = logging.getLogger(__name__)

#: share of the distance from a dataset's level to 0 or 1 that its predictions may use
_ROOM = 0.99


class ScoreEngine(Engine):
    """Predict by a transferability metric (LogME), mapped linearly to accuracy per dataset.

    Parameters
    ----------
    metric : str
        Metric of the zoo's ``scores.csv`` to rank by (e.g. ``"LOG_ME"``,
        ``"REG_H_SCORE"``); higher is better.
    prior : float
        Pseudo-records pulling a dataset's level towards the zoo's.
    seed : int
        Unused (deterministic); kept for the common interface.

    Raises
    ------
    RecsysError
        In ``fit``, when the zoo has no scores or none for ``metric``.

    Examples
    --------
    >>> engine = ScoreEngine(metric="LOG_ME").fit(data)   # doctest: +SKIP
    >>> engine.topk(data.block([0]), k=5)                 # doctest: +SKIP
    """

    name = "logme"
    summary = "ranks by a transferability score (LogME by default) from scores.csv, no learning of interactions"
    requires_scores = True
    nan_arrays = frozenset({"scores_"})  # (NaN where a pair has no score)

    def __init__(self, *, metric: str = "LOG_ME", prior: float = 1.0, seed: int = 0):
        self.metric = metric
        self.prior = prior
        self.seed = seed

    def _fit(self, data: ZooData) -> None:
        available = sorted(k for k, v in data.scores.items() if np.isfinite(v).any())
        if self.metric not in available:
            raise RecsysError(f"pick a metric of the zoo with --param metric=NAME ({', '.join(available) or 'none'}): "
                              f"this zoo has no {self.metric!r} scores")
        Y, known = data.Y, data.known
        d, m, y = data.cells()
        scores = data.scores[self.metric]
        Z = standardize_rows(scores)
        zoo_sd = shrunk_location_scale(Y, self.prior)[3]

        # Pooled within-dataset least squares of accuracy on z, over cells with a score.
        scored = np.isfinite(scores[d, m])
        n_d = data.n_datasets
        ds_, ys_, zs_ = d[scored], y[scored], Z[d[scored], m[scored]]
        cnt = np.bincount(ds_, minlength=n_d)
        y_bar = np.bincount(ds_, ys_, n_d) / np.maximum(cnt, 1)
        z_bar = np.bincount(ds_, zs_, n_d) / np.maximum(cnt, 1)
        dz, dy = zs_ - z_bar[ds_], ys_ - y_bar[ds_]
        den = float(dz @ dz)
        if den > 1e-12:
            slope = float(dz @ dy) / den
            if slope <= 0:
                log.warning("%s anti-correlates with the known accuracies (slope %.3g); keeping its ranking with "
                            "a negligible slope", self.metric, slope)
                slope = 1e-6
        else:
            # No dataset has both records and varying scores: assume a moderate correlation.
            slope = 0.5 * zoo_sd
            log.info("no dataset has both records and %s scores; slope set to half the zoo's spread", self.metric)

        # Level: what the dataset's known cells say once the z effect is removed, shrunk to the zoo's.
        n = known.sum(1)
        resid = np.bincount(d, y - slope * Z[d, m], n_d)
        self.zoo_level_ = float(resid.sum() / n.sum())  # fit() guarantees known cells
        self.level_ = np.where(n > 0, (resid + self.prior * self.zoo_level_) / (n + self.prior), self.zoo_level_)
        self.slope_ = slope
        self.scores_ = scores  # the zoo's scores, used when a block of known datasets comes without them

    def _predict(self, block: DatasetBlock) -> np.ndarray:
        idx = block.index
        known = idx >= 0
        S = block.scores.get(self.metric) if block.scores else None
        if S is None:
            S = np.full((len(block), self.scores_.shape[1]), np.nan)
            S[known] = self.scores_[idx[known]]
        S = np.asarray(S, dtype=np.float64)
        if S.shape != (len(block), self.scores_.shape[1]):
            raise RecsysError(f"give {self.metric} scores of shape {(len(block), self.scores_.shape[1])} (datasets x "
                              f"models): got {S.shape}")
        level = np.where(known, self.level_[np.maximum(idx, 0)], self.zoo_level_)
        Z = standardize_rows(S)
        # Flatten the slope of a dataset whose level sits near 0 or 1, so that no prediction is
        # clipped: clipping would tie the best models and lose the metric's ordering at the top.
        slope = np.full(len(block), self.slope_)
        z_hi, z_lo = Z.max(1, initial=0.0), Z.min(1, initial=0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(z_hi > 0, np.minimum(slope, _ROOM * (1.0 - level) / z_hi), slope)
            slope = np.where(z_lo < 0, np.minimum(slope, _ROOM * level / -z_lo), slope)
        slope = np.maximum(slope, 0.0)
        return np.clip(level[:, None] + slope[:, None] * Z, 0.0, 1.0)
