"""ALS: implicit-feedback alternating least squares, the pure collaborative-filtering baseline.

Weighted matrix factorization of Hu, Koren and Volinsky (2008), "Collaborative
Filtering for Implicit Feedback Datasets", with the conjugate-gradient solver of
Takács, Pilászy and Tikk (2011), as implemented by
:class:`implicit.cpu.als.AlternatingLeastSquares`. Datasets are users, models
are items, and no metadata is used.

Accuracies are turned into confidences: each known cell's accuracy is
standardized within its dataset (``z``; level and spread shrunk towards the
zoo's, as in :mod:`~recsys.engines.popularity`), and a model better than the
dataset's level (``z >= 0``) becomes a "liked" item with confidence
``1 + alpha * z``, a worse one a "disliked" item (implicit's negative values:
preference 0) with confidence ``1 + alpha * |z|``. Unknown cells are implicit's
unobserved cells (preference 0, confidence 1). Confidences that are all
positive ("liked" with a weight growing with accuracy) were tried and carry no
ranking: every known cell then has preference 1.

The scores ``x_dataset . y_model`` are mapped back to accuracy by a linear fit
on the known cells: a level per dataset (shrunk towards the zoo's) plus one
global slope. A dataset without records, or a new one, gets the model means.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from ..errors import ModelFitError, RecsysError
from ..features.data import DatasetBlock, ZooData
from ..threads import one_blas_thread
from .base import Engine
from .stages.scale import shrunk_location_scale

__all__ = ["ALSEngine"]

log = logging.getLogger(__name__)


class ALSEngine(Engine):
    """implicit's ALS on signed, standardized accuracies; scores mapped linearly to accuracy.

    Parameters
    ----------
    factors : int
        Latent factors (kept small: zoos have few models).
    regularization : float
        L2 penalty of implicit's ALS.
    alpha : float
        Confidence per standard deviation of accuracy within a dataset.
    iterations : int
        ALS sweeps.
    prior : float
        Pseudo-records pulling a dataset's level (and spread) towards the zoo's.
    seed : int
        ``random_state`` of implicit's factor initialization.

    Examples
    --------
    >>> engine = ALSEngine(seed=0).fit(data)    # doctest: +SKIP
    >>> engine.topk(data.block([3]), k=5)       # doctest: +SKIP
    """

    name = "als"
    summary = "implicit's alternating least squares on standardized accuracies (pure collaborative filtering)"
    #: accepted --param ranges (read by the command line): ALS solves factors x factors systems
    param_bounds = {"factors": (1, 1024)}

    def __init__(self, *, factors: int = 2, regularization: float = 5.0, alpha: float = 3.0, iterations: int = 30,
                 prior: float = 1.0, seed: int = 0):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.prior = prior
        self.seed = seed

    def _fit(self, data: ZooData) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.recommender_base import ModelFitError as ImplicitFitError

        if int(self.factors) < 1:
            raise RecsysError(f"give factors of at least 1: got {self.factors}")
        Y, known = data.Y, data.known
        d, m, y = data.cells()
        mu, sd, zoo_mu, _ = shrunk_location_scale(Y, self.prior)
        z = (y - mu[d]) / sd[d]
        conf = 1.0 + float(self.alpha) * np.abs(z)
        value = np.where(z >= 0, conf, -conf)
        C = sp.csr_matrix((value, (d, m)), shape=Y.shape, dtype=np.float64)
        # One BLAS thread: implicit warns (and runs slower) otherwise, and results stay reproducible.
        with one_blas_thread():
            als = AlternatingLeastSquares(factors=int(self.factors), regularization=float(self.regularization),
                                          alpha=1.0, iterations=int(self.iterations), dtype=np.float64,
                                          random_state=int(self.seed), num_threads=1)
            try:
                als.fit(C, show_progress=False)
            except ImplicitFitError as exc:
                raise ModelFitError(f"increase regularization or lower alpha: ALS diverged ({exc})") from None
        U = np.asarray(als.user_factors, dtype=np.float64)
        V = np.asarray(als.item_factors, dtype=np.float64)
        S = U @ V.T

        # Accuracy = level[d] + slope * score: slope from within-dataset variation, levels shrunk.
        n = known.sum(1)
        s_cell = S[d, m]
        s_mean = np.bincount(d, s_cell, len(n)) / np.maximum(n, 1)
        y_mean = np.bincount(d, y, len(n)) / np.maximum(n, 1)
        ds, dy = s_cell - s_mean[d], y - y_mean[d]
        den = float(ds @ ds)
        slope = float(ds @ dy) / den if den > 1e-12 else 0.0
        if slope < 0:
            log.warning("ALS scores anti-correlate with the known accuracies; predicting dataset levels only")
            slope = 0.0
        resid = np.bincount(d, y - slope * s_cell, len(n))
        zoo_level = float(resid.sum() / max(n.sum(), 1))
        self.level_ = (resid + self.prior * zoo_level) / (n + self.prior)
        self.slope_ = slope
        self.user_factors_, self.item_factors_ = U, V
        # Fallback for datasets without records: each model's mean, shrunk towards the zoo's.
        n_m = known.sum(0)
        self.model_mean_ = (np.bincount(m, y, Y.shape[1]) + self.prior * zoo_mu) / (n_m + self.prior)
        self.has_records_ = n > 0

    def _predict(self, block: DatasetBlock) -> np.ndarray:
        idx = block.index
        warm = idx >= 0
        warm[warm] = self.has_records_[idx[warm]]
        pred = np.broadcast_to(self.model_mean_, (len(block), len(self.model_mean_))).copy()
        rows = idx[warm]
        pred[warm] = self.level_[rows, None] + self.slope_ * (self.user_factors_[rows] @ self.item_factors_.T)
        return np.clip(pred, 0.0, 1.0)
