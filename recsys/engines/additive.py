"""Additive: accuracy = mu + model bias + dataset bias (ridge).

The classic baseline of rating prediction (Koren, 2008, "baseline
predictors"): no interaction between models and datasets, so every dataset
gets the same model ranking, shifted by its own level. Fitted by alternating
exact ridge updates on the known cells; a dataset without records gets
bias 0.
"""

from __future__ import annotations

import numpy as np

from ..features.data import DatasetBlock, TrainData
from .base import Engine

__all__ = ["AdditiveEngine", "fit_additive"]


def fit_additive(Y: np.ndarray, lam: float, iters: int = 50) -> tuple[float, np.ndarray, np.ndarray]:
    """Ridge fit of ``Y[d, m] ≈ mu + b_model[m] + c_dataset[d]`` on the non-NaN cells.

    Returns (mu, model_bias, dataset_bias).
    """
    known = ~np.isnan(Y)
    Y0 = np.where(known, Y, 0.0)
    mu = float(Y0.sum() / max(known.sum(), 1))
    b = np.zeros(Y.shape[1])
    c = np.zeros(Y.shape[0])
    n_m, n_d = known.sum(0), known.sum(1)
    for _ in range(iters):
        b_old = b
        b = (np.where(known, Y0 - mu - c[:, None], 0.0).sum(0)) / (n_m + lam)
        c = (np.where(known, Y0 - mu - b[None, :], 0.0).sum(1)) / (n_d + lam)
        if np.abs(b - b_old).max() < 1e-9:
            break
    return mu, b, c


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

    def _fit(self, data: TrainData) -> None:
        self.mu_, self.model_bias_, self.dataset_bias_ = fit_additive(data.Y, self.lam)

    def _predict(self, block: DatasetBlock) -> np.ndarray:
        c = np.where(block.index >= 0, self.dataset_bias_[np.maximum(block.index, 0)], 0.0)
        return np.clip(self.mu_ + self.model_bias_[None, :] + c[:, None], 0.0, 1.0)
