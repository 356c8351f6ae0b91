"""Per-dataset scale and universal kriging: from a standardized profile to accuracies.

Model: ``y[d, m] = s_d * (c_d + M[d, m] + e[d, m])`` where ``M`` is a profile
in standardized units (from the factorization and the kernel), ``s_d`` the
dataset's spread of accuracies, ``c_d`` its level and ``e`` a residual whose
covariance across models ``S`` is estimated from the well-recorded datasets
(models that err together on one dataset err together on others). Given a
dataset's records, ``c_d`` is the generalized-least-squares offset and the
unknown residuals are their best linear predictor (universal kriging; Cressie,
1993, ch. 3):

    y_u = s_d * (c + M_u + S_uk S_kk^-1 (r_k - c)),  r_k = y_k / s_d - M_k

A dataset without records gets its level and spread from its features.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_ridge", "ridge_predict", "pooled_scale", "scale_estimate", "residual_covariance", "krige"]


_BATCH_MODELS = 32  # up to this many models, datasets are kriged in batches (see krige)


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


def _row_sd(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Records per dataset and the (population) sd of its records (NaN without records)."""
    K = ~np.isnan(Y)
    k = K.sum(1)
    Y0 = np.where(K, Y, 0.0)
    mu = Y0.sum(1) / np.maximum(k, 1)
    sd = np.where(k > 0, np.sqrt(np.where(K, (Y0 - mu[:, None]) ** 2, 0.0).sum(1) / np.maximum(k, 1)), np.nan)
    return k, sd


def _pool_log_sd(k: np.ndarray, sd: np.ndarray, prior: np.ndarray, prior_weight: float) -> np.ndarray:
    emp = np.log(np.where(sd > 1e-4, sd, 1e-4))
    w = np.where(k >= 2, k - 1, 0)
    log_s = (prior_weight * prior + w * np.nan_to_num(emp)) / (prior_weight + w)
    return np.exp(np.clip(log_s, -9, 1))


def pooled_scale(Y: np.ndarray, prior: np.ndarray, *, prior_weight: float = 3.0) -> np.ndarray:
    """Spread of each dataset: its empirical log-sd (``k - 1`` weights) pooled with ``prior`` (a log-sd)."""
    return _pool_log_sd(*_row_sd(Y), prior, prior_weight)


def scale_estimate(Y: np.ndarray, X: np.ndarray, *, prior_weight: float = 3.0, min_known: int = 4
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Spread of each dataset: its empirical log-sd pooled with a ridge prediction from features.

    Returns (scale per dataset, coefficients of the feature prior on log-sd).
    """
    k, sd = _row_sd(Y)
    good = (k >= min_known) & (sd > 1e-4)
    if good.sum() > 5:
        coef = fit_ridge(X[good], np.log(sd[good]), w=k[good], alpha=1.0)
    else:
        base = np.log(np.median(sd[good])) if good.any() else np.log(0.05)
        coef = np.r_[base, np.zeros(X.shape[1])]
    return _pool_log_sd(k, sd, ridge_predict(coef, X), prior_weight), coef


def residual_covariance(Y: np.ndarray, s: np.ndarray, M: np.ndarray, *, min_known: int = 5,
                        shrink: float = 0.2, rows: np.ndarray | None = None) -> np.ndarray:
    """Covariance across models of ``y/s - M - offset`` over well-recorded datasets.

    Pairwise-complete, corrected for removing each dataset's mean, shrunk
    towards its diagonal by ``shrink``. Only the datasets flagged in ``rows``
    (default: all) are used. Shape (n_models, n_models).
    """
    K = ~np.isnan(Y)
    k = K.sum(1)
    use = k >= min_known
    if rows is not None:
        use = use & rows
    n_models = Y.shape[1]
    if not use.any():
        return np.eye(n_models)
    U = np.where(K, Y / s[:, None] - M, 0.0)
    c = U[use].sum(1) / k[use]
    R = np.zeros_like(U)
    R[use] = np.where(K[use], U[use] - c[:, None], 0.0)
    Ku = (K & use[:, None]).astype(float)
    corr = np.where(use, k / np.maximum(k - 1, 1), 0.0)
    S = (R * corr[:, None]).T @ R / np.maximum(Ku.T @ Ku, 1.0)
    diag = np.diag(S).copy()
    fill = np.median(diag[diag > 0]) if (diag > 0).any() else 1.0
    diag = np.where(diag > 0, diag, fill)  # models never recorded on a well-recorded dataset
    S = (1 - shrink) * S + shrink * np.diag(diag)
    S[np.diag_indices(n_models)] = diag
    return S


def krige(Y: np.ndarray, s: np.ndarray, M: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Universal kriging of every dataset with records.

    Returns (predictions in accuracy units, level ``c`` per dataset in units of
    ``s``; NaN for datasets without records). Recorded cells keep their record.
    """
    K = ~np.isnan(Y)
    n, m = Y.shape
    P = np.full(Y.shape, np.nan)
    level = np.full(n, np.nan)
    rows = np.flatnonzero(K.any(1))
    ridge = 1e-9 * np.trace(S) / len(S)
    if m <= _BATCH_MODELS:
        # Few models: embed each dataset's system S[known, known] in an (m, m) one with identity rows
        # for its unknown models (solution 0 there) and solve them in batches: the same numbers as
        # the per-dataset solve below, without a Python loop over datasets.
        S_r = S + ridge * np.eye(m)
        for start in range(0, len(rows), 4096):
            d = rows[start:start + 4096]
            kk = K[d].astype(float)
            A = S_r[None] * kk[:, :, None] * kk[:, None, :]
            A[:, np.arange(m), np.arange(m)] += 1.0 - kk
            r = np.where(K[d], Y[d] / s[d, None] - M[d], 0.0)
            sol = np.linalg.solve(A, np.stack([r, kk], axis=2))
            Ai_r, Ai_1 = sol[..., 0], sol[..., 1]
            c = Ai_r.sum(1) / Ai_1.sum(1)
            P[d] = s[d, None] * (c[:, None] + M[d] + (Ai_r - c[:, None] * Ai_1) @ S.T)
            level[d] = c
    else:
        for d in rows:
            kk = K[d]
            A = S[np.ix_(kk, kk)] + ridge * np.eye(kk.sum())
            r = Y[d, kk] / s[d] - M[d, kk]
            ones = np.ones(kk.sum())
            Ai_r, Ai_1 = np.linalg.solve(A, np.column_stack([r, ones])).T
            c = (ones @ Ai_r) / (ones @ Ai_1)
            P[d] = s[d] * (c + M[d] + S[:, kk] @ (Ai_r - c * Ai_1))
            level[d] = c
    P[K] = Y[K]
    return P, level
