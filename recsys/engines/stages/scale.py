"""Per-dataset level and spread: standardized accuracies from the known cells.

Every function takes the known cells as :class:`~recsys.features.data.Cells`
(sparse, row-major) and costs O(records + datasets x features): nothing here
builds a dense datasets x models matrix.

- :func:`scale_estimate`: each dataset's spread of accuracies, its empirical
  log standard deviation pooled with a ridge prediction from its features
  (so a dataset with two records does not get a spread from two numbers;
  :func:`fit_log_spread`: its penalty counted in datasets, its answers within
  the zoo's spreads).
- :func:`standardize`: z-scores of each dataset's records over its own records.
- :func:`standardize_pooled`: z-scores whose level does not depend on which
  models a dataset happened to record (see the function); :class:`Standardization`
  recomputes them at any record from per-dataset values (a model file keeps those,
  not one value per record).
- :func:`shrunk_location_scale`: each dataset's mean and spread shrunk to the
  zoo's (the baselines' scale); :func:`standardize_rows`: z-scores of each row of
  a dense score matrix.
- :func:`fit_additive`: zoo mean + model bias + dataset bias by ridge (the
  ``additive`` engine, and the baseline ``mc`` completes the residuals of).

The numeric helpers every engine may share live here, not in another engine's file.
"""

from __future__ import annotations

import numpy as np

from ...features.data import Cells

__all__ = ["fit_ridge", "ridge_predict", "row_sd", "pooled_scale", "scale_estimate", "fit_log_spread",
           "log_spread_prior", "LOG_SPREAD_BOUNDS", "standardize", "standardize_dense", "standardize_pooled",
           "Standardization", "column_means", "shrunk_location_scale", "standardize_rows", "fit_additive"]


def fit_ridge(X: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, alpha: float = 1.0) -> np.ndarray:
    """Weighted ridge with an unpenalized intercept; returns ``[intercept, coef...]``."""
    Xa = np.hstack([np.ones((len(X), 1)), X])
    w = np.ones(len(X)) if w is None else np.asarray(w, float)
    P = np.eye(Xa.shape[1]) * alpha
    P[0, 0] = 0.0
    A = Xa.T @ (Xa * w[:, None]) + P
    return np.linalg.lstsq(A, Xa.T @ (w * y), rcond=None)[0]


def ridge_predict(coef: np.ndarray, X: np.ndarray) -> np.ndarray:
    return coef[0] + X @ coef[1:]


#: the weight of the feature prior's log-spread, in records (a dataset's own log-sd weighs k - 1)
PRIOR_WEIGHT = 3.0


def row_sd(cells: Cells) -> tuple[np.ndarray, np.ndarray]:
    """Records per dataset and the (population) sd of its records (NaN without records)."""
    k = cells.row_counts()
    dev = cells.centre_rows(cells.y)
    var = cells.row_sum(dev * dev) / np.maximum(k, 1)
    return k, np.where(k > 0, np.sqrt(var), np.nan)


def pool_log_sd(k: np.ndarray, sd: np.ndarray, prior: np.ndarray, prior_weight: float) -> np.ndarray:
    """Log-sds of ``k`` records each (``k - 1`` weights) pooled with ``prior`` (weight ``prior_weight``)."""
    emp = np.log(np.where(sd > 1e-4, sd, 1e-4))
    w = np.where(k >= 2, k - 1, 0)
    log_s = (prior_weight * prior + w * np.nan_to_num(emp)) / (prior_weight + w)
    return np.exp(np.clip(log_s, -9, 1))


def pooled_scale(cells: Cells, prior: np.ndarray, *, prior_weight: float = PRIOR_WEIGHT) -> np.ndarray:
    """Spread of each dataset: its empirical log-sd (``k - 1`` weights) pooled with ``prior`` (a log-sd)."""
    return pool_log_sd(*row_sd(cells), prior, prior_weight)


#: the log-spread's bounds where nothing narrower is known (model files from before the prior kept its bounds)
LOG_SPREAD_BOUNDS = (-9.0, 1.0)


def fit_log_spread(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The feature prior of the log-spread: ``(coef, bounds)``, a ridge of ``y`` (log-sds) on ``X`` whose weights
    ``w`` are scaled to mean 1, so that its penalty of 1 counts as one dataset, and ``bounds`` the range of ``y``:
    its answers stay within the log-sds the zoo's datasets span.

    With weights in records (hundreds a dataset) a penalty of 1 is none at all: on a zoo of more features than
    datasets the ridge then interpolates them and can give a new dataset any spread (vtab-hf: 0.0073 where the
    zoo's run from 0.015 to 0.37). The figures, and the penalty chosen per zoo that was not adopted: DEVELOPERS.md,
    "Measured and not adopted".
    """
    w, y = np.asarray(w), np.asarray(y)
    return fit_ridge(X, y, w=w / w.mean(), alpha=1.0), np.array([y.min(), y.max()])


def log_spread_prior(coef: np.ndarray, X: np.ndarray, bounds: np.ndarray | None = None) -> np.ndarray:
    """The feature prior's log-spread of datasets ``X``, within ``bounds`` (:func:`fit_log_spread`; None: a model
    file from before them, :data:`LOG_SPREAD_BOUNDS`)."""
    lo, hi = LOG_SPREAD_BOUNDS
    if bounds is not None:
        lo, hi = max(lo, float(bounds[0])), min(hi, float(bounds[1]))
    return np.clip(ridge_predict(coef, X), lo, hi)


def scale_estimate(cells: Cells, X: np.ndarray, *, prior_weight: float = PRIOR_WEIGHT, min_known: int = 4
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spread of each dataset: its empirical log-sd pooled with a ridge prediction from features.

    Returns (scale per dataset, coefficients of the feature prior on log-sd, its bounds): :func:`fit_log_spread`
    where more than 5 datasets have ``min_known`` records, else the median of their log-sds.
    """
    k, sd = row_sd(cells)
    good = (k >= min_known) & (sd > 1e-4)
    if good.sum() > 5:
        coef, bounds = fit_log_spread(X[good], np.log(sd[good]), k[good])
    else:
        base = np.log(np.median(sd[good])) if good.any() else np.log(0.05)
        coef, bounds = np.r_[base, np.zeros(X.shape[1])], np.array([base, base])
    return pool_log_sd(k, sd, log_spread_prior(coef, X, bounds), prior_weight), coef, bounds


class Standardization:
    """Standardized accuracy of a record from per-dataset values: ``y / scale[d] - offset[d]`` (``ratio``) or
    ``(y - offset[d]) / scale[d]``; NaN where the dataset's offset is NaN (too few records)."""

    def __init__(self, offset: np.ndarray, scale: np.ndarray, *, ratio: bool):
        self.offset, self.scale, self.ratio = offset, scale, ratio

    def at(self, y: np.ndarray, d: np.ndarray) -> np.ndarray:
        """The standardized values of records ``y`` of datasets ``d``."""
        return y / self.scale[d] - self.offset[d] if self.ratio else (y - self.offset[d]) / self.scale[d]

    def of(self, cells: Cells) -> np.ndarray:
        """One value per record of ``cells``."""
        return self.at(cells.y, cells.d)


def _plain_standardization(cells: Cells, min_known: int) -> Standardization:
    k, sd = row_sd(cells)
    ok = (k >= min_known) & (sd > 0)
    return Standardization(np.where(ok, cells.row_mean(cells.y), np.nan), np.where(ok, sd, 1.0), ratio=False)


def standardize(cells: Cells, min_known: int = 3) -> np.ndarray:
    """Per-dataset z-scores of the known cells, one per cell (NaN for datasets with < ``min_known`` records)."""
    return _plain_standardization(cells, min_known).of(cells)


def column_means(cells: Cells, z: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Mean of ``z`` (one value per cell, NaN ignored) per model, over the cells of ``rows`` (bool per dataset).

    0 for a model without such a cell.
    """
    use = ~np.isnan(z)
    if rows is not None:
        use &= rows[cells.d]
    total = np.bincount(cells.m[use], weights=z[use], minlength=cells.shape[1])
    count = np.bincount(cells.m[use], minlength=cells.shape[1])
    return total / np.maximum(count, 1)


def standardize_pooled(cells: Cells, s: np.ndarray, min_known: int = 3, iters: int = 2) -> np.ndarray:
    """Per-dataset standardized accuracies that do not depend on which models happen to be recorded.

    One value per cell: ``pooled_standardization(cells, s, ...).of(cells)`` (see there).
    """
    return pooled_standardization(cells, s, min_known, iters).of(cells)


def pooled_standardization(cells: Cells, s: np.ndarray, min_known: int = 3, iters: int = 2) -> Standardization:
    """The standardization of :func:`standardize_pooled`.

    :func:`standardize` centres each dataset on the mean of its own records, so
    a dataset whose records are the strong models gets the same level as one
    whose records are the weak ones. Here the spread is ``s``, the pooled
    estimate of :func:`scale_estimate` (records + feature prior), and the level
    is set so that the recorded models keep, on average, the zoo's mean
    profile ``g`` over those models (``g``: mean standardized accuracy of each
    model over datasets with >= 5 records, refined ``iters`` times). Falls
    back to :func:`standardize` without such datasets.
    """
    k = cells.row_counts()
    plain = _plain_standardization(cells, min_known)
    well = k >= 5
    if not well.any():
        return plain
    z = plain.of(cells)
    ok = k >= min_known
    for _ in range(iters):
        g = column_means(cells, z, well)
        c = cells.row_mean(cells.y / s[cells.d]) - cells.row_mean(g[cells.m])
        std = Standardization(np.where(ok, c, np.nan), s, ratio=True)
        z = std.of(cells)
    return std


def standardize_dense(Y: np.ndarray, min_known: int = 3) -> np.ndarray:
    """:func:`standardize` of a dense matrix (NaN where unknown), as a dense matrix."""
    cells = Cells.from_dense(Y)
    out = np.full(np.shape(Y), np.nan)
    out[cells.d, cells.m] = standardize(cells, min_known)
    return out


def shrunk_location_scale(Y, prior: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Per-dataset mean and standard deviation of the known cells, shrunk to the zoo's.

    ``Y`` is a dense matrix (NaN where unknown) or :class:`~recsys.features.data.Cells`;
    ``prior`` is the weight, in pseudo-records, of the zoo-wide values.

    Returns
    -------
    mu, sd : ndarray, shape (n_datasets,)
    zoo_mu, zoo_sd : float
        Mean of all known cells; root mean within-dataset variance.
    """
    cells = Y if isinstance(Y, Cells) else Cells.from_dense(Y)
    n = cells.row_counts()
    sums = cells.row_sum(cells.y)
    zoo_mu = float(sums.sum() / max(n.sum(), 1))
    mu = (sums + prior * zoo_mu) / (n + prior)
    dev2 = cells.row_sum(cells.centre_rows(cells.y) ** 2)
    multi = n > 1
    zoo_var = float(dev2[multi].sum() / max((n[multi] - 1).sum(), 1)) if multi.any() else 0.0
    zoo_var = max(zoo_var, 1e-4)
    sd = np.sqrt((dev2 + prior * zoo_var) / (np.maximum(n - 1, 0) + prior))
    return mu, sd, zoo_mu, float(np.sqrt(zoo_var))


def standardize_rows(S: np.ndarray, *, min_count: int = 2, rel_tol: float = 1e-12) -> np.ndarray:
    """Per row, ``(s - mean) / std`` over the finite entries; 0 where unknown or the row is constant.

    Parameters
    ----------
    S : ndarray of float, shape (n, m)
        NaN marks a missing score.
    min_count : int
        Rows with fewer finite entries are all 0.
    rel_tol : float
        Rows whose standard deviation is at most ``rel_tol * max(|mean|, 1)`` are all 0 (constant).

    Returns
    -------
    ndarray of float, shape (n, m)
    """
    S = np.asarray(S, dtype=np.float64)
    ok = np.isfinite(S)
    n = ok.sum(1)
    S0 = np.where(ok, S, 0.0)
    mean = S0.sum(1) / np.maximum(n, 1)
    dev = np.where(ok, S0 - mean[:, None], 0.0)
    std = np.sqrt((dev ** 2).sum(1) / np.maximum(n, 1))
    good = (n >= min_count) & (std > rel_tol * np.maximum(np.abs(mean), 1.0))
    return np.where(good[:, None], dev / np.where(good, std, 1.0)[:, None], 0.0)


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
