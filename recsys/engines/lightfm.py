"""The default engine: a LightFM hybrid factorization trained on accuracies.

LightFM (Kula, 2015, "Metadata Embeddings for User and Item Cold-start
Recommendations") represents each user (here: a dataset) and item (a model) as
the sum of the embeddings of its features: an identity feature plus metadata
and text-embedding features. A dataset without records still has metadata
features, so it is predicted from them alone (cold start).

LightFM's losses are implicit-feedback losses; accuracies are encoded as soft
labels:

1. each dataset's accuracies are standardized (level and spread estimated from
   its records, shrunk to a prediction from its features when it has few);
2. a standardized value ``z`` becomes a target ``t = Phi(z / 2)`` in (0, 1);
3. each record is a positive interaction weighted ``t`` plus a negative one
   weighted ``1 - t`` under the logistic loss, whose optimum is
   ``sigmoid(score) = t``;
4. predictions invert the chain: ``z = 2 Phi^-1(sigmoid(score))``, accuracy
   ``= level + spread * z``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, ndtr, ndtri

from ..features.data import DatasetBlock, TrainData
from .base import Engine
from .popularity import shrunk_location_scale

__all__ = ["LightFMEngine"]

_T_CLIP = (0.01, 0.99)
_Z_SCALE = 2.0


def _ridge(X: np.ndarray, y: np.ndarray, w: np.ndarray, lam: float) -> np.ndarray:
    """Weighted ridge with an unpenalized intercept; returns [intercept, coefs]."""
    Xa = np.hstack([np.ones((len(X), 1)), X])
    P = np.eye(Xa.shape[1]) * lam
    P[0, 0] = 1e-8
    A = Xa.T @ (Xa * w[:, None]) + P
    return np.linalg.solve(A, Xa.T @ (w * y))


class LightFMEngine(Engine):
    """LightFM hybrid on soft-label-encoded accuracies (the default engine).

    Parameters
    ----------
    no_components : int
        Dimension of the latent embeddings.
    epochs : int
        Passes of stochastic gradient descent over the interactions.
    learning_rate : float
        Adagrad learning rate.
    item_alpha, user_alpha : float
        L2 penalties on model and dataset feature embeddings.
    prior : float
        Pseudo-records pulling a dataset's level and spread towards the value
        predicted from its features.
    seed : int
    """

    name = "lightfm"
    summary = "LightFM hybrid factorization (identity + metadata + text features) on soft-labelled accuracies"

    def __init__(self, *, no_components: int = 16, epochs: int = 60, learning_rate: float = 0.05,
                 item_alpha: float = 1e-5, user_alpha: float = 1e-5, prior: float = 2.0, seed: int = 0):
        self.no_components = no_components
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.item_alpha = item_alpha
        self.user_alpha = user_alpha
        self.prior = prior
        self.seed = seed

    # -- feature matrices -------------------------------------------------------
    @staticmethod
    def _user_matrix(features: np.ndarray, index: np.ndarray, n_datasets: int) -> sp.csr_matrix:
        n = len(index)
        ident = sp.csr_matrix((np.ones(int((index >= 0).sum())), (np.flatnonzero(index >= 0), index[index >= 0])),
                              shape=(n, n_datasets))
        return sp.hstack([ident, sp.csr_matrix(features)], format="csr", dtype=np.float32)

    def _level_scale(self, data: TrainData) -> tuple[np.ndarray, np.ndarray]:
        """Per-dataset level and log-spread from records, shrunk to a feature prediction."""
        Y, known = data.Y, data.known
        n = known.sum(1)
        mu_raw, sd_raw, zoo_mu, zoo_sd = shrunk_location_scale(Y, prior=1e-9)
        X = data.dataset_features
        has = n > 0
        w = n / (n + self.prior)
        coef_mu = _ridge(X[has], mu_raw[has], w[has], lam=1.0)
        multi = n > 1
        log_sd = np.log(np.maximum(sd_raw, 1e-3))
        coef_sd = _ridge(X[multi], log_sd[multi], w[multi], lam=1.0) if multi.sum() > 2 else \
            np.r_[np.log(zoo_sd), np.zeros(X.shape[1])]
        self.coef_level_, self.coef_log_spread_ = coef_mu, coef_sd
        mu_f, sd_f = self._feature_level_scale(X)
        mu = np.where(has, (n * mu_raw + self.prior * mu_f) / (n + self.prior), mu_f)
        n1 = np.maximum(n - 1, 0)
        sd = np.exp((n1 * np.log(np.maximum(sd_raw, 1e-3)) + self.prior * np.log(sd_f)) / (n1 + self.prior))
        return mu, sd

    def _feature_level_scale(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Xa = np.hstack([np.ones((len(X), 1)), X])
        return Xa @ self.coef_level_, np.exp(np.clip(Xa @ self.coef_log_spread_, -8, 2))

    # -- fit / predict --------------------------------------------------------------
    def _fit(self, data: TrainData) -> None:
        from lightfm import LightFM

        mu, sd = self._level_scale(data)
        d, m, y = data.cells()
        z = (y - mu[d]) / sd[d]
        t = np.clip(ndtr(z / _Z_SCALE), *_T_CLIP)
        rows = np.r_[d, d]
        cols = np.r_[m, m]
        inter = sp.coo_matrix((np.r_[np.ones_like(t), -np.ones_like(t)].astype(np.float32), (rows, cols)),
                              shape=(data.n_datasets, data.n_models))
        weight = sp.coo_matrix((np.r_[t, 1 - t].astype(np.float32), (rows, cols)), shape=inter.shape)
        uf = self._user_matrix(data.dataset_features, np.arange(data.n_datasets), data.n_datasets)
        itf = sp.hstack([sp.identity(data.n_models), sp.csr_matrix(data.model_features)], format="csr", dtype=np.float32)
        model = LightFM(no_components=self.no_components, loss="logistic", learning_rate=self.learning_rate,
                        item_alpha=self.item_alpha, user_alpha=self.user_alpha, random_state=self.seed)
        model.fit(inter, user_features=uf, item_features=itf, sample_weight=weight, epochs=self.epochs, num_threads=1)
        self.user_embeddings_ = model.user_embeddings.astype(np.float64)
        self.user_biases_ = model.user_biases.astype(np.float64)
        self.item_repr_ = (itf @ model.item_embeddings).astype(np.float64)
        self.item_bias_repr_ = (itf @ model.item_biases).astype(np.float64)
        self.level_, self.spread_ = mu, sd
        # A dataset without records never trained its identity embedding (it is
        # still at its random initialization): predict it from features alone,
        # exactly like a brand-new dataset.
        self.has_records_ = data.known.any(1)

    def _scores(self, block: DatasetBlock) -> np.ndarray:
        index = np.where((block.index >= 0) & self.has_records_[np.maximum(block.index, 0)], block.index, -1)
        uf = self._user_matrix(block.features, index, len(self.level_))
        u = uf @ self.user_embeddings_
        ub = uf @ self.user_biases_
        return u @ self.item_repr_.T + ub[:, None] + self.item_bias_repr_[None, :]

    def _predict(self, block: DatasetBlock) -> np.ndarray:
        t = np.clip(expit(self._scores(block)), 1e-6, 1 - 1e-6)
        z = _Z_SCALE * ndtri(t)
        idx = np.where((block.index >= 0) & self.has_records_[np.maximum(block.index, 0)], block.index, -1)
        mu_f, sd_f = self._feature_level_scale(block.features)
        mu = np.where(idx >= 0, self.level_[np.maximum(idx, 0)], mu_f)
        sd = np.where(idx >= 0, self.spread_[np.maximum(idx, 0)], sd_f)
        return np.clip(mu[:, None] + sd[:, None] * z, 0.0, 1.0)
