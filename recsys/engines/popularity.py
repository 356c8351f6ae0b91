"""Popularity: every dataset gets the same model ranking.

Each model's popularity is its mean per-dataset-standardized accuracy over the
datasets where it was fine-tuned (the baseline of the benchmark protocol). In
accuracy units a prediction is ``mu_d + sd_d * popularity_m``: the dataset's
level and spread come from its own records (the level after removing the
popularity of the models it has records for), shrunk towards the zoo's when it
has few; a dataset without records gets the zoo's.
"""

from __future__ import annotations

import numpy as np

from ..features.data import Cells, DatasetBlock, ZooData
from .stages.scale import shrunk_location_scale
from .base import Engine

__all__ = ["PopularityEngine"]


class PopularityEngine(Engine):
    """Rank models by their mean standardized accuracy over known datasets.

    Parameters
    ----------
    prior : float
        Pseudo-records pulling a dataset's level and spread towards the zoo's.
    seed : int
        Unused (the engine is deterministic); kept for the common interface.
    """

    name = "popularity"
    summary = "each model's mean standardized accuracy over the known datasets (same ranking everywhere)"

    def __init__(self, *, prior: float = 1.0, seed: int = 0):
        self.prior = prior
        self.seed = seed

    def _fit(self, data: ZooData) -> None:
        cells = data.records
        mu, sd, zoo_mu, zoo_sd = shrunk_location_scale(cells, self.prior)
        counts = cells.col_counts()
        z = (cells.y - mu[cells.d]) / sd[cells.d]
        pop = np.where(counts > 0, cells.col_sum(z) / np.maximum(counts, 1), 0.0)
        # The level of a dataset, net of the popularity of the models it has records for.
        n = cells.row_counts()
        resid = cells.row_sum(cells.y - sd[cells.d] * pop[cells.m])
        self.mu_ = (resid + self.prior * zoo_mu) / (n + self.prior)
        self.sd_ = sd
        self.popularity_ = pop
        self.zoo_mu_, self.zoo_sd_ = zoo_mu, zoo_sd

    def _predict(self, block: DatasetBlock) -> np.ndarray:
        idx = block.index
        mu = np.where(idx >= 0, self.mu_[np.maximum(idx, 0)], self.zoo_mu_)
        sd = np.where(idx >= 0, self.sd_[np.maximum(idx, 0)], self.zoo_sd_)
        return np.clip(mu[:, None] + sd[:, None] * self.popularity_[None, :], 0.0, 1.0)
