"""Additive: accuracy = mu + model bias + dataset bias (ridge).

The classic baseline of rating prediction (Koren, 2008, "baseline
predictors"): no interaction between models and datasets, so every dataset
gets the same model ranking, shifted by its own level. Fitted by alternating
exact ridge updates on the known cells; a dataset without records gets
bias 0.
"""

from __future__ import annotations

import numpy as np

from ..features.data import Cells, DatasetBlock, ZooData
from .base import Engine

__all__ = ["AdditiveEngine", "fit_additive"]


def fit_additive(Y, lam: float, iters: int = 50) -> tuple[float, np.ndarray, np.ndarray]:
    """Ridge fit of ``Y[d, m] ≈ mu + b_model[m] + c_dataset[d]`` on the known cells.

    ``Y`` is a dense matrix (NaN where unknown) or :class:`~recsys.features.data.Cells`;
    the work is O(records) per sweep either way. Returns (mu, model_bias, dataset_bias).
    """
    cells = Y if isinstance(Y, Cells) else Cells.from_dense(Y)
    y, d, m = cells.y, cells.d, cells.m
    mu = float(y.mean()) if len(y) else 0.0
    b = np.zeros(cells.shape[1])
    c = np.zeros(cells.shape[0])
    n_m, n_d = cells.col_counts(), cells.row_counts()
    for _ in range(iters):
        b_old = b
        b = np.bincount(m, weights=y - mu - c[d], minlength=cells.shape[1]) / (n_m + lam)
        c = np.bincount(d, weights=y - mu - b[m], minlength=cells.shape[0]) / (n_d + lam)
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

    def _fit(self, data: ZooData) -> None:
        self.mu_, self.model_bias_, self.dataset_bias_ = fit_additive(data.records, self.lam)

    def _predict(self, block: DatasetBlock) -> np.ndarray:
        c = np.where(block.index >= 0, self.dataset_bias_[np.maximum(block.index, 0)], 0.0)
        return np.clip(self.mu_ + self.model_bias_[None, :] + c[:, None], 0.0, 1.0)
