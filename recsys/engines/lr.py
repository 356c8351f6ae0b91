"""LR: linear regression on metadata, the research baseline of the DomainNet benchmark.

Chen et al. (2024), "Transferability Prediction for Model Recommendation: A
Graph Learning based Approach", report "LR (linear regression on metadata)".
Their script (``LR.py`` in davechenxy/ModelRecommendation) fits, on one row
per known (model, dataset) cell, ``sigmoid(w . [x_model || x_dataset] + b)``
to the accuracy with a mean squared error (full-batch SGD, 5,000 epochs). This
engine fits the same model and loss, with two deliberate differences: the
features are standardized over the training rows and a small L2 penalty on
``w`` is added, and the optimum is found by L-BFGS (deterministic, converged,
milliseconds) instead of a fixed SGD budget.

The predictor has no model x dataset interaction term: within a dataset the
models are ranked by ``w_model . x_model`` alone, the same order for every
dataset; the sigmoid only bends the accuracy scale. Predictions come from the
features only, so known and new datasets are treated alike.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit

from ..errors import ModelFitError
from ..features.data import DatasetBlock, ZooData
from .base import Engine

__all__ = ["LinearRegressionEngine"]

log = logging.getLogger(__name__)


class LinearRegressionEngine(Engine):
    """``sigmoid(w . [model features || dataset features] + b)`` fitted by least squares.

    Parameters
    ----------
    alpha : float
        L2 penalty on ``w`` (the intercept is free), added to the mean squared
        error over known cells; features are standardized first.
    max_iter : int
        L-BFGS iterations.
    seed : int
        Unused (the fit is deterministic); kept for the common interface.

    Examples
    --------
    >>> engine = LinearRegressionEngine().fit(data)   # doctest: +SKIP
    >>> engine.predict(data.block()).shape            # doctest: +SKIP
    (270, 10)
    """

    name = "lr"
    summary = "linear regression (sigmoid link) on [model features || dataset features], Chen et al. 2024"

    def __init__(self, *, alpha: float = 1e-3, max_iter: int = 500, seed: int = 0):
        self.alpha = alpha
        self.max_iter = max_iter
        self.seed = seed

    def _fit(self, data: ZooData) -> None:
        d, m, y = data.cells()
        Xm, Xd = data.model_features, data.dataset_features
        X = np.hstack([Xm[m], Xd[d]])
        mean = X.mean(0)
        scale = X.std(0)
        scale[scale < 1e-12] = 1.0  # constant columns carry nothing; keep them at zero
        Xs = (X - mean) / scale
        n, p = Xs.shape
        alpha = float(self.alpha)

        def loss(theta):
            w, b = theta[:p], theta[p]
            f = expit(Xs @ w + b)
            r = f - y
            g = 2.0 * r * f * (1.0 - f) / n
            value = float(r @ r) / n + alpha * float(w @ w)
            grad = np.empty_like(theta)
            grad[:p] = Xs.T @ g + 2.0 * alpha * w
            grad[p] = g.sum()
            return value, grad

        theta0 = np.zeros(p + 1)
        theta0[p] = logit(np.clip(y.mean(), 1e-3, 1 - 1e-3))
        res = minimize(loss, theta0, jac=True, method="L-BFGS-B",
                       options={"maxiter": int(self.max_iter), "gtol": 1e-9, "ftol": 1e-13})
        if not np.isfinite(res.x).all():
            raise ModelFitError("increase alpha: the linear regression diverged (non-finite weights)")
        if not res.success:
            log.debug("L-BFGS stopped early: %s", res.message)
        self.x_mean_, self.x_scale_ = mean, scale
        self.coef_, self.intercept_ = res.x[:p], float(res.x[p])
        self.n_model_features_ = Xm.shape[1]
        # The model part of the linear score is the same for every dataset: precompute it.
        pm = self.n_model_features_
        self.model_score_ = ((Xm - mean[:pm]) / scale[:pm]) @ self.coef_[:pm]

    def _predict(self, block: DatasetBlock) -> np.ndarray:
        pm = self.n_model_features_
        ds = ((block.features - self.x_mean_[pm:]) / self.x_scale_[pm:]) @ self.coef_[pm:]
        return np.clip(expit(self.intercept_ + ds[:, None] + self.model_score_[None, :]), 0.0, 1.0)
