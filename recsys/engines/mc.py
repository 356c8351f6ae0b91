"""MC: matrix completion by soft-impute.

Soft-impute (Mazumder, Hastie and Tibshirani, 2010, "Spectral Regularization
Algorithms for Learning Large Incomplete Matrices", JMLR 11) fills a matrix by
iterating ``Z <- S_lambda(P_known(X) + P_unknown(Z))``, where ``S_lambda``
soft-thresholds the singular values by ``lambda`` (the proximal step of the
nuclear norm). It is the "MC" baseline of the DomainNet benchmark (Chen et
al., 2024, who used a randomized SVD).

The matrix completed here is the residual of the additive baseline
(:func:`~recsys.engines.stages.scale.fit_additive`: zoo mean + model bias + dataset
bias, ridge), so the low-rank part models only the interactions. A dataset
without records, and a new dataset, gets the zoo mean plus the model biases
(the model means). ``lambda`` is picked inside ``fit`` from a grid (fractions
of the top singular value of the zero-filled residual) by hiding a random share
of the known cells, fitting the path on the rest and keeping the grid value with
the lowest error on the hidden cells; the final fit then uses all known cells.
Only known cells are ever used.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import RecsysError
from ..features.data import DatasetBlock, ZooData
from .base import Engine
from .stages.scale import fit_additive

__all__ = ["MatrixCompletionEngine", "soft_impute"]

log = logging.getLogger(__name__)

#: shrinkage grid, as fractions of the top singular value of the zero-filled residual
GRID = (0.6, 0.4, 0.25, 0.15, 0.1, 0.06, 0.03, 0.015)


def soft_impute(R: np.ndarray, lam: float, *, Z0: np.ndarray | None = None, max_rank: int | None = None,
                max_iter: int = 500, tol: float = 1e-7) -> np.ndarray:
    """Soft-impute completion of ``R`` (NaN = unknown) with nuclear-norm shrinkage ``lam``.

    Parameters
    ----------
    R : ndarray of float, shape (n, m)
    lam : float
        Amount subtracted from every singular value (those below become 0).
    Z0 : ndarray, shape (n, m), optional
        Warm start (the solution for a larger ``lam``).
    max_rank : int, optional
        Keep at most this many singular values.
    max_iter : int
    tol : float
        Stop when the squared relative change of ``Z`` is below ``tol``.

    Returns
    -------
    Z : ndarray of float, shape (n, m)
        Low-rank estimate of the whole matrix.
    """
    known = ~np.isnan(R)
    X = np.where(known, R, 0.0)
    Z = np.zeros_like(X) if Z0 is None else Z0.copy()
    for _ in range(max_iter):
        U, s, Vt = np.linalg.svd(np.where(known, X, Z), full_matrices=False)
        s = np.maximum(s - lam, 0.0)
        if max_rank is not None:
            s[max_rank:] = 0.0
        keep = s > 0
        Z_new = (U[:, keep] * s[keep]) @ Vt[keep]
        delta = np.linalg.norm(Z_new - Z) ** 2 / max(np.linalg.norm(Z) ** 2, 1e-12)
        Z = Z_new
        if delta < tol:
            break
    return Z


class MatrixCompletionEngine(Engine):
    """Soft-impute on the dataset x model residual of the additive baseline.

    Parameters
    ----------
    shrinkage : float, optional
        Nuclear-norm shrinkage as a fraction of the top singular value of the
        zero-filled residual. ``None`` (default) picks it from a grid by inner
        validation.
    max_rank : int, optional
        Upper bound on the rank of the interaction part.
    holdout : float
        Share of known cells hidden for the inner validation.
    lam : float
        Ridge penalty (pseudo-records) of the model and dataset biases.
    max_iter : int
        Soft-impute iterations per grid value.
    seed : int
        Seed of the inner validation split.

    Examples
    --------
    >>> engine = MatrixCompletionEngine(seed=0).fit(data)   # doctest: +SKIP
    >>> engine.shrinkage_fraction_                          # doctest: +SKIP
    0.1
    """

    name = "mc"
    summary = "matrix completion by soft-impute (nuclear norm), shrinkage by inner validation"

    def __init__(self, *, shrinkage: float | None = None, max_rank: int | None = None, holdout: float = 0.15,
                 lam: float = 1.0, max_iter: int = 500, seed: int = 0):
        self.shrinkage = shrinkage
        self.max_rank = max_rank
        self.holdout = holdout
        self.lam = lam
        self.max_iter = max_iter
        self.seed = seed

    def _residual(self, Y: np.ndarray) -> tuple[np.ndarray, tuple, float]:
        """(residual with NaN unknowns, additive fit (mu, b, c), top singular value of the zero-filled residual)."""
        mu, b, c = fit_additive(Y, self.lam)
        R = Y - (mu + b[None, :] + c[:, None])
        top = float(np.linalg.norm(np.where(np.isnan(R), 0.0, R), 2))
        return R, (mu, b, c), top

    def _path(self, R: np.ndarray, top: float, fractions) -> list[np.ndarray]:
        Z, out = None, []
        for f in fractions:  # decreasing: each solution warm-starts the next
            Z = soft_impute(R, f * top, Z0=Z, max_rank=self.max_rank, max_iter=self.max_iter)
            out.append(Z)
        return out

    def _fit(self, data: ZooData) -> None:
        if self.shrinkage is not None and not self.shrinkage >= 0:
            raise RecsysError(f"give shrinkage >= 0 (a fraction of the top singular value): got {self.shrinkage}")
        if not 0 < self.holdout < 1:
            raise RecsysError(f"give holdout in (0, 1): got {self.holdout}")
        rng = np.random.default_rng(self.seed)
        Y = data.Y
        d, m, _ = data.cells()
        if self.shrinkage is not None:
            fraction = float(self.shrinkage)
            self.validation_rmse_ = np.zeros(0)
        elif len(d) < 20:
            fraction = 0.25  # too few cells to validate: a middle value of the grid
            log.info("only %d known cells; soft-impute shrinkage set to %.2f without validation", len(d), fraction)
            self.validation_rmse_ = np.zeros(0)
        else:
            hide = rng.random(len(d)) < self.holdout
            if not hide.any():
                hide[rng.integers(len(d))] = True
            Y_in = Y.copy()
            Y_in[d[hide], m[hide]] = np.nan
            R, (mu, b, c), top = self._residual(Y_in)
            base = mu + b[m[hide]] + c[d[hide]]
            errors = []
            for Z in self._path(R, top, GRID):
                pred = base + Z[d[hide], m[hide]]
                errors.append(float(np.sqrt(np.mean((pred - Y[d[hide], m[hide]]) ** 2))))
            self.validation_rmse_ = np.asarray(errors)
            fraction = GRID[int(np.argmin(errors))]
        R, (mu, b, c), top = self._residual(Y)
        # Refit along the path down to the chosen value (warm starts make it cheap and stable).
        fractions = [f for f in GRID if f > fraction] + [fraction]
        Z = self._path(R, top, fractions)[-1]
        cold_rows = ~data.known.any(1)
        Z[cold_rows] = 0.0
        self.mu_, self.model_bias_, self.dataset_bias_ = mu, b, c
        self.interaction_ = Z
        self.shrinkage_fraction_ = float(fraction)
        self.shrinkage_ = float(fraction * top)
        self.rank_ = int(np.linalg.matrix_rank(Z, tol=1e-8)) if Z.any() else 0

    def _predict(self, block: DatasetBlock) -> np.ndarray:
        idx = block.index
        known = idx >= 0
        pred = np.broadcast_to(self.mu_ + self.model_bias_[None, :], (len(block), len(self.model_bias_))).copy()
        pred[known] += self.dataset_bias_[idx[known], None] + self.interaction_[idx[known]]
        return np.clip(pred, 0.0, 1.0)
