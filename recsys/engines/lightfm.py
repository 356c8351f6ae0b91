"""LightFM alone: the hybrid factorization on soft labels, its side features, nothing else.

The stage :mod:`recsys.engines.stages.lightfm` describes (LightFM, Kula 2015, on
soft labels of per-dataset standardized accuracies; datasets described by
their metadata, text dimensions and label tokens, models by identity and
metadata), mapped back to accuracy units per dataset:
``y = s_d * (c_d + tau * score)``, with the spread ``s_d`` pooled from the
dataset's records and a feature prior, and the level ``c_d`` the mean offset
of its records (datasets without records: level and spread predicted from
their features). Recorded cells keep their record.

It is the default engine (``hybrid``) without its kernel, pair-score and
kriging stages, so the benchmark shows what LightFM contributes by itself.
"""

from __future__ import annotations

import numpy as np

from ..errors import RecsysError
from ..features.data import DatasetBlock, SideFeatures, ZooData
from .stages import lightfm as lfm
from .stages.scale import fit_ridge, log_spread_prior, ridge_predict, scale_estimate, standardize_pooled
from .base import Engine

__all__ = ["LightFMEngine"]


class LightFMEngine(Engine):
    """LightFM hybrid on soft labels, mapped to accuracies per dataset.

    Parameters
    ----------
    no_components : int
        Embedding dimension.
    epochs : int
        Passes over the interactions.
    learning_rate : float
        Adagrad learning rate.
    tau : float
        Soft-label temperature: ``t = sigmoid(z / tau)``.
    alpha : float
        L2 penalty on user and item feature embeddings.
    seed : int
    """

    name = "lightfm"
    #: accepted ranges of the numeric parameters (``recsys fit --param`` refuses values outside)
    param_bounds = {"no_components": (1, 256), "epochs": (1, 1000), "learning_rate": (1e-6, 10.0),
                    "tau": (0.01, 100.0), "alpha": (0.0, 1.0)}
    summary = "LightFM hybrid alone (soft labels; dataset metadata, text and label tokens as user features)"

    def __init__(self, *, no_components: int = 8, epochs: int = 20, learning_rate: float = 0.15, tau: float = 1.5,
                 alpha: float = 3e-4, seed: int = 0):
        self.no_components = no_components
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.tau = tau
        self.alpha = alpha
        self.seed = seed

    def _check_params(self) -> None:
        for name in ("no_components", "epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise RecsysError(f"give {name} a positive integer: got {v!r}")
        for name in ("learning_rate", "tau"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not np.isfinite(v) or v <= 0:
                raise RecsysError(f"give {name} a positive number: got {v!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float, np.floating)) \
                or not np.isfinite(self.alpha) or self.alpha < 0:
            raise RecsysError(f"give alpha a penalty >= 0, e.g. 3e-4: got {self.alpha!r}")

    def _fit(self, data: ZooData) -> None:
        self._check_params()
        cells, X = data.records, data.dataset_features
        UF = lfm.user_features(data.datasets)
        IF = lfm.item_features(data.model_features)
        s, self.log_spread_coef_, self.log_spread_range_ = scale_estimate(cells, X)
        z = standardize_pooled(cells, s)
        self.user_embeddings_, self.item_repr_ = lfm.fit_soft_labels(
            cells, z, UF, IF, alpha=float(self.alpha), no_components=self.no_components, epochs=self.epochs,
            learning_rate=self.learning_rate, tau=self.tau, seed=self.seed)
        L = lfm.scores_at(UF, self.user_embeddings_, self.item_repr_, self.tau, cells.d, cells.m)
        k = cells.row_counts()
        self.spread_ = s
        self.level_ = cells.row_mean(cells.y / s[cells.d] - L)  # offset of each dataset's records
        # Mean accuracy of the recorded datasets, from features, for datasets without records.
        has = k > 0
        mean_acc = s * (self.level_ + lfm.score_row_means(UF, self.user_embeddings_, self.item_repr_, self.tau))
        self.level_coef_ = fit_ridge(X[has], mean_acc[has], w=np.minimum(k[has], 10), alpha=1.0) \
            if has.sum() > 2 else np.r_[cells.y.mean(), np.zeros(X.shape[1])]

    def _predict(self, block: DatasetBlock) -> np.ndarray:
        idx = block.index
        zoo = idx >= 0
        data = self._data
        L = np.empty((len(block), self.n_models_))
        X = np.where(zoo[:, None], data.dataset_features[np.maximum(idx, 0)], block.features)
        if zoo.any():  # a zoo dataset: its stored features and tokens
            L[zoo] = self._scores(data.datasets.take(idx[zoo]))
        if (~zoo).any():  # a new one: the tokens it comes with (none: missing)
            L[~zoo] = self._scores(block.take(np.flatnonzero(~zoo)).side.like(data.datasets))
        counts = np.zeros(len(idx), dtype=np.int64)
        counts[zoo] = data.records.indptr[idx[zoo] + 1] - data.records.indptr[idx[zoo]]
        has = counts > 0
        s_feat = np.exp(log_spread_prior(self.log_spread_coef_, X, getattr(self, "log_spread_range_", None)))
        s = np.where(zoo, self.spread_[np.maximum(idx, 0)], s_feat)
        cold_level = ridge_predict(self.level_coef_, X)
        pred = np.where(has[:, None], s[:, None] * (self.level_[np.maximum(idx, 0)][:, None] + L),
                        cold_level[:, None] + s[:, None] * (L - L.mean(1, keepdims=True)))
        rows = np.flatnonzero(has)
        known = data.records.dense(idx[rows])
        pred[rows] = np.where(np.isnan(known), pred[rows], known)  # records stay as they are
        return np.clip(pred, 0.0, 1.0)

    def _scores(self, side: SideFeatures) -> np.ndarray:
        return lfm.scores_rows(lfm.user_features(side), self.user_embeddings_, self.item_repr_, self.tau)
