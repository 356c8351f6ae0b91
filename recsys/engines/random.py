"""Random: the floor every engine must beat.

The "Random" row of the DomainNet benchmark (Chen et al., 2024, "Transferability
Prediction for Model Recommendation: A Graph Learning based Approach"): a
random model ranking per dataset. In accuracy units a prediction is the
dataset's level (the mean of its known cells, shrunk towards the zoo's, as in
:mod:`~recsys.engines.popularity`) plus Gaussian noise with the zoo's
within-dataset spread, so the numbers look like accuracies while the ranking
carries no information.

The noise of a known dataset is drawn once in ``fit`` from the seed. The noise
of a new dataset (``index == -1``) comes from a generator seeded by the seed and
a hash of its feature row, so the same query always gets the same answer.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..features.data import DatasetBlock, ZooData
from .base import Engine
from .stages.scale import shrunk_location_scale

__all__ = ["RandomEngine"]


class RandomEngine(Engine):
    """Random ranking around each dataset's level (the benchmark's "Random" baseline).

    Parameters
    ----------
    prior : float
        Pseudo-records pulling a dataset's level towards the zoo's mean.
    seed : int
        Seed of the noise; the same seed gives the same predictions, also for
        new datasets.

    Examples
    --------
    >>> engine = RandomEngine(seed=0).fit(data)      # doctest: +SKIP
    >>> engine.topk(data.block([0]), k=3)            # doctest: +SKIP
    """

    name = "random"
    summary = "random ranking per dataset around its mean accuracy (the floor to beat)"

    def __init__(self, *, prior: float = 1.0, seed: int = 0):
        self.prior = prior
        self.seed = seed

    def _fit(self, data: ZooData) -> None:
        rng = np.random.default_rng(self.seed)
        mu, _, zoo_mu, zoo_sd = shrunk_location_scale(data.Y, self.prior)
        self.mu_ = mu
        self.zoo_mu_, self.zoo_sd_ = zoo_mu, zoo_sd
        self.noise_ = rng.standard_normal(data.Y.shape)

    def _new_noise(self, row: np.ndarray) -> np.ndarray:
        # + 0.0 maps -0.0 to 0.0 so equal feature rows hash equally.
        digest = hashlib.sha256(np.ascontiguousarray(row + 0.0, dtype="<f8").tobytes()).digest()
        key = int.from_bytes(digest[:8], "little")
        return np.random.default_rng([int(self.seed), key]).standard_normal(self.noise_.shape[1])

    def _predict(self, block: DatasetBlock) -> np.ndarray:
        idx = block.index
        known = idx >= 0
        level = np.where(known, self.mu_[np.maximum(idx, 0)], self.zoo_mu_)
        noise = np.empty((len(block), self.noise_.shape[1]))
        noise[known] = self.noise_[idx[known]]
        for r in np.flatnonzero(~known):
            noise[r] = self._new_noise(block.features[r])
        return np.clip(level[:, None] + self.zoo_sd_ * noise, 0.0, 1.0)
