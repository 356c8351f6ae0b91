"""Score stack: popularity plus the zoo's transferability scores, in one linear model.

The simplest way to use both a fine-tuning history and feature-based scores
(LogME, H-score ...): within each dataset, a model's standardized accuracy is
predicted as ``a * popularity[m] + sum_k b_k * z_k[d, m]``, where
``popularity`` is the model's mean standardized accuracy over the known
datasets (:mod:`recsys.engines.popularity`) and ``z_k`` the dataset's
standardized score of metric ``k`` (0 where missing). ``a`` and ``b`` are
fitted by ridge on the known cells of the datasets that have scores. In
accuracy units a prediction is ``level_d + sd_d * profile``, level and spread
from the dataset's records shrunk to the zoo's (the zoo's for a dataset
without records). Without any dataset that has both records and scores it is
the popularity baseline.

It is the "plain stacking of popularity with the zoo's scores" that the
cross-zoo benchmark holds the default engine against.
"""

from __future__ import annotations

import logging

import numpy as np

from ..features.data import DatasetBlock, ZooData
from .base import Engine
from .stages.scale import shrunk_location_scale, standardize_rows

__all__ = ["ScoreStackEngine"]

log = logging.getLogger(__name__)


class ScoreStackEngine(Engine):
    """Popularity + standardized transferability scores, linear, fitted on the known cells.

    Parameters
    ----------
    prior : float
        Pseudo-records pulling a dataset's level and spread towards the zoo's.
    alpha : float
        Ridge penalty on the coefficients (in units of records).
    seed : int
        Unused (deterministic); kept for the common interface.
    """

    name = "score-stack"
    summary = "popularity plus each transferability score, one linear model fitted on the known cells"
    requires_scores = True

    def __init__(self, *, prior: float = 1.0, alpha: float = 1.0, seed: int = 0):
        self.prior = prior
        self.alpha = alpha
        self.seed = seed

    def _profile_inputs(self, pop: np.ndarray, scores: dict) -> np.ndarray:
        """(n_inputs, n_datasets, n_models): popularity broadcast, then each metric's standardized score."""
        n = next(iter(scores.values())).shape[0] if scores else 0
        z = [standardize_rows(scores[k]) for k in self.metrics_used_]
        return np.stack([np.broadcast_to(pop[None, :], (n, len(pop))), *z])

    def _fit(self, data: ZooData) -> None:
        Y, known = data.Y, data.known
        mu, sd, zoo_mu, zoo_sd = shrunk_location_scale(Y, self.prior)
        counts = known.sum(0)
        Z = np.where(known, (Y - mu[:, None]) / sd[:, None], 0.0)
        pop = np.where(counts > 0, Z.sum(0) / np.maximum(counts, 1), 0.0)
        self.metrics_used_ = sorted(k for k, v in data.scores.items() if np.isfinite(v).any())
        X = self._profile_inputs(pop, data.scores)
        scored = np.zeros(Y.shape, dtype=bool)
        for k in self.metrics_used_:
            scored |= np.isfinite(data.scores[k])
        use = known & scored
        coef = np.zeros(len(X))
        coef[0] = 1.0  # popularity alone, unless cells with both a record and a score say otherwise
        if use.sum() >= 2 * len(X):
            # Within-dataset: centre target and inputs per dataset over the cells used.
            d = np.nonzero(use)[0]
            cnt = np.maximum(np.bincount(d, minlength=Y.shape[0]), 1)
            def centred(A):
                v = A[use]
                return v - (np.bincount(d, v, Y.shape[0]) / cnt)[d]
            A = np.column_stack([centred(x) for x in X])
            b = centred(Z)
            coef = np.linalg.solve(A.T @ A + self.alpha * np.eye(len(X)), A.T @ b)
        else:
            log.info("score-stack: no dataset has both records and scores; it is the popularity baseline")
        self.coef_ = coef
        self.popularity_ = pop
        profile = np.tensordot(coef, X, 1)
        n = known.sum(1)
        resid = np.where(known, Y - sd[:, None] * profile, 0.0)
        self.mu_ = (resid.sum(1) + self.prior * zoo_mu) / (n + self.prior)
        self.sd_ = sd
        self.zoo_mu_, self.zoo_sd_ = zoo_mu, zoo_sd

    def _predict(self, block: DatasetBlock) -> np.ndarray:
        idx = block.index
        known = idx >= 0
        scores = {}
        for k in self.metrics_used_:
            S = block.scores.get(k) if block.scores else None
            if S is None:
                S = np.full((len(block), len(self.popularity_)), np.nan)
                S[known] = self._data.scores[k][idx[known]]
            scores[k] = np.asarray(S, dtype=np.float64)
        profile = np.tensordot(self.coef_, self._profile_inputs(self.popularity_, scores), 1)
        mu = np.where(known, self.mu_[np.maximum(idx, 0)], self.zoo_mu_)
        sd = np.where(known, self.sd_[np.maximum(idx, 0)], self.zoo_sd_)
        return np.clip(mu[:, None] + sd[:, None] * profile, 0.0, 1.0)
