"""Additive: accuracy = mu + model bias + dataset bias (ridge).

The classic baseline of rating prediction (Koren, 2008, "baseline
predictors"): no interaction between models and datasets, so every dataset
gets the same model ranking, shifted by its own level. Fitted by alternating
exact ridge updates on the known cells; a dataset without records gets
bias 0.
"""

from __future__ import annotations

import numpy as np

from ..features.data import DatasetBlock, ZooData
from .base import Engine
from .stages.scale import fit_additive

__all__ = ["AdditiveEngine"]


class AdditiveEngine(Engine):
    """``mu + b_model + c_dataset`` fitted by ridge on the known cells.

    Parameters
    ----------
    lam : float
        Ridge penalty, in pseudo-records, on each bias.
    seed : int
        Unused (deterministic); kept for the common interface.
    """

    name = "additive"
    summary = "mu + model bias + dataset bias, ridge on known cells"

    def __init__(self, *, lam: float = 1.0, seed: int = 0):
        self.lam = lam
        self.seed = seed

    def _fit(self, data: ZooData) -> None:
        self.mu_, self.model_bias_, self.dataset_bias_ = fit_additive(data.records, self.lam)

    def _predict(self, block: DatasetBlock) -> np.ndarray:
        c = np.where(block.index >= 0, self.dataset_bias_[np.maximum(block.index, 0)], 0.0)
        return np.clip(self.mu_ + self.model_bias_[None, :] + c[:, None], 0.0, 1.0)
